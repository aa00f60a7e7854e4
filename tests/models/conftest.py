"""Tiny CLIP and SigLIP backbones built once per test session (no network needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.prompts import build_class_prompts
from har_kedro.models.tiny import ensure_tiny_backbone

PROMPTS = build_class_prompts(HAR_CLASSES)


def _build(root: Path, family: str) -> str:
    texts = [t for texts in PROMPTS.values() for t in texts]
    return str(ensure_tiny_backbone(family=family, out_dir=root / family, vocab_texts=texts, image_size=32, patch_size=8, hidden_size=32, num_layers=2, num_heads=2, projection_dim=32))


@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_backbones")
    return {family: _build(root, family) for family in ("clip", "siglip")}
