"""Thin nodes over :mod:`har_kedro.reporting`."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from har_kedro.data.image_cache import ImageCache
from har_kedro.datasets.array_store import StoredArrays
from har_kedro.pipelines.training import MODELS
from har_kedro.reporting.figures import (
    accuracy_vs_epoch_time_figure,
    accuracy_vs_parameters_figure,
    confusion_matrices_figure,
    learning_curves_figure,
    reliability_figure,
    wise_ft_figure,
)
from har_kedro.reporting.html_report import build_html_report
from har_kedro.reporting.markdown import metrics_markdown
from har_kedro.reporting.metrics import model_metrics_table, pairwise_table, per_class_table
from har_kedro.reporting.mistakes import shown_images, thumbnails
from har_kedro.reporting.robustness import robustness_table
from har_kedro.reporting.runs import RunSelection, select_runs
from har_kedro.reporting.statistics import StatisticsSettings
from har_kedro.reporting.summary import report_info, report_summary


def collect_model_runs(class_names: list[str], image_cache: StoredArrays, **model_outputs: Any) -> tuple[RunSelection, dict[str, Any]]:
    """``model_outputs`` are ``<model>.run_info/history/test_predictions/seed_predictions`` by dataset name; ``None`` if never saved.
    The test images the report shows (its mistakes) come from ``image_cache`` as thumbnails."""
    selection = select_runs(class_names, model_outputs, MODELS)
    cache = ImageCache(image_cache)
    if "test" in cache.splits:
        shown = thumbnails(shown_images(selection.runs), cache.image_ids("test"), cache.images("test"))
        selection = dataclasses.replace(selection, thumbnails=shown)
    return selection, report_info(selection)


def compute_metrics(
    selection: RunSelection, class_names: list[str], statistics: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The comparison table (with intervals and calibration), the per-class table, the pairwise tests, and
    zero-shot / fine-tuned / WiSE-FT accuracy in distribution and on every evaluation set."""
    settings = StatisticsSettings.from_params(statistics)
    return (
        model_metrics_table(selection.runs, class_names, settings),
        per_class_table(selection.runs, class_names),
        pairwise_table(selection.runs, settings),
        robustness_table(selection.runs, settings),
    )


def draw_figures(
    selection: RunSelection, class_names: list[str], model_metrics: pd.DataFrame, statistics: dict[str, Any]
) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure, go.Figure, go.Figure]:
    return (
        confusion_matrices_figure(selection.runs, class_names),
        learning_curves_figure(selection.runs),
        accuracy_vs_parameters_figure(model_metrics),
        accuracy_vs_epoch_time_figure(model_metrics),
        wise_ft_figure(selection.runs),
        reliability_figure(selection.runs, class_names, StatisticsSettings.from_params(statistics).calibration_bins),
    )


def summarise(model_metrics: pd.DataFrame, pairwise_comparisons: pd.DataFrame, report_info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    left_out = report_info.get("models_left_out") or {}
    sentences = pairwise_comparisons["sentence"].tolist()
    return metrics_markdown(model_metrics, left_out, sentences), report_summary(model_metrics, left_out, sentences)


def write_html_report(
    selection: RunSelection,
    model_metrics: pd.DataFrame,
    per_class_metrics: pd.DataFrame,
    pairwise_comparisons: pd.DataFrame,
    robustness_metrics: pd.DataFrame,
    report_info: dict[str, Any],
    statistics: dict[str, Any],
    confusion_matrices: go.Figure,
    learning_curves: go.Figure,
    accuracy_vs_parameters: go.Figure,
    accuracy_vs_epoch_time: go.Figure,
    wise_ft: go.Figure,
    reliability: go.Figure,
) -> str:
    figures = {
        "confusion_matrices": confusion_matrices,
        "learning_curves": learning_curves,
        "accuracy_vs_parameters": accuracy_vs_parameters,
        "accuracy_vs_epoch_time": accuracy_vs_epoch_time,
        "wise_ft": wise_ft,
        "reliability": reliability,
    }
    return build_html_report(
        model_metrics, per_class_metrics, selection.runs, report_info, figures, thumbnails=selection.thumbnails,
        pairwise=pairwise_comparisons, statistics=StatisticsSettings.from_params(statistics), robustness=robustness_metrics,
    )
