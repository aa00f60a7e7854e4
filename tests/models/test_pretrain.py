"""The image-caption pretraining module: caption draws, the paired losses, train targets, the saved temperature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from har_kedro.config.augment import AugmentConfig
from har_kedro.models.backbones import load_backbone
from har_kedro.models.losses import paired_sigmoid_loss, sigmoid_loss
from har_kedro.models.pretrain import CaptionPretrainer, _first_rows
from har_kedro.models.tiny import build_tiny_backbone

CAPTIONS = ["a red square.", "a blue square.", "a green circle.", "a red circle.", "a photo of a square."]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tiny") / "clip"
    return build_tiny_backbone("clip", out, CAPTIONS, image_size=32, patch_size=8, hidden_size=32, num_layers=1, num_heads=2, projection_dim=32)


def _pretrainer(tiny_dir, loss: str = "contrastive") -> CaptionPretrainer:
    # Image 0 has captions 0 and 4, image 1 caption 1, image 2 caption 2, image 3 caption 3.
    start, count, ids = np.array([0, 2, 3, 4]), np.array([2, 1, 1, 1]), np.array([0, 4, 1, 2, 3])
    return CaptionPretrainer(load_backbone(str(tiny_dir)), CAPTIONS, (start, count, ids), [1, 3], loss, AugmentConfig(), image_size=32)


def test_each_image_draws_only_its_own_captions_and_both_of_a_pair(tiny_dir) -> None:
    model = _pretrainer(tiny_dir)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([model.sample_captions(torch.tensor([0, 1, 2, 3]), generator) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {0, 4}
    assert draws[:, 1].eq(1).all() and draws[:, 2].eq(2).all() and draws[:, 3].eq(3).all()
    again = torch.stack([model.sample_captions(torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0)) for _ in range(1)])
    assert torch.equal(again[0], draws[0])  # the generator decides: a seed gives the same captions


def test_first_rows_map_every_row_to_the_first_row_of_its_caption() -> None:
    first, inverse = _first_rows(torch.tensor([5, 2, 5, 7, 2]))
    assert first.tolist() == [1, 0, 3]  # distinct ids 2, 5, 7 first appear at rows 1, 0, 3
    assert inverse.tolist() == [1, 0, 1, 2, 0]


def test_training_loss_scores_images_against_the_batch_captions(tiny_dir) -> None:
    model = _pretrainer(tiny_dir).train()
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    loss, embeddings, (classes, scale, bias), targets = model.training_loss(images, torch.tensor([1, 2, 3, 1]), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert embeddings.shape == (4, 32) and classes.shape == (3, 32)  # three distinct captions: 1, 2, 3
    assert targets.tolist() == [0, 1, 2, 0]  # images 0 and 3 carry the same caption: one class, the same target
    loss.backward()
    text_grads = [p.grad for n, p in model.named_parameters() if n.startswith("model.text_model.") and p.grad is not None]
    assert text_grads and any(g.abs().sum() > 0 for g in text_grads)  # both towers learn
    assert model.head.logit_scale.grad is not None


def test_identical_captions_are_positives_in_the_sigmoid_loss() -> None:
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    ids = torch.tensor([0, 1, 0, 2])
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    loss = paired_sigmoid_loss(img, txt, ids, scale, bias)
    logits = scale * img @ txt.T + bias
    z = -torch.ones(4, 4)
    z.fill_diagonal_(1.0)
    z[0, 2] = z[2, 0] = 1.0  # rows 0 and 2 share caption 0
    assert torch.allclose(loss, -torch.nn.functional.logsigmoid(z * logits).sum() / 4)
    classes = txt[[0, 1, 3]]  # with one text per class the paired form is the class form
    assert torch.allclose(sigmoid_loss(img, classes, torch.tensor([0, 1, 0, 2]), scale, bias), paired_sigmoid_loss(img, classes[[0, 1, 0, 2]], ids, scale, bias))


def test_val_captions_are_the_classes_of_evaluation(tiny_dir) -> None:
    model = _pretrainer(tiny_dir).eval()
    classes, _, _ = model.class_side()
    assert classes.shape == (2, 32)  # val captions 1 and 3
    with torch.no_grad():
        expected = model.caption_features(torch.tensor([1, 3]))
    assert torch.allclose(classes, expected, atol=1e-5)


def test_the_saved_backbone_carries_the_learned_temperature_and_bias(tiny_dir, tmp_path) -> None:
    model = _pretrainer(tiny_dir)
    with torch.no_grad():
        model.head.logit_scale.fill_(3.0)
    backbone = model.pretrained_backbone()
    assert float(backbone.model.logit_scale.detach()) == pytest.approx(3.0)


def test_unknown_pretraining_loss_is_refused(tiny_dir) -> None:
    with pytest.raises(ValueError, match="pretraining loss is 'cross_entropy'"):
        _pretrainer(tiny_dir, loss="cross_entropy")
