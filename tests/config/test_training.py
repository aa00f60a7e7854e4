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
    ],
)
def test_errors_name_the_key(params, named):
    with pytest.raises(TrainingConfigError) as error:
        TrainConfig.from_params(params, where="clip.training")
    assert named in str(error.value)


def test_the_loss_names_are_the_losses_models_implement():
    assert set(LOSS_NAMES) == set(LOSSES)
