"""FLYP's classifier: one prompt of its class per image, drawn from the loop's generator; both towers learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.backbones import load_backbone
from har_kedro.models.factory import build_classifier
from har_kedro.models.flyp import FlypClassifier
from har_kedro.models.losses import paired_contrastive_loss
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")
FLAT = [(name, text) for name in HAR_CLASSES for text in PROMPTS[name]]  # the rows of prompt_features()
NO_AUGMENT = {"random_resized_crop": False, "horizontal_flip": False}


@pytest.fixture(scope="module")
def flyp(tiny_backbones) -> FlypClassifier:
    config = TrainConfig.from_params({"method": "flyp", "loss": "contrastive", "device": "cpu", "augment": NO_AUGMENT})
    model = build_classifier(load_backbone(tiny_backbones["clip"]), HAR_CLASSES, PROMPTS, config, CPU, 32)
    assert isinstance(model, FlypClassifier)
    return model


def _labels(n: int = 300) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, len(HAR_CLASSES), n))


def test_each_image_gets_a_prompt_of_its_own_class_uniformly(flyp):
    labels = torch.arange(3000) % len(HAR_CLASSES)  # 200 images per class
    rows = flyp.sample_prompts(labels, torch.Generator().manual_seed(0))
    assert [FLAT[r][0] for r in rows.tolist()] == [HAR_CLASSES[c] for c in labels.tolist()]
    counts = np.bincount(rows.numpy(), minlength=len(FLAT))
    assert counts.min() > 0.5 * 200 / 6 and counts.max() < 1.5 * 200 / 6  # every prompt of a class, about equally often


def test_the_prompts_are_deterministic_for_a_seed_and_change_from_step_to_step(flyp):
    labels = _labels()
    first, second = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    step_1 = flyp.sample_prompts(labels, first)
    assert torch.equal(step_1, flyp.sample_prompts(labels, second))  # same seed, same prompts
    step_2 = flyp.sample_prompts(labels, first)
    assert not torch.equal(step_1, step_2)  # the next step draws again
    assert not torch.equal(step_1, flyp.sample_prompts(labels, torch.Generator().manual_seed(8)))


def test_the_training_loss_is_images_against_their_sampled_prompts_and_reaches_both_towers(flyp):
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    labels = torch.tensor([0, 3, 0, 5, 3, 0])
    flyp.train()
    flyp.zero_grad(set_to_none=True)
    loss, embeddings, (classes, scale, bias) = flyp.training_loss(images, labels, torch.Generator().manual_seed(4))
    # The same computation by hand: the first draws of the generator are the prompts (no augmentation).
    with torch.no_grad():
        rows = flyp.sample_prompts(labels, torch.Generator().manual_seed(4))
        texts = flyp.prompt_features()[rows]
        expected = paired_contrastive_loss(flyp.embed(images), texts, labels, flyp.head.logit_scale.exp())
    torch.testing.assert_close(loss.detach(), expected)
    assert classes.shape == (len(HAR_CLASSES), embeddings.shape[1]) and bias is None
    loss.backward()
    grads = {n: p.grad for n, p in flyp.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("model.vision_model.") for n in grads) and any(n.startswith("model.text_model.") for n in grads)
    assert {"model.visual_projection.weight", "model.text_projection.weight", "head.logit_scale"} <= set(grads)
    assert flyp.head.weight.grad is None  # the class embeddings come from the text tower
    flyp.zero_grad(set_to_none=True)


def test_flyp_evaluates_through_its_current_text_tower(flyp):
    """Eval logits use the zero-shot head of the text tower as it is now, not the head built at the start."""
    flyp.eval()
    with torch.no_grad():
        before = flyp.class_side()[0]
        torch.testing.assert_close(before, flyp.head.weight, atol=1e-5, rtol=0)  # untrained: the zero-shot head
        layer = flyp.model.text_model.encoder.layers[0].mlp.fc1
        saved = layer.weight.clone()
        layer.weight.add_(0.5 * torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(0)))
        after = flyp.class_side()[0]
        layer.weight.copy_(saved)
    assert not torch.allclose(after, before, atol=1e-3)
