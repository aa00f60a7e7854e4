"""Figures show the data they claim to, and the same inputs give the same figure JSON."""

from __future__ import annotations

import numpy as np
import pytest

from har_kedro.reporting.figures import (
    accuracy_vs_epoch_time_figure,
    accuracy_vs_parameters_figure,
    confusion_matrices_figure,
    learning_curves_figure,
    reliability_figure,
    wise_ft_figure,
)
from har_kedro.reporting.metrics import confusion_counts, model_metrics_table
from har_kedro.reporting.runs import select_runs
from har_kedro.reporting.statistics import reliability_table
from tests.reporting.conftest import CLASSES


@pytest.fixture
def runs(two_models):
    return select_runs(CLASSES, two_models, ["clip", "siglip"]).runs


def test_confusion_matrices_one_row_normalised_heatmap_per_model_with_class_names(runs):
    fig = confusion_matrices_figure(runs, CLASSES)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert [t.name for t in heatmaps] == ["clip", "siglip"]
    for trace, run in zip(heatmaps, runs, strict=True):
        assert list(trace.x) == CLASSES and list(trace.y) == CLASSES
        z = np.asarray(trace.z, dtype=float)
        assert np.allclose(z.sum(axis=1), 1.0)
        counts = confusion_counts(run, len(CLASSES))
        assert np.array_equal(np.asarray(trace.customdata), counts)
        assert np.allclose(z, counts / counts.sum(axis=1, keepdims=True))
    assert fig.layout.yaxis.autorange == "reversed"


def test_learning_curves_train_and_val_accuracy_and_loss_for_every_model(runs, two_models):
    fig = learning_curves_figure(runs)
    names = [t.name for t in fig.data]
    assert names.count("clip train") == 2 and names.count("siglip val") == 2  # accuracy and loss panels
    siglip_val_loss = [t for t in fig.data if t.name == "siglip val" and t.xaxis == "x2"][0]
    history = two_models["siglip.history"]
    assert list(siglip_val_loss.x) == list(range(1, len(history) + 1))
    assert np.allclose(siglip_val_loss.y, history["val_loss"])
    assert siglip_val_loss.line.dash == "dash"


def test_tradeoff_scatters_plot_top1_against_parameters_log_and_epoch_seconds(runs):
    metrics = model_metrics_table(runs, CLASSES)
    params = accuracy_vs_parameters_figure(metrics)
    assert params.layout.xaxis.type == "log"
    assert [(t.text[0], t.x[0], t.y[0]) for t in params.data] == list(zip(metrics["model"], metrics["trainable_parameters"], metrics["top1_accuracy"], strict=True))
    seconds = accuracy_vs_epoch_time_figure(metrics)
    assert [t.x[0] for t in seconds.data] == list(metrics["mean_epoch_seconds"])
    # each point carries its top-1 bootstrap interval as an error bar
    for trace, row in zip(params.data, metrics.itertuples(), strict=True):
        assert trace.y[0] - trace.error_y.arrayminus[0] == pytest.approx(row.top1_ci_low)
        assert trace.y[0] + trace.error_y.array[0] == pytest.approx(row.top1_ci_high)


def test_the_reliability_diagram_draws_each_models_bins_against_the_diagonal(runs):
    fig = reliability_figure(runs, CLASSES, 10)
    assert fig.data[0].name == "perfectly calibrated" and list(fig.data[0].x) == [0, 1] == list(fig.data[0].y)
    for trace, run in zip(fig.data[1:], runs, strict=True):
        table = reliability_table(run.labels(), run.probabilities(CLASSES), 10)
        used = table[table["images"] > 0]
        assert trace.name == run.name
        np.testing.assert_allclose(trace.x, used["confidence"])
        np.testing.assert_allclose(trace.y, used["accuracy"])
        assert sum(c[0] for c in trace.customdata) == len(run.predictions)  # every test image is in a bin


def test_a_model_that_trained_nothing_is_noted_not_drawn_on_the_log_axis(runs):
    metrics = model_metrics_table(runs, CLASSES)
    metrics.loc[metrics["model"] == "clip", "trainable_parameters"] = 0
    fig = accuracy_vs_parameters_figure(metrics)
    assert [t.name for t in fig.data] == ["siglip"]
    assert "clip" in fig.layout.annotations[0].text


def test_same_inputs_give_byte_identical_figure_json(runs):
    metrics = model_metrics_table(runs, CLASSES)
    for build in (
        lambda: confusion_matrices_figure(runs, CLASSES),
        lambda: learning_curves_figure(runs),
        lambda: accuracy_vs_parameters_figure(metrics),
        lambda: accuracy_vs_epoch_time_figure(metrics),
        lambda: reliability_figure(runs, CLASSES, 15),
        lambda: wise_ft_figure(runs),
    ):
        assert build().to_json() == build().to_json()
