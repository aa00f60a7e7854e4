"""Each method trains exactly the parameters it should, and LoRA adapters all receive gradients."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model

from har_kedro.config.lora import LoraSettings
from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.backbones import load_backbone
from har_kedro.models.factory import build_classifier
from har_kedro.models.lora import apply_lora, target_regex
from har_kedro.config.unfreeze import UnfreezeSettings
from har_kedro.models.methods import (
    count_parameters,
    frozen_parameters,
    optimizer_groups,
    parameter_group,
    vision_depth,
    vision_layer_count,
)
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")


def _classifier(source, **overrides):
    config = TrainConfig.from_params({"device": "cpu", "progress": False, **overrides})
    return build_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, config, CPU, 32)


def _numel(model, predicate):
    return sum(p.numel() for n, p in model.named_parameters() if predicate(n))


def _trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_zero_shot_trains_nothing(tiny_backbones, family):
    model = _classifier(tiny_backbones[family], method="zero_shot")
    assert count_parameters(model)[0] == 0


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_linear_probe_trains_only_the_head(tiny_backbones, family):
    model = _classifier(tiny_backbones[family], method="linear_probe", loss="sigmoid" if family == "siglip" else "cross_entropy")
    head = _numel(model, lambda n: n.startswith("head."))
    assert count_parameters(model)[0] == head == 15 * 32 + 1 + (1 if family == "siglip" else 0)
    assert _trainable_names(model) == {n for n, _ in model.named_parameters() if n.startswith("head.")}


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_full_trains_vision_projection_and_head_but_not_text(tiny_backbones, family):
    model = _classifier(tiny_backbones[family], method="full")
    expected = _numel(model, lambda n: parameter_group(n) in ("vision", "projection", "head") and "text_projection" not in n)
    assert count_parameters(model)[0] == expected
    assert not any(n.startswith("model.text_model.") for n in _trainable_names(model))
    assert "model.logit_scale" not in _trainable_names(model)


def test_full_with_text_tower_trains_text_but_not_the_head_weight(tiny_backbones):
    model = _classifier(tiny_backbones["clip"], method="full", train_text=True)
    names = _trainable_names(model)
    assert any(n.startswith("model.text_model.") for n in names)
    assert "model.text_projection.weight" in names
    assert "head.weight" not in names  # class embeddings come from the text tower


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_flyp_trains_both_towers_both_projections_and_the_temperature_but_not_the_head_weight(tiny_backbones, family):
    model = _classifier(tiny_backbones[family], method="flyp", loss="contrastive")
    names = _trainable_names(model)
    towers = {n for n, _ in model.named_parameters() if parameter_group(n) in ("vision", "text", "projection")}
    assert towers <= names and any(n.startswith("model.text_model.") for n in towers)
    assert {"head.logit_scale"} <= names and "head.weight" not in names  # class embeddings come from the text tower
    assert "model.logit_scale" not in names  # the head carries the temperature, initialised from the checkpoint's
    assert model.head.logit_scale.item() == pytest.approx(model.model.logit_scale.item())
    head = {"head.logit_scale", "head.logit_bias"} if family == "siglip" else {"head.logit_scale"}
    assert names == towers | head


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_lora_trains_adapters_and_head_only(tiny_backbones, family):
    rank = 4
    model = _classifier(tiny_backbones[family], method="lora", lora={"rank": rank, "alpha": 8, "targets": ["q_proj", "k_proj", "v_proj", "out_proj"]}, train_projection=False)
    names = _trainable_names(model)
    lora_names = {n for n in names if "lora_" in n}
    # 2 layers x 4 linears x (A: r x 32 + B: 32 x r)
    assert sum(p.numel() for n, p in model.named_parameters() if n in lora_names) == 2 * 4 * (rank * 32 + 32 * rank)
    assert names - lora_names == {n for n, _ in model.named_parameters() if n.startswith("head.")}
    assert all(".vision_model.encoder.layers." in n for n in lora_names)


def test_lora_regex_skips_siglip_pooling_head(tiny_backbones):
    """The pitfall: a bare ``out_proj`` suffix also hits SigLIP's MultiheadAttention pooling head."""
    pattern = target_regex(["q_proj", "k_proj", "v_proj", "out_proj"])
    backbone = load_backbone(tiny_backbones["siglip"])
    names = [n for n, _ in backbone.model.named_modules()]
    assert "vision_model.head.attention.out_proj" in names
    assert not re.fullmatch(pattern, "vision_model.head.attention.out_proj")
    assert not any(re.fullmatch(pattern, n) for n in names if n.startswith("text_model."))
    assert sum(1 for n in names if re.fullmatch(pattern, n)) == 2 * 4

    # The naive suffix list does adapt the pooling head's out_proj, and those weights never get a gradient.
    naive = load_backbone(tiny_backbones["siglip"])
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]), naive.model)
    head_lora = [p for n, p in naive.model.named_parameters() if "vision_model.head" in n and "lora_" in n]
    assert head_lora
    for p in naive.model.parameters():
        p.requires_grad_(True)
    naive.model.get_image_features(pixel_values=torch.randn(2, 3, 32, 32)).pooler_output.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in head_lora)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_every_lora_adapter_gets_a_gradient(tiny_backbones, family):
    backbone = load_backbone(tiny_backbones[family])
    apply_lora(backbone.model, LoraSettings(rank=4, alpha=8, targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")))
    # LoRA's B starts at zero, so A gets no gradient on the first step: give B a value first.
    with torch.no_grad():
        for n, p in backbone.model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.1)
    out = backbone.model.get_image_features(pixel_values=torch.randn(3, 3, 32, 32))
    getattr(out, "pooler_output", out).pow(2).sum().backward()
    adapters = {n: p for n, p in backbone.model.named_parameters() if "lora_" in n}
    assert len(adapters) == 2 * 6 * 2
    dead = [n for n, p in adapters.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_optimizer_groups_apply_multipliers_and_no_decay(tiny_backbones):
    model = _classifier(tiny_backbones["clip"], method="full")
    groups = optimizer_groups(model, lr=1e-3, weight_decay=0.1, multipliers={"vision": 0.5, "head": 10.0})
    by_name = {g["name"]: g for g in groups}
    assert by_name["vision"]["lr"] == pytest.approx(5e-4)
    assert by_name["head_no_decay"]["lr"] == pytest.approx(1e-2) and by_name["head_no_decay"]["weight_decay"] == 0.0
    assert by_name["vision_no_decay"]["weight_decay"] == 0.0 and by_name["vision"]["weight_decay"] == 0.1
    counted = sum(p.numel() for g in groups for p in g["params"])
    assert counted == count_parameters(model)[0]
    with pytest.raises(ValueError, match="unknown groups"):
        optimizer_groups(model, 1e-3, 0.0, {"decoder": 1.0})


def _lr_of(groups):
    """Each parameter's learning rate, by the parameter's identity."""
    return {id(p): g["lr"] for g in groups for p in g["params"]}


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_layer_decay_scales_each_vision_block_by_its_depth_from_the_top(tiny_backbones, family):
    """d = 0.5, 2 blocks: layer 1 x0.5, layer 0 x0.25, embeddings (and pre_layrnorm) x0.125, post_layernorm x1;
    projection and head keep their multipliers."""
    model = _classifier(tiny_backbones[family], method="full", loss="sigmoid" if family == "siglip" else "cross_entropy")
    params = dict(model.named_parameters())
    groups = optimizer_groups(model, lr=1e-3, weight_decay=0.1, multipliers={"vision": 0.4, "projection": 2.0, "head": 10.0}, layer_decay=0.5)
    lr = _lr_of(groups)
    vision = "model.vision_model."
    expected = {
        f"{vision}encoder.layers.1.mlp.fc1.weight": 1e-3 * 0.4 * 0.5,
        f"{vision}encoder.layers.1.layer_norm2.bias": 1e-3 * 0.4 * 0.5,
        f"{vision}encoder.layers.0.self_attn.q_proj.weight": 1e-3 * 0.4 * 0.25,
        f"{vision}encoder.layers.0.layer_norm1.weight": 1e-3 * 0.4 * 0.25,
        f"{vision}embeddings.patch_embedding.weight": 1e-3 * 0.4 * 0.125,
        f"{vision}embeddings.position_embedding.weight": 1e-3 * 0.4 * 0.125,
        f"{vision}post_layernorm.weight": 1e-3 * 0.4,
        "head.weight": 1e-3 * 10.0,
        "head.logit_scale": 1e-3 * 10.0,
    }
    if family == "clip":
        expected |= {f"{vision}pre_layrnorm.weight": 1e-3 * 0.4 * 0.125, "model.visual_projection.weight": 1e-3 * 2.0}
    else:  # SigLIP's attention-pooling head counts as the projection
        expected |= {f"{vision}head.mlp.fc1.weight": 1e-3 * 2.0, f"{vision}head.probe": 1e-3 * 2.0}
    for name, value in expected.items():
        assert lr[id(params[name])] == pytest.approx(value, rel=1e-12), name
    by_name = {g["name"]: g for g in groups}
    assert {"vision_layer1", "vision_layer1_no_decay", "vision_layer0", "vision_embeddings", "vision_top_no_decay"} <= set(by_name)
    assert by_name["vision_layer0"]["weight_decay"] == 0.1 and by_name["vision_layer0_no_decay"]["weight_decay"] == 0.0
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(model)[0]  # each trained parameter once


def _groups_before_layer_decay(model, lr, weight_decay, multipliers):
    """optimizer_groups as it was before layer decay existed: one group per (group, decay)."""
    multipliers = {"vision": 1.0, "text": 1.0, "projection": 1.0, "head": 1.0, **multipliers}
    buckets = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            decay = parameter.ndim >= 2 and name != "head.weight"
            buckets.setdefault((parameter_group(name) or "head", decay), []).append(parameter)
    return [
        {"params": params, "lr": lr * multipliers[group], "weight_decay": weight_decay if decay else 0.0, "name": f"{group}{'' if decay else '_no_decay'}"}
        for (group, decay), params in sorted(buckets.items())
    ]


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_without_layer_decay_the_groups_are_exactly_as_before(tiny_backbones, family):
    model = _classifier(tiny_backbones[family], method="full", train_text=True)
    multipliers = {"vision": 0.5, "text": 0.1, "head": 10.0}
    groups = optimizer_groups(model, 1e-3, 0.1, multipliers)
    before = _groups_before_layer_decay(model, 1e-3, 0.1, multipliers)
    assert [{**g, "params": [id(p) for p in g["params"]]} for g in groups] == [{**g, "params": [id(p) for p in g["params"]]} for g in before]
    # layer_decay 1.0 splits the vision groups by block but leaves every learning rate as it was
    assert _lr_of(optimizer_groups(model, 1e-3, 0.1, multipliers, layer_decay=1.0)) == _lr_of(groups)


def test_vision_depth_counts_blocks_from_the_top():
    names = [f"model.vision_model.encoder.layers.{i}.mlp.fc1.weight" for i in range(12)] + ["model.text_model.encoder.layers.13.mlp.fc1.weight"]
    assert vision_layer_count(names) == 12  # text blocks do not count
    assert [vision_depth(n, 12) for n in names[:12]] == list(range(12, 0, -1))
    assert vision_depth("model.vision_model.embeddings.patch_embedding.weight", 12) == 13
    assert vision_depth("model.vision_model.pre_layrnorm.bias", 12) == 13
    for top in ("model.vision_model.post_layernorm.weight", "model.vision_model.head.probe", "model.visual_projection.weight", "head.weight", names[12]):
        assert vision_depth(top, 12) == 0, top


def test_frozen_parameters_follow_the_schedule_by_hand(tiny_backbones):
    model = _classifier(tiny_backbones["clip"], method="full")
    names = sorted(_trainable_names(model))
    bottom = {n for n in names if n.startswith(("model.vision_model.embeddings.", "model.vision_model.pre_layrnorm."))}
    layer0 = {n for n in names if n.startswith("model.vision_model.encoder.layers.0.")}
    schedule = UnfreezeSettings(initial_blocks=1, blocks_per_step=1, every_epochs=1)
    assert frozen_parameters(names, 2, schedule, 1) == layer0 | bottom
    assert frozen_parameters(names, 2, schedule, 2) == bottom
    assert frozen_parameters(names, 2, schedule, 3) == frozen_parameters(names, 2, schedule, 9) == set()
    assert frozen_parameters(names, 2, None, 1) == set()
    assert len(bottom) == 5 and len(layer0) == 16  # class/patch/position embeddings, pre_layrnorm; one block's tensors


def test_zero_shot_head_is_prompt_ensembled(tiny_backbones):
    model = _classifier(tiny_backbones["clip"], method="zero_shot")
    weight = model.head.weight.detach()
    assert weight.shape == (15, 32)
    assert torch.allclose(weight.norm(dim=1), torch.ones(15), atol=1e-5)
    assert np.linalg.matrix_rank(weight.numpy()) > 1
