"""Bootstrap intervals, McNemar's test and calibration error against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from har_kedro.reporting.errors import ReportingSettingsError
from har_kedro.reporting.statistics import (
    StatisticsSettings,
    accuracy_interval,
    expected_calibration_error,
    macro_f1,
    macro_f1_interval,
    paired_comparison,
    reliability_table,
    temperature_scaled,
)

SETTINGS = StatisticsSettings()


def test_macro_f1_is_scikit_learns_for_every_resample_at_once():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=(4, 50))
    predicted = np.where(rng.random((4, 50)) < 0.6, labels, rng.integers(0, 6, size=(4, 50)))
    predicted[:, :5] = 0  # and a class (5) that some rows never predict
    ours = macro_f1(labels, predicted, 7)  # class 6 has no image and no prediction: counts 0
    theirs = [f1_score(y, p, labels=np.arange(7), average="macro", zero_division=0) for y, p in zip(labels, predicted, strict=True)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_the_accuracy_interval_matches_the_normal_approximation():
    """300 of 400 right: standard error sqrt(0.75 * 0.25 / 400) = 0.02165, so 95 % is about 0.75 ± 0.0424."""
    labels = np.zeros(400, dtype=int)
    predicted = np.r_[np.zeros(300, dtype=int), np.ones(100, dtype=int)]
    interval = accuracy_interval(labels, predicted, StatisticsSettings(bootstrap_resamples=4000))
    assert interval.estimate == 0.75
    half = 1.959964 * math.sqrt(0.75 * 0.25 / 400)
    assert interval.low == pytest.approx(0.75 - half, abs=0.006) and interval.high == pytest.approx(0.75 + half, abs=0.006)
    # the same seed gives the same interval (a rebuilt report is byte-identical); another seed moves it a little
    assert accuracy_interval(labels, predicted, StatisticsSettings(bootstrap_resamples=4000)) == interval
    assert accuracy_interval(labels, predicted, StatisticsSettings(bootstrap_resamples=4000, bootstrap_seed=1)) != interval


def test_a_wider_confidence_gives_a_wider_interval_and_a_perfect_model_none():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 15, 150)
    predicted = np.where(rng.random(150) < 0.5, labels, (labels + 1) % 15)
    narrow = macro_f1_interval(labels, predicted, 15, StatisticsSettings(confidence=0.8))
    wide = macro_f1_interval(labels, predicted, 15, StatisticsSettings(confidence=0.99))
    assert wide.low < narrow.low < narrow.estimate < narrow.high < wide.high
    assert narrow.estimate == pytest.approx(f1_score(labels, predicted, labels=np.arange(15), average="macro", zero_division=0))
    perfect = accuracy_interval(labels, labels, SETTINGS)
    assert (perfect.estimate, perfect.low, perfect.high) == (1.0, 1.0, 1.0)


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_images():
    """8 images only A gets right, 2 only B: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 112 / 1024."""
    a = np.array([1] * 8 + [0] * 2 + [1] * 20 + [0] * 10, dtype=bool)
    b = np.array([0] * 8 + [1] * 2 + [1] * 20 + [0] * 10, dtype=bool)
    comparison = paired_comparison(("a", "b"), (a, b), SETTINGS)
    assert (comparison.only_first_right, comparison.only_second_right, comparison.images) == (8, 2, 40)
    assert comparison.p_value == pytest.approx(112 / 1024)
    assert comparison.difference.estimate == pytest.approx(6 / 40)
    assert comparison.difference.low < 6 / 40 < comparison.difference.high
    sentence = comparison.sentence(0.95)
    assert sentence.startswith("a vs b: +15.0 points top-1, 95 % CI [") and sentence.endswith("McNemar p = 0.109 (a alone right on 8 images, b alone on 2)")
    # the same predictions: no discordant image, p = 1 and a zero-width interval at 0
    same = paired_comparison(("a", "a"), (a, a), SETTINGS)
    assert same.p_value == 1.0 and (same.difference.low, same.difference.high) == (0.0, 0.0)


def test_expected_calibration_error_by_hand():
    """Two images at 0.95 (one right): bin 15, |0.5 - 0.95|; two at 0.55 (both right): bin 9, |1 - 0.55|.
    ECE = 0.5 * 0.45 + 0.5 * 0.45 = 0.45."""
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(labels, probabilities, 15) == pytest.approx(0.45)
    table = reliability_table(labels, probabilities, 15)
    assert table["images"].tolist() == [0] * 8 + [2] + [0] * 5 + [2]
    assert table.loc[14, ["confidence", "accuracy"]].tolist() == pytest.approx([0.95, 0.5])
    assert table.loc[8, ["low", "high"]].tolist() == pytest.approx([8 / 15, 9 / 15])
    # a confidence of exactly 1 falls in the last bin, and a perfectly calibrated set scores 0
    assert expected_calibration_error(np.array([0, 0]), np.array([[1.0, 0.0], [1.0, 0.0]]), 15) == 0.0
    assert math.isnan(expected_calibration_error(np.array([], dtype=int), np.zeros((0, 2)), 15))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"confidence": 95}, "reporting.statistics.confidence is 95"),
        ({"confidence": True}, "reporting.statistics.confidence is True"),
        ({"bootstrap_resamples": 0}, "reporting.statistics.bootstrap_resamples is 0"),
        ({"calibration_bins": 2.5}, "reporting.statistics.calibration_bins is 2.5"),
        ({"bins": 15}, "reporting.statistics has unknown keys ['bins']"),
    ],
)
def test_bad_statistics_settings_are_refused_with_the_key_named(params, message):
    with pytest.raises(ReportingSettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        StatisticsSettings.from_params(params)


def test_temperature_scaling_of_stored_probabilities_by_hand():
    """softmax(log p / 2) of (0.8, 0.2) is (sqrt 0.8, sqrt 0.2) normalised = (2/3, 1/3); T = 1 changes nothing."""
    probabilities = np.array([[0.8, 0.2], [0.1, 0.9]])
    np.testing.assert_allclose(temperature_scaled(probabilities, 2.0)[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(temperature_scaled(probabilities, 1.0), probabilities)
    assert (temperature_scaled(probabilities, 3.0).argmax(axis=1) == probabilities.argmax(axis=1)).all()  # predictions unchanged


def test_with_several_seeds_the_estimates_are_the_seed_means():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    seeds = np.array([
        [0, 1, 2, 0, 1, 2, 0, 0],  # 7 / 8
        [0, 1, 0, 0, 2, 2, 1, 1],  # 5 / 8
    ])
    top1 = accuracy_interval(labels, seeds, SETTINGS)
    assert top1.estimate == pytest.approx(0.75)  # (7/8 + 5/8) / 2
    assert top1.low <= 0.75 <= top1.high and top1.high - top1.low > 0
    f1 = macro_f1_interval(labels, seeds, 3, SETTINGS)
    by_seed = [f1_score(labels, p, labels=[0, 1, 2], average="macro", zero_division=0) for p in seeds]
    assert f1.estimate == pytest.approx(np.mean(by_seed), rel=1e-12)


def _exact_sign_flip_p(difference: np.ndarray) -> float:
    """Every sign pattern of the non-zero differences, counted by hand (two-sided, |mean| at least the observed)."""
    nonzero = difference[difference != 0]
    observed = abs(nonzero.mean())
    patterns = [np.array(signs) for signs in np.ndindex(*([2] * len(nonzero)))]
    extreme = sum(abs((nonzero * (1 - 2 * signs)).mean()) >= observed - 1e-12 for signs in patterns)
    return extreme / len(patterns)


def test_with_several_seeds_the_pair_is_tested_by_exact_sign_flips_over_the_per_image_differences():
    # two seeds each: per image, the share of seeds right
    first = np.array([1.0, 1.0, 0.5, 1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 1.0])
    second = np.array([0.5, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0, 0.0, 1.0, 0.5])
    comparison = paired_comparison(("a", "b"), (first, second), SETTINGS)
    assert comparison.test == "sign-flip"
    assert comparison.only_first_right == 6 and comparison.only_second_right == 1  # images a gets right more often, and b
    assert comparison.difference.estimate == pytest.approx((first - second).mean())
    assert comparison.p_value == pytest.approx(_exact_sign_flip_p(first - second), abs=1e-12)  # 2^7 patterns <= 2000 resamples: exact
    assert "a vs b: +35.0 points top-1" in comparison.sentence(0.95) and "sign-flip p = " in comparison.sentence(0.95)


def test_the_sign_flip_test_on_plus_or_minus_one_differences_is_mcnemars():
    d = np.r_[np.ones(8), -np.ones(2), np.zeros(30)]
    assert _exact_sign_flip_p(d) == pytest.approx(112 / 1024)  # McNemar's exact p for 8 against 2
    assert paired_comparison(("a", "b"), ((d > 0) * 1.0, (d < 0) * 1.0), SETTINGS).p_value == pytest.approx(112 / 1024)


def test_a_tiny_p_reads_as_p_below_a_thousandth():
    d = np.r_[np.ones(30), np.zeros(10)]
    sentence = paired_comparison(("a", "b"), ((d > 0) * 1.0, np.zeros(40)), SETTINGS).sentence(0.95)
    assert "McNemar p < 0.001 (a alone right on 30 images, b alone on 0)" in sentence, sentence
