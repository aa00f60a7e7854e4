"""A-CLIP: token selection, position embeddings, EMA, the objective, settings and the loop hooks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from har_kedro.config.aclip import AclipConfigError, AclipSettings
from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.aclip import (
    AclipClassifier,
    cls_attention,
    ema_image_size,
    ema_momentum,
    ema_update,
    gather_tokens,
    measure_step_speedup,
    num_kept,
    top_patches,
    upsample_scores,
)
from har_kedro.models.augment import prepare_eval_batch
from har_kedro.models.backbones import image_features, load_backbone
from har_kedro.models.methods import count_parameters
from har_kedro.models.tiny import ensure_tiny_backbone
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.loop import fit
from har_kedro.training.seeding import seed_everything
from tests.helpers import separable_split
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")


def _config(**overrides) -> TrainConfig:
    base = dict(
        method="full", loss="contrastive", epochs=2, batch_size=8, effective_batch_size=8, lr=1e-3, device="cpu",
        progress=False, early_stopping_patience=0, aclip={}, augment={"random_resized_crop": True, "horizontal_flip": True},
    )
    base.update(overrides)
    return TrainConfig.from_params(base)


def _model(source: str, size: int = 32, **overrides) -> AclipClassifier:
    seed_everything(0)
    model = training_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, _config(**overrides), CPU, size)
    assert isinstance(model, AclipClassifier)
    return model


def _pixels(model: AclipClassifier, n: int = 3, seed: int = 0) -> torch.Tensor:
    size = model.image_size
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    return prepare_eval_batch(images, model.backbone.image_mean, model.backbone.image_std, size, CPU)


# --------------------------------------------------------------------------- selection


def test_top_k_matches_a_direct_computation_on_a_hand_made_attention_map():
    # 3 x 3 grid, two images; distinct scores so the answer is unique.
    scores = torch.tensor([
        [0.05, 0.30, 0.10, 0.02, 0.25, 0.01, 0.12, 0.08, 0.07],
        [0.20, 0.01, 0.02, 0.03, 0.04, 0.35, 0.15, 0.11, 0.09],
    ])
    k = num_kept(9, 0.5)
    assert k == 5  # round(4.5) -> 5: half of an odd grid rounds up
    expected = [sorted(np.argsort(-row)[:k].tolist()) for row in scores.numpy()]
    assert top_patches(scores, k).tolist() == expected == [[1, 2, 4, 6, 7], [0, 5, 6, 7, 8]]


@pytest.mark.parametrize(("patches", "ratio", "kept"), [(49, 0.5, 25), (196, 0.5, 98), (256, 0.5, 128), (64, 0.25, 16), (16, 1.0, 16), (4, 0.01, 1)])
def test_tokens_kept_for_every_grid(patches, ratio, kept):
    assert num_kept(patches, ratio) == kept


def test_kept_tokens_are_the_right_patches_with_their_position_embeddings(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    pixels = _pixels(model)
    embeddings = model.model.vision_model.embeddings
    with torch.no_grad():
        patches = embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)  # (B, N, D), no positions
        positions = embeddings.position_embedding.weight
        index = torch.tensor([[0, 5, 15], [3, 4, 9], [1, 2, 14]])
        kept = gather_tokens(model.online.tokens(pixels), index)
    assert kept.shape == (3, 4, patches.shape[-1])
    assert torch.allclose(kept[:, 0], embeddings.class_embedding + positions[0], atol=1e-6)
    for b in range(3):
        for j, p in enumerate(index[b].tolist()):
            assert torch.allclose(kept[b, 1 + j], patches[b, p] + positions[1 + p], atol=1e-5), (b, p)


def test_cls_attention_scores_match_the_eager_attention_maps(tiny_backbones):
    """Scores from the hooked q/k equal HF's own attention weights (eager), averaged over layers and heads."""
    model = _model(tiny_backbones["clip"])
    pixels = _pixels(model)
    with torch.no_grad():
        embedding, scores = model.ema.encode_with_cls_attention(pixels)
        eager = CLIPModel.from_pretrained(tiny_backbones["clip"], attn_implementation="eager")
        out = eager.vision_model(pixel_values=pixels, output_attentions=True)
    reference = torch.stack([a[:, :, 0, 1:] for a in out.attentions]).mean(dim=(0, 2))
    assert scores.shape == (3, 16)
    assert torch.allclose(scores, reference, atol=1e-5)
    assert torch.allclose(embedding, image_features(model.backbone, pixels), atol=1e-5)


