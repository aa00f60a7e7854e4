"""One contrastive image-caption pretraining run on the training engine: the same ``fit`` as fine-tuning.

:func:`run_pretraining` builds a :class:`~har_kedro.models.pretrain.CaptionPretrainer` over the backbone,
scores its image-to-caption retrieval on the val captions, trains both towers with ``fit`` (AdamW,
warmup-cosine, accumulation, AMP, checkpoints and exact resume, progress bar, per-epoch callback; several
processes through ``training/launch.py``), keeps the best val epoch and hands back the backbone with the
learned temperature written into it, ready for ``save_pretrained``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.caption_cache import CaptionCache
from har_kedro.models.backbones import Backbone, load_backbone, save_backbone
from har_kedro.models.device import memory_kind, select_device
from har_kedro.models.methods import count_parameters, set_trainable
from har_kedro.models.pretrain import PRETRAIN_LOSSES, CaptionPretrainer
from har_kedro.training.fast_path import apply_speed_settings
from har_kedro.training.fingerprint import RESUME_FREE, weights_fingerprint
from har_kedro.training.launch import fit_in_processes
from har_kedro.training.loop import FitResult, Split, evaluate, fit
from har_kedro.training.run_inputs import RunInputs
from har_kedro.training.seeding import seed_everything

logger = logging.getLogger(__name__)
STAGE = "pretrain"
HISTORY_COLUMNS = ["stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second", "peak_memory_mb"]


@dataclass
class PretrainingOutputs:
    backbone: Backbone  # with the best epoch's weights and the learned temperature (and bias)
    history: pd.DataFrame  # per epoch; train/val accuracy are image-to-caption retrieval top-1
    run_info: dict[str, Any]


def pretraining_config(config: TrainConfig, where: str) -> TrainConfig:
    """``config`` as pretraining runs it: both towers and both projections, nothing of fine-tuning's extras."""
    problems = [
        (config.loss not in PRETRAIN_LOSSES, f"loss is '{config.loss}'; pretraining uses {' or '.join(PRETRAIN_LOSSES)} (CLIP's InfoNCE or SigLIP's sigmoid loss)"),
        (config.method != "full", f"method is '{config.method}'; pretraining trains every weight of both towers: set method: full"),
        (config.aclip is not None or config.unfreeze is not None, "aclip and unfreeze are fine-tuning settings: set them to null"),
    ]
    for failed, message in problems:
        if failed:
            raise TrainingConfigError(f"{where}.{message}.")
    return dataclasses.replace(config, train_text=True, train_projection=True, wise_ft=None, calibrate=False, zero_shot_baseline=False)


def count_truncated(backbone: Backbone, captions: list[str]) -> int:
    """How many captions are longer than the tokenizer's context (they are truncated to it)."""
    lengths = backbone.tokenizer(captions, truncation=False, padding=False)["input_ids"]
    return sum(len(ids) > backbone.max_text_length for ids in lengths)


def build_pretrainer(backbone: Backbone, cache: CaptionCache, config: TrainConfig, device: torch.device) -> CaptionPretrainer:
    """The pretraining module on ``device``, every weight of both towers and the temperature (and bias) trainable."""
    model = CaptionPretrainer(
        backbone, cache.captions, cache.caption_index("train"), cache.val_captions, config.loss, config.augment,
        image_size=config.image_size or cache.image_size, logit_scale=config.logit_scale_init, logit_bias=config.logit_bias_init,
    )
    set_trainable(model, "full", train_text=True, train_projection=True)
    return apply_speed_settings(model.to(device), config, device)


def pretrainer_for_run(run: RunInputs, device: torch.device) -> CaptionPretrainer:
    """A worker process's pretrainer (training/launch.py): the same module, from the run's backbone and caption cache."""
    seed_everything(run.seed)
    assert isinstance(run.cache, CaptionCache), "pretraining workers get the caption cache"
    return build_pretrainer(load_backbone(run.backbone_source), run.cache, run.config, device)


def _fit(model: CaptionPretrainer, cache: CaptionCache, splits: tuple[Split, Split], source: str, config: TrainConfig, seed: int, device: torch.device,
         checkpoint_dir: Path | None, identity: dict[str, str], on_epoch_end: Callable[[int, dict[str, Any]], None] | None) -> FitResult:
    """``fit`` here, or in ``distributed.num_processes`` processes (each gathers the whole batch's embeddings for the loss)."""
    if config.distributed.enabled:
        run = RunInputs(cache, [], {}, source, config, seed, model.image_size, device, checkpoint_dir, identity, on_epoch_end)
        return fit_in_processes(model, run, builder=pretrainer_for_run, stage=STAGE)
    return fit(model, *splits, config, device, seed, checkpoint_dir, stage=STAGE, inputs=identity, on_epoch_end=on_epoch_end)


