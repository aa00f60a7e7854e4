"""Tests for har_kedro.models.losses: hand-computed references, CLIP/SigLIP equivalence, API errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from har_kedro.models.losses import (
    LOSSES,
    class_logits,
    compute_loss,
    contrastive_loss,
    cross_entropy_loss,
    get_loss,
    paired_contrastive_loss,
    sigmoid_loss,
)

LABELS = [0, 1, 1, 2, 0, 3]  # repeated classes 0 and 1, as in a real 15-class batch
C, D = 4, 8


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "img": _unit(torch.randn(len(LABELS), D, generator=g, dtype=torch.float64)),
        "cls": _unit(torch.randn(C, D, generator=g, dtype=torch.float64)),
        "labels": torch.tensor(LABELS),
        "scale": torch.tensor(7.3, dtype=torch.float64),
        "bias": torch.tensor(-2.1, dtype=torch.float64),
    }


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(float(a[k]) * float(b[k]) for k in range(a.shape[0]))


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


# --------------------------------------------------------------------------- hand references


def _hand_cross_entropy(img, cls, labels, scale, bias, eps=0.0) -> float:
    B, n_cls = img.shape[0], cls.shape[0]
    total = 0.0
    for i in range(B):
        logits = [float(scale) * _dot(img[i], cls[c]) + float(bias) for c in range(n_cls)]
        log_z = math.log(sum(math.exp(v) for v in logits))
        logp = [v - log_z for v in logits]
        y = int(labels[i])
        total += (1 - eps) * -logp[y] + eps * sum(-lp for lp in logp) / n_cls
    return total / B


def _hand_contrastive(img, cls, labels, scale) -> float:
    B = img.shape[0]
    lab = [int(v) for v in labels]
    logit = [[float(scale) * _dot(img[i], cls[lab[j]]) for j in range(B)] for i in range(B)]
    i2t = t2i = 0.0
    for i in range(B):
        pos = sum(math.exp(logit[i][j]) for j in range(B) if lab[j] == lab[i])
        all_ = sum(math.exp(logit[i][j]) for j in range(B))
        i2t += -math.log(pos / all_)
    for j in range(B):  # text j against all images
        pos = sum(math.exp(logit[i][j]) for i in range(B) if lab[i] == lab[j])
        all_ = sum(math.exp(logit[i][j]) for i in range(B))
        t2i += -math.log(pos / all_)
    return (i2t / B + t2i / B) / 2


def _hand_sigmoid(img, cls, labels, scale, bias, *, diagonal_only: bool = False) -> float:
    B = img.shape[0]
    lab = [int(v) for v in labels]
    total = 0.0
    for i in range(B):
        for j in range(B):
            logit = float(scale) * _dot(img[i], cls[lab[j]]) + float(bias)
            if diagonal_only:
                z = 1.0 if i == j else -1.0
            else:
                z = 1.0 if lab[i] == lab[j] else -1.0
            total += -_log_sigmoid(z * logit)
    return total / B


# --------------------------------------------------------------------------- against hand loops


def test_class_logits_shape_and_values(batch):
    logits = class_logits(batch["img"], batch["cls"], batch["scale"], batch["bias"])
    assert logits.shape == (len(LABELS), C)
    for i in range(len(LABELS)):
        for c in range(C):
            expected = float(batch["scale"]) * _dot(batch["img"][i], batch["cls"][c]) + float(batch["bias"])
            assert float(logits[i, c]) == pytest.approx(expected, abs=1e-10)
    no_bias = class_logits(batch["img"], batch["cls"], batch["scale"])
    torch.testing.assert_close(no_bias + batch["bias"], logits)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
def test_cross_entropy_matches_hand_computation(batch, eps, with_bias):
    bias = batch["bias"] if with_bias else torch.tensor(0.0, dtype=torch.float64)
    got = cross_entropy_loss(
        batch["img"],
        batch["cls"],
        batch["labels"],
        batch["scale"],
        bias if with_bias else None,
        label_smoothing=eps,
    )
    expected = _hand_cross_entropy(batch["img"], batch["cls"], batch["labels"], batch["scale"], bias, eps)
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_contrastive_matches_hand_computation(batch):
    got = contrastive_loss(batch["img"], batch["cls"], batch["labels"], batch["scale"])
    expected = _hand_contrastive(batch["img"], batch["cls"], batch["labels"], batch["scale"])
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_sigmoid_matches_hand_computation(batch):
    got = sigmoid_loss(batch["img"], batch["cls"], batch["labels"], batch["scale"], batch["bias"])
    expected = _hand_sigmoid(batch["img"], batch["cls"], batch["labels"], batch["scale"], batch["bias"])
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_losses_are_stable_for_large_scale(batch):
    big = torch.tensor(1000.0, dtype=torch.float64)
    for name in LOSSES:
        value = compute_loss(name, batch["img"], batch["cls"], batch["labels"], big, batch["bias"])
        assert torch.isfinite(value), name


# --------------------------------------------------------------------------- reduction to CLIP / SigLIP


def test_contrastive_with_distinct_labels_equals_clip_loss():
    g = torch.Generator().manual_seed(1)
    B = 5
    img = _unit(torch.randn(B, D, generator=g, dtype=torch.float64))
    cls = _unit(torch.randn(7, D, generator=g, dtype=torch.float64))
    labels = torch.tensor([3, 0, 6, 1, 4])
    scale = torch.tensor(14.0, dtype=torch.float64)
    logits = scale * img @ cls[labels].T
    target = torch.arange(B)
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(contrastive_loss(img, cls, labels, scale), clip)


# --------------------------------------------------------------------------- FLYP: one text per image


def test_paired_contrastive_matches_hand_computation():
    """FLYP's loss on 4 images of 2 classes, each with its own sampled prompt: same-class pairs are positives."""
    g = torch.Generator().manual_seed(3)
    img = _unit(torch.randn(4, D, generator=g, dtype=torch.float64))
    txt = _unit(torch.randn(4, D, generator=g, dtype=torch.float64))  # images 0 and 2 carry different prompts of class 0
    labels, scale = [0, 1, 0, 1], 5.0
    logit = [[scale * _dot(img[i], txt[j]) for j in range(4)] for i in range(4)]
    i2t = t2i = 0.0
    for k in range(4):
        same = [m for m in range(4) if labels[m] == labels[k]]
        i2t += -math.log(sum(math.exp(logit[k][j]) for j in same) / sum(math.exp(logit[k][j]) for j in range(4)))
        t2i += -math.log(sum(math.exp(logit[i][k]) for i in same) / sum(math.exp(logit[i][k]) for i in range(4)))
    expected = (i2t / 4 + t2i / 4) / 2
    got = paired_contrastive_loss(img, txt, torch.tensor(labels), torch.tensor(scale, dtype=torch.float64))
    assert float(got) == pytest.approx(expected, abs=1e-10)


