"""Staged unfreezing and layer-wise lr decay in the loop: what each epoch trains, snapshots, checkpoints, resume."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

import har_kedro.training.loop as loop
from har_kedro.config.unfreeze import UnfreezeSettings
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.training.checkpoint import latest_checkpoint, load_checkpoint
from har_kedro.training.fingerprint import RESUME_FREE, ResumeMismatchError, run_fingerprint
from har_kedro.training.loop import fit, make_optimisation
from har_kedro.training.runner import run_training
from tests.helpers import separable_split
from tests.models.conftest import PROMPTS
from tests.training.test_loop import CPU, _config, _model

VISION = "model.vision_model."
ONE_BY_ONE = {"initial_blocks": 1, "blocks_per_step": 1, "every_epochs": 1}
SPLITS = (separable_split(16, 1), separable_split(8, 2))  # train, val


def _schedule_config(**overrides):
    """Full fine-tune of a 2-block CLIP, one block more each epoch: top block, both blocks, then the embeddings.
    Two optimizer steps an epoch (16 images, 8 a step), no warmup (its first step has lr 0)."""
    base = dict(epochs=3, unfreeze=ONE_BY_ONE, batch_size=8, effective_batch_size=8, warmup_ratio=0.0, augment={"random_resized_crop": False})
    return _config(**(base | overrides))


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _schedule_sets(model: torch.nn.Module) -> tuple[set[str], set[str], set[str]]:
    """The method's trainable set, the bottom block's parameters, and the embeddings' (with pre_layrnorm)."""
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    layer0 = {n for n in trained if n.startswith(f"{VISION}encoder.layers.0.")}
    bottom = {n for n in trained if n.startswith((f"{VISION}embeddings.", f"{VISION}pre_layrnorm."))}
    return trained, layer0, bottom


def _fake_evaluate(accuracies: list[float]):
    """Stands in for the val pass: the given accuracies, epoch by epoch (the runs below test weights, not metrics)."""
    values = iter(accuracies)
    return lambda *args, **kwargs: {"loss": 1.0, "accuracy": next(values)}


@pytest.fixture(scope="module")
def staged(tiny_backbones, tmp_path_factory) -> dict:
    """One 3-epoch run with the schedule, its weights snapshotted before and after each epoch. Epoch 1 is the
    best (val accuracy 0.9, then 0.5, 0.4) while epochs 2 and 3 go on training layer 0 and the embeddings."""
    config = _schedule_config(layer_decay=0.8)  # weight_decay 0.05: a parameter AdamW stepped without a gradient would still move
    model = _model(tiny_backbones["clip"], config)
    trained, layer0, bottom = _schedule_sets(model)
    run = {"config": config, "trained": trained, "layer0": layer0, "bottom": bottom, "snapshots": [_snapshot(model)], "flags": [], "saved": []}
    checkpoints = tmp_path_factory.mktemp("staged")

    def after_epoch(epoch: int, row: dict) -> None:
        run["snapshots"].append(_snapshot(model))
        run["flags"].append({n for n, p in model.named_parameters() if p.requires_grad})
        run["saved"].append(load_checkpoint(latest_checkpoint(checkpoints / "train")))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "evaluate", _fake_evaluate([0.9, 0.5, 0.4]))
        run["result"] = fit(model, *SPLITS, config, CPU, seed=7, checkpoint_dir=checkpoints, on_epoch_end=after_epoch)
    run["final"] = _snapshot(model)
    run["final_flags"] = {n for n, p in model.named_parameters() if p.requires_grad}
    return run


def test_staged_unfreezing_trains_exactly_the_parameters_its_schedule_says(staged):
    trained, layer0, bottom, snapshots = staged["trained"], staged["layer0"], staged["bottom"], staged["snapshots"]
    expected = {1: trained - layer0 - bottom, 2: trained - bottom, 3: trained}
    # by hand: 3 embeddings + pre_layrnorm (2) + 2 blocks of 16 + post_layernorm (2) + projection (1) + head (weight, scale)
    assert (len(trained), len(layer0), len(bottom)) == (42, 16, 5)
    assert [len(expected[e]) for e in (1, 2, 3)] == [21, 37, 42]
    for epoch in (1, 2, 3):
        before, after = snapshots[epoch - 1], snapshots[epoch]
        changed = {n for n in before if not torch.equal(before[n], after[n])}
        assert changed == expected[epoch], epoch  # frozen blocks bit-identical, every unfrozen tensor moved
        assert staged["flags"][epoch - 1] == expected[epoch], epoch  # frozen ones took no part in autograd either
    numel = {n: t.numel() for n, t in snapshots[0].items()}
    assert staged["result"].extra["unfrozen_parameters"] == [sum(numel[n] for n in expected[e]) for e in (1, 2, 3)]
    assert staged["final_flags"] == trained  # the method's set again after fit