def test_cls_attention_of_a_single_layer_by_hand():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 8), torch.randn(2, 5, 8)
    scores = cls_attention(q, k, num_heads=2, scale=0.5)
    by_hand = torch.zeros(2, 4)
    for h in range(2):
        head = slice(4 * h, 4 * h + 4)
        w = torch.softmax(torch.einsum("bd,btd->bt", q[:, 0, head], k[:, :, head]) * 0.5, dim=-1)
        by_hand += w[:, 1:] / 2
    assert torch.allclose(scores, by_hand, atol=1e-6)


def test_all_tokens_and_selection_none_is_the_plain_encoder(tiny_backbones):
    model = _model(tiny_backbones["clip"], aclip={"selection": "none", "keep_ratio": 1.0})
    pixels = _pixels(model)
    with torch.no_grad():
        index, _ = model.select(pixels, None)
        online = model.online.encode_tokens(gather_tokens(model.online.tokens(pixels), index))
        plain = image_features(model.backbone, pixels)
    assert index.shape == (3, 16)
    assert torch.allclose(online, plain, atol=1e-5)


def test_attentive_selection_keeps_the_most_attended_patches(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    pixels = _pixels(model)
    with torch.no_grad():
        index, target = model.select(pixels, None)
        _, scores = model.ema.encode_with_cls_attention(pixels)
    assert index.shape == (3, 8) and target is not None
    for b in range(3):
        kept = set(index[b].tolist())
        dropped = set(range(16)) - kept
        assert min(scores[b, sorted(kept)]) >= max(scores[b, sorted(dropped)])


@pytest.mark.parametrize(("image", "patch", "scale", "side"), [(224, 16, 1.0, 224), (224, 16, 0.5, 112), (224, 32, 0.5, 128), (336, 14, 0.5, 168), (64, 8, 0.5, 32), (64, 8, 0.01, 8)])
def test_ema_view_side_is_rounded_to_whole_patches(image, patch, scale, side):
    assert ema_image_size(image, patch, scale) == side


def test_upsampled_scores_keep_the_coarse_ranking():
    coarse = torch.tensor([[4.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 9.0]])  # two 2 x 2 maps
    fine = upsample_scores(coarse, 4)
    assert fine.shape == (2, 16)
    # The most attended coarse cell's four fine patches are the four best on the fine grid.
    assert top_patches(fine, 4).tolist() == [[0, 1, 4, 5], [10, 11, 14, 15]]
    assert torch.allclose(upsample_scores(torch.full((1, 9), 0.3), 6), torch.full((1, 36), 0.3))
    same = torch.rand(3, 16)
    assert upsample_scores(same, 4) is same


def test_downscaled_ema_view_scores_a_coarser_grid_and_selects_on_the_full_one(tiny_backbones):
    model = _model(tiny_backbones["clip"], aclip={"ema_image_scale": 0.5})
    assert (model.image_size, model.ema_image_size, model.keep) == (32, 16, 8)
    seen: list[tuple[int, ...]] = []
    hook = model.ema.vision_model.embeddings.patch_embedding.register_forward_hook(lambda _m, i, _o: seen.append(tuple(i[0].shape)))
    pixels = _pixels(model)
    with torch.no_grad():
        index, target = model.select(pixels, None)
    hook.remove()
    assert seen == [(3, 3, 16, 16)]  # the EMA tower saw a 16 px view: a 2 x 2 grid
    small = F.interpolate(pixels, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        expected_target, coarse = model.ema.encode_with_cls_attention(small)
        tokens = model.ema.tokens(small)
    assert coarse.shape == (3, 4) and tokens.shape[1] == 1 + 4
    assert torch.equal(index, top_patches(upsample_scores(coarse, 4), 8))
    assert target is not None and torch.allclose(target, expected_target)
    # The online tower still runs on full-resolution tokens of the selected patches.
    loss, embeddings, _ = model.training_loss(torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8), torch.arange(4))
    loss.backward()
    report = model.token_report()
    assert (report["ema_image_size"], report["ema_patch_tokens"], report["patch_tokens_kept_per_view"]) == (16, 4, 8)


def test_full_size_tokens_use_the_trained_position_embeddings_unchanged(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    pixels = _pixels(model)
    with torch.no_grad():
        assert torch.equal(model.online.tokens(pixels), model.model.vision_model.embeddings(pixels))


# --------------------------------------------------------------------------- EMA


def test_momentum_schedule_is_cosine_from_start_to_end():
    assert ema_momentum(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert ema_momentum(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert ema_momentum(100, 100, 0.996, 1.0) == pytest.approx(1.0)
    assert ema_momentum(25, 100, 0.996, 1.0) == pytest.approx(1.0 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)


def test_ema_update_matches_the_formula():
    ema, online = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])], [torch.tensor([5.0, -2.0]), torch.tensor([[0.0]])]
    ema_update(ema, online, 0.9)
    assert torch.allclose(ema[0], 0.9 * torch.tensor([1.0, 2.0]) + 0.1 * torch.tensor([5.0, -2.0]))
    assert torch.allclose(ema[1], torch.tensor([[2.7]]))


def test_after_a_step_the_ema_tower_follows_the_formula(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    online, ema = dict(model.online.named_parameters())[name], dict(model.ema.named_parameters())[name]
    assert torch.equal(online, ema)  # the EMA starts as a copy
    before = ema.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    model.after_optimizer_step(step=10, total_steps=40)
    m = ema_momentum(10, 40, 0.996, 1.0)
    assert torch.allclose(ema, m * before + (1 - m) * online.detach(), atol=1e-7)
    assert not ema.requires_grad


# --------------------------------------------------------------------------- what trains


def test_full_trains_vision_projection_head_and_predictor_not_the_ema(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("model.vision_model.") for n in trainable)
    assert any(n.startswith("predictor.") for n in trainable)
    assert not any(n.startswith(("ema.", "model.text_model.")) for n in trainable)
    expected = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("model.vision_model.", "model.visual_projection", "head.", "predictor.")))
    counted, total = count_parameters(model)
    assert counted == expected
    assert total == sum(p.numel() for n, p in model.named_parameters() if not n.startswith("ema."))


