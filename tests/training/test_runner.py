"""run_training's own choices: the zero-shot baseline it records before training, or skips when told."""

from __future__ import annotations

import pytest

from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
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
    assert seen == [21, 15]  # val, then test
    assert set(outputs.run_info["zero_shot"]) == {"val_accuracy", "test_accuracy"}


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
    assert seen == [21, 15]
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
