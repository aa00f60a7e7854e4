"""Experiment tracking in MLflow (through kedro-mlflow): what a run logs besides the versioned catalog.

kedro-mlflow opens one MLflow run per ``kedro run`` (the parent) and logs the parameters the nodes
read. :class:`har_kedro.hooks.TrackingHook` adds a child run per trained model, fed while training by
:class:`EpochMetricsLogger` (the trainer's own ``on_epoch_end``) and closed with the final test
metrics, the history, ``run_info`` and the dataset versions the run wrote. The catalog stays the
source of truth: nothing here is read back by a pipeline. ``HAR_KEDRO_TRACKING=off`` turns it all off.
"""

from har_kedro.tracking.mlflow_runs import (
    TRACKING_ENV_VAR,
    EpochMetricsLogger,
    active_epoch_logger,
    final_metrics,
    flatten,
    mark_model_training,
    sqlite_uri,
    tracking_enabled,
)

__all__ = [
    "TRACKING_ENV_VAR",
    "EpochMetricsLogger",
    "active_epoch_logger",
    "final_metrics",
    "flatten",
    "mark_model_training",
    "sqlite_uri",
    "tracking_enabled",
]
