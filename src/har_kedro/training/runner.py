"""One model's whole training run: backbone, zero-shot baseline, method, fit, test predictions.

This is what the training pipeline's node calls; everything it returns goes to the catalog.
:func:`run_training` reads as its steps: build the classifier (models/factory.py), score it
zero-shot, train its stages (:func:`train_stages`: a linear probe over cached features and/or a
fine-tune, in this process or in several), then predict the test split and describe the run.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from har_kedro.config.model_spec import TrainedModel
from har_kedro.config.training import FINE_TUNE_METHODS, TrainConfig
from har_kedro.data.image_cache import ImageCache
from har_kedro.data.ingestion import evaluation_splits
from har_kedro.models.aclip import AclipClassifier, measure_step_speedup
from har_kedro.models.augment import prepare_eval_batch
from har_kedro.models.backbones import image_features, load_backbone
from har_kedro.models.calibration import calibration_record
from har_kedro.models.classifier import FeatureClassifier, ImageClassifier
from har_kedro.models.device import autocast, autocast_dtype, memory_kind, select_device
from har_kedro.models.factory import trained_model
from har_kedro.models.methods import count_parameters, set_trainable
from har_kedro.models.predict import predict_logits
from har_kedro.models.wise_ft import mix, snapshot, wise_ft_curve
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.fingerprint import weights_fingerprint
from har_kedro.training.launch import fit_in_processes
from har_kedro.training.loop import FitResult, Split, evaluate, fit, top1
from har_kedro.training.run_inputs import RunInputs
from har_kedro.training.seeding import seed_everything

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "lr", "seconds", "images_per_second", "peak_memory_mb",
]


EVALUATION_COLUMNS = ["set", "image_id", "label_id", "zero_shot_pred", "fine_tuned_pred", "wise_ft_pred"]


@dataclass
class TrainingOutputs:
    trained_model: TrainedModel
    history: pd.DataFrame
    test_predictions: pd.DataFrame
    run_info: dict[str, Any]
    # Per image of test and of every evaluation set: the zero-shot, fine-tuned and WiSE-FT (chosen α) prediction
    # (-1 where that model was not scored); the report's "in distribution and under shift" table.
    evaluation_predictions: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=EVALUATION_COLUMNS))


@torch.no_grad()
def cache_features(model: ImageClassifier, images: np.ndarray, batch_size: int, device: torch.device) -> torch.Tensor:
    """Image embeddings of a frozen backbone, computed once (linear probe never re-runs the backbone)."""
    model.eval()
    backbone = model.backbone
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.array(images[start : start + batch_size]))  # a copy: the cache is a read-only memmap
        pixels = prepare_eval_batch(batch, backbone.image_mean, backbone.image_std, model.image_size, device)
        out.append(image_features(backbone, pixels).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def _probe(model: ImageClassifier, run: RunInputs, stage: str) -> FitResult:
    """A linear probe over features cached once; the backbone's own flags are left as they were."""
    config = run.config
    saved_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.requires_grad_(False)
    started = time.perf_counter()
    features = {s: cache_features(model, run.cache.images(s), config.eval_batch_size, run.device) for s in ("train", "val")}
    feature_seconds = time.perf_counter() - started
    probe = FeatureClassifier(model.head)
    set_trainable(probe, "linear_probe")
    epochs = config.lp_epochs if config.method == "lp_ft" else config.epochs
    # The probe trains the head alone: layer-wise decay and staged unfreezing are the fine-tune's.
    probe_config = dataclasses.replace(config, epochs=epochs, lr=config.probe_lr, lr_multipliers={}, layer_decay=None, unfreeze=None)
    result = fit(
        probe, Split(features["train"], run.cache.labels("train")), Split(features["val"], run.cache.labels("val")),
        probe_config, run.device, run.seed, run.checkpoint_dir, stage=stage, inputs=run.identity, on_epoch_end=run.on_epoch_end,
    )
    for name, p in model.named_parameters():
        p.requires_grad_(saved_flags[name])
    # The one-off backbone pass is part of what the probe costs, though no epoch's seconds include it.
    return dataclasses.replace(result, extra={**result.extra, "stage": stage, "feature_pass_seconds": feature_seconds})


