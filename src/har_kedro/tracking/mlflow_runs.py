"""The pieces of MLflow tracking that are ours; kedro-mlflow does the parent run and its parameters."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from sklearn.metrics import f1_score

from har_kedro.reporting.metrics import TOP_K, top_k_accuracy

TRACKING_ENV_VAR = "HAR_KEDRO_TRACKING"
MODEL_TAG = "har_kedro.model"
# MLflow 3's UI lays an experiment out for GenAI work (traces, judges, evaluation runs) unless this tag
# says it holds model training: then it shows the runs table and the metric charts first.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# The columns of a history row that are per-epoch metrics (the others say which stage and epoch).
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second", "peak_memory_mb")
# The fine-tuning stage's metrics keep their plain names; another stage's (lp_ft's linear probe) are prefixed.
MAIN_STAGES = ("fine_tune", "train")


def tracking_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """False when ``HAR_KEDRO_TRACKING`` is ``off`` (or 0 / false / no): nothing is logged to MLflow."""
    return environ.get(TRACKING_ENV_VAR, "on").strip().lower() not in {"off", "0", "false", "no"}


def sqlite_uri(path: str) -> str:
    """``sqlite:///<absolute path>`` of a database file given relative to the working directory (the
    project root, like the catalog's paths), its folder created: SQLite makes the file, not the folder.

    Absolute because MLflow caches one store per URI string for the whole process.
    """
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{target.as_posix()}"


def mark_model_training(experiment_id: str, tracking_uri: str | None = None) -> None:
    """Tag the experiment as model training for MLflow's UI, unless someone already chose its kind."""
    client = MlflowClient(tracking_uri)
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"training.lora.rank": 16, ...}``; lists and other leaves become strings."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, bool | int | float | str) or value is None else str(value)
    return flat


class EpochMetricsLogger:
    """``fit``'s ``on_epoch_end``: logs a history row as MLflow step metrics (step = epoch) of one run.

    Picklable (the tracking URI and the run id), so a multi-process run hands it to its rank-0 worker,
    which logs through its own client.
    """

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id

    def __call__(self, epoch: int, row: Mapping[str, Any]) -> None:
        stage = str(row.get("stage", ""))
        prefix = "" if stage in MAIN_STAGES else f"{stage}."
        timestamp = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
        metrics = [
            Metric(f"{prefix}{key}", float(row[key]), timestamp, int(epoch))
            for key in EPOCH_METRICS
            if key in row and row[key] is not None and math.isfinite(float(row[key]))
        ]
        MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=metrics)


def active_epoch_logger(model_name: str) -> EpochMetricsLogger | None:
    """The logger of ``model_name``'s child run, if :class:`~har_kedro.hooks.TrackingHook` opened one
    in this thread; None when tracking is off or the node runs outside a tracked ``kedro run``."""
    run = mlflow.active_run()
    # The active run object carries no tags; the stored run does.
    if run is None or mlflow.get_run(run.info.run_id).data.tags.get(MODEL_TAG) != model_name:
        return None
    return EpochMetricsLogger(mlflow.get_tracking_uri(), run.info.run_id)


def final_metrics(test_predictions: pd.DataFrame, run_info: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a finished model run ends with: test top-1 / top-5 / macro-F1 (as the report computes
    them), the best val accuracy, the zero-shot baseline, speed and memory."""
    probabilities = test_predictions.filter(like="prob_").to_numpy()
    labels = test_predictions["label_id"].to_numpy()
    metrics = {
        "test_top1_accuracy": float(test_predictions["correct"].mean()) if len(labels) else float("nan"),
        "test_top5_accuracy": top_k_accuracy(labels, probabilities, TOP_K) if len(labels) else float("nan"),
        "test_macro_f1": float(f1_score(labels, test_predictions["pred_id"], average="macro", labels=np.arange(probabilities.shape[1]), zero_division=0)),
        "test_images": float(len(labels)),
    }
    for key in ("best_val_accuracy", "mean_epoch_seconds", "mean_images_per_second", "peak_memory_mb", "trainable_parameters", "total_parameters"):
        if isinstance(run_info.get(key), int | float):
            metrics[key] = float(run_info[key])
    zero_shot = run_info.get("zero_shot") or {}
    for split in ("val", "test"):
        if isinstance(zero_shot.get(f"{split}_accuracy"), int | float):
            metrics[f"zero_shot_{split}_accuracy"] = float(zero_shot[f"{split}_accuracy"])
    return {key: value for key, value in metrics.items() if math.isfinite(value)}