def test_lora_trains_adapters_and_the_ema_copies_them(tiny_backbones):
    model = _model(tiny_backbones["clip"], method="lora", lora={"rank": 2, "alpha": 4})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith(("model.visual_projection", "head.", "predictor.")) for n in trainable)
    assert any("lora_" in n for n, _ in model.ema.named_parameters())
    assert len(model._pairs()) == sum(1 for n in trainable if n.startswith("model.vision_model.") or n.startswith("model.visual_projection"))


def test_settings_errors_name_the_key(tiny_backbones):
    cases = [
        ({"selection": "best"}, "selection"),
        ({"keep_ratio": 0}, "keep_ratio"),
        ({"selection": "none", "keep_ratio": 0.5}, "keep_ratio: 1.0"),
        ({"num_views": 3}, "num_views"),
        ({"weights": {"simclr": 1.0}}, "num_views: 2"),
        ({"weights": {"distil": 1.0}}, "unknown terms"),
        ({"weights": {"contrastive": 0, "cross_entropy": 0}}, "both 0"),
        ({"ema_momentum": [1.0, 0.99]}, "ema_momentum"),
        ({"keep": 0.5}, "unknown keys"),
        ({"ema_image_scale": 0}, "ema_image_scale"),
        ({"ema_image_scale": 1.5}, "ema_image_scale"),
        ({"ema_image_scale": True}, "ema_image_scale"),
    ]
    for params, match in cases:
        with pytest.raises(AclipConfigError, match=match):
            AclipSettings.from_params(params)
    with pytest.raises(TrainingConfigError, match="aclip.selection"):
        TrainConfig.from_params({"method": "full", "loss": "contrastive", "aclip": {"selection": "best"}})
    with pytest.raises(TrainingConfigError, match="full', 'lora"):
        TrainConfig.from_params({"method": "linear_probe", "loss": "contrastive", "aclip": {}})
    with pytest.raises(TrainingConfigError, match="loss: contrastive"):
        TrainConfig.from_params({"method": "full", "loss": "sigmoid", "aclip": {}})
    with pytest.raises(AclipConfigError, match="needs a CLIP backbone"):
        training_classifier(load_backbone(tiny_backbones["siglip"]), HAR_CLASSES, PROMPTS, _config(), CPU, 32)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"aclip": {"selection": "random", "weights": {"distill": 0.0}}},
        {"aclip": {"num_views": 2, "weights": {"simclr": 0.5}}},
        {"method": "lora", "lora": {"rank": 2, "alpha": 4}},
        {"aclip": {"ema_image_scale": 0.5}},
    ],
    ids=["attentive", "random", "two_views", "lora", "downscaled_ema"],
)
def test_fit_trains_on_half_the_tokens(tiny_backbones, overrides):
    model = _model(tiny_backbones["clip"], **overrides)
    before = {n: p.detach().clone() for n, p in model.ema.named_parameters()}
    config = _config(**overrides)
    result = fit(model, separable_split(32), separable_split(15, seed=1), config, CPU, seed=0)
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    report = model.token_report()
    assert report["patch_tokens_kept_per_view"] == 8 and report["tokens_kept_fraction"] == 0.5
    assert report["views_trained"] == 32 * 2 * model.settings.num_views
    assert any(not torch.equal(before[n], p) for n, p in model.ema.named_parameters())  # the EMA moved


