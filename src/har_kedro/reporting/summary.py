"""Small JSON documents about a report: headline numbers (``report_summary``) and what went in (``report_info``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from har_kedro.reporting.runs import RunSelection

HEADLINE_COLUMNS: tuple[str, ...] = (
    "top1_accuracy", "seeds", "top1_mean", "top1_std", "top1_ci_low", "top1_ci_high", "top5_accuracy", "macro_f1", "macro_f1_mean",
    "ece", "ece_scaled", "zero_shot_test_accuracy", "wise_ft_alpha", "wise_ft_test_accuracy",
    "trainable_parameters", "mean_epoch_seconds", "peak_memory_mb",
)


def _plain(value: Any) -> Any:
    """JSON-friendly and short: numpy scalars to Python, floats to 4 decimals (it is a preview), NaN to null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def report_summary(metrics: pd.DataFrame, left_out: Mapping[str, str], pairwise: Sequence[str] = ()) -> dict[str, Any]:
    """Headline numbers per model, the best model by top-1 (first in table order on a tie), the pairwise
    tests in words, and who was left out."""
    models = {
        record["model"]: {column: _plain(record[column]) for column in ("method", "loss", *HEADLINE_COLUMNS)}
        for record in metrics.to_dict(orient="records")
    }
    best = metrics.loc[metrics["top1_accuracy"].idxmax(), "model"] if len(metrics) else None
    return {"best_model_by_top1": best, "models": models, "pairwise_tests": list(pairwise), "left_out": dict(left_out)}


def report_info(selection: RunSelection) -> dict[str, Any]:
    """Which models the report covers and which it leaves out, with the reason.

    ``input_versions`` (the version of every input dataset read) is added by
    :class:`har_kedro.hooks.InputVersionsHook` when the node runs in a Kedro session.
    """
    return {"models_included": selection.names, "models_left_out": dict(selection.left_out)}