def test_contrastive_is_the_paired_loss_with_the_class_texts(batch):
    txt = batch["cls"][batch["labels"]]
    torch.testing.assert_close(
        contrastive_loss(batch["img"], batch["cls"], batch["labels"], batch["scale"]),
        paired_contrastive_loss(batch["img"], txt, batch["labels"], batch["scale"]),
    )
    with pytest.raises(ValueError, match="txt must have the shape of img"):
        paired_contrastive_loss(batch["img"], batch["cls"], batch["labels"], batch["scale"])


def test_paired_contrastive_with_distinct_labels_equals_transformers_clip_loss():
    """With one image per class the paired loss is CLIP's own pre-training loss (``CLIPModel(return_loss=True)``)."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=50, max_position_embeddings=8, **tower),
        vision_config=dict(image_size=32, patch_size=8, **tower),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    B = 4
    with torch.no_grad():
        out = model(pixel_values=torch.randn(B, 3, 32, 32), input_ids=torch.randint(0, 50, (B, 8)), return_loss=True)
    ours = paired_contrastive_loss(out.image_embeds, out.text_embeds, torch.arange(B), model.logit_scale.exp())
    torch.testing.assert_close(ours, out.loss.reshape(()), atol=1e-5, rtol=0)


def test_sigmoid_matches_transformers_siglip_model():
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=8,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
    )
    model = SiglipModel(config).eval()
    with torch.no_grad():  # non-trivial temperature and bias so both enter the comparison
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-1.5)

    B = 4
    pixel_values = torch.randn(B, 3, 32, 32)
    input_ids = torch.randint(0, 50, (B, 8))
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=input_ids, return_loss=True)

    img, txt = out.image_embeds, out.text_embeds
    # transformers 5.x returns the embeddings already L2-normalised; our loss assumes that too.
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(B))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(B))

    ours = sigmoid_loss(img, txt, torch.arange(B), model.logit_scale.exp(), model.logit_bias)
    assert float(out.loss) > 0
    torch.testing.assert_close(ours, out.loss.reshape(()), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- same-class pairs are positives


def _perfect_batch_with_shared_class():
    """Images 0 and 1 are both class 0 and equal its text; image 2 is class 1 and equals its text."""
    cls = torch.eye(3, D, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    img = cls[labels].clone()
    return img, cls, labels


def test_sigmoid_treats_same_class_pairs_as_positives():
    img, cls, labels = _perfect_batch_with_shared_class()
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
    ours = float(sigmoid_loss(img, cls, labels, scale, bias))
    as_negatives = _hand_sigmoid(img, cls, labels, scale, bias, diagonal_only=True)
    assert ours == pytest.approx(_hand_sigmoid(img, cls, labels, scale, bias), abs=1e-12)
    # A perfect match to one's own class text must not be penalised as a negative.
    assert ours < as_negatives
    assert as_negatives - ours > 1.0


def test_contrastive_treats_same_class_pairs_as_positives():
    img, cls, labels = _perfect_batch_with_shared_class()
    scale = torch.tensor(10.0, dtype=torch.float64)
    ours = float(contrastive_loss(img, cls, labels, scale))
    logits = scale * img @ cls[labels].T
    target = torch.arange(len(labels))
    standard_clip = float((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2)
    # Standard CLIP cannot separate two identical texts (loss >= log 2 on those rows); ours is ~0.
    assert ours < 1e-3
    assert standard_clip > ours + 0.4


# --------------------------------------------------------------------------- gradients and API


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_flow_to_embeddings_and_scale(batch, name):
    img = batch["img"].clone().requires_grad_(True)
    cls = batch["cls"].clone().requires_grad_(True)
    scale = batch["scale"].clone().requires_grad_(True)
    bias = batch["bias"].clone().requires_grad_(True)
    loss = compute_loss(name, img, cls, batch["labels"], scale, bias)
    loss.backward()
    for tensor in (img, cls, scale):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0
    # Every class present in the batch receives gradient.
    present = sorted(set(LABELS))
    assert (cls.grad[present].abs().sum(dim=1) > 0).all()
    if name in ("sigmoid", "cross_entropy"):
        assert bias.grad is not None and bias.grad.abs() > 0


def test_losses_registry_and_get_loss():
    assert set(LOSSES) == {"cross_entropy", "contrastive", "sigmoid"}
    assert get_loss("cross_entropy") is cross_entropy_loss
    assert get_loss("contrastive") is contrastive_loss
    assert get_loss("sigmoid") is sigmoid_loss
    with pytest.raises(ValueError, match="Unknown loss 'focal'") as info:
        get_loss("focal")
    for valid in LOSSES:
        assert valid in str(info.value)


def test_compute_loss_dispatch(batch):
    args = (batch["img"], batch["cls"], batch["labels"], batch["scale"])
    torch.testing.assert_close(
        compute_loss("cross_entropy", *args, batch["bias"], label_smoothing=0.1),
        cross_entropy_loss(*args, batch["bias"], label_smoothing=0.1),
    )
    torch.testing.assert_close(
        compute_loss("sigmoid", *args, batch["bias"]),
        sigmoid_loss(*args, batch["bias"]),
    )
    # The contrastive loss is shift-invariant, so a bias is accepted and has no effect.
    torch.testing.assert_close(compute_loss("contrastive", *args, batch["bias"]), contrastive_loss(*args))
    torch.testing.assert_close(compute_loss("contrastive", *args), contrastive_loss(*args))
    with pytest.raises(ValueError, match="Unknown loss"):
        compute_loss("nope", *args)


def test_compute_loss_requires_bias_for_sigmoid(batch):
    with pytest.raises(ValueError, match="requires a bias"):
        compute_loss("sigmoid", batch["img"], batch["cls"], batch["labels"], batch["scale"])


def test_shape_errors(batch):
    with pytest.raises(ValueError, match="embedding dims"):
        class_logits(batch["img"], batch["cls"][:, :4], batch["scale"])
    with pytest.raises(ValueError, match="labels must have shape"):
        sigmoid_loss(batch["img"], batch["cls"], batch["labels"][:3], batch["scale"], batch["bias"])
