"""What a checkpoint must agree with to be resumed: settings, seed, data, backbone and image cache.

A resumed run that silently mixed two configurations, two backbones or two image caches would
report numbers no single run produced, so a mismatch is refused with the keys that differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from har_kedro.config.training import TrainConfig

# Settings that do not change what an epoch computes; a resumed run may change them freely.
RESUME_FREE = (
    "resume", "progress", "keep_checkpoints", "eval_batch_size", "device", "distributed",
    "cache_on_device", "compile", "compile_mode", "activation_checkpointing", "tf32", "log_every_steps", "calibrate", "wise_ft",
)
_TOP_LEVEL = ("seed", "train_size", "backbone", "backbone_weights", "image_cache")


class ResumeMismatchError(ValueError):
    """The checkpoint on disk was written by a run with other settings or inputs; resuming would mix the two."""


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer of ``module`` (names, dtypes, shapes and bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def run_fingerprint(config: TrainConfig, seed: int, train_size: int, stage: str, processes: int = 1, inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings, seed and data size, plus ``inputs``: the backbone (source and weights hash) and the image cache."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_FREE}
    if processes > 1:  # each process has its own random streams, saved per rank: resume with as many
        settings["processes"] = processes
    fingerprint = {"stage": stage, "seed": seed, "train_size": train_size, "settings": settings, **dict(inputs or {})}
    return json.loads(json.dumps(fingerprint, default=str))


def check_resumable(saved: Mapping[str, Any] | None, current: Mapping[str, Any], found: Path) -> None:
    """Raise :class:`ResumeMismatchError` naming what differs between ``saved`` and ``current``."""
    if saved is None:
        return  # written before fingerprints existed
    differ = sorted(
        k for k in set(saved["settings"]) | set(current["settings"]) if saved["settings"].get(k) != current["settings"].get(k)
    ) + [k for k in _TOP_LEVEL if saved.get(k) != current.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {_value(saved, k)!r} -> {_value(current, k)!r}" for k in differ[:5])
        raise ResumeMismatchError(
            f"cannot resume from {found}: it was written with other settings or inputs ({detail}). "
            "Restore those to continue it, or set resume: false to start this run over."
        )


def _value(fingerprint: Mapping[str, Any], key: str) -> Any:
    return fingerprint.get(key) if key in _TOP_LEVEL else fingerprint["settings"].get(key)
