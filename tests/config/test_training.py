"""TrainConfig.from_params: the nested blocks become typed settings, and errors name the key."""

from __future__ import annotations

import pytest

from har_kedro.config import (
    AclipSettings,
    AugmentConfig,
    DistributedSettings,
    LoraSettings,
    TrainConfig,
    TrainingConfigError,
)
from har_kedro.config.training import LOSS_NAMES
from har_kedro.config.wise_ft import WiseFtSettings
from har_kedro.models.losses import LOSSES


def test_nested_blocks_are_typed_all_the_way_down():
    config = TrainConfig.from_params(
        {"method": "lora", "loss": "contrastive", "augment": {"scale": [0.5, 1.0]}, "lora": {"rank": 4, "targets": ["q_proj"]},
         "aclip": {"keep_ratio": 0.25}, "distributed": {"num_processes": 1}},
    )
    assert config.augment == AugmentConfig(scale=(0.5, 1.0))
    assert config.lora == LoraSettings(rank=4, targets=("q_proj",))
    assert isinstance(config.aclip, AclipSettings) and config.aclip.keep_ratio == 0.25
    assert config.distributed == DistributedSettings()
    assert TrainConfig.from_params({}).aclip is None and TrainConfig.from_params({}).lora == LoraSettings()
    assert TrainConfig.from_params({}).wise_ft is None
    wise_ft = TrainConfig.from_params({"wise_ft": {"alphas": [1, 0, 0.5]}}).wise_ft
    assert wise_ft == WiseFtSettings(alphas=(0.0, 0.5, 1.0), apply=False)  # sorted, as floats
    assert TrainConfig.from_params({"wise_ft": {}}).wise_ft.alphas == tuple(i / 10 for i in range(11))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"lora": {"rank": 0}}, "clip.training.lora needs rank >= 1"),
        ({"lora": {"ranks": 4}}, "clip.training.lora has unknown keys ['ranks']"),
        ({"augment": {"scale": [0.9, 0.1]}}, "clip.training.augment.scale must satisfy"),
        ({"aclip": {"keep_ratio": 2}, "loss": "contrastive"}, "clip.training.aclip.keep_ratio"),
        ({"distributed": {"num_processes": 0}}, "clip.training.distributed.num_processes"),
        ({"epoch": 3}, "clip.training has unknown keys ['epoch']"),
        ({"loss": "hinge"}, "clip.training.loss is 'hinge'"),
        ("full", "clip.training must be a mapping"),
        ({"wise_ft": {"alphas": [0, 1.5]}}, "clip.training.wise_ft.alphas is [0, 1.5]; give a non-empty list of numbers in [0, 1]"),
        ({"wise_ft": {"alphas": []}}, "clip.training.wise_ft.alphas is []"),
        ({"wise_ft": {"alphas": [0.5, 0.5]}}, "clip.training.wise_ft.alphas lists a value twice"),
        ({"wise_ft": {"apply": "yes"}}, "clip.training.wise_ft.apply must be true or false, got 'yes'"),
        ({"wise_ft": {"alpha": 0.5}}, "clip.training.wise_ft has unknown keys ['alpha']"),
    ],
)
def test_errors_name_the_key(params, named):
    with pytest.raises(TrainingConfigError) as error:
        TrainConfig.from_params(params, where="clip.training")
    assert named in str(error.value)


def test_the_loss_names_are_the_losses_models_implement():
    assert set(LOSS_NAMES) == set(LOSSES)


# --------------------------------------------------------------------------- method: flyp


def test_flyp_trains_the_text_tower_whatever_train_text_says():
    """The shared defaults say train_text: false; flyp implies it, so both values are accepted."""
    for train_text in (False, True):
        config = TrainConfig.from_params({"method": "flyp", "loss": "contrastive", "train_text": train_text})
        assert config.trains_text
    assert not TrainConfig.from_params({"method": "full"}).trains_text
    assert TrainConfig.from_params({"method": "flyp", "loss": "contrastive"}).logit_scale_init is None  # the checkpoint's own


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "flyp"}, "clip.training.loss is 'cross_entropy' but flyp fine-tunes with CLIP's contrastive (pre-training) loss: set loss: contrastive."),
        ({"method": "flyp", "loss": "sigmoid"}, "clip.training.loss is 'sigmoid' but flyp"),
        ({"method": "flyp", "loss": "contrastive", "aclip": {}}, "clip.training.aclip is set but method flyp has its own objective"),
        ({"method": "flyp", "loss": "contrastive", "train_projection": False}, "clip.training.train_projection is false but flyp trains both towers"),
        ({"method": "lora", "train_text": True}, "clip.training.train_text needs method full (got lora)"),
    ],
)
def test_flyp_settings_that_do_not_fit_are_refused_with_the_key_named(params, message):
    with pytest.raises(TrainingConfigError) as error:
        TrainConfig.from_params(params, where="clip.training")
    assert message in str(error.value)
