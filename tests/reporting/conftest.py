"""Training outputs shaped exactly like the training pipeline's (same ``predictions_frame``), built small."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from har_kedro.training.runner import HISTORY_COLUMNS, predictions_frame

CLASSES = ["calling", "clapping", "cycling", "dancing", "drinking", "eating"]


def make_history(epochs: int, seed: int = 0, stage: str = "fine_tune") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "stage": stage, "epoch": e, "train_loss": 2.0 / e, "train_accuracy": min(1.0, 0.2 * e), "val_loss": 2.2 / e,
            "val_accuracy": min(1.0, 0.15 * e), "lr": 1e-3, "seconds": float(rng.uniform(1, 2)), "images_per_second": 100.0,
            "peak_memory_mb": 50.0,
        }
        for e in range(1, epochs + 1)
    ]
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def make_predictions(labels: np.ndarray, predicted: np.ndarray, class_names: list[str] = CLASSES, seed: int = 0) -> pd.DataFrame:
    """Predictions whose arg-max is ``predicted`` (random logits, with a margin for the chosen class)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), len(class_names))).astype(np.float32)
    logits[np.arange(len(labels)), predicted] += 10.0
    return predictions_frame(torch.from_numpy(logits), np.asarray(labels), [f"img_{i}" for i in range(len(labels))], class_names)


def make_run_info(model: str, predictions: pd.DataFrame, history: pd.DataFrame, **overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model": model, "backbone": f"data/demo/06_models/tiny_{model}", "family": "clip", "method": "full",
        "loss": "cross_entropy", "seed": 42, "device": "cpu", "device_name": "x86_64", "image_size": 64,
        "trainable_parameters": 1000, "total_parameters": 4000, "trainable_fraction": 0.25,
        "epochs_run": len(history), "best_epoch": int(history["val_accuracy"].idxmax()) + 1 if len(history) else 0,
        "best_val_accuracy": float(history["val_accuracy"].max()) if len(history) else 0.0,
        "test_accuracy": float(predictions["correct"].mean()), "stopped_early": False, "resumed_from_epoch": None,
        "peak_memory_mb": 123.0, "peak_memory_kind": "process_rss", "mean_epoch_seconds": float(history["seconds"].mean()) if len(history) else 0.0,
        "mean_images_per_second": 100.0, "zero_shot": {"val_accuracy": 0.1, "test_accuracy": 0.12},
        "config": {"epochs": len(history), "batch_size": 32, "lr": 1e-3, "method": "full"},
        "library_versions": {"torch": torch.__version__},
    }
    info.update(overrides)
    return info


def model_outputs(model: str, labels: np.ndarray, predicted: np.ndarray, epochs: int = 3, seed: int = 0, **info: Any) -> dict[str, Any]:
    """``{"<model>.run_info": ..., "<model>.history": ..., "<model>.test_predictions": ...}`` of one consistent run."""
    predictions = make_predictions(labels, predicted, seed=seed)
    history = make_history(epochs, seed)
    return {
        f"{model}.run_info": make_run_info(model, predictions, history, **info),
        f"{model}.history": history,
        f"{model}.test_predictions": predictions,
    }


@pytest.fixture
def labels() -> np.ndarray:
    """Every class twice."""
    return np.repeat(np.arange(len(CLASSES)), 2)


@pytest.fixture
def two_models(labels: np.ndarray) -> dict[str, Any]:
    """clip right on every image but the last; siglip right on exactly half."""
    clip_pred = labels.copy()
    clip_pred[-1] = 0
    siglip_pred = labels.copy()
    siglip_pred[::2] = (labels[::2] + 1) % len(CLASSES)
    return {
        **model_outputs("clip", labels, clip_pred, epochs=3, seed=1),
        **model_outputs("siglip", labels, siglip_pred, epochs=4, seed=2, family="siglip", loss="sigmoid", trainable_parameters=3000, total_parameters=5000, trainable_fraction=0.6),
    }


def with_seeds(outputs: dict[str, Any], model: str, *other_seeds: np.ndarray) -> dict[str, Any]:
    """``outputs`` plus ``<model>.seed_predictions``: the deployed seed's predictions and one seed per array of
    predicted ids in ``other_seeds`` (seeds 100, 101, ...), as training/seeds.py writes them."""
    deployed = outputs[f"{model}.test_predictions"]
    info = outputs[f"{model}.run_info"]
    frames = [deployed.assign(seed=info["seed"])]
    for offset, predicted in enumerate(other_seeds):
        frame = deployed.copy()
        frame["pred_id"] = np.asarray(predicted)
        frames.append(frame.assign(seed=100 + offset))
    seeds = pd.concat(frames, ignore_index=True)
    return {**outputs, f"{model}.seed_predictions": seeds[["seed", *deployed.columns]]}
