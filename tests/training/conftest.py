"""Shared training fixtures: the tiny backbones and a small memory-mapped image cache."""

from __future__ import annotations

import pytest
from kedro.io.core import Version

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.image_cache import ImageCache
from har_kedro.datasets import ArrayBundle, ContentAddressedArrayDataset
from tests.helpers import separable_split
from tests.models.conftest import tiny_backbones  # noqa: F401  (shared session fixture)


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    """A memory-mapped cache like preprocessing writes. 41 training images: with batch_size 8 the last
    micro-batch holds one image, so the second process trains that step on a stand-in row."""
    root = tmp_path_factory.mktemp("cache")
    splits = {"train": separable_split(41, 1), "val": separable_split(21, 2), "test": separable_split(15, 3)}
    arrays = {f"{name}_{kind}": getattr(split, attr) for name, split in splits.items() for kind, attr in (("images", "inputs"), ("labels", "labels"))}
    metadata = {
        "image_size": 32,
        "class_names": list(HAR_CLASSES),
        "splits": {name: {"count": len(split), "image_ids": [f"{name}_{i}" for i in range(len(split))]} for name, split in splits.items()},
    }
    dataset = ContentAddressedArrayDataset(str(root / "cache.json"), str(root / "store"), Version(None, None))
    dataset.save(ArrayBundle("test-cache", arrays, metadata))
    return ImageCache(dataset.load())
