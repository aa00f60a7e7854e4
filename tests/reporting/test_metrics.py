"""Metrics against values worked out by hand, and the table's shape and provenance of each column."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from har_kedro.reporting.metrics import (
    METRIC_COLUMNS,
    confusion_counts,
    model_metrics_table,
    pairwise_table,
    per_class_table,
    row_normalised,
    top_k_accuracy,
)
from har_kedro.reporting.runs import select_runs
from har_kedro.reporting.statistics import expected_calibration_error, temperature_scaled
from tests.reporting.conftest import (
    CLASSES,
    make_history,
    make_predictions,
    make_run_info,
    with_seeds,
)

THREE = CLASSES[:3]
# true  0 0 1 1 2 2
# pred  0 1 1 1 2 0
# class 0: TP 1, FP 1 (image 6), FN 1 (image 2) -> P 1/2, R 1/2, F1 1/2
# class 1: TP 2, FP 1 (image 2), FN 0           -> P 2/3, R 1,   F1 4/5
# class 2: TP 1, FP 0,           FN 1 (image 6) -> P 1,   R 1/2, F1 2/3
HAND_LABELS = np.array([0, 0, 1, 1, 2, 2])
HAND_PREDICTED = np.array([0, 1, 1, 1, 2, 0])


def _hand_run():
    predictions = make_predictions(HAND_LABELS, HAND_PREDICTED, class_names=THREE)
    history = make_history(2)
    outputs = {"m.run_info": make_run_info("m", predictions, history), "m.history": history, "m.test_predictions": predictions}
    return select_runs(THREE, outputs, ["m"]).runs[0]


def test_accuracy_and_macro_scores_match_the_hand_computation():
    row = model_metrics_table([_hand_run()], THREE).iloc[0]
    assert row["top1_accuracy"] == pytest.approx(4 / 6)
    assert row["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert row["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert row["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert row["weighted_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)  # every class has 2 images
    assert row["test_images"] == 6


def test_per_class_table_matches_the_hand_computation():
    table = per_class_table([_hand_run()], THREE)
    assert list(table["class"]) == THREE
    assert np.allclose(table["precision"], [1 / 2, 2 / 3, 1])
    assert np.allclose(table["recall"], [1 / 2, 1, 1 / 2])
    assert np.allclose(table["f1"], [1 / 2, 4 / 5, 2 / 3])
    assert list(table["support"]) == [2, 2, 2]


def test_confusion_counts_and_row_shares():
    counts = confusion_counts(_hand_run(), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    shares = row_normalised(counts)
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert row_normalised(np.array([[0, 0], [1, 3]])).tolist() == [[0.0, 0.0], [0.25, 0.75]]  # empty class stays 0


def test_top_k_accuracy_against_a_direct_count():
    rng = np.random.default_rng(0)
    probabilities = rng.random((200, 15))
    labels = rng.integers(0, 15, 200)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    expected = np.mean([label in row for label, row in zip(labels, top5, strict=True)])
    assert top_k_accuracy(labels, probabilities, 5) == pytest.approx(expected)
    assert top_k_accuracy(labels[:3], probabilities[:3, :4], 5) == 1.0  # k covers every class


def test_table_has_one_row_per_model_in_order_and_run_info_columns_come_from_run_info(two_models):
    runs = select_runs(CLASSES, two_models, ["clip", "aclip", "siglip"]).runs
    table = model_metrics_table(runs, CLASSES)
    assert list(table.columns) == METRIC_COLUMNS
    assert list(table["model"]) == ["clip", "siglip"]
    siglip = table.set_index("model").loc["siglip"]
    info = two_models["siglip.run_info"]
    assert siglip["trainable_parameters"] == info["trainable_parameters"] == 3000
    assert siglip["loss"] == "sigmoid" and siglip["family"] == "siglip"
    assert siglip["zero_shot_test_accuracy"] == info["zero_shot"]["test_accuracy"]
    assert siglip["images_per_second"] == info["mean_images_per_second"]
    assert siglip["total_train_seconds"] == pytest.approx(two_models["siglip.history"]["seconds"].sum())
    assert table.set_index("model").loc["clip", "top1_accuracy"] == pytest.approx(11 / 12)
    assert siglip["top1_accuracy"] == pytest.approx(0.5)


def test_table_round_trips_through_parquet_unchanged(two_models, tmp_path):
    table = model_metrics_table(select_runs(CLASSES, two_models, ["clip", "siglip"]).runs, CLASSES)
    table.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)


def _run_named(name: str, labels: np.ndarray, predicted: np.ndarray, ids: list[str] | None = None):
    predictions = make_predictions(labels, predicted, class_names=THREE)
    if ids is not None:
        predictions["image_id"] = ids
    history = make_history(2)
    outputs = {f"{name}.run_info": make_run_info(name, predictions, history), f"{name}.history": history, f"{name}.test_predictions": predictions}
    return select_runs(THREE, outputs, [name]).runs[0]


def test_pairs_are_compared_on_the_images_both_predicted():
    """a right on images 0-3, b right on 2-5: 2 images only a gets right, 2 only b; the difference is 0, p = 1."""
    labels = np.zeros(6, dtype=int)
    a = _run_named("a", labels, np.array([0, 0, 0, 0, 1, 1]))
    b = _run_named("b", labels, np.array([1, 1, 0, 0, 0, 0]))
    c = _run_named("c", labels, labels, ids=[f"other_{i}" for i in range(6)])  # another test split
    # b's rows in another order: pairing goes by image id, not by row
    b = dataclasses.replace(b, predictions=b.predictions.iloc[::-1].reset_index(drop=True))
    table = pairwise_table([a, b, c])
    assert table[["first", "second"]].values.tolist() == [["a", "b"]]  # c shares no image with either
    row = table.iloc[0]
    assert (row["images"], row["only_first_right"], row["only_second_right"], row["difference"], row["p_value"]) == (6, 2, 2, 0.0, 1.0)
    assert row["ci_low"] < 0 < row["ci_high"] and row["sentence"].startswith("a vs b: +0.0 points top-1, 95 % CI [")


def test_the_table_gives_intervals_around_each_score_and_the_calibration_error():
    row = model_metrics_table([_hand_run()], THREE).iloc[0]
    assert row["top1_accuracy"] == pytest.approx(4 / 6) and row["top1_ci_low"] <= row["top1_accuracy"] <= row["top1_ci_high"]
    assert row["macro_f1_ci_low"] <= row["macro_f1"] <= row["macro_f1_ci_high"]
    assert 0 <= row["ece"] <= 1


def test_the_ece_after_scaling_uses_the_temperature_the_run_fitted_on_val():
    run = _hand_run()
    assert np.isnan(model_metrics_table([run], THREE).iloc[0]["ece_scaled"])  # a run from before calibration was recorded
    calibrated = dataclasses.replace(run, run_info={**run.run_info, "calibration": {"temperature": 4.0}})
    row = model_metrics_table([calibrated], THREE).iloc[0]
    expected = expected_calibration_error(HAND_LABELS, temperature_scaled(calibrated.probabilities(THREE), 4.0), 15)
    assert row["temperature"] == 4.0 and row["ece_scaled"] == pytest.approx(expected) and row["ece_scaled"] != pytest.approx(row["ece"])


def test_with_seeds_the_table_gives_the_mean_and_spread_over_seeds_and_top1_stays_the_deployed_models():
    predictions = make_predictions(HAND_LABELS, HAND_PREDICTED, class_names=THREE)
    history = make_history(2)
    outputs = {"m.run_info": make_run_info("m", predictions, history), "m.history": history, "m.test_predictions": predictions}
    # the deployed seed: 4 / 6 right; two more seeds: 6 / 6 and 3 / 6
    outputs = with_seeds(outputs, "m", HAND_LABELS, np.array([0, 0, 0, 1, 0, 0]))
    run = select_runs(THREE, outputs, ["m"]).runs[0]
    row = model_metrics_table([run], THREE).iloc[0]
    by_seed = np.array([4 / 6, 6 / 6, 3 / 6])
    assert row["seeds"] == 3 and row["top1_accuracy"] == pytest.approx(4 / 6)
    assert row["top1_mean"] == pytest.approx(by_seed.mean()) and row["top1_std"] == pytest.approx(by_seed.std(ddof=1))
    f1 = [f1_score(HAND_LABELS, p, labels=[0, 1, 2], average="macro", zero_division=0) for p in run.seed_predicted()]
    assert row["macro_f1_mean"] == pytest.approx(np.mean(f1)) and row["macro_f1_std"] == pytest.approx(np.std(f1, ddof=1))
    assert row["top1_ci_low"] <= row["top1_mean"] <= row["top1_ci_high"]


def test_one_seed_has_no_spread_and_pairs_of_one_seed_use_mcnemar_of_several_the_sign_flip_test(two_models, labels):
    single = model_metrics_table(select_runs(CLASSES, two_models, ["clip", "siglip"]).runs, CLASSES)
    assert single["seeds"].tolist() == [1, 1] and single["top1_std"].isna().all()
    assert single["top1_mean"].tolist() == pytest.approx(single["top1_accuracy"].tolist())
    assert pairwise_table(select_runs(CLASSES, two_models, ["clip", "siglip"]).runs)["test"].tolist() == ["McNemar"]
    seeded = with_seeds(two_models, "clip", labels)  # a second clip seed, right on every image
    table = pairwise_table(select_runs(CLASSES, seeded, ["clip", "siglip"]).runs)
    assert table["test"].tolist() == ["sign-flip"] and "sign-flip p = " in table["sentence"].iloc[0]
