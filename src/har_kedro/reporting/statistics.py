"""How sure the comparison is: bootstrap intervals, paired tests between models, calibration.

A test split of a few hundred images leaves several points of uncertainty on top-1 accuracy (150 demo
images: about ±8 points), so the report gives every score with its interval and every difference
between two models with a paired test on the same images.

- Intervals: percentile bootstrap over the test images (``scipy.stats.bootstrap``, fixed seed, so a
  rebuilt report is byte-identical).
- Seeds: with several training runs per model (``seeds``), a model's score on an image is the share of its
  seeds that get it right, and the intervals resample images over that seed average (the spread between
  seeds is in the report too, as a standard deviation).
- Pairs: a paired bootstrap interval of the accuracy difference, and a two-sided test of no difference:
  with one seed per model, McNemar's exact test on the images exactly one of the two models gets right (a
  binomial test, ``scipy.stats.binomtest``); with several, the sign-flip permutation test on the per-image
  differences (``scipy.stats.permutation_test``), which is the same test when the differences are all ±1.
- Calibration: expected calibration error over equal-width confidence bins (Guo et al., ICML 2017,
  "On Calibration of Modern Neural Networks": 15 bins), and the per-bin table its reliability diagram draws.

Macro-F1 is written out here rather than taken from scikit-learn because the bootstrap needs it for
thousands of resamples at once (one ``bincount``); ``tests/reporting/test_statistics.py`` checks it
against scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, bootstrap, permutation_test

from har_kedro.config.errors import known_keys
from har_kedro.reporting.errors import ReportingSettingsError


@dataclass(frozen=True)
class StatisticsSettings:
    """``reporting.statistics`` in parameters_reporting.yml."""

    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    calibration_bins: int = 15

    @classmethod
    def from_params(cls, params: dict | None) -> StatisticsSettings:
        values = known_keys(cls, params or {}, "reporting.statistics", ReportingSettingsError)
        settings = cls(**values)
        if isinstance(settings.confidence, bool) or not isinstance(settings.confidence, int | float) or not 0.5 <= settings.confidence < 1:
            raise ReportingSettingsError(f"reporting.statistics.confidence is {settings.confidence!r}; give a level in [0.5, 1), e.g. 0.95.")
        for key in ("bootstrap_resamples", "calibration_bins"):
            value = getattr(settings, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ReportingSettingsError(f"reporting.statistics.{key} is {value!r}; give a positive whole number.")
        return settings


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedComparison:
    """Model ``first`` against model ``second`` on the same test images."""

    first: str
    second: str
    images: int
    difference: Interval  # top-1 of first minus top-1 of second, as a fraction
    only_first_right: int  # images ``first`` gets right more often (with one seed each: only ``first`` gets right)
    only_second_right: int
    p_value: float
    test: str = "McNemar"  # or "sign-flip" (several seeds)

    def sentence(self, confidence: float) -> str:
        """E.g. "siglip vs clip: +3.1 points top-1, 95 % CI [+1.2, +5.0], McNemar p = 0.003
        (siglip alone right on 14 images, clip alone on 4)"."""
        d = self.difference
        ahead, other = ("alone right", "alone on") if self.test == "McNemar" else ("right more often over seeds", "on")
        return (
            f"{self.first} vs {self.second}: {100 * d.estimate:+.1f} points top-1, {100 * confidence:.0f} % CI "
            f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}], {self.test} {_p(self.p_value)} "
            f"({self.first} {ahead} on {self.only_first_right} images, {self.second} {other} {self.only_second_right})"
        )


