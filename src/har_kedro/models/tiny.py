"""Randomly initialised CLIP/SigLIP models, tiny (tests, the offline demo) or at real shapes (smoke runs).

They are built from configs (no download), saved with ``save_pretrained`` (safetensors) together
with a word-level tokenizer and a ``preprocessor_config.json``, so ``load_backbone(out_dir)`` loads
them through exactly the same code path as a pretrained checkpoint. :data:`REAL_SHAPES` holds the
published sizes of the checkpoints the real configuration uses, so a smoke run without network has
their compute and memory (random weights: the speed and the memory do not depend on the values).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from har_kedro.models.backbones import (
    DEFAULT_NORMALISATION,
    PREPROCESSOR_FILE,
    SUPPORTED_FAMILIES,
    Family,
    quiet_default_config_warnings,
    write_preprocessor_config,
)

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
# EOS must not get id 2: CLIP's text pooling treats eos_token_id == 2 as a legacy config and then
# pools at argmax(input_ids) instead of at the EOS position.
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
SPEC_FILE = "tiny_spec.json"
_SPEC_VERSION = 2
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", PREPROCESSOR_FILE)

# The config.json sizes of openai/clip-vit-base-patch16 and google/siglip-base-patch16-224. The
# embedding table gets the real vocabulary's rows; the word-level tokenizer uses only the first few.
REAL_SHAPES: dict[str, dict[str, int | str]] = {
    "clip-vit-b-16": {
        "family": "clip", "image_size": 224, "patch_size": 16, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
        "intermediate_size": 3072, "projection_dim": 512, "text_hidden_size": 512, "text_num_layers": 12,
        "text_num_heads": 8, "text_intermediate_size": 2048, "max_text_length": 77, "vocab_size": 49408,
    },
    "siglip-b-16-224": {
        "family": "siglip", "image_size": 224, "patch_size": 16, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
        "intermediate_size": 3072, "text_hidden_size": 768, "text_num_layers": 12, "text_num_heads": 12,
        "text_intermediate_size": 3072, "max_text_length": 64, "vocab_size": 32000,
    },
}


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Splits on whitespace and keeps runs of punctuation as separate tokens (\w+|[^\w\s]+).
    return pre_tokenizers.Whitespace()


def vocabulary(texts: Iterable[str]) -> list[str]:
    """The sorted, lower-cased words (and punctuation runs) of ``texts``, special tokens excluded."""
    normalizer, pre_tokenizer = _normalizer(), _pre_tokenizer()
    words: set[str] = set()
    for text in texts:
        words.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(str(text))))
    return sorted(words - set(SPECIAL_TOKENS))


def build_word_tokenizer(texts: Iterable[str], max_length: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words of ``texts`` that wraps every text as ``[BOS] ... [EOS]``."""
    if max_length < 3:
        raise ValueError(f"max_length must leave room for [BOS] word [EOS], got {max_length}")
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in vocabulary(texts):
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = _normalizer()
    backend.pre_tokenizer = _pre_tokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} $B:1 {EOS}:1",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def _spec(family: str, vocab_texts: Iterable[str], sizes: dict[str, int]) -> tuple[dict, list[str]]:
    words = vocabulary(vocab_texts)
    spec = {
        "spec_version": _SPEC_VERSION,
        "transformers": transformers.__version__.split(".")[0],
        "family": family,
        **{key: int(value) for key, value in sizes.items()},
        "vocab_size": max(len(words) + len(SPECIAL_TOKENS), sizes["vocab_size"]),
        "vocab_sha256": hashlib.sha256(json.dumps(words).encode("utf-8")).hexdigest(),
    }
    return spec, words


def _validate(family: str, image_size: int, patch_size: int, hidden_size: int, num_heads: int) -> None:
    if family not in SUPPORTED_FAMILIES:
        raise ValueError(f"family must be one of {SUPPORTED_FAMILIES}, got {family!r}")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    if hidden_size % num_heads:
        raise ValueError(f"num_heads {num_heads} must divide hidden_size {hidden_size}")


