"""run_training's own choices: the zero-shot baseline it records before training, or skips when told."""

from __future__ import annotations

import pytest
import torch

from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.factory import rebuild_classifier
from har_kedro.models.predict import predict_logits
from har_kedro.training.runner import run_training
from tests.models.conftest import PROMPTS


def _config(**overrides) -> TrainConfig:
    base = dict(method="linear_probe", epochs=1, batch_size=8, effective_batch_size=8, device="cpu", progress=False, early_stopping_patience=0)
    return TrainConfig.from_params(base | overrides)


def _evaluated_splits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the splits run_training evaluates through ``evaluate`` (the baseline's passes)."""
    import har_kedro.training.runner as runner

    seen: list[int] = []
    original = runner.evaluate

    def counting(model, split, *args, **kwargs):
        seen.append(len(split.labels))
        return original(model, split, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate", counting)
    return seen


def test_the_zero_shot_baseline_is_evaluated_on_val_and_test_by_default(tiny_backbones, image_cache, monkeypatch):
    seen = _evaluated_splits(monkeypatch)
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(), 0)
    assert seen == [21]  # val; the test split is predicted once, for its accuracy and the per-image predictions
    assert set(outputs.run_info["zero_shot"]) == {"val_accuracy", "test_accuracy"}
    evaluation = outputs.evaluation_predictions
    zero_shot_test = (evaluation["zero_shot_pred"] == evaluation["label_id"]).mean()
    assert set(evaluation["set"]) == {"test"} and outputs.run_info["zero_shot"]["test_accuracy"] == pytest.approx(zero_shot_test)
    assert (evaluation["fine_tuned_pred"].to_numpy() == outputs.test_predictions["pred_id"].to_numpy()).all()


def test_zero_shot_baseline_false_skips_both_passes_and_records_none(tiny_backbones, image_cache, monkeypatch):
    seen = _evaluated_splits(monkeypatch)
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(zero_shot_baseline=False), 0)
    assert seen == []
    assert outputs.run_info["zero_shot"] is None
    assert outputs.run_info["epochs_run"] == 1 and len(outputs.test_predictions) == 15
    # the temperature is fitted on the trained model's val predictions, and lowers (or keeps) their NLL
    calibration = outputs.run_info["calibration"]
    assert 0.05 <= calibration["temperature"] <= 20 and calibration["val_nll_scaled"] <= calibration["val_nll"] + 1e-9


def test_the_zero_shot_method_is_evaluated_whatever_the_baseline_setting(tiny_backbones, image_cache, monkeypatch):
    seen = _evaluated_splits(monkeypatch)
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(method="zero_shot", zero_shot_baseline=False), 0)
    assert seen == [21]  # val (test is predicted, not evaluated)
    assert outputs.run_info["zero_shot"]["test_accuracy"] == pytest.approx(outputs.run_info["test_accuracy"])
    assert outputs.run_info["best_val_accuracy"] == outputs.run_info["zero_shot"]["val_accuracy"]


@pytest.mark.parametrize("key", ["zero_shot_baseline", "calibrate"])
def test_a_switch_that_is_not_a_boolean_is_refused(key):
    with pytest.raises(TrainingConfigError, match=rf"clip.training.{key} must be true or false, got 'no'"):
        TrainConfig.from_params({key: "no"}, where="clip.training")


def test_calibrate_false_skips_the_val_pass_and_records_none(tiny_backbones, image_cache, monkeypatch):
    import har_kedro.training.runner as runner

    passes: list[int] = []
    original = runner.predict_logits
    monkeypatch.setattr(runner, "predict_logits", lambda model, images, *a, **k: passes.append(len(images)) or original(model, images, *a, **k))
    config = _config(zero_shot_baseline=False)
    assert run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config, 0).run_info["calibration"] is not None
    assert passes == [15, 21]  # test, then val for the temperature
    passes.clear()
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(zero_shot_baseline=False, calibrate=False), 0)
    assert outputs.run_info["calibration"] is None and passes == [15]


def test_lp_ft_counts_the_probes_feature_pass_in_its_stage_seconds(tiny_backbones, image_cache):
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(method="lp_ft", lp_epochs=1, zero_shot_baseline=False), 0)
    info, history = outputs.run_info, outputs.history
    epochs = history.groupby("stage")["seconds"].sum()
    assert set(info["stage_seconds"]) == {"linear_probe", "fine_tune"}
    assert info["stage_seconds"]["fine_tune"] == pytest.approx(epochs["fine_tune"])
    assert info["stage_seconds"]["linear_probe"] > epochs["linear_probe"]  # plus the one-off feature pass
    assert info["total_train_seconds"] == pytest.approx(sum(info["stage_seconds"].values()))


@pytest.mark.parametrize("method", ["full", "lora", "lp_ft"])
def test_wise_ft_curve_ends_at_the_zero_shot_and_the_fine_tuned_model_exactly(tiny_backbones, image_cache, method):
    """α = 0 scores exactly the zero-shot baseline and α = 1 exactly the fine-tuned model, on val and test."""
    config = _config(method=method, epochs=2, lp_epochs=1, lr=1e-2, wise_ft={"alphas": [0, 0.5, 1]})
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config, 0)
    info = outputs.run_info
    curve = info["wise_ft"]
    assert curve["alphas"] == [0.0, 0.5, 1.0] and curve["applied"] is False
    assert curve["val_accuracy"][0] == info["zero_shot"]["val_accuracy"] and curve["test_accuracy"][0] == info["zero_shot"]["test_accuracy"]
    assert curve["val_accuracy"][-1] == info["best_val_accuracy"]
    assert curve["test_accuracy"][-1] == pytest.approx(info["test_accuracy"], abs=1e-6)  # float32 share vs the frame's float64 mean
    best = max(curve["val_accuracy"])
    assert curve["chosen_alpha"] == max(a for a, v in zip(curve["alphas"], curve["val_accuracy"]) if v == best)


def test_wise_ft_apply_deploys_the_chosen_mix_and_predicts_the_test_split_with_it(tiny_backbones, image_cache):
    # α = 0 alone: the deployed model must be the zero-shot one, whatever training did
    config = _config(method="full", epochs=1, lr=1e-2, wise_ft={"alphas": [0], "apply": True})
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config, 0)
    info = outputs.run_info
    assert info["wise_ft"]["chosen_alpha"] == 0.0 and info["wise_ft"]["applied"] is True
    assert info["zero_shot"]["test_accuracy"] == info["wise_ft"]["test_accuracy"][0]
    assert info["test_accuracy"] == pytest.approx(info["zero_shot"]["test_accuracy"], abs=1e-6)
    # ... and the saved model (what inference and ONNX export rebuild) is the mix: it predicts what was recorded
    rebuilt = rebuild_classifier(outputs.trained_model)
    logits = predict_logits(rebuilt, image_cache.images("test"), 8, torch.device("cpu"), "off")
    assert logits.argmax(1).tolist() == outputs.test_predictions["pred_id"].tolist()


def test_wise_ft_off_records_none_and_costs_no_pass(tiny_backbones, image_cache, monkeypatch):
    seen = _evaluated_splits(monkeypatch)
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], _config(zero_shot_baseline=False), 0)
    assert outputs.run_info["wise_ft"] is None and seen == []  # no baseline, no curve: the runner evaluates nothing itself
