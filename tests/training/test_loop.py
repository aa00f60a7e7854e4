"""The loop: resume equality, accumulation equivalence, linear probe on cached features, early stopping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.backbones import load_backbone
from har_kedro.models.classifier import FeatureClassifier
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.fingerprint import ResumeMismatchError
from har_kedro.training.loop import Split, fit, trainable_state
from har_kedro.training.runner import cache_features
from har_kedro.training.seeding import seed_everything
from tests.helpers import separable_split
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")


def _config(**overrides) -> TrainConfig:
    base = dict(
        method="full", epochs=3, batch_size=8, effective_batch_size=16, lr=1e-3, device="cpu", progress=False,
        early_stopping_patience=0, augment={"random_resized_crop": True, "horizontal_flip": True}, warmup_ratio=0.2,
    )
    base.update(overrides)
    return TrainConfig.from_params(base)


def _model(source: str, config: TrainConfig):
    seed_everything(0)
    return training_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, config, CPU, 32)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(tiny_backbones, tmp_path):
    train, val = separable_split(48, 1), separable_split(30, 2)
    config = _config(epochs=4, lora={"rank": 2, "alpha": 4, "dropout": 0.1}, method="lora")

    model = _model(tiny_backbones["clip"], config)
    reference = fit(model, train, val, config, CPU, seed=7, checkpoint_dir=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise Killed

    model = _model(tiny_backbones["clip"], config)
    with pytest.raises(Killed):
        fit(model, train, val, config, CPU, seed=7, checkpoint_dir=tmp_path / "b", on_epoch_end=kill_after_two)
    # A new process would rebuild everything from scratch and consume RNG differently before fitting.
    torch.manual_seed(12345)
    np.random.seed(999)
    model = _model(tiny_backbones["clip"], config)
    torch.rand(10)
    resumed = fit(model, train, val, dataclasses.replace(config, resume=True), CPU, seed=7, checkpoint_dir=tmp_path / "b")

    assert resumed.resumed_from_epoch == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert [h[key] for h in resumed.history] == [h[key] for h in reference.history], key
    assert resumed.best_epoch == reference.best_epoch
    for name, value in reference.best_state.items():
        assert torch.equal(value, resumed.best_state[name]), name


@pytest.mark.parametrize("change", [{"epochs": 3}, {"lr": 3e-4}, {"batch_size": 16, "effective_batch_size": 16}])
def test_resume_refuses_a_checkpoint_from_other_settings(tiny_backbones, tmp_path, change):
    train, val = separable_split(32, 1), separable_split(15, 2)
    config = _config(epochs=2)
    fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=1, checkpoint_dir=tmp_path)
    other = dataclasses.replace(config, resume=True, **change)
    with pytest.raises(ResumeMismatchError, match="resume: false") as error:
        fit(_model(tiny_backbones["clip"], other), train, val, other, CPU, seed=1, checkpoint_dir=tmp_path)
    assert next(iter(change)) in str(error.value)
    # A different seed is a different run too; progress and eval batch size are not.
    with pytest.raises(ResumeMismatchError, match="seed"):
        fit(_model(tiny_backbones["clip"], config), train, val, dataclasses.replace(config, resume=True), CPU, seed=2, checkpoint_dir=tmp_path)
    same = dataclasses.replace(config, resume=True, progress=False, eval_batch_size=7)
    assert fit(_model(tiny_backbones["clip"], same), train, val, same, CPU, seed=1, checkpoint_dir=tmp_path).resumed_from_epoch == 3


def test_resume_false_starts_over(tiny_backbones, tmp_path):
    train, val = separable_split(32, 1), separable_split(15, 2)
    config = _config(epochs=1)
    fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=1, checkpoint_dir=tmp_path)
    again = fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=1, checkpoint_dir=tmp_path)
    assert again.resumed_from_epoch is None and len(again.history) == 1


def test_gradient_accumulation_matches_one_large_batch(tiny_backbones):
    train, val = separable_split(64, 3), separable_split(15, 4)
    common = dict(epochs=2, augment={"random_resized_crop": False, "horizontal_flip": False}, grad_clip=None)
    small = _config(batch_size=8, effective_batch_size=32, **common)
    large = _config(batch_size=32, effective_batch_size=32, **common)
    a = fit(_model(tiny_backbones["clip"], small), train, val, small, CPU, seed=5)
    b = fit(_model(tiny_backbones["clip"], large), train, val, large, CPU, seed=5)
    for h_a, h_b in zip(a.history, b.history, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert h_a[key] == pytest.approx(h_b[key], rel=1e-4, abs=1e-5), key
    start = trainable_state(_model(tiny_backbones["clip"], small))
    for name, initial in start.items():
        if name.endswith("k_proj.bias"):
            # Softmax is invariant to the key bias: its true gradient is 0, so Adam turns float
            # noise (which differs between batchings) into full-size steps. Nothing to compare.
            continue
        assert torch.allclose(a.best_state[name], b.best_state[name], atol=1e-5, rtol=1e-3), name
        assert not torch.equal(a.best_state[name], initial), name


def test_same_seed_same_metrics_on_cpu(tiny_backbones):
    train, val = separable_split(32, 5), separable_split(15, 6)
    config = _config(epochs=2)
    runs = [fit(_model(tiny_backbones["siglip"], dataclasses.replace(config, loss="sigmoid")), train, val, dataclasses.replace(config, loss="sigmoid"), CPU, seed=3) for _ in range(2)]
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert [[h[k] for k in keys] for h in runs[0].history] == [[h[k] for k in keys] for h in runs[1].history]


def test_linear_probe_never_reruns_the_backbone(tiny_backbones):
    train, val = separable_split(40, 7), separable_split(15, 8)
    config = _config(method="linear_probe", epochs=5, lr=1e-2)
    model = _model(tiny_backbones["clip"], config)
    calls = []
    hook = model.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    features = Split(cache_features(model, train.inputs, 16, CPU), train.labels)
    val_features = Split(cache_features(model, val.inputs, 16, CPU), val.labels)
    cached_calls = len(calls)
    assert cached_calls == 3 + 1  # ceil(40/16) + ceil(15/16) backbone passes, once
    probe = FeatureClassifier(model.head)
    result = fit(probe, features, val_features, dataclasses.replace(config, lr=1e-2), CPU, seed=0)
    hook.remove()
    assert len(calls) == cached_calls  # five epochs, zero extra backbone passes
    assert len(result.history) == 5


def test_early_stopping_stops_and_keeps_the_best_epoch(tiny_backbones):
    train, val = separable_split(32, 9), separable_split(15, 10)
    config = _config(epochs=30, lr=1e-9, early_stopping_patience=2)  # lr so small nothing improves
    result = fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=0)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"method": "finetune"}, "method is 'finetune'"),
        ({"loss": "hinge"}, "loss is 'hinge'"),
        ({"batch_size": 24, "effective_batch_size": 64}, "multiple of batch_size"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"amp": "fp8"}, "amp is 'fp8'"),
        ({"lr_multipliers": {"decoder": 1.0}}, "unknown groups"),
        ({"method": "lora", "train_text": True}, "train_text needs method full"),
        ({"learning_rate": 1e-3}, "unknown keys \\['learning_rate'\\]"),
    ],
)
def test_bad_training_parameters_are_named(params, match):
    with pytest.raises(TrainingConfigError, match=match):
        TrainConfig.from_params(params, where="clip.training")


def test_no_trainable_parameters_is_an_error(tiny_backbones):
    config = _config(method="zero_shot")
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(_model(tiny_backbones["clip"], config), separable_split(16, 0), separable_split(15, 1), config, CPU, seed=0)


class _CountingProbe(FeatureClassifier):
    """A linear probe that counts the optimizer steps the loop takes (the hook A-CLIP's EMA update uses)."""

    def __init__(self, head) -> None:
        super().__init__(head)
        self.steps: list[tuple[int, int]] = []

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.steps.append((step, total_steps))


def _counting_probe(tiny_backbones) -> _CountingProbe:
    from har_kedro.models.methods import set_trainable

    model = _model(tiny_backbones["clip"], _config(method="linear_probe"))
    probe = _CountingProbe(model.head)
    set_trainable(probe, "linear_probe")
    return probe


def test_max_steps_bounds_the_optimizer_steps_of_a_stage(tiny_backbones):
    """3 steps a epoch (48 images, 16 per step) and 5 epochs, cut to 4 steps: 3 in epoch 1, 1 in epoch 2, then stop."""
    features = separable_split(48, 1)
    train = Split(np.random.default_rng(0).standard_normal((48, 32)).astype(np.float32), features.labels)
    val = Split(np.random.default_rng(1).standard_normal((15, 32)).astype(np.float32), np.arange(15))
    probe = _counting_probe(tiny_backbones)
    result = fit(probe, train, val, _config(method="linear_probe", epochs=5, max_steps=4), CPU, seed=0)
    assert probe.steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert [round(row["images_per_second"] * row["seconds"]) for row in result.history] == [48, 16]

    unbounded = _counting_probe(tiny_backbones)
    fit(unbounded, train, val, _config(method="linear_probe", epochs=2), CPU, seed=0)
    assert unbounded.steps == [(i, 6) for i in range(1, 7)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_steps_must_be_a_positive_integer(bad):
    with pytest.raises(TrainingConfigError, match="max_steps must be a positive integer or null"):
        TrainConfig.from_params({"max_steps": bad})