def run_pretraining(
    name: str, cache: CaptionCache, backbone_source: str, config: TrainConfig, seed: int,
    checkpoint_dir: Path | None = None, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> PretrainingOutputs:
    """Pretrain ``backbone_source`` on the cached (image, caption) pairs and return the best val epoch's backbone."""
    seed_everything(seed)
    device = select_device(config.device)
    backbone = load_backbone(backbone_source)
    truncated = count_truncated(backbone, cache.captions)
    if truncated:
        logger.warning("%s: %d of %d distinct captions are longer than the tokenizer's %d tokens and are truncated to it.", name, truncated, len(cache.captions), backbone.max_text_length)
    identity = {"backbone": backbone_source, "backbone_weights": weights_fingerprint(backbone.model), "image_cache": cache.fingerprint}
    model = build_pretrainer(backbone, cache, config, device)
    train, val = Split(cache.images("train"), cache.labels("train")), Split(cache.images("val"), cache.labels("val"))
    before = evaluate(model, val, config.eval_batch_size, device, config.amp)["accuracy"]
    logger.info("%s: val image-to-caption top-1 before pretraining %.3f (%d val captions)", name, before, len(cache.val_captions))
    seed_everything(seed)
    result = _fit(model, cache, (train, val), backbone_source, config, seed, device, checkpoint_dir, identity, on_epoch_end)
    run_info = _run_info(name, model, backbone_source, config, seed, device, result) | {
        "val_retrieval_before": before, "truncated_captions": truncated, "captions": len(cache.captions),
        "train_images": len(train), "val_images": len(val), "inputs": identity,
    }
    logger.info("%s: best val image-to-caption top-1 %.3f at epoch %d", name, result.best_val_accuracy, result.best_epoch)
    return PretrainingOutputs(model.pretrained_backbone(), pd.DataFrame(result.history, columns=HISTORY_COLUMNS), run_info)


def _run_info(name: str, model: CaptionPretrainer, source: str, config: TrainConfig, seed: int, device: torch.device, result: FitResult) -> dict[str, Any]:
    trainable, total = count_parameters(model)
    history = result.history
    return {
        "name": name, "backbone": source, "family": model.backbone.family, "loss": config.loss, "seed": seed, "device": str(device),
        "processes": config.distributed.num_processes,
        "image_size": model.image_size, "trainable_parameters": trainable, "total_parameters": total,
        "epochs_run": len(history), "best_epoch": result.best_epoch, "best_val_retrieval": result.best_val_accuracy,
        "resumed_from_epoch": result.resumed_from_epoch, "peak_memory_mb": result.peak_memory_mb, "peak_memory_kind": memory_kind(device),
        "total_train_seconds": float(sum(row["seconds"] for row in history)),
        "logit_scale": float(model.head.logit_scale.detach().exp()),
        "logit_bias": None if model.head.logit_bias is None else float(model.head.logit_bias.detach()),
        "config": dataclasses.asdict(config),
    }


# --------------------------------------------------------------------------- the store: one folder per inputs


_COMPLETE = "pretraining.json"  # written last: a folder without it is not a finished model


def _portable_path(path: Path) -> str:
    """``path`` relative to the working directory (the project root under ``kedro run``) when it lies below it,
    so the versioned pointer stays valid when the project folder moves; else as it is."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def store_key(cache: CaptionCache, backbone_source: str, config: TrainConfig, seed: int) -> str:
    """What the pretrained weights are a function of: the caption cache, the starting backbone (by path or
    id), the settings that change what an epoch computes, and the seed. Unchanged inputs find their model."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUME_FREE}
    payload = {"cache": cache.fingerprint, "backbone": backbone_source, "settings": settings, "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _reuse(folder: Path, name: str) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]] | None:
    record_path = folder / _COMPLETE
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    logger.info("%s: unchanged inputs, reusing the model pretrained in %s (best val retrieval %.3f)", name, folder, record["run_info"]["best_val_retrieval"])
    pointer = {"path": _portable_path(folder / "model"), "key": folder.name, "reused": True}
    return pointer, pd.DataFrame(record["history"], columns=HISTORY_COLUMNS), {**record["run_info"], "reused": True}


def pretrain_into_store(
    store: Path, name: str, cache: CaptionCache, backbone_source: str, config: TrainConfig, seed: int,
    checkpoint_dir: Path | None = None, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """The model pretrained from these inputs, from ``store/<key>`` if an earlier run made it, else trained now and
    written there (to a scratch folder first, renamed when complete, so a killed run never leaves a half model)."""
    folder = Path(store) / store_key(cache, backbone_source, config, seed)
    reused = _reuse(folder, name)
    if reused is not None:
        return reused
    outputs = run_pretraining(name, cache, backbone_source, config, seed, checkpoint_dir, on_epoch_end)
    scratch = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        save_backbone(outputs.backbone, scratch / "model")
        record = {"run_info": {**outputs.run_info, "reused": False}, "history": outputs.history.to_dict(orient="records")}
        (scratch / _COMPLETE).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        if folder.exists():  # an incomplete folder of an older version of this code
            shutil.rmtree(folder)
        scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("%s: pretrained model saved in %s", name, folder / "model")
    return {"path": _portable_path(folder / "model"), "key": folder.name, "reused": False}, outputs.history, {**outputs.run_info, "reused": False}