def _holds_complete_build(out: Path, spec: dict) -> bool:
    try:
        existing = json.loads((out / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return existing == spec and all((out / name).is_file() for name in _REQUIRED_FILES)


def build_tiny_backbone(
    family: Family,
    out_dir: str | Path,
    vocab_texts: Iterable[str],
    image_size: int = 64,
    patch_size: int = 8,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    projection_dim: int = 64,
    max_text_length: int = 16,
    seed: int = 0,
    reuse_existing: bool = False,
    *,
    intermediate_size: int | None = None,
    text_hidden_size: int | None = None,
    text_num_layers: int | None = None,
    text_num_heads: int | None = None,
    text_intermediate_size: int | None = None,
    vocab_size: int = 0,
) -> Path:
    """Build a random model + tokenizer + preprocessor config into ``out_dir``; return it.

    Same arguments give bit-identical weights. The text tower takes the vision tower's sizes unless
    ``text_*`` say otherwise; MLP widths default to twice the width; ``vocab_size`` is the least
    number of rows of the token-embedding table (the real model's, for real shapes). SigLIP has no
    image projection, so its embedding dimension is ``hidden_size`` and ``projection_dim`` only
    applies to CLIP. With ``reuse_existing``, a complete model already built there for the same
    settings is kept.
    """
    _validate(family, image_size, patch_size, hidden_size, num_heads)
    text_hidden = text_hidden_size or hidden_size
    _validate(family, image_size, patch_size, text_hidden, text_num_heads or num_heads)
    sizes = {
        "image_size": image_size, "patch_size": patch_size, "hidden_size": hidden_size, "num_layers": num_layers,
        "num_heads": num_heads, "intermediate_size": intermediate_size or 2 * hidden_size, "projection_dim": projection_dim,
        "text_hidden_size": text_hidden, "text_num_layers": text_num_layers or num_layers,
        "text_num_heads": text_num_heads or num_heads, "text_intermediate_size": text_intermediate_size or 2 * text_hidden,
        "max_text_length": max_text_length, "vocab_size": vocab_size, "seed": seed,
    }
    vocab_texts = list(vocab_texts)
    spec, _ = _spec(family, vocab_texts, sizes)
    out = Path(out_dir)
    if reuse_existing and _holds_complete_build(out, spec):
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).unlink(missing_ok=True)  # the spec is written last: its presence marks a complete build

    _write_random_model(family, out, spec, vocab_texts, max_text_length, image_size, seed)
    return out


def _write_random_model(family: Family, out: Path, spec: dict, vocab_texts: list[str], max_text_length: int, image_size: int, seed: int) -> None:
    """Model (weights from ``seed`` alone), tokenizer and preprocessor config into ``out``; the spec file last."""
    tokenizer = build_word_tokenizer(vocab_texts, max_text_length)
    config, model_class = _model_config(family, spec, tokenizer)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = model_class(config)
    model.eval()
    with quiet_default_config_warnings():
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_preprocessor_config(out, family, image_size, *DEFAULT_NORMALISATION[family])
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _model_config(family: str, spec: dict, tokenizer: PreTrainedTokenizerFast) -> tuple[CLIPConfig | SiglipConfig, type]:
    """The transformers config for ``spec`` (see :func:`_spec`) and the model class to build it with."""
    text = dict(
        vocab_size=spec["vocab_size"],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        hidden_size=spec["text_hidden_size"],
        intermediate_size=spec["text_intermediate_size"],
        num_hidden_layers=spec["text_num_layers"],
        num_attention_heads=spec["text_num_heads"],
        max_position_embeddings=spec["max_text_length"],
    )
    vision = dict(
        image_size=spec["image_size"],
        patch_size=spec["patch_size"],
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
    )
    if family == "clip":
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=spec["projection_dim"]), CLIPModel
    return SiglipConfig(text_config=dict(text, projection_size=spec["hidden_size"]), vision_config=vision), SiglipModel


def ensure_tiny_backbone(family: Family, out_dir: str | Path, vocab_texts: Iterable[str], **settings: int) -> Path:
    """``out_dir``, built only if it does not already hold a complete model for the same settings.

    ``settings`` are :func:`build_tiny_backbone`'s keyword arguments.
    """
    return build_tiny_backbone(family, out_dir, vocab_texts, reuse_existing=True, **settings)


def ensure_random_backbone(out_dir: str | Path, vocab_texts: Iterable[str], preset: str | None = None, **settings: Any) -> Path:
    """:func:`ensure_tiny_backbone` with the sizes of ``preset`` (a key of :data:`REAL_SHAPES`) under ``settings``.

    This is what a model's ``build_random`` parameter block calls: ``{family: clip, hidden_size: 64, ...}``
    for a tiny model, ``{preset: clip-vit-b-16}`` for the real architecture with random weights.
    """
    if preset is not None and preset not in REAL_SHAPES:
        raise ValueError(f"build_random.preset is '{preset}'; use one of {sorted(REAL_SHAPES)} or give the sizes instead.")
    allowed = set(inspect.signature(build_tiny_backbone).parameters) - {"out_dir", "vocab_texts", "reuse_existing"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"build_random has unknown keys {unknown}; allowed keys are {sorted(allowed | {'preset'})}.")
    merged = {**(REAL_SHAPES[preset] if preset else {}), **settings}
    if "family" not in merged:
        raise ValueError(f"build_random needs a family ({' or '.join(SUPPORTED_FAMILIES)}) or a preset ({', '.join(sorted(REAL_SHAPES))}).")
    family = merged.pop("family")
    return ensure_tiny_backbone(family, out_dir, vocab_texts, **merged)
