"""One model's whole training run: backbone, zero-shot baseline, method, fit, test predictions.

This is what the training pipeline's node calls; everything it returns goes to the catalog.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from har_kedro.data.image_cache import ImageCache
from har_kedro.models.aclip import AclipClassifier, AclipSettings, measure_step_speedup
from har_kedro.models.backbones import Backbone, image_features, load_backbone
from har_kedro.models.classifier import (
    ClassHead,
    FeatureClassifier,
    ImageClassifier,
    pretrained_logit_scale_and_bias,
    zero_shot_embeddings,
)
from har_kedro.models.lora import LoraSettings, apply_lora
from har_kedro.models.methods import count_parameters, set_trainable
from har_kedro.models.trained import TrainedModel
from har_kedro.training.augment import AugmentConfig, prepare_eval_batch
from har_kedro.training.config import TrainConfig
from har_kedro.training.device import autocast, autocast_dtype, memory_kind, select_device
from har_kedro.training.fast_path import apply_speed_settings
from har_kedro.training.launch import distributed_settings, fit_in_processes
from har_kedro.training.loop import FitResult, Split, evaluate, fit, predict_logits, trainable_state

logger = logging.getLogger(__name__)


@dataclass
class TrainingOutputs:
    trained_model: TrainedModel
    history: pd.DataFrame
    test_predictions: pd.DataFrame
    run_info: dict[str, Any]


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch, so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lora_settings(params: Mapping[str, Any]) -> LoraSettings:
    known = {f.name for f in dataclasses.fields(LoraSettings)} - {"extra"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"lora has unknown keys {unknown}; allowed keys are {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    settings = LoraSettings(**values)
    settings.validate()
    return settings


def build_classifier(
    backbone: Backbone,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    config: TrainConfig,
    device: torch.device,
    image_size: int,
) -> ImageClassifier:
    """The classifier for ``config.method`` with its zero-shot head, trainable flags set, every tensor on ``device``.

    The backbone goes to ``device`` first and everything after is computed or created with it
    there (the zero-shot head from its text tower, LoRA adapters, A-CLIP's EMA copy); the last
    ``.to(device)`` then moves what was made on the host (the head's scalars, token buffers).
    """
    scale, bias = pretrained_logit_scale_and_bias(backbone)  # host reads, before the weights leave the host
    backbone.model.to(device)
    embeddings = zero_shot_embeddings(backbone, class_names, class_prompts)
    if config.loss == "sigmoid" and bias is None:
        bias = -10.0  # SigLIP's initial bias; CLIP checkpoints have none
    if config.logit_scale_init is not None:
        scale = float(config.logit_scale_init)
    if config.logit_bias_init is not None:
        bias = float(config.logit_bias_init)
    head = ClassHead(embeddings, scale, bias)
    if config.method == "lora":
        apply_lora(backbone.model, lora_settings(config.lora))
    common = dict(image_size=image_size, class_prompts=class_prompts if config.train_text else None, class_names=class_names)
    augment = AugmentConfig.from_params(config.augment)
    model: ImageClassifier
    if config.aclip is not None:
        settings = AclipSettings.from_params(config.aclip)
        model = AclipClassifier(backbone, head, augment, settings, label_smoothing=config.label_smoothing, **common)
    else:
        model = ImageClassifier(backbone, head, augment, **common)
    method = "full" if config.method == "lp_ft" else config.method
    set_trainable(model, method, train_text=config.train_text, train_projection=config.train_projection)
    # TF32, activation checkpointing, torch.compile (training/fast_path.py); after the A-CLIP EMA copy.
    return apply_speed_settings(model.to(device), config, device)


@torch.no_grad()
def cache_features(model: ImageClassifier, images: np.ndarray, batch_size: int, device: torch.device) -> torch.Tensor:
    """Image embeddings of a frozen backbone, computed once (linear probe never re-runs the backbone)."""
    model.eval()
    backbone = model.backbone
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        pixels = prepare_eval_batch(batch, backbone.image_mean, backbone.image_std, model.image_size, device)
        out.append(image_features(backbone, pixels).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def _probe(model: ImageClassifier, cache: ImageCache, config: TrainConfig, device: torch.device, seed: int, checkpoints: Path | None, stage: str) -> FitResult:
    features = {s: cache_features(model, cache.images(s), config.eval_batch_size, device) for s in ("train", "val")}
    probe = FeatureClassifier(model.head)
    set_trainable(probe, "linear_probe")
    epochs = config.lp_epochs if config.method == "lp_ft" else config.epochs
    probe_config = dataclasses.replace(config, epochs=epochs, lr=config.probe_lr, lr_multipliers={})
    return fit(
        probe, Split(features["train"], cache.labels("train")), Split(features["val"], cache.labels("val")),
        probe_config, device, seed, checkpoints, stage=stage,
    )


def _aclip_report(model: AclipClassifier, cache: ImageCache, config: TrainConfig, device: torch.device, seed: int) -> dict[str, Any]:
    """Tokens kept, the EMA tower's own accuracy, and the masked step's speed against a full-token one."""
    report = model.token_report()
    ema = model.ema_classifier()
    for split in ("val", "test"):
        report[f"ema_{split}_accuracy"] = evaluate(ema, Split(cache.images(split), cache.labels(split)), config.eval_batch_size, device, config.amp)["accuracy"]
    if model.settings.measure_speedup:
        rng = np.random.default_rng(seed)
        labels = cache.labels("train")
        index = np.sort(rng.choice(len(labels), size=min(model.settings.speedup_batch_size or config.batch_size, len(labels)), replace=False))
        images = torch.from_numpy(np.ascontiguousarray(cache.images("train")[index]))
        with autocast(device, autocast_dtype(config.amp, device)):
            report.update(measure_step_speedup(model, images, torch.from_numpy(np.asarray(labels)[index]).long(), model.settings.speedup_repeats))
        logger.info(
            "A-CLIP step %.1f ms vs full-token %.1f ms on a batch of %d: %.2fx",
            1e3 * report["masked_step_seconds"], 1e3 * report["full_step_seconds"], len(index), report["masked_step_speedup"],
        )
    return report


def _library_versions() -> dict[str, str]:
    import kedro
    import peft
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "kedro": kedro.__version__}


def run_training(
    model_name: str,
    cache: ImageCache,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    backbone_source: str,
    config: TrainConfig,
    seed: int,
    checkpoint_dir: Path | None = None,
) -> TrainingOutputs:
    """Train one model as configured and predict the test split with its best epoch."""
    seed_everything(seed)
    device = select_device(config.device)
    backbone = load_backbone(backbone_source)
    image_size = config.image_size or cache.image_size
    model = build_classifier(backbone, class_names, class_prompts, config, device, image_size)
    val = Split(cache.images("val"), cache.labels("val"))
    test = Split(cache.images("test"), cache.labels("test"))
    zero_shot = {
        "val_accuracy": evaluate(model, val, config.eval_batch_size, device, config.amp)["accuracy"],
        "test_accuracy": evaluate(model, test, config.eval_batch_size, device, config.amp)["accuracy"],
    }
    logger.info("%s zero-shot: val %.3f, test %.3f", model_name, zero_shot["val_accuracy"], zero_shot["test_accuracy"])

    history: list[dict[str, Any]] = []
    results: list[FitResult] = []
    train = Split(cache.images("train"), cache.labels("train"))
    if config.method in ("linear_probe", "lp_ft"):
        saved_flags = {n: p.requires_grad for n, p in model.named_parameters()}
        for p in model.parameters():
            p.requires_grad_(False)
        results.append(_probe(model, cache, config, device, seed, checkpoint_dir, "linear_probe"))
        for name, p in model.named_parameters():
            p.requires_grad_(saved_flags[name])
    fine_tunes = config.method in ("lora", "full", "lp_ft")
    processes = distributed_settings(config).num_processes if fine_tunes else 1
    if fine_tunes:
        seed_everything(seed)
        if processes > 1:  # worker processes (training/launch.py); the probe above stays here
            results.append(fit_in_processes(model, cache, class_names, class_prompts, backbone_source, config, seed, image_size, device, checkpoint_dir))
        else:
            results.append(fit(model, train, val, config, device, seed, checkpoint_dir, stage="fine_tune"))
    for result in results:
        history += result.history

    aclip_info = _aclip_report(model, cache, config, device, seed) if isinstance(model, AclipClassifier) and results else None
    trainable, total = count_parameters(model)
    logits = predict_logits(model, test.inputs, config.eval_batch_size, device, config.amp)
    test_predictions = predictions_frame(logits, test.labels, cache.image_ids("test"), class_names)
    final = results[-1] if results else None
    run_info = {
        "model": model_name,
        "backbone": backbone_source,
        "family": backbone.family,
        "method": config.method,
        "loss": config.loss,
        "seed": seed,
        "device": str(device),
        "processes": processes,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "image_size": image_size,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_fraction": trainable / total if total else 0.0,
        "epochs_run": len(final.history) if final else 0,
        "best_epoch": final.best_epoch if final else 0,
        "best_val_accuracy": final.best_val_accuracy if final else zero_shot["val_accuracy"],
        "test_accuracy": float(test_predictions["correct"].mean()) if len(test_predictions) else float("nan"),
        "stopped_early": bool(final.stopped_early) if final else False,
        "resumed_from_epoch": final.resumed_from_epoch if final else None,
        "peak_memory_mb": max((r.peak_memory_mb for r in results), default=0.0),
        "peak_memory_kind": memory_kind(device),
        "mean_epoch_seconds": float(np.mean([h["seconds"] for h in history])) if history else 0.0,
        "mean_images_per_second": float(np.mean([h["images_per_second"] for h in history])) if history else 0.0,
        "zero_shot": zero_shot,
        "config": dataclasses.asdict(config),
        "library_versions": _library_versions(),
    }
    if aclip_info is not None:
        run_info["aclip"] = aclip_info
    trained = trained_model_from(model, backbone_source, config, class_names, class_prompts, image_size)
    return TrainingOutputs(trained, pd.DataFrame(history, columns=HISTORY_COLUMNS), test_predictions, run_info)


def trained_model_from(
    model: ImageClassifier,
    backbone_source: str,
    config: TrainConfig,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    image_size: int,
) -> TrainedModel:
    """What is saved of a trained classifier: its trained weights, copied to the host, and how to rebuild it."""
    backbone = model.backbone
    rebuild = {
        "backbone": backbone_source,
        "family": backbone.family,
        "method": config.method,
        "loss": config.loss,
        "lora": dataclasses.asdict(lora_settings(config.lora)) if config.method == "lora" else None,
        "train_text": config.train_text,
        "class_names": list(class_names),
        "class_prompts": {k: list(v) for k, v in class_prompts.items()} if config.train_text else None,
        "image_size": image_size,
        "image_mean": list(backbone.image_mean),
        "image_std": list(backbone.image_std),
    }
    # The classifier alone: A-CLIP's predictor and EMA tower are training scaffolding.
    state = {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if (p.requires_grad or name.startswith("head.")) and not name.startswith(("predictor.", "ema."))
    }
    return TrainedModel(state, rebuild)


HISTORY_COLUMNS = [
    "stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "lr", "seconds", "images_per_second", "peak_memory_mb",
]


def predictions_frame(logits: torch.Tensor, labels: np.ndarray, image_ids: Sequence[str], class_names: Sequence[str]) -> pd.DataFrame:
    """One row per test image: truth, prediction, and the probability of every class."""
    probabilities = torch.softmax(logits, dim=1).numpy() if len(logits) else np.zeros((0, len(class_names)))
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame({
        "image_id": list(image_ids),
        "label_id": np.asarray(labels, dtype=np.int64),
        "label": [class_names[i] for i in labels],
        "pred_id": predicted.astype(np.int64),
        "pred": [class_names[i] for i in predicted],
    })
    frame["correct"] = frame["label_id"] == frame["pred_id"]
    for i, name in enumerate(class_names):
        frame[f"prob_{name}"] = probabilities[:, i].astype(np.float32)
    return frame


def rebuild_classifier(trained: TrainedModel, device: torch.device | str = "cpu", backbone_source: str | None = None) -> ImageClassifier:
    """The trained classifier again, from its backbone and the saved trainable weights."""
    config = trained.config
    backbone = load_backbone(backbone_source or config["backbone"])
    class_names = config["class_names"]
    dim = trained.state["head.weight"].shape[1]
    head = ClassHead(torch.zeros(len(class_names), dim), 0.0, 0.0 if "head.logit_bias" in trained.state else None)
    if config["method"] == "lora":
        apply_lora(backbone.model, LoraSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["lora"].items()}))
    model = ImageClassifier(
        backbone, head, AugmentConfig(), image_size=config["image_size"],
        class_prompts=config.get("class_prompts") if config.get("train_text") else None, class_names=class_names,
    )
    params = dict(model.named_parameters())
    missing = sorted(set(trained.state) - set(params))
    if missing:
        raise ValueError(f"saved weights do not fit the rebuilt model (unexpected {missing[:3]}); was the backbone changed?")
    with torch.no_grad():
        for name, value in trained.state.items():
            params[name].copy_(value)
    model.eval().requires_grad_(False)
    return model.to(device)
