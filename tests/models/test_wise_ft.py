"""WiSE-FT's weight mix: exact at both ends, linear in between, and the LoRA adapter's delta scaled by α."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from har_kedro.config.augment import AugmentConfig
from har_kedro.config.lora import LoraSettings
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.backbones import load_backbone
from har_kedro.models.classifier import ClassHead, ImageClassifier, zero_shot_embeddings
from har_kedro.models.lora import apply_lora
from har_kedro.models.predict import predict_logits
from har_kedro.models.wise_ft import mix, snapshot, wise_ft_curve
from tests.models.conftest import PROMPTS

IMAGES = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)


def _classifier(source: str, lora: bool = False) -> ImageClassifier:
    torch.manual_seed(0)
    backbone = load_backbone(source)
    if lora:
        apply_lora(backbone.model, LoraSettings(rank=2, alpha=4.0))
    head = ClassHead(zero_shot_embeddings(backbone, HAR_CLASSES, PROMPTS), 2.0)
    return ImageClassifier(backbone, head, AugmentConfig())


def _logits(model: ImageClassifier) -> torch.Tensor:
    return predict_logits(model, IMAGES, 8, torch.device("cpu"), "off")


@torch.no_grad()
def _train_by_hand(model: ImageClassifier) -> None:
    """Stands in for training: every parameter moves (LoRA's B leaves zero)."""
    generator = torch.Generator().manual_seed(1)
    for parameter in model.parameters():
        parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_alpha_0_gives_the_zero_shot_logits_and_alpha_1_the_fine_tuned_ones_exactly(tiny_backbones, lora):
    model = _classifier(tiny_backbones["clip"], lora)
    zero_shot_weights, zero_shot_logits = snapshot(model), _logits(model)
    _train_by_hand(model)
    fine_tuned_weights, fine_tuned_logits = snapshot(model), _logits(model)
    assert not torch.equal(zero_shot_logits, fine_tuned_logits)
    mix(model, zero_shot_weights, fine_tuned_weights, 0.0)
    assert torch.equal(_logits(model), zero_shot_logits)
    mix(model, zero_shot_weights, fine_tuned_weights, 1.0)
    assert torch.equal(_logits(model), fine_tuned_logits)


def test_between_the_ends_each_weight_is_the_linear_mix(tiny_backbones):
    model = _classifier(tiny_backbones["clip"])
    start = snapshot(model)
    _train_by_hand(model)
    end = snapshot(model)
    mix(model, start, end, 0.3)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.detach(), 0.7 * start[name] + 0.3 * end[name])


def test_lora_keeps_the_fine_tuned_a_and_scales_the_adapter_delta_by_alpha(tiny_backbones):
    model = _classifier(tiny_backbones["clip"], lora=True)
    start = snapshot(model)
    _train_by_hand(model)
    end = snapshot(model)
    mix(model, start, end, 0.25)
    params = dict(model.named_parameters())
    b_names = [name for name in params if "lora_B" in name]
    assert b_names
    for b_name in b_names:
        a_name = b_name.replace("lora_B", "lora_A")
        assert torch.equal(params[a_name].detach(), end[a_name])  # A: the fine-tuned matrix, not a mix
        delta = params[b_name].detach() @ params[a_name].detach()
        torch.testing.assert_close(delta, 0.25 * (end[b_name] @ end[a_name]))  # B A = α B₁ A₁ (B₀ = 0)


def test_the_curve_chooses_the_best_val_alpha_the_largest_on_a_tie_and_applies_it_only_when_told(tiny_backbones):
    model = _classifier(tiny_backbones["clip"])
    start = snapshot(model)
    _train_by_hand(model)
    end = snapshot(model)
    scores = {"val": iter([0.2, 0.6, 0.6, 0.4]), "test": iter([0.1, 0.5, 0.7, 0.3])}
    curve = wise_ft_curve(model, start, [0.0, 0.3, 0.6, 1.0], lambda split: next(scores[split]), apply=False)
    assert curve.chosen_alpha == 0.6 and curve.val_accuracy == [0.2, 0.6, 0.6, 0.4] and curve.test_accuracy == [0.1, 0.5, 0.7, 0.3]
    assert all(torch.equal(p.detach(), end[n]) for n, p in model.named_parameters())  # not applied: the fine-tuned weights
    scores = {"val": iter([0.2, 0.6, 0.6, 0.4]), "test": iter([0.1, 0.5, 0.7, 0.3])}
    wise_ft_curve(model, start, [0.0, 0.3, 0.6, 1.0], lambda split: next(scores[split]), apply=True)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.detach(), torch.lerp(start[name], end[name], 0.6))
