"""load_backbone / tokenize / features, through tiny models saved to disk like real checkpoints."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from har_kedro.models import backbones
from har_kedro.models.backbones import (
    CLIP_MEAN,
    CLIP_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    Backbone,
    BackboneLoadError,
    image_features,
    load_backbone,
    text_features,
    tokenize,
)
from har_kedro.models.tiny import build_tiny_backbone

TEXTS = [
    "a photo of a person running.",
    "someone using a laptop in the picture",
    "a person listening to music",
    "a photo of a person calling on the phone",
]
MAX_LEN = 16


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_backbones")
    return {
        family: build_tiny_backbone(family, root / family, TEXTS, image_size=32, patch_size=8, hidden_size=32, projection_dim=24, max_text_length=MAX_LEN)
        for family in ("clip", "siglip")
    }


@pytest.fixture(scope="module")
def loaded(model_dirs: dict[str, Path]) -> dict[str, Backbone]:
    return {family: load_backbone(str(path)) for family, path in model_dirs.items()}


@pytest.fixture(params=["clip", "siglip"])
def backbone(request: pytest.FixtureRequest, loaded: dict[str, Backbone]) -> Backbone:
    return loaded[request.param]


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_round_trip_detects_family_and_geometry(family: str, model_dirs: dict[str, Path], loaded: dict[str, Backbone]) -> None:
    b = loaded[family]
    assert b.family == family
    assert b.source == str(model_dirs[family])
    assert (b.image_size, b.patch_size) == (32, 8)
    assert b.embed_dim == (24 if family == "clip" else 32)
    assert b.max_text_length == MAX_LEN
    assert b.text_padding == ("max_length" if family == "siglip" else "longest")
    expected = (CLIP_MEAN, CLIP_STD) if family == "clip" else (SIGLIP_MEAN, SIGLIP_STD)
    assert (b.image_mean, b.image_std) == expected
    assert next(b.model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_explicit_family_and_path_object(family: str, model_dirs: dict[str, Path]) -> None:
    b = load_backbone(model_dirs[family], family=family)  # type: ignore[arg-type]
    assert b.family == family


def test_loaded_model_uses_sdpa(backbone: Backbone) -> None:
    config = backbone.model.config
    assert config._attn_implementation == "sdpa"
    assert config.text_config._attn_implementation == "sdpa"
    assert config.vision_config._attn_implementation == "sdpa"


def test_hub_kernels_are_off_and_train_mode_works_on_the_meta_device(backbone: Backbone) -> None:
    """transformers >= 5.25 enables Hub kernels by default; they would be fetched from the Hub and they
    reject the meta device the placement tests use. The backbone is loaded with them off."""
    assert getattr(backbone.model, "use_kernels", False) is False
    model = copy.deepcopy(backbone.model).to("meta")
    model.train()  # re-kernelizes (and raises on 'meta') when kernels are on
    model.eval()
    assert not model.training


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_mean_std_are_read_from_preprocessor_json(family: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / family
    shutil.copytree(model_dirs[family], copy)
    path = copy / "preprocessor_config.json"
    data = json.loads(path.read_text())
    data.update(image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6])
    path.write_text(json.dumps(data))
    b = load_backbone(str(copy))
    assert b.image_mean == (0.1, 0.2, 0.3) and b.image_std == (0.4, 0.5, 0.6)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_mean_std_default_per_family_without_json(family: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / family
    shutil.copytree(model_dirs[family], copy)
    (copy / "preprocessor_config.json").unlink()
    b = load_backbone(str(copy))
    expected = (CLIP_MEAN, CLIP_STD) if family == "clip" else (SIGLIP_MEAN, SIGLIP_STD)
    assert (b.image_mean, b.image_std) == expected


# ----------------------------------------------------------------------------- tokenize


def test_siglip_tokens_are_padded_to_max_length(loaded: dict[str, Backbone]) -> None:
    b = loaded["siglip"]
    tokens = tokenize(b, ["a person", "a photo of a person running."])
    assert tokens["input_ids"].shape == (2, MAX_LEN)
    assert "attention_mask" not in tokens  # SigLIP pools the last (pad) position and was trained without a mask
    assert tokens["input_ids"][0, -1].item() == b.tokenizer.pad_token_id


def test_clip_tokens_are_padded_to_longest_with_mask(loaded: dict[str, Backbone]) -> None:
    b = loaded["clip"]
    tokens = tokenize(b, ["a person", "a photo of a person running."])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    assert ids.shape == (2, 9) and mask.shape == (2, 9)  # [BOS] + 6 words + "." + [EOS] < MAX_LEN
    assert mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert ids.dtype == torch.long


def test_long_text_is_truncated_and_keeps_eos(backbone: Backbone) -> None:
    tokens = tokenize(backbone, [" ".join(["person"] * 50)])
    ids = tokens["input_ids"]
    assert ids.shape == (1, MAX_LEN)
    assert ids[0, -1].item() == backbone.tokenizer.eos_token_id


def test_tokenize_accepts_a_single_string(backbone: Backbone) -> None:
    assert tokenize(backbone, "a person")["input_ids"].shape[0] == 1


# ----------------------------------------------------------------------------- features


def test_text_features_shape_and_dependence_on_text(backbone: Backbone) -> None:
    with torch.no_grad():
        features = text_features(backbone, TEXTS)
    assert isinstance(features, torch.Tensor)
    assert features.shape == (len(TEXTS), backbone.embed_dim)
    for i in range(len(TEXTS)):
        for j in range(i + 1, len(TEXTS)):
            assert not torch.allclose(features[i], features[j], atol=1e-4), (TEXTS[i], TEXTS[j])
    # not normalised
    assert not torch.allclose(features.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-3)


def test_text_features_do_not_depend_on_batching_or_padding(backbone: Backbone) -> None:
    backbone.model.eval()
    with torch.no_grad():
        together = text_features(backbone, TEXTS)
        one_by_one = text_features(backbone, TEXTS, batch_size=1)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)


def test_clip_text_feature_is_pooled_at_eos(loaded: dict[str, Backbone]) -> None:
    b = loaded["clip"]
    b.model.eval()
    tokens = tokenize(b, ["a person", "someone using a laptop"])
    with torch.no_grad():
        hidden = b.model.text_model(**tokens).last_hidden_state
        eos = (tokens["input_ids"] == b.tokenizer.eos_token_id).int().argmax(dim=-1)
        expected = b.model.text_projection(hidden[torch.arange(2), eos])
        got = text_features(b, ["a person", "someone using a laptop"])
    assert eos.tolist() == [3, 5]
    torch.testing.assert_close(got, expected)


def test_text_features_empty_list(backbone: Backbone) -> None:
    assert text_features(backbone, []).shape == (0, backbone.embed_dim)


def test_image_features_shape(backbone: Backbone) -> None:
    pixels = torch.randn(3, 3, backbone.image_size, backbone.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = image_features(backbone, pixels)
        other = image_features(backbone, pixels.flip(-1))
    assert isinstance(features, torch.Tensor)
    assert features.shape == (3, backbone.embed_dim)
    assert not torch.allclose(features, other)


def test_features_carry_gradients_when_enabled(backbone: Backbone) -> None:
    backbone.model.zero_grad(set_to_none=True)
    pixels = torch.randn(2, 3, backbone.image_size, backbone.image_size)
    loss = image_features(backbone, pixels).sum() + text_features(backbone, TEXTS[:2]).sum()
    assert loss.requires_grad
    loss.backward()
    assert backbone.model.text_model.embeddings.token_embedding.weight.grad is not None
    assert any(p.grad is not None for p in backbone.model.vision_model.parameters())
    backbone.model.zero_grad(set_to_none=True)


def test_pooled_accepts_tensor_model_output_and_tuple() -> None:
    x = torch.randn(2, 4)
    assert backbones._pooled(x) is x
    assert backbones._pooled(BaseModelOutputWithPooling(last_hidden_state=torch.zeros(2, 3, 4), pooler_output=x)) is x
    assert backbones._pooled((torch.zeros(2, 3, 4), x)) is x


# ----------------------------------------------------------------------------- errors


def test_offline_missing_hub_id_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneLoadError) as info:
        load_backbone("nonexistent-org/nonexistent-model")
    message = str(info.value)
    assert "nonexistent-org/nonexistent-model" in message
    assert "not found locally" in message
    assert "download nonexistent-org/nonexistent-model --local-dir data/06_models/nonexistent-model" in message
    assert "`backbone` parameter" in message
    assert "Traceback" not in message and len(message) < 500
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_explicit_local_files_only_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(BackboneLoadError, match="nonexistent-org/nonexistent-model"):
        load_backbone("nonexistent-org/nonexistent-model", local_files_only=True)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("TRUE", True), ("0", False), ("", False)])
def test_offline_env_parsing(value: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert backbones._offline_from_env() is expected


def test_missing_local_dir_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BackboneLoadError) as info:
        load_backbone("./no/such/dir")
    message = str(info.value)
    assert "./no/such/dir" in message and "does not exist" in message
    assert "`backbone` parameter" in message
    assert info.value.__cause__ is None


def test_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BackboneLoadError, match="no config.json"):
        load_backbone(str(tmp_path))


def test_wrong_family_is_rejected(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(BackboneLoadError, match=r"'clip' model but family 'siglip'.*clip, siglip"):
        load_backbone(str(model_dirs["clip"]), family="siglip")
    with pytest.raises(BackboneLoadError, match="Unknown backbone family 'vit'"):
        load_backbone(str(model_dirs["clip"]), family="vit")  # type: ignore[arg-type]


def test_unsupported_model_type_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BackboneLoadError, match=r"'bert' model; only clip and siglip"):
        load_backbone(str(tmp_path))


def test_missing_tokenizer_dependency_is_explained(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Real SigLIP checkpoints ship a SentencePiece tokenizer (spiece.model, no tokenizer.json)."""
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sentencepiece is installed")
    copy = tmp_path / "siglip"
    shutil.copytree(model_dirs["siglip"], copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "SiglipTokenizer"
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    (copy / "tokenizer.json").unlink()
    (copy / "spiece.model").write_bytes(b"")
    with pytest.raises(BackboneLoadError, match=r"pip install sentencepiece") as info:
        load_backbone(str(copy))
    assert str(copy) in str(info.value)