def train_stages(model: ImageClassifier, run: RunInputs) -> list[FitResult]:
    """The method's stages: linear probe (``linear_probe``, first stage of ``lp_ft``), then the fine-tune (``lora``, ``full``, ``lp_ft``, ``flyp``)."""
    config = run.config
    results = []
    if config.method in ("linear_probe", "lp_ft"):
        results.append(_probe(model, run, "linear_probe"))
    if config.method in FINE_TUNE_METHODS:
        seed_everything(run.seed)
        if config.distributed.enabled:  # worker processes (training/launch.py); the probe above stays here
            results.append(fit_in_processes(model, run))
        else:
            results.append(fit(
                model, run.split("train"), run.split("val"), config, run.device, run.seed, run.checkpoint_dir,
                stage="fine_tune", inputs=run.identity, on_epoch_end=run.on_epoch_end,
            ))
    return results


def _aclip_report(model: AclipClassifier, run: RunInputs) -> dict[str, Any]:
    """Tokens kept, the EMA tower's own accuracy, and the masked step's speed against a full-token one."""
    config, device = run.config, run.device
    report = model.token_report()
    ema = model.ema_classifier()
    for split in ("val", "test"):
        report[f"ema_{split}_accuracy"] = evaluate(ema, run.split(split), config.eval_batch_size, device, config.amp)["accuracy"]
    if model.settings.measure_speedup:
        rng = np.random.default_rng(run.seed)
        labels = run.cache.labels("train")
        index = np.sort(rng.choice(len(labels), size=min(model.settings.speedup_batch_size or config.batch_size, len(labels)), replace=False))
        images = torch.from_numpy(np.ascontiguousarray(run.cache.images("train")[index]))
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


def _zero_shot(model: ImageClassifier, run: RunInputs, model_name: str, sets: Sequence[str]) -> tuple[dict[str, float] | None, dict[str, np.ndarray]]:
    """The untrained head's accuracy on val, test and the evaluation sets, and its test and evaluation-set
    predictions; (None, {}) when ``zero_shot_baseline`` turns it off."""
    config = run.config
    if not config.zero_shot_baseline and config.method != "zero_shot":
        logger.info("%s zero-shot baseline skipped (zero_shot_baseline: false).", model_name)
        return None, {}
    predicted = _predicted(model, run, ["test", *sets])
    scores = {"val_accuracy": evaluate(model, run.split("val"), config.eval_batch_size, run.device, config.amp)["accuracy"]}
    scores |= {f"{s}_accuracy": top1(predicted[s], run.cache.labels(s)) for s in ("test", *sets)}
    logger.info("%s zero-shot: val %.3f, test %.3f", model_name, scores["val_accuracy"], scores["test_accuracy"])
    return scores, predicted


def _outcome(results: list[FitResult], history: list[dict[str, Any]], zero_shot: dict[str, float] | None) -> dict[str, Any]:
    """The fields of ``run_info`` that describe how training went."""
    final = results[-1] if results else None
    seconds = stage_seconds(results)
    return {
        "epochs_run": len(final.history) if final else 0,
        "best_epoch": final.best_epoch if final else 0,
        "best_val_accuracy": final.best_val_accuracy if final else (zero_shot or {}).get("val_accuracy", float("nan")),
        "stopped_early": bool(final.stopped_early) if final else False,
        "resumed_from_epoch": final.resumed_from_epoch if final else None,
        "peak_memory_mb": max((r.peak_memory_mb for r in results), default=0.0),
        "mean_epoch_seconds": float(np.mean([h["seconds"] for h in history])) if history else 0.0,
        "mean_images_per_second": float(np.mean([h["images_per_second"] for h in history])) if history else 0.0,
        "stage_seconds": seconds,
        "total_train_seconds": sum(seconds.values()),
        # Staged unfreezing: the weights trained at each epoch of the fine-tune (None when it is off).
        "unfrozen_parameters": final.extra.get("unfrozen_parameters") if final else None,
    }