def test_any_patch_grid_works(tmp_path):
    """A 7 x 7 grid (B/32-like): 25 of 49 patches kept."""
    texts = [t for texts in PROMPTS.values() for t in texts]
    source = str(ensure_tiny_backbone("clip", tmp_path / "grid7", texts, image_size=56, patch_size=8, hidden_size=32, num_layers=1, num_heads=2, projection_dim=32))
    model = _model(source, size=56)
    assert model.num_patches == 49 and model.keep == 25
    data = separable_split(8, size=56)
    loss, embeddings, _ = model.training_loss(torch.from_numpy(data.inputs), torch.from_numpy(data.labels))
    loss.backward()
    assert embeddings.shape == (8, 32) and model.tokens_kept == 8 * 25


def test_resume_restores_the_ema_tower(tiny_backbones, tmp_path):
    train, val = separable_split(24), separable_split(15, seed=1)
    config = _config(epochs=3)
    reference = fit(_model(tiny_backbones["clip"]), train, val, config, CPU, seed=3, checkpoint_dir=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill(epoch, row):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        fit(_model(tiny_backbones["clip"]), train, val, config, CPU, seed=3, checkpoint_dir=tmp_path / "b", on_epoch_end=kill)
    torch.manual_seed(99)
    resumed_model = _model(tiny_backbones["clip"])
    resumed = fit(resumed_model, train, val, dataclasses.replace(config, resume=True), CPU, seed=3, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 2
    for key in ("train_loss", "val_accuracy", "val_loss"):
        assert [h[key] for h in resumed.history] == [h[key] for h in reference.history], key
    assert resumed_model.token_report()["views_trained"] == 3 * 24


def test_speedup_measurement_changes_nothing(tiny_backbones):
    model = _model(tiny_backbones["clip"])
    data = separable_split(16)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    report = measure_step_speedup(model, torch.from_numpy(data.inputs), torch.from_numpy(data.labels), repeats=2)
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(weights[n], p) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    assert report["masked_step_seconds"] > 0 and report["full_step_seconds"] > 0
    assert report["masked_step_speedup"] == pytest.approx(report["full_step_seconds"] / report["masked_step_seconds"])
    assert model.views_seen == 0
