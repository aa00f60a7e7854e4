"""Tiny CLIP/SigLIP builders: tokenizer, determinism, size, and the ensure-cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from har_kedro.models.backbones import CLIP_MEAN, CLIP_STD, SIGLIP_MEAN, load_backbone
from har_kedro.models.tiny import (
    SPEC_FILE,
    build_tiny_backbone,
    build_word_tokenizer,
    ensure_tiny_backbone,
    vocabulary,
)

TEXTS = ["A photo of a person Running.", "someone using a laptop", "listening to music!", "a person calling, on the phone"]
FAMILIES = ["clip", "siglip"]


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


# ----------------------------------------------------------------------------- tokenizer


def test_vocabulary_is_lowercased_words_and_punctuation() -> None:
    words = vocabulary(["Hello, World!", "hello   there"])
    assert words == sorted({"hello", ",", "world", "!", "there"})


def test_word_tokenizer_adds_bos_eos_and_maps_unknown_words() -> None:
    tok = build_word_tokenizer(TEXTS, max_length=12)
    ids = tok("A PERSON running zebra.")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens == ["[BOS]", "a", "person", "running", "[UNK]", ".", "[EOS]"]
    assert tok.pad_token == "[PAD]" and tok.unk_token == "[UNK]"
    assert tok.bos_token == "[BOS]" and tok.eos_token == "[EOS]"
    assert tok.model_max_length == 12
    # CLIP treats eos_token_id == 2 as a legacy config (pools at argmax of the ids instead).
    assert tok.eos_token_id != 2


def test_word_tokenizer_truncation_keeps_eos() -> None:
    tok = build_word_tokenizer(TEXTS, max_length=5)
    ids = tok("a photo of a person running", truncation=True, max_length=5)["input_ids"]
    assert len(ids) == 5
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_word_tokenizer_round_trips_through_save_pretrained(tmp_path: Path) -> None:
    tok = build_word_tokenizer(TEXTS, max_length=16)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    batch = ["a person running", "Someone using a LAPTOP, listening to music", "unknown words here"]
    assert loaded(batch, padding="max_length", max_length=16)["input_ids"] == tok(batch, padding="max_length", max_length=16)["input_ids"]
    assert loaded.model_max_length == 16
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    assert len(loaded) == len(tok)


def test_word_tokenizer_rejects_too_short_max_length() -> None:
    with pytest.raises(ValueError, match="max_length"):
        build_word_tokenizer(TEXTS, max_length=2)


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("family", FAMILIES)
def test_build_writes_a_small_complete_model(family: str, tmp_path: Path) -> None:
    out = build_tiny_backbone(family, tmp_path / family, TEXTS)
    assert out == tmp_path / family
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", SPEC_FILE):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")), "weights must be saved as safetensors"
    total = sum(p.stat().st_size for p in out.iterdir())
    assert total < 2 * 1024 * 1024

    config = AutoConfig.from_pretrained(out)
    assert config.model_type == family
    tok = AutoTokenizer.from_pretrained(out)
    assert config.text_config.vocab_size == len(tok)
    assert config.text_config.eos_token_id == tok.eos_token_id != 2
    assert config.text_config.pad_token_id == tok.pad_token_id
    assert config.text_config.max_position_embeddings == 16
    assert config.vision_config.image_size == 64 and config.vision_config.patch_size == 8


@pytest.mark.parametrize("family", FAMILIES)
def test_preprocessor_config_matches_family_defaults(family: str, tmp_path: Path) -> None:
    out = build_tiny_backbone(family, tmp_path / family, TEXTS, image_size=32, patch_size=8)
    data = json.loads((out / "preprocessor_config.json").read_text())
    if family == "clip":
        assert tuple(data["image_mean"]) == CLIP_MEAN and tuple(data["image_std"]) == CLIP_STD
        assert data["crop_size"] == {"height": 32, "width": 32}
    else:
        assert tuple(data["image_mean"]) == SIGLIP_MEAN and tuple(data["image_std"]) == SIGLIP_MEAN
        assert data["size"] == {"height": 32, "width": 32}


@pytest.mark.parametrize("family", FAMILIES)
def test_build_is_deterministic(family: str, tmp_path: Path) -> None:
    first = _tensors(build_tiny_backbone(family, tmp_path / "a", TEXTS, seed=3))
    second = _tensors(build_tiny_backbone(family, tmp_path / "b", TEXTS, seed=3))
    other = _tensors(build_tiny_backbone(family, tmp_path / "c", TEXTS, seed=4))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_build_does_not_disturb_the_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_backbone("clip", tmp_path / "m", TEXTS)
    assert torch.equal(torch.rand(3), expected)


def test_siglip_embedding_dim_is_hidden_size(tmp_path: Path) -> None:
    out = build_tiny_backbone("siglip", tmp_path / "s", TEXTS, hidden_size=32, num_heads=4, projection_dim=48)
    backbone = load_backbone(str(out))
    assert backbone.embed_dim == 32


def test_clip_projection_dim_is_honoured(tmp_path: Path) -> None:
    out = build_tiny_backbone("clip", tmp_path / "c", TEXTS, hidden_size=32, projection_dim=24)
    assert load_backbone(str(out)).embed_dim == 24


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "vit"}, "family"),
        ({"image_size": 60, "patch_size": 8}, "multiple"),
        ({"hidden_size": 30, "num_heads": 4}, "divide"),
    ],
)
def test_build_rejects_bad_settings(kwargs: dict, match: str, tmp_path: Path) -> None:
    args = {"family": "clip", **kwargs}
    with pytest.raises(ValueError, match=match):
        build_tiny_backbone(out_dir=tmp_path / "x", vocab_texts=TEXTS, **args)


# ----------------------------------------------------------------------------- ensure


def test_ensure_builds_once_and_reuses_when_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    assert ensure_tiny_backbone("clip", out, TEXTS) == out
    before = _mtimes(out)
    assert ensure_tiny_backbone("clip", out, iter(list(TEXTS))) == out  # any iterable, same words
    assert _mtimes(out) == before


@pytest.mark.parametrize(
    "change",
    [
        {"hidden_size": 32},
        {"seed": 1},
        {"max_text_length": 12},
        {"vocab_texts": [*TEXTS, "a brand new word"]},
    ],
)
def test_ensure_rebuilds_when_settings_change(change: dict, tmp_path: Path) -> None:
    out = tmp_path / "siglip"
    base = {"family": "siglip", "out_dir": out, "vocab_texts": TEXTS}
    ensure_tiny_backbone(**base)
    spec_before = json.loads((out / SPEC_FILE).read_text())
    weights_before = _tensors(out)
    ensure_tiny_backbone(**{**base, **change})
    spec_after = json.loads((out / SPEC_FILE).read_text())
    assert spec_after != spec_before
    weights_after = _tensors(out)
    assert any(
        weights_before[k].shape != weights_after[k].shape or not torch.equal(weights_before[k], weights_after[k]) for k in weights_before
    )
    # and the rebuilt model is the one for the new settings
    expected = {**spec_before, **{k: v for k, v in change.items() if k != "vocab_texts"}}
    for key in ("hidden_size", "seed", "max_text_length"):
        assert spec_after[key] == expected[key]


def test_ensure_rebuilds_an_incomplete_model(tmp_path: Path) -> None:
    out = ensure_tiny_backbone("clip", tmp_path / "clip", TEXTS)
    (out / "model.safetensors").unlink()
    ensure_tiny_backbone("clip", out, TEXTS)
    assert (out / "model.safetensors").is_file()
    load_backbone(str(out))


def test_ensure_rebuilds_over_a_foreign_spec(tmp_path: Path) -> None:
    out = ensure_tiny_backbone("clip", tmp_path / "m", TEXTS)
    (out / SPEC_FILE).write_text("not json")
    ensure_tiny_backbone("siglip", out, TEXTS)
    assert load_backbone(str(out)).family == "siglip"


# ----------------------------------------------------------------------------- real shapes


@pytest.mark.parametrize(
    ("preset", "parameters"),
    # openai/clip-vit-base-patch16: 149,620,737; google/siglip-base-patch16-224: 203.16 M (as rounded in its card).
    [("clip-vit-b-16", 149_620_737), ("siglip-b-16-224", 203.16e6)],
)
def test_real_shape_presets_have_the_published_parameter_count(preset: str, parameters: int) -> None:
    from transformers import CLIPModel, SiglipModel

    from har_kedro.models.tiny import REAL_SHAPES, _model_config, _spec

    shape = dict(REAL_SHAPES[preset])
    family = shape.pop("family")
    sizes = {"projection_dim": 64, "seed": 0, **shape}
    spec, _ = _spec(family, TEXTS, sizes)
    config, model_class = _model_config(family, spec, build_word_tokenizer(TEXTS, int(shape["max_text_length"])))
    assert model_class is (CLIPModel if family == "clip" else SiglipModel)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = model_class(config)
    count = sum(p.numel() for p in model.parameters())
    assert count == parameters if isinstance(parameters, int) else round(count / 1e6, 2) == round(parameters / 1e6, 2)


def test_ensure_random_backbone_takes_a_preset_with_overrides(tmp_path: Path) -> None:
    from har_kedro.models.tiny import ensure_random_backbone

    out = ensure_random_backbone(tmp_path / "m", TEXTS, preset="clip-vit-b-16", num_layers=1, text_num_layers=1, hidden_size=64, num_heads=2, intermediate_size=64, text_hidden_size=32, text_num_heads=2, text_intermediate_size=32, image_size=32, vocab_size=0)
    config = AutoConfig.from_pretrained(out)
    assert (config.vision_config.patch_size, config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (16, 64, 1)
    assert config.text_config.max_position_embeddings == 77 and config.projection_dim == 512  # from the preset
    assert ensure_random_backbone(tmp_path / "t", TEXTS, family="siglip", hidden_size=32, num_heads=2, image_size=32).is_dir()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preset": "clip-vit-h-14"}, "build_random.preset is 'clip-vit-h-14'; use one of"),
        ({"family": "clip", "hiden_size": 64}, r"build_random has unknown keys \['hiden_size'\]"),
        ({"hidden_size": 64}, "build_random needs a family"),
    ],
)
def test_ensure_random_backbone_names_a_bad_setting(tmp_path: Path, settings: dict, message: str) -> None:
    from har_kedro.models.tiny import ensure_random_backbone

    with pytest.raises(ValueError, match=message):
        ensure_random_backbone(tmp_path / "m", TEXTS, **settings)
    assert not (tmp_path / "m").exists()


def test_prepare_backbone_reports_a_bad_build_random_as_a_setting(tmp_path: Path) -> None:
    from har_kedro.config.training import TrainingConfigError
    from har_kedro.pipelines.training.nodes import prepare_backbone

    with pytest.raises(TrainingConfigError, match=r"^model\.build_random has unknown keys"):
        prepare_backbone({"backbone": str(tmp_path / "m"), "build_random": {"family": "clip", "layers": 2}}, {"running": ["a person running."]})
