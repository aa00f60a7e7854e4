"""The decoded image cache: one ``(N, S, S, 3)`` uint8 array per split, memory-mappable.

Training reads pixels from here, never from JPEGs, so an epoch costs what the model costs.
Each split is decoded in blocks of ``chunk_size`` images that are appended to its ``.npy``
file one after the other, so building the cache takes the memory of two blocks (the one being
written and the one being decoded), however many images there are.
The cache is addressed by a fingerprint of everything that determines its bytes, which
lets :class:`~har_kedro.datasets.ContentAddressedArrayDataset` skip rebuilding it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from har_kedro.data.decoding import DEFAULT_CHUNK_SIZE, decode_chunks, resample_filter
from har_kedro.data.errors import DataInputError
from har_kedro.datasets.array_store import ArrayBundle, LazyArray, StoredArrays

# Bump when decoding changes in a way that changes output bytes for the same inputs.
CACHE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CacheSettings:
    image_size: int = 224
    resample: str = "bilinear"
    splits: tuple[str, ...] = ("train", "val", "test")
    num_workers: int | str | None = "auto"
    progress: bool = True
    # Images decoded per block; memory holds two blocks, never the whole split. Not part of
    # the fingerprint: any value writes the same bytes.
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def validate(self) -> None:
        if not isinstance(self.image_size, int) or not 8 <= self.image_size <= 2048:
            raise DataInputError(f"preprocessing.image_size must be an integer in [8, 2048], got {self.image_size!r}.")
        try:
            resample_filter(self.resample)
        except ValueError as exc:
            raise DataInputError(f"preprocessing.resample: {exc}.") from None
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise DataInputError(f"CacheSettings.chunk_size must be a positive integer, got {self.chunk_size!r}.")


def cache_fingerprint(manifest: pd.DataFrame, class_names: Sequence[str], settings: CacheSettings) -> str:
    """Hash of what determines the cache bytes: content hashes, labels, splits and decode settings.

    Source paths are left out on purpose: moving the raw folder does not change a pixel.
    """
    rows = manifest.loc[manifest["split"].isin(settings.splits), ["image_id", "sha256", "split", "label_id"]]
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "image_size": settings.image_size,
        "resample": settings.resample,
        "splits": list(settings.splits),
        "classes": list(class_names),
        "rows": rows.astype(str).values.tolist(),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()[:32]


def plan_image_cache(manifest: pd.DataFrame, class_names: Sequence[str], settings: CacheSettings) -> ArrayBundle:
    """Describe the cache; pixels are decoded only if the store does not already hold it."""
    settings.validate()
    size = settings.image_size
    arrays: dict[str, LazyArray | np.ndarray] = {}
    split_meta: dict[str, dict[str, object]] = {}
    for split in settings.splits:
        rows = manifest[manifest["split"] == split]
        sources = rows["source"].tolist()

        def blocks(sources: list[str] = sources, split: str = split) -> Iterator[np.ndarray]:
            return decode_chunks(
                sources, size, settings.resample, settings.num_workers, f"decoding {split}", settings.progress,
                settings.chunk_size,
            )

        arrays[f"{split}_images"] = LazyArray((len(rows), size, size, 3), "uint8", blocks=blocks)
        arrays[f"{split}_labels"] = rows["label_id"].to_numpy(dtype=np.int64)
        split_meta[split] = {"count": len(rows), "image_ids": rows["image_id"].tolist()}
    metadata = {
        "image_size": size,
        "resample": settings.resample,
        "class_names": list(class_names),
        "splits": split_meta,
        "format": CACHE_FORMAT_VERSION,
    }
    return ArrayBundle(cache_fingerprint(manifest, class_names, settings), arrays, metadata)


@dataclass(frozen=True)
class SplitArrays:
    """What every cache here holds per split: uint8 images, integer labels and image ids (metadata ``splits``).

    The training loop and :class:`~har_kedro.training.run_inputs.RunInputs` read a cache through this view,
    so the image cache and the caption cache (data/caption_cache.py) train the same way.
    """

    stored: StoredArrays
    kind = "cache"  # named in the unknown-split error

    @property
    def image_size(self) -> int:
        return int(self.stored.metadata["image_size"])

    @property
    def splits(self) -> list[str]:
        return list(self.stored.metadata["splits"])

    def images(self, split: str) -> np.ndarray:
        """``(N, S, S, 3)`` uint8, memory-mapped."""
        return self.stored[f"{self._check(split)}_images"]

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.stored[f"{self._check(split)}_labels"])

    def image_ids(self, split: str) -> list[str]:
        return list(self.stored.metadata["splits"][self._check(split)]["image_ids"])

    def _check(self, split: str) -> str:
        if split not in self.stored.metadata["splits"]:
            raise KeyError(f"split '{split}' is not in the {self.kind}; it holds {self.splits}")
        return split


@dataclass(frozen=True)
class ImageCache(SplitArrays):
    """Typed view over a loaded image cache: train/val/test (and evaluation sets) and the class names."""

    kind = "image cache"

    @property
    def class_names(self) -> list[str]:
        return list(self.stored.metadata["class_names"])
