"""The pieces of MLflow tracking that are ours; kedro-mlflow does the parent run and its parameters."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from har_kedro.reporting.metrics import model_metrics_row
from har_kedro.reporting.runs import PROBABILITY_PREFIX, ModelRun

TRACKING_ENV_VAR = "HAR_KEDRO_TRACKING"
MODEL_TAG = "har_kedro.model"
# MLflow 3's UI lays an experiment out for GenAI work (traces, judges, evaluation runs) unless this tag
# says it holds model training: then it shows the runs table and the metric charts first.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# The columns of a history row that are per-epoch metrics (the others say which stage and epoch).
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_second", "peak_memory_mb")
# The fine-tuning (and pretraining) stage's metrics keep their plain names; another stage's (lp_ft's linear probe) are prefixed.
MAIN_STAGES = ("fine_tune", "train", "pretrain")
# Columns of the report's table that are scores on the test set (logged as test_<name>), and the numeric
# ones that are settings rather than results (already logged as parameters).
TEST_SCORES = (
    "top1_accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1",
    "top1_mean", "top1_std", "top1_ci_low", "top1_ci_high", "macro_f1_mean", "macro_f1_std", "macro_f1_ci_low", "macro_f1_ci_high",
    "ece", "ece_scaled", "wise_ft_val_accuracy", "wise_ft_test_accuracy",
)
NOT_METRICS = ("seed", "image_size")


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

    def __init__(self, tracking_uri: str, run_id: str, prefix: str = "") -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.prefix = prefix

    def for_seed(self, seed: int) -> EpochMetricsLogger:
        """The same run's logger with every metric under ``seed_<seed>.`` (several seeds share one run)."""
        return EpochMetricsLogger(self.tracking_uri, self.run_id, f"seed_{seed}.")

    def __call__(self, epoch: int, row: Mapping[str, Any]) -> None:
        stage = str(row.get("stage", ""))
        prefix = self.prefix + ("" if stage in MAIN_STAGES else f"{stage}.")
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


def _final_name(column: str) -> str:
    """``test_<score>`` for a test-set score; ``run_<name>`` for a whole-run number that shares its name with a
    per-epoch metric (``images_per_second``, ``peak_memory_mb``), which would otherwise add a step to its curve."""
    if column in TEST_SCORES:
        return f"test_{column}"
    return f"run_{column}" if column in EPOCH_METRICS else column


def final_metrics(
    test_predictions: pd.DataFrame, history: pd.DataFrame, run_info: Mapping[str, Any], seed_predictions: pd.DataFrame | None = None
) -> dict[str, float]:
    """Every number the comparison report's table gives this model, computed by the report's own code
    (:func:`har_kedro.reporting.metrics.model_metrics_row`): the test-set scores prefixed ``test_``
    (top-1, top-5, macro precision / recall / F1, weighted F1) with their bootstrap intervals, the calibration
    error, the best val accuracy, the zero-shot baseline, parameters, speed and memory (``run_`` before a name
    a per-epoch metric already has). Undefined values (no baseline, no test image) are left out."""
    class_names = [column.removeprefix(PROBABILITY_PREFIX) for column in test_predictions.columns if column.startswith(PROBABILITY_PREFIX)]
    run = ModelRun(str(run_info.get("model", "")), dict(run_info), history, test_predictions, seed_predictions)
    metrics = {}
    for key, value in model_metrics_row(run, class_names).items():
        if key in NOT_METRICS or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        metrics[_final_name(key)] = float(value)
    return metrics
