"""Test-set metrics per model (scikit-learn) joined with what each run recorded about itself.

Everything is computed from the saved test predictions, so a report rebuilt from the same
dataset versions gives the same numbers, and nothing depends on the training process still
being around.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from har_kedro.reporting.runs import ModelRun
from har_kedro.reporting.statistics import (
    StatisticsSettings,
    accuracy_interval,
    expected_calibration_error,
    macro_f1,
    macro_f1_interval,
    paired_comparison,
    seed_mean_correct,
    temperature_scaled,
)

TOP_K = 5

# The comparison table, one row per model, in this column order.
METRIC_COLUMNS: list[str] = [
    "model", "family", "backbone", "method", "loss",
    "top1_accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1",
    "seeds", "top1_mean", "top1_std", "top1_ci_low", "top1_ci_high", "macro_f1_mean", "macro_f1_std", "macro_f1_ci_low", "macro_f1_ci_high",
    "ece", "temperature", "ece_scaled", "wise_ft_alpha", "wise_ft_val_accuracy", "wise_ft_test_accuracy",
    "zero_shot_val_accuracy", "zero_shot_test_accuracy", "best_val_accuracy",
    "trainable_parameters", "total_parameters", "trainable_fraction",
    "peak_memory_mb", "peak_memory_kind", "mean_epoch_seconds", "total_train_seconds", "images_per_second",
    "best_epoch", "epochs_run", "test_images", "seed", "image_size", "device", "device_name",
]
PER_CLASS_COLUMNS: list[str] = ["model", "class", "precision", "recall", "f1", "support"]
PAIRWISE_COLUMNS: list[str] = [
    "first", "second", "images", "difference", "ci_low", "ci_high", "only_first_right", "only_second_right", "test", "p_value", "sentence",
]


def top_k_accuracy(labels: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable; 1.0 when ``k`` covers every class."""
    n_classes = probabilities.shape[1]
    if k >= n_classes:
        return 1.0
    return float(top_k_accuracy_score(labels, probabilities, k=k, labels=np.arange(n_classes)))