def test_an_early_best_epoch_restores_the_blocks_unfrozen_after_it(staged):
    """The best-epoch snapshot and every checkpoint cover the method's whole trainable set, not only the unfrozen part."""
    trained, initial, after, final = staged["trained"], staged["snapshots"][0], staged["snapshots"], staged["final"]
    assert staged["result"].best_epoch == 1 and set(staged["result"].best_state) == trained
    for name in trained:
        assert torch.equal(final[name], after[1][name]), name
    for name in staged["layer0"] | staged["bottom"]:  # trained later, but the best epoch had them at their initial values
        assert not torch.equal(after[3][name], initial[name]) and torch.equal(final[name], initial[name]), name
    for saved in staged["saved"]:
        assert set(saved.model) == set(saved.best_model) == trained, saved.epoch


def test_a_resumed_run_freezes_what_an_uninterrupted_run_did_and_refuses_another_schedule(staged, tiny_backbones, tmp_path, monkeypatch):
    config, reference = staged["config"], staged["result"]
    initial = _model(tiny_backbones["clip"], config)

    class Killed(Exception):
        pass

    def kill_after_one(epoch: int, row: dict) -> None:
        raise Killed

    monkeypatch.setattr(loop, "evaluate", _fake_evaluate([0.9]))
    with pytest.raises(Killed):
        fit(copy.deepcopy(initial), *SPLITS, config, CPU, seed=7, checkpoint_dir=tmp_path, on_epoch_end=kill_after_one)
    torch.manual_seed(123)
    np.random.seed(9)
    monkeypatch.setattr(loop, "evaluate", _fake_evaluate([0.5, 0.4]))
    resume = dataclasses.replace(config, resume=True)
    resumed = fit(copy.deepcopy(initial), *SPLITS, resume, CPU, seed=7, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 2  # epoch 2 unfreezes layer 0: resumed, it must do so as well
    for key in ("train_loss", "train_accuracy", "lr"):
        assert [h[key] for h in resumed.history] == [h[key] for h in reference.history], key
    assert resumed.extra == reference.extra and resumed.best_epoch == 1
    for name, value in reference.best_state.items():
        assert torch.equal(value, resumed.best_state[name]), name
    for change in ({"unfreeze": UnfreezeSettings(initial_blocks=2)}, {"unfreeze": None}, {"layer_decay": 0.5}):
        other = dataclasses.replace(resume, **change)
        with pytest.raises(ResumeMismatchError, match=next(iter(change))):
            fit(initial, *SPLITS, other, CPU, seed=7, checkpoint_dir=tmp_path)


def test_both_settings_are_part_of_the_resume_fingerprint(tiny_backbones):
    assert "unfreeze" not in RESUME_FREE and "layer_decay" not in RESUME_FREE
    settings = run_fingerprint(_schedule_config(layer_decay=0.75), 0, 32, "fine_tune")["settings"]
    assert settings["unfreeze"] == ONE_BY_ONE and settings["layer_decay"] == 0.75
    config = _config(layer_decay=0.5)
    names = [g["name"] for g in make_optimisation(_model(tiny_backbones["clip"], config), config, CPU, 32, 0).groups]
    assert {"vision_layer0", "vision_layer1", "vision_embeddings", "head_no_decay"} <= set(names)


def test_lp_ft_unfreezes_in_its_fine_tune_stage_and_records_the_counts(tiny_backbones, image_cache):
    config = _schedule_config(method="lp_ft", lp_epochs=1, epochs=2, zero_shot_baseline=False, calibrate=False, layer_decay=0.75)
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, tiny_backbones["clip"], config, 0)
    info = outputs.run_info
    assert list(outputs.history["stage"]) == ["linear_probe", "fine_tune", "fine_tune"]
    first, second = info["unfrozen_parameters"]  # one count per fine-tune epoch
    assert first < second < info["trainable_parameters"]  # the embeddings only join at epoch 3
    model = _model(tiny_backbones["clip"], _config(method="full"))
    _, _, bottom = _schedule_sets(model)
    params = dict(model.named_parameters())
    assert info["trainable_parameters"] - second == sum(params[n].numel() for n in bottom)