def _calibration(model: ImageClassifier, run: RunInputs) -> dict[str, float] | None:
    """Temperature scaling fitted on the trained model's val predictions (models/calibration.py); the report
    rescales the test predictions with it. None when ``calibrate`` turns the extra val pass off."""
    config = run.config
    if not config.calibrate:
        return None
    val_logits = predict_logits(model, run.cache.images("val"), config.eval_batch_size, run.device, config.amp)
    return calibration_record(val_logits, run.cache.labels("val"))


def _wise_ft(
    model: ImageClassifier, run: RunInputs, zero_shot_weights: dict[str, torch.Tensor] | None, sets: Sequence[str],
) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """WiSE-FT's val, test and evaluation-set accuracy over the α grid (models/wise_ft.py) and the predictions at the
    chosen α on test and the evaluation sets; the model is left at the chosen α when ``wise_ft.apply``, else at its
    fine-tuned weights. (None, {}) when off or nothing was trained."""
    settings, config = run.config.wise_ft, run.config
    if settings is None or zero_shot_weights is None:
        return None, {}

    def accuracy(split: str) -> float:
        return evaluate(model, run.split(split), config.eval_batch_size, run.device, config.amp)["accuracy"]

    fine_tuned = snapshot(model)
    curve = wise_ft_curve(model, zero_shot_weights, settings.alphas, accuracy, settings.apply, sets)
    mix(model, zero_shot_weights, fine_tuned, curve.chosen_alpha)
    predicted = _predicted(model, run, ["test", *sets])
    mix(model, zero_shot_weights, fine_tuned, curve.chosen_alpha if settings.apply else 1.0)
    logger.info(
        "WiSE-FT: val accuracy %s over alpha %s; chosen alpha %.2f%s", [round(v, 3) for v in curve.val_accuracy],
        curve.alphas, curve.chosen_alpha, " (applied)" if settings.apply else " (not applied: wise_ft.apply is false)",
    )
    return curve.record(), predicted


def _predicted(model: ImageClassifier, run: RunInputs, splits: Sequence[str]) -> dict[str, np.ndarray]:
    """The predicted class of every image of ``splits``, by split."""
    config = run.config
    return {s: predict_logits(model, run.cache.images(s), config.eval_batch_size, run.device, config.amp).argmax(dim=1).numpy() for s in splits}


def evaluation_frame(cache: ImageCache, splits: Sequence[str], zero_shot: dict[str, np.ndarray], fine_tuned: dict[str, np.ndarray], wise: dict[str, np.ndarray]) -> pd.DataFrame:
    """:data:`EVALUATION_COLUMNS`: one row per image of ``splits``; -1 where a model was not scored."""
    frames = []
    for split in splits:
        labels = cache.labels(split)
        missing = np.full(len(labels), -1, dtype=np.int64)
        frames.append(pd.DataFrame({
            "set": split, "image_id": cache.image_ids(split), "label_id": labels.astype(np.int64),
            "zero_shot_pred": zero_shot.get(split, missing), "fine_tuned_pred": fine_tuned.get(split, missing), "wise_ft_pred": wise.get(split, missing),
        }))
    return pd.concat(frames, ignore_index=True)[EVALUATION_COLUMNS] if frames else pd.DataFrame(columns=EVALUATION_COLUMNS)


def stage_seconds(results: list[FitResult]) -> dict[str, float]:
    """Wall-clock seconds per stage: its epochs, plus its one-off set-up (the linear probe's feature pass)."""
    seconds: dict[str, float] = {}
    for result in results:
        for row in result.history:
            seconds[row["stage"]] = seconds.get(row["stage"], 0.0) + float(row["seconds"])
        if "feature_pass_seconds" in result.extra:
            stage = result.extra["stage"]
            seconds[stage] = seconds.get(stage, 0.0) + float(result.extra["feature_pass_seconds"])
    return seconds


