"""The resume fingerprint names the backbone, its weights and the image cache, and refuses a mismatch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from har_kedro.models.backbones import load_backbone
from har_kedro.training.fingerprint import (
    ResumeMismatchError,
    run_fingerprint,
    weights_fingerprint,
)
from har_kedro.training.loop import fit
from tests.helpers import separable_split
from tests.training.test_loop import CPU, _config, _model

INPUTS = {"backbone": "data/06_models/tiny_clip", "backbone_weights": "a" * 32, "image_cache": "cache-1"}


def test_weights_fingerprint_follows_every_weight(tiny_backbones):
    one, two = load_backbone(tiny_backbones["clip"]).model, load_backbone(tiny_backbones["clip"]).model
    assert weights_fingerprint(one) == weights_fingerprint(two)
    with torch.no_grad():
        next(two.parameters()).view(-1)[0] += 1e-3
    assert weights_fingerprint(one) != weights_fingerprint(two)
    assert weights_fingerprint(one) != weights_fingerprint(load_backbone(tiny_backbones["siglip"]).model)


def test_the_fingerprint_holds_the_inputs_and_ignores_speed_settings():
    config = _config()
    fingerprint = run_fingerprint(config, 0, 10, "fine_tune", inputs=INPUTS)
    assert {k: fingerprint[k] for k in INPUTS} == INPUTS
    faster = dataclasses.replace(config, compile=True, eval_batch_size=3, progress=True)
    assert run_fingerprint(faster, 0, 10, "fine_tune", inputs=INPUTS) == fingerprint


@pytest.mark.parametrize(
    "change",
    [{"image_cache": "cache-2"}, {"backbone_weights": "b" * 32}, {"backbone": "openai/clip-vit-base-patch16"}],
)
def test_resume_refuses_a_checkpoint_from_another_backbone_or_cache(tiny_backbones, tmp_path, change):
    train, val = separable_split(32, 1), separable_split(15, 2)
    config = _config(epochs=2)
    fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=1, checkpoint_dir=tmp_path, inputs=INPUTS)
    resume = dataclasses.replace(config, resume=True)
    key = next(iter(change))
    with pytest.raises(ResumeMismatchError, match=f"{key}: '{INPUTS[key]}' -> '{change[key]}'"):
        fit(_model(tiny_backbones["clip"], resume), train, val, resume, CPU, seed=1, checkpoint_dir=tmp_path, inputs=INPUTS | change)
    same = fit(_model(tiny_backbones["clip"], resume), train, val, resume, CPU, seed=1, checkpoint_dir=tmp_path, inputs=dict(INPUTS))
    assert same.resumed_from_epoch == 3