def _p(value: float) -> str:
    """``p < 0.001`` or ``p = 0.064``."""
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def macro_f1(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 over all ``n_classes`` along the last axis (a class with no image and no prediction counts
    0, as scikit-learn's ``zero_division=0``); leading axes are independent resamples."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    batch = labels.reshape(-1, labels.shape[-1])
    offsets = np.arange(batch.shape[0])[:, None] * n_classes * n_classes
    cells = offsets + batch * n_classes + predicted.reshape(batch.shape)
    counts = np.bincount(cells.ravel(), minlength=batch.shape[0] * n_classes * n_classes).reshape(-1, n_classes, n_classes)
    hits = np.diagonal(counts, axis1=1, axis2=2)
    denominator = counts.sum(axis=1) + counts.sum(axis=2)  # 2 tp + fp + fn
    f1 = np.divide(2 * hits, denominator, out=np.zeros(hits.shape, dtype=np.float64), where=denominator > 0)
    return f1.mean(axis=-1).reshape(labels.shape[:-1])


def _interval(data: tuple[np.ndarray, ...], statistic, estimate: float, settings: StatisticsSettings) -> Interval:
    if len(data[0]) < 2 or all(np.all(d == d[0]) for d in data):
        return Interval(estimate, estimate, estimate)  # nothing to resample: every resample gives the estimate
    result = bootstrap(
        data, statistic, paired=True, vectorized=True, method="percentile", confidence_level=settings.confidence,
        n_resamples=settings.bootstrap_resamples, batch=500, rng=np.random.default_rng(settings.bootstrap_seed),
    )
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


def seed_mean_correct(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per image, the share of seeds that classify it right; ``predicted`` is ``(images,)`` or ``(seeds, images)``."""
    predicted = np.atleast_2d(np.asarray(predicted))
    return (predicted == np.asarray(labels)[None, :]).mean(axis=0)


def accuracy_interval(labels: np.ndarray, predicted: np.ndarray, settings: StatisticsSettings) -> Interval:
    """Top-1 (the mean over seeds when ``predicted`` is ``(seeds, images)``) with its bootstrap interval over images."""
    correct = seed_mean_correct(labels, predicted)
    return _interval((correct,), lambda c, axis=-1: c.mean(axis=axis), float(correct.mean()) if len(correct) else np.nan, settings)


def macro_f1_interval(labels: np.ndarray, predicted: np.ndarray, n_classes: int, settings: StatisticsSettings) -> Interval:
    """Macro-F1 (the mean over seeds when ``predicted`` is ``(seeds, images)``) with its bootstrap interval over images."""
    labels, rows = np.asarray(labels), list(np.atleast_2d(np.asarray(predicted)))

    def statistic(y: np.ndarray, *seeds: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([macro_f1(y, p, n_classes) for p in seeds], axis=0)

    estimate = float(statistic(labels, *rows)) if len(labels) else np.nan
    return _interval((labels, *rows), statistic, estimate, settings)


def _sign_flip_p(difference: np.ndarray, settings: StatisticsSettings) -> float:
    """Two-sided p of a zero mean difference: signs of the non-zero per-image differences flipped at random
    (all 2^n patterns when that is no more than ``bootstrap_resamples``)."""
    nonzero = difference[difference != 0]
    if len(nonzero) == 0:
        return 1.0
    result = permutation_test(
        (nonzero,), lambda d, axis=-1: d.mean(axis=axis), permutation_type="samples", vectorized=True,
        n_resamples=settings.bootstrap_resamples, alternative="two-sided", rng=np.random.default_rng(settings.bootstrap_seed),
    )
    return float(result.pvalue)


def paired_comparison(
    names: tuple[str, str], correct: tuple[np.ndarray, np.ndarray], settings: StatisticsSettings
) -> PairedComparison:
    """``correct``: for each model, whether it classified each image right (same images, same order), or
    with several seeds the share of its seeds that did."""
    first, second = (np.asarray(c, dtype=np.float64) for c in correct)
    difference = first - second
    only_first, only_second = int((difference > 0).sum()), int((difference < 0).sum())
    binary = bool(np.isin(first, (0.0, 1.0)).all() and np.isin(second, (0.0, 1.0)).all())
    if binary:  # McNemar's exact test on the discordant images
        discordant = only_first + only_second
        p_value = 1.0 if discordant == 0 else float(binomtest(min(only_first, only_second), discordant, 0.5).pvalue)
    else:
        p_value = _sign_flip_p(difference, settings)
    interval = _interval((difference,), lambda d, axis=-1: d.mean(axis=axis), float(difference.mean()), settings)
    test = "McNemar" if binary else "sign-flip"
    return PairedComparison(names[0], names[1], len(first), interval, only_first, only_second, min(p_value, 1.0), test)


def reliability_table(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> pd.DataFrame:
    """Per equal-width bin ((m-1)/M, m/M] of the top probability: images, mean confidence, accuracy."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "images": count, "confidence": mean_confidence, "accuracy": accuracy})


def temperature_scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(z / T)`` from the stored ``softmax(z)``: log-probabilities differ from the logits by a
    per-image constant, which the softmax cancels (probabilities are clipped at 1e-30 before the log)."""
    scaled = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-30, None)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> float:
    """Σ over bins of (share of images) × |accuracy − mean confidence|; NaN without images."""
    table = reliability_table(labels, probabilities, bins)
    used = table[table["images"] > 0]
    if used.empty:
        return float("nan")
    weights = used["images"] / used["images"].sum()
    return float((weights * (used["accuracy"] - used["confidence"]).abs()).sum())