def _run_info(model_name: str, model: ImageClassifier, run: RunInputs, test_accuracy: float) -> dict[str, Any]:
    """The fields of ``run_info`` that describe what was trained, where and with which libraries."""
    trainable, total = count_parameters(model)
    device, config = run.device, run.config
    return {
        "model": model_name, "backbone": run.backbone_source, "family": model.backbone.family,
        "method": config.method, "loss": config.loss, "seed": run.seed, "device": str(device),
        "processes": config.distributed.num_processes if config.method in FINE_TUNE_METHODS else 1,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "image_size": run.image_size,
        "trainable_parameters": trainable, "total_parameters": total, "trainable_fraction": trainable / total if total else 0.0,
        "test_accuracy": test_accuracy, "peak_memory_kind": memory_kind(device),
        "inputs": dict(run.identity), "config": dataclasses.asdict(config), "library_versions": _library_versions(),
    }


def run_training(
    model_name: str,
    cache: ImageCache,
    class_names: Sequence[str],
    class_prompts: Mapping[str, Sequence[str]],
    backbone_source: str,
    config: TrainConfig,
    seed: int,
    checkpoint_dir: Path | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainingOutputs:
    """Train one model as configured and predict the test split with its best epoch; ``on_epoch_end``
    sees each epoch's history row as it is written (experiment tracking)."""
    seed_everything(seed)
    device = select_device(config.device)
    backbone = load_backbone(backbone_source)
    identity = {"backbone": backbone_source, "backbone_weights": weights_fingerprint(backbone.model), "image_cache": cache.stored.fingerprint}
    run = RunInputs(cache, class_names, class_prompts, backbone_source, config, seed, config.image_size or cache.image_size, device, checkpoint_dir, identity, on_epoch_end)
    model = training_classifier(backbone, class_names, class_prompts, config, device, run.image_size)
    sets = evaluation_splits(cache.splits)
    zero_shot, zero_shot_predicted = _zero_shot(model, run, model_name, sets)
    zero_shot_weights = snapshot(model) if config.wise_ft is not None and config.method != "zero_shot" else None
    results = train_stages(model, run)
    history = [row for result in results for row in result.history]
    # The fine-tuned model's predictions; its test ones come from the final test pass below unless WiSE-FT's mix replaces it.
    moved = bool(results) and config.wise_ft is not None and config.wise_ft.apply
    fine_tuned_predicted = _predicted(model, run, [*sets, *(["test"] if moved else [])]) if results else dict(zero_shot_predicted)
    aclip_info = _aclip_report(model, run) if isinstance(model, AclipClassifier) and results else None
    wise_ft, wise_predicted = _wise_ft(model, run, zero_shot_weights if results else None, sets)
    logits = predict_logits(model, cache.images("test"), config.eval_batch_size, device, config.amp)
    if not moved and len(logits):
        fine_tuned_predicted["test"] = logits.argmax(dim=1).numpy()
    test_predictions = predictions_frame(logits, cache.labels("test"), cache.image_ids("test"), class_names)
    test_accuracy = float(test_predictions["correct"].mean()) if len(test_predictions) else float("nan")
    run_info = _run_info(model_name, model, run, test_accuracy) | _outcome(results, history, zero_shot) | {"zero_shot": zero_shot}
    run_info["calibration"] = _calibration(model, run)
    run_info["wise_ft"] = wise_ft
    run_info["evaluation_sets"] = {s: top1(fine_tuned_predicted[s], cache.labels(s)) for s in sets}
    if aclip_info is not None:
        run_info["aclip"] = aclip_info
    trained = trained_model(model, backbone_source, config, class_names, class_prompts, run.image_size)
    evaluation = evaluation_frame(cache, ["test", *sets], zero_shot_predicted, fine_tuned_predicted, wise_predicted)
    return TrainingOutputs(trained, pd.DataFrame(history, columns=HISTORY_COLUMNS), test_predictions, run_info, evaluation)


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
