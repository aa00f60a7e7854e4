"""Which models are reported, which are left out, and the clear errors for unusable outputs."""

from __future__ import annotations

import numpy as np
import pytest

from har_kedro.reporting.errors import ReportingInputError
from har_kedro.reporting.runs import select_runs
from tests.reporting.conftest import CLASSES, model_outputs, with_seeds

MODELS = ("clip", "aclip", "siglip")


def test_models_without_outputs_are_left_out_with_the_command_to_train_them(two_models):
    selection = select_runs(CLASSES, two_models, MODELS)
    assert selection.names == ["clip", "siglip"]  # in MODELS order, not dict order
    assert list(selection.left_out) == ["aclip"]
    assert "aclip.run_info" in selection.left_out["aclip"] and "kedro run --pipeline=train_aclip" in selection.left_out["aclip"]


def test_a_model_with_only_some_outputs_is_left_out_as_incomplete(two_models):
    outputs = {**two_models, "siglip.run_info": None}
    selection = select_runs(CLASSES, outputs, MODELS)
    assert selection.names == ["clip"]
    assert selection.left_out["siglip"].startswith("incomplete: siglip.run_info was never saved")


def test_no_model_at_all_is_an_error_that_says_what_to_run():
    with pytest.raises(ReportingInputError, match=r"no model has training outputs yet .*kedro run --pipeline=train_clip"):
        select_runs(CLASSES, {}, MODELS)


def test_predictions_for_other_class_names_are_refused_naming_the_classes(two_models):
    renamed = two_models["clip.test_predictions"].rename(columns={"prob_eating": "prob_sleeping"})
    with pytest.raises(ReportingInputError) as error:
        select_runs(CLASSES, {**two_models, "clip.test_predictions": renamed}, MODELS)
    message = str(error.value)
    assert message.startswith("clip.test_predictions has probability columns for ['sleeping']")
    assert "no probability column for ['eating']" in message and "kedro run --pipeline=train_clip" in message


def test_predictions_with_class_ids_out_of_range_are_refused(two_models):
    broken = two_models["clip.test_predictions"].copy()
    broken.loc[0, "pred_id"] = len(CLASSES)
    with pytest.raises(ReportingInputError, match=r"clip.test_predictions has pred_id values outside the class ids 0..5"):
        select_runs(CLASSES, {**two_models, "clip.test_predictions": broken}, MODELS)


def test_history_without_the_curve_columns_is_refused_naming_them(two_models):
    broken = two_models["siglip.history"].drop(columns=["val_loss", "train_accuracy"])
    with pytest.raises(ReportingInputError, match=r"siglip.history lacks the columns \['train_accuracy', 'val_loss'\]"):
        select_runs(CLASSES, {**two_models, "siglip.history": broken}, MODELS)


def test_run_info_missing_keys_or_of_another_model_is_refused(two_models):
    info = dict(two_models["clip.run_info"])
    del info["zero_shot"]
    with pytest.raises(ReportingInputError, match=r"clip.run_info lacks the keys \['zero_shot'\]"):
        select_runs(CLASSES, {**two_models, "clip.run_info": info}, MODELS)
    with pytest.raises(ReportingInputError, match=r"clip.run_info describes model 'siglip'"):
        select_runs(CLASSES, {**two_models, "clip.run_info": {**two_models["clip.run_info"], "model": "siglip"}}, MODELS)


def test_run_info_and_predictions_of_different_runs_are_refused(two_models, labels):
    other_run = model_outputs("clip", labels, labels, seed=5)  # 100 % correct, unlike the fixture's clip
    outputs = {**two_models, "clip.test_predictions": other_run["clip.test_predictions"]}
    with pytest.raises(ReportingInputError, match=r"records test accuracy 0.9167 but clip.test_predictions scores 1.0000, so they come from different training runs"):
        select_runs(CLASSES, outputs, MODELS)


def test_bad_class_names_are_refused():
    with pytest.raises(ReportingInputError, match="class_names must be a non-empty list"):
        select_runs([], {}, MODELS)
    with pytest.raises(ReportingInputError, match="lists some classes twice"):
        select_runs(["a", "a"], {}, MODELS)


def test_probabilities_follow_class_names_order_whatever_the_column_order(two_models):
    shuffled = two_models["clip.test_predictions"]
    shuffled = shuffled[list(reversed(shuffled.columns))]
    run = select_runs(CLASSES, {**two_models, "clip.test_predictions": shuffled}, MODELS).runs[0]
    probabilities = run.probabilities(CLASSES)
    assert np.array_equal(probabilities.argmax(axis=1), run.predicted())


def test_seed_predictions_of_other_images_or_without_the_deployed_seed_are_refused(two_models, labels):
    seeded = with_seeds(two_models, "clip", labels)
    assert select_runs(CLASSES, seeded, ["clip", "siglip"]).runs[0].seeds() == [42, 100]
    frame = seeded["clip.seed_predictions"]
    other_images = frame.assign(image_id=[f"x_{i}" if s == 100 else i for i, s in zip(frame["image_id"], frame["seed"])])
    with pytest.raises(ReportingInputError, match=r"clip.seed_predictions holds other test images for seed 100 than clip.test_predictions"):
        select_runs(CLASSES, {**seeded, "clip.seed_predictions": other_images}, ["clip"])
    changed = frame.copy()
    changed.loc[changed["seed"] == 42, "pred_id"] = (changed.loc[changed["seed"] == 42, "pred_id"] + 1) % len(CLASSES)
    with pytest.raises(ReportingInputError, match=r"clip.seed_predictions has no rows of seed 42 matching clip.test_predictions"):
        select_runs(CLASSES, {**seeded, "clip.seed_predictions": changed}, ["clip"])
    with pytest.raises(ReportingInputError, match=r"clip.seed_predictions lacks the columns \['seed'\]"):
        select_runs(CLASSES, {**seeded, "clip.seed_predictions": frame.drop(columns="seed")}, ["clip"])
