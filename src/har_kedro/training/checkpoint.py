"""Per-epoch training checkpoints that let a killed run resume exactly, without pickle.

A checkpoint is a folder ``epoch_<NNNN>`` holding two files:

* ``tensors.safetensors`` - every tensor of the state (model weights, optimizer moments, the
  optimizer's tensor ``step`` counters, torch RNG states as uint8, ...), under keys that spell
  where it came from, e.g. ``model.head.weight`` or ``optimizer.state.3.exp_avg``;
* ``state.json`` - everything else, with each tensor replaced by a reference to its key, dtype
  and shape. Python values that JSON cannot tell apart are tagged so they come back with their
  type: tuples, dicts with non-string keys (the optimizer's integer parameter ids), non-finite
  floats, dtypes. Callables (an ``LRScheduler`` may carry some) are dropped and come back as
  ``None``, which ``load_state_dict`` of the schedulers skips.

Nothing is ever unpickled: loading reads JSON and safetensors only, and ``torch.load`` is not used.
A checkpoint is written into a hidden ``.partial-*`` folder and renamed into place once complete,
so a run killed mid-write leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
EPOCH_DIR_PATTERN = re.compile(r"^epoch_(\d{4,})$")
_PARTIAL_PREFIX = ".partial-"
_STALE_PREFIX = ".stale-"
_KIND = "__kind__"
_SECTIONS = ("model", "optimizer", "scheduler", "scaler", "rng", "extra", "best_model")

__all__ = [
    "FORMAT_VERSION",
    "TrainingState",
    "capture_rng_state",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]


@dataclass
class TrainingState:
    """Everything needed to continue a run after ``epoch`` as if it had never stopped."""

    epoch: int  # last completed epoch
    model: dict[str, torch.Tensor]  # trainable state (whatever the caller passes)
    optimizer: dict  # optimizer.state_dict()
    scheduler: dict  # scheduler.state_dict()
    scaler: dict | None  # torch.amp.GradScaler.state_dict() or None
    rng: dict  # capture_rng_state()
    extra: dict  # JSON-able: history so far, best metric/epoch, early-stopping counter, ...
    best_model: dict[str, torch.Tensor] | None = None  # best epoch's weights so far


# --------------------------------------------------------------------------- RNG


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict:
    """Python ``random``, numpy's global RNG, torch CPU, torch CUDA (every device, if available),
    and each named ``torch.Generator``. Torch states are uint8 tensors; the rest is JSON-able."""
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(np_state[0]),
            "state": np.asarray(np_state[1]).tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {},
    }
    for name, generator in (generators or {}).items():
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"RNG state {name!r}: expected a torch.Generator, got {type(generator).__name__}.")
        state["generators"][str(name)] = generator.get_state()
    return state


def _byte_state(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise ValueError(f"RNG state {what} must be a uint8 tensor, got {type(value).__name__}.")
    return value.detach().cpu().contiguous()


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put back what :func:`capture_rng_state` captured (into the global RNGs and the named generators)."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), None if gauss is None else float(gauss)))

    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["bit_generator"],
            np.asarray(np_state["state"], dtype=np.uint32),
            int(np_state["pos"]),
            int(np_state["has_gauss"]),
            float(np_state["cached_gaussian"]),
        )
    )

    torch.set_rng_state(_byte_state(state["torch_cpu"], "torch_cpu"))

    cuda_states = state.get("torch_cuda")
    if cuda_states:
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if count != len(cuda_states):
                logger.warning(
                    "The checkpoint holds CUDA RNG states for %d device(s), this machine has %d; "
                    "restoring the first %d.",
                    len(cuda_states),
                    count,
                    min(count, len(cuda_states)),
                )
            for index, cuda_state in enumerate(cuda_states[:count]):
                torch.cuda.set_rng_state(_byte_state(cuda_state, f"torch_cuda[{index}]"), index)
        else:
            logger.warning("The checkpoint holds CUDA RNG states but CUDA is not available; they are not restored.")

    saved = state.get("generators") or {}
    for name, generator in (generators or {}).items():
        if name not in saved:
            raise KeyError(f"The checkpoint has no state for generator {name!r} (it has: {sorted(saved)}).")
        generator.set_state(_byte_state(saved[name], f"generators[{name!r}]"))


# --------------------------------------------------------------------------- encoding


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class _Encoder:
    """Turns a nested state into JSON plus a flat ``{key: tensor}`` dict for safetensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.index: dict[str, dict[str, Any]] = {}
        self._storages: set[int] = set()

    def _add_tensor(self, path: str, tensor: torch.Tensor) -> dict[str, Any]:
        if tensor.layout != torch.strided:
            raise TypeError(f"{path}: cannot store a {tensor.layout} tensor, only dense ones.")
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")  # a fresh storage of its own
        else:
            pointer = t.untyped_storage().data_ptr()
            if pointer != 0 and pointer in self._storages:
                t = t.clone()  # safetensors refuses tensors that share memory (tied weights, views)
        t = t.contiguous()
        if t.data_ptr() != 0:
            self._storages.add(t.untyped_storage().data_ptr())

        key = path or "tensor"
        if key in self.tensors:
            n = 1
            while f"{key}#{n}" in self.tensors:
                n += 1
            key = f"{key}#{n}"
        self.tensors[key] = t
        meta = {"dtype": _dtype_name(t.dtype), "shape": list(t.shape)}
        self.index[key] = meta
        return {_KIND: "tensor", "key": key, **meta}

    def encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj) if math.isfinite(obj) else {_KIND: "float", "value": repr(float(obj))}
        if isinstance(obj, torch.Tensor):
            return self._add_tensor(path, obj)
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                raise TypeError(f"{path}: cannot store a numpy array of Python objects.")
            ref = self._add_tensor(path, torch.from_numpy(np.ascontiguousarray(obj)))
            return {**ref, _KIND: "ndarray"}
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return self.encode(float(obj), path)
        if isinstance(obj, torch.dtype):
            return {_KIND: "dtype", "value": _dtype_name(obj)}
        if isinstance(obj, torch.device):
            return {_KIND: "device", "value": str(obj)}
        if isinstance(obj, tuple):
            return {_KIND: "tuple", "items": [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, Mapping):
            if all(isinstance(k, str) for k in obj) and _KIND not in obj:
                return {k: self.encode(v, f"{path}.{k}") for k, v in obj.items()}
            return {
                _KIND: "dict",
                "items": [[self.encode(k, f"{path}.<key>"), self.encode(v, f"{path}.{k}")] for k, v in obj.items()],
            }
        if callable(obj):
            logger.warning("Checkpoint: dropping callable at %s (%r); it loads back as None.", path, obj)
            return {_KIND: "dropped", "repr": repr(obj)[:200]}
        raise TypeError(
            f"{path}: cannot store a {type(obj).__module__}.{type(obj).__qualname__} in a checkpoint "
            "(only tensors, numpy arrays, numbers, strings, None and lists/tuples/dicts of them)."
        )


class _Decoder:
    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def _tensor(self, ref: Mapping[str, Any]) -> torch.Tensor:
        key = ref["key"]
        if key not in self.tensors:
            raise ValueError(f"Checkpoint is damaged: tensor {key!r} is missing from {TENSORS_FILE}.")
        t = self.tensors[key]
        if _dtype_name(t.dtype) != ref["dtype"] or list(t.shape) != list(ref["shape"]):
            raise ValueError(
                f"Checkpoint is damaged: tensor {key!r} is {_dtype_name(t.dtype)}{list(t.shape)}, "
                f"expected {ref['dtype']}{list(ref['shape'])}."
            )
        return t

    def decode(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self.decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        kind = obj.get(_KIND)
        if kind is None:
            return {k: self.decode(v) for k, v in obj.items()}
        if kind == "tensor":
            return self._tensor(obj)
        if kind == "ndarray":
            return self._tensor(obj).numpy()
        if kind == "tuple":
            return tuple(self.decode(v) for v in obj["items"])
        if kind == "dict":
            return {_hashable(self.decode(k)): self.decode(v) for k, v in obj["items"]}
        if kind == "float":
            return float(obj["value"])
        if kind == "dtype":
            return getattr(torch, obj["value"])
        if kind == "device":
            return torch.device(obj["value"])
        if kind == "dropped":
            return None
        raise ValueError(f"Checkpoint JSON has an unknown entry kind {kind!r}.")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(v) for v in key)
    return key


# --------------------------------------------------------------------------- files


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _epoch_dirs(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = EPOCH_DIR_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _is_complete(path: Path) -> bool:
    return (path / TENSORS_FILE).is_file() and (path / STATE_FILE).is_file()


def save_checkpoint(directory: str | Path, state: TrainingState, keep: int = 2) -> Path:
    """Write ``state`` to ``directory/epoch_<NNNN>`` atomically and return that path.

    Keeps the ``keep`` newest epochs up to this one and deletes older ones. Checkpoints of *later*
    epochs than this one (left by a run that was rewound) are deleted too, so that
    :func:`latest_checkpoint` always finds this timeline. Re-saving an epoch replaces it.
    """
    if isinstance(state.epoch, bool) or not isinstance(state.epoch, int) or state.epoch < 0:
        raise ValueError(f"TrainingState.epoch must be a non-negative integer, got {state.epoch!r}.")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be a positive integer, got {keep!r}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    encoder = _Encoder()
    sections = {name: encoder.encode(getattr(state, name), name) for name in _SECTIONS}
    payload = {
        "format_version": FORMAT_VERSION,
        "epoch": state.epoch,
        "torch_version": torch.__version__,
        "sections": sections,
        "tensors": encoder.index,
    }
    text = json.dumps(payload, allow_nan=False, separators=(",", ":"))

    name = f"epoch_{state.epoch:04d}"
    final = directory / name
    tmp = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL_PREFIX}{name}-", dir=directory))
    try:
        save_file(encoder.tensors, str(tmp / TENSORS_FILE), metadata={"format": "pt"})
        _fsync(tmp / TENSORS_FILE)
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync(tmp)
        if final.exists():
            stale = Path(tempfile.mkdtemp(prefix=f"{_STALE_PREFIX}{name}-", dir=directory))
            os.replace(final, stale / name)
            os.replace(tmp, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    _prune(directory, state.epoch, keep)
    return final


def _prune(directory: Path, current: int, keep: int) -> None:
    epochs = _epoch_dirs(directory)
    newer = [path for epoch, path in epochs if epoch > current]
    if newer:
        logger.warning(
            "Deleting %d checkpoint(s) newer than the epoch just saved (%d): %s",
            len(newer),
            current,
            ", ".join(p.name for p in newer),
        )
    older = [path for epoch, path in epochs if epoch <= current]
    for path in newer + older[: max(len(older) - keep, 0)]:
        shutil.rmtree(path, ignore_errors=True)
    # Leftovers of writes that were killed before their rename.
    for child in directory.iterdir():
        if child.is_dir() and child.name.startswith((_PARTIAL_PREFIX, _STALE_PREFIX)):
            shutil.rmtree(child, ignore_errors=True)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete ``epoch_<NNNN>`` folder in ``directory``, or ``None`` (partial writes are ignored)."""
    for _epoch, path in reversed(_epoch_dirs(Path(directory))):
        if _is_complete(path):
            return path
    return None


def load_checkpoint(path: str | Path) -> TrainingState:
    """Read a checkpoint folder written by :func:`save_checkpoint` (tensors come back on the CPU).

    Optimizer state dicts come back exactly as saved: integer parameter ids, tuples such as
    ``betas``, and tensor-vs-Python ``step`` counters keep their types.
    """
    path = Path(path)
    state_file = path / STATE_FILE
    if not state_file.is_file() or not (path / TENSORS_FILE).is_file():
        hint = ""
        if path.is_dir() and latest_checkpoint(path) is not None:
            hint = f" (it holds checkpoints; the latest is {latest_checkpoint(path)})"
        raise FileNotFoundError(f"{path} is not a complete checkpoint folder{hint}.")
    with open(state_file, encoding="utf-8") as handle:
        payload = json.load(handle)
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{state_file}: checkpoint format_version {version!r}, this code reads {FORMAT_VERSION}.")
    tensors = load_file(str(path / TENSORS_FILE), device="cpu")
    missing = sorted(set(payload["tensors"]) - set(tensors))
    if missing:
        raise ValueError(f"Checkpoint is damaged: {TENSORS_FILE} lacks {missing[:5]}.")
    decoder = _Decoder(tensors)
    sections = {name: decoder.decode(payload["sections"].get(name)) for name in _SECTIONS}
    return TrainingState(epoch=int(payload["epoch"]), **sections)
