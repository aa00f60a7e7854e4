"""The unfreeze block and layer_decay: typed settings, the schedule by hand, and errors that name the key."""

from __future__ import annotations

import pytest

from har_kedro.config import TrainConfig, TrainingConfigError, UnfreezeConfigError, UnfreezeSettings


def test_unfreeze_is_off_by_default_and_typed_when_set():
    assert TrainConfig.from_params({}).unfreeze is None and TrainConfig.from_params({}).layer_decay is None
    assert TrainConfig.from_params({"unfreeze": None, "layer_decay": None}).unfreeze is None
    assert TrainConfig.from_params({"unfreeze": {}}).unfreeze == UnfreezeSettings()
    config = TrainConfig.from_params({"method": "lp_ft", "unfreeze": {"initial_blocks": 4, "blocks_per_step": 2}, "layer_decay": 0.75})
    assert config.unfreeze == UnfreezeSettings(initial_blocks=4, blocks_per_step=2, every_epochs=1)
    assert config.layer_decay == 0.75


def test_the_schedule_by_hand():
    # 2 blocks, one more each epoch: top block, both blocks, then the embeddings too.
    one_by_one = UnfreezeSettings(initial_blocks=1, blocks_per_step=1, every_epochs=1)
    assert [one_by_one.unfrozen_depth(epoch, 2) for epoch in range(1, 6)] == [1, 2, 3, 3, 3]
    # ViT-B (12 blocks): the top 4, then 2 more every 2 epochs; the embeddings the step after the last block.
    vit_b = UnfreezeSettings(initial_blocks=4, blocks_per_step=2, every_epochs=2)
    assert [vit_b.unfrozen_depth(epoch, 12) for epoch in range(1, 14)] == [4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 13, 13, 13]
    # A step that overshoots the block count still leaves the embeddings for the next step.
    assert [UnfreezeSettings(3, 5, 1).unfrozen_depth(epoch, 12) for epoch in range(1, 5)] == [3, 8, 12, 13]
    assert [UnfreezeSettings(20, 1, 3).unfrozen_depth(epoch, 12) for epoch in range(1, 6)] == [12, 12, 12, 13, 13]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"layer_decay": 1.5}, "clip.training.layer_decay must be in (0, 1], got 1.5."),
        ({"layer_decay": 0}, "clip.training.layer_decay must be in (0, 1], got 0."),
        ({"layer_decay": True}, "clip.training.layer_decay must be in (0, 1], got True."),
        ({"layer_decay": 0.75, "method": "lora"}, "clip.training.layer_decay needs method full or lp_ft, which train the vision blocks (got lora)"),
        ({"unfreeze": {}, "method": "linear_probe"}, "clip.training.unfreeze needs method full or lp_ft, which train the vision blocks (got linear_probe)"),
        ({"unfreeze": {"initial_blocks": 0}}, "clip.training.unfreeze.initial_blocks must be a positive integer, got 0."),
        ({"unfreeze": {"every_epochs": 1.5}}, "clip.training.unfreeze.every_epochs must be a positive integer, got 1.5."),
        ({"unfreeze": {"blocks": 2}}, "clip.training.unfreeze has unknown keys ['blocks']"),
        ({"unfreeze": 4}, "clip.training.unfreeze must be a mapping"),
        ({"unfreeze": {}, "aclip": {}, "loss": "contrastive"}, "clip.training.unfreeze does not combine with aclip"),
        (
            {"unfreeze": {}, "device": "cpu", "batch_size": 8, "effective_batch_size": 8, "distributed": {"num_processes": 2}},
            "clip.training.unfreeze does not combine with distributed.num_processes 2",
        ),
    ],
)
def test_errors_name_the_key_and_the_fix(params, message):
    with pytest.raises(TrainingConfigError) as error:
        TrainConfig.from_params(params, where="clip.training")
    assert message in str(error.value)


def test_unfreeze_errors_have_their_own_type():
    with pytest.raises(UnfreezeConfigError):
        UnfreezeSettings.from_params({"blocks_per_step": -1})