def _spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (NaN with one seed)."""
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def seed_scores(run: ModelRun, n_classes: int, settings: StatisticsSettings) -> dict[str, float]:
    """Over the run's seeds: mean and std of top-1 and macro-F1, and their bootstrap intervals over the test
    images (of the seed-mean score: an image counts by the share of seeds that get it right)."""
    labels, predicted = run.labels(), run.seed_predicted()
    top1_mean, top1_std = _spread((predicted == labels[None, :]).mean(axis=1))
    f1_mean, f1_std = _spread(np.array([macro_f1(labels, p, n_classes) for p in predicted]))
    top1 = accuracy_interval(labels, predicted, settings)
    f1 = macro_f1_interval(labels, predicted, n_classes, settings)
    return {
        "seeds": len(predicted), "top1_mean": top1_mean, "top1_std": top1_std, "top1_ci_low": top1.low, "top1_ci_high": top1.high,
        "macro_f1_mean": f1_mean, "macro_f1_std": f1_std, "macro_f1_ci_low": f1.low, "macro_f1_ci_high": f1.high,
    }


def calibration(run: ModelRun, class_names: Sequence[str], settings: StatisticsSettings) -> dict[str, float]:
    """The deployed model's expected calibration error before and after the temperature its training run fitted
    on val (NaN for a run from before it did)."""
    labels, probabilities = run.labels(), run.probabilities(class_names)
    temperature = float((run.run_info.get("calibration") or {}).get("temperature", np.nan))
    scaled = np.nan if np.isnan(temperature) else expected_calibration_error(labels, temperature_scaled(probabilities, temperature), settings.calibration_bins)
    return {"ece": expected_calibration_error(labels, probabilities, settings.calibration_bins), "temperature": temperature, "ece_scaled": scaled}


def wise_ft_scores(run: ModelRun) -> dict[str, float]:
    """The α WiSE-FT chose on val for the deployed seed, and its val and test top-1 there (NaN when off)."""
    curve = run.run_info.get("wise_ft") or {}
    if not curve:
        return {"wise_ft_alpha": np.nan, "wise_ft_val_accuracy": np.nan, "wise_ft_test_accuracy": np.nan}
    at = curve["alphas"].index(curve["chosen_alpha"])
    return {"wise_ft_alpha": float(curve["chosen_alpha"]), "wise_ft_val_accuracy": float(curve["val_accuracy"][at]), "wise_ft_test_accuracy": float(curve["test_accuracy"][at])}


def model_metrics_row(run: ModelRun, class_names: Sequence[str], settings: StatisticsSettings = StatisticsSettings()) -> dict[str, Any]:
    """One row of the comparison table.

    Precision, recall and F1 are averaged over all classes of ``class_names`` (a class with no
    test image or no prediction counts as 0, scikit-learn's ``zero_division=0``); the intervals and
    the calibration error follow ``settings`` (:mod:`har_kedro.reporting.statistics`).
    """
    labels, predicted = run.labels(), run.predicted()
    classes = np.arange(len(class_names))
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=classes, average="macro", zero_division=0)
    _, _, weighted_f1, _ = precision_recall_fscore_support(labels, predicted, labels=classes, average="weighted", zero_division=0)
    info = run.run_info
    history_seconds = run.history["seconds"] if "seconds" in run.history.columns else pd.Series(dtype=float)
    return {
        "model": run.name,
        "family": str(info["family"]),
        "backbone": str(info["backbone"]),
        "method": str(info["method"]),
        "loss": str(info["loss"]),
        "top1_accuracy": float(accuracy_score(labels, predicted)),
        "top5_accuracy": top_k_accuracy(labels, run.probabilities(class_names), TOP_K),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "weighted_f1": float(weighted_f1),
        **seed_scores(run, len(class_names), settings),
        **calibration(run, class_names, settings),
        **wise_ft_scores(run),
        "zero_shot_val_accuracy": float((info["zero_shot"] or {}).get("val_accuracy", np.nan)),
        "zero_shot_test_accuracy": float((info["zero_shot"] or {}).get("test_accuracy", np.nan)),
        "best_val_accuracy": float(info.get("best_val_accuracy", np.nan)),
        "trainable_parameters": int(info["trainable_parameters"]),
        "total_parameters": int(info["total_parameters"]),
        "trainable_fraction": float(info["trainable_fraction"]),
        "peak_memory_mb": float(info["peak_memory_mb"]),
        "peak_memory_kind": str(info.get("peak_memory_kind", "")),
        "mean_epoch_seconds": float(info["mean_epoch_seconds"]),
        # the run's own total (epochs plus one-off set-up such as the probe's feature pass); older runs: the epochs
        "total_train_seconds": float(info.get("total_train_seconds", history_seconds.sum())),
        "images_per_second": float(info["mean_images_per_second"]),
        "best_epoch": int(info["best_epoch"]),
        "epochs_run": int(info["epochs_run"]),
        "test_images": int(len(labels)),
        "seed": int(info.get("seed", -1)),
        "image_size": int(info.get("image_size", -1)),
        "device": str(info["device"]),
        "device_name": str(info.get("device_name", "")),
    }


def model_metrics_table(runs: Sequence[ModelRun], class_names: Sequence[str], settings: StatisticsSettings = StatisticsSettings()) -> pd.DataFrame:
    return pd.DataFrame([model_metrics_row(run, class_names, settings) for run in runs], columns=METRIC_COLUMNS)


def _right_by_image(run: ModelRun) -> pd.Series:
    """The share of the model's seeds that classified each test image right (0 or 1 with one seed), by image id."""
    return pd.Series(seed_mean_correct(run.labels(), run.seed_predicted()), index=run.predictions["image_id"].to_numpy())


def pairwise_table(runs: Sequence[ModelRun], settings: StatisticsSettings = StatisticsSettings()) -> pd.DataFrame:
    """Every pair of models (in table order) on the test images both predicted: the top-1 difference with its
    paired bootstrap interval and McNemar's p-value, and the sentence the report prints."""
    rows = []
    right = [_right_by_image(run) for run in runs]
    for i, first in enumerate(runs):
        for j in range(i + 1, len(runs)):
            second = runs[j]
            common = right[i].index.intersection(right[j].index).sort_values()
            if common.empty:
                continue  # different test splits: nothing to pair
            c = paired_comparison((first.name, second.name), (right[i][common].to_numpy(), right[j][common].to_numpy()), settings)
            rows.append({
                "first": c.first, "second": c.second, "images": c.images, "difference": c.difference.estimate,
                "ci_low": c.difference.low, "ci_high": c.difference.high, "only_first_right": c.only_first_right,
                "only_second_right": c.only_second_right, "test": c.test, "p_value": c.p_value, "sentence": c.sentence(settings.confidence),
            })
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def per_class_table(runs: Sequence[ModelRun], class_names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class, per model (the classification report)."""
    rows = []
    classes = np.arange(len(class_names))
    for run in runs:
        precision, recall, f1, support = precision_recall_fscore_support(
            run.labels(), run.predicted(), labels=classes, average=None, zero_division=0
        )
        for i, name in enumerate(class_names):
            rows.append({
                "model": run.name, "class": name, "precision": float(precision[i]),
                "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i]),
            })
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def confusion_counts(run: ModelRun, n_classes: int) -> np.ndarray:
    """(true class, predicted class) image counts."""
    return confusion_matrix(run.labels(), run.predicted(), labels=np.arange(n_classes))


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each true class's row as shares of its images; a class with no test image stays all zero."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
