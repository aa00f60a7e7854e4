"""The decoded image cache for contrastive image-caption pretraining.

Pairs are grouped by image content: files with identical bytes (same sha256) are one image
whose captions are merged, so no picture is in both splits. Distinct images are split into
train/val by a seeded hash of their sha256, and identical caption texts share one caption id
across the corpus. Each image's caption ids are a CSR slice (``start``, ``count``, ``ids``).
Nothing depends on the row order of the pairs, so the fingerprint (content hashes, image ids,
captions and settings, never the source paths) decides every byte of the cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from har_kedro.data.decoding import RESAMPLING, decode_chunks
from har_kedro.data.errors import DataInputError
from har_kedro.data.image_cache import SplitArrays
from har_kedro.data.parallel import resolve_workers
from har_kedro.datasets.array_store import ArrayBundle, LazyArray

# Bump when the cache's bytes change for the same inputs and settings.
CAPTION_CACHE_FORMAT = 1
CAPTION_SPLITS = ("train", "val")
_NEEDED = ["image_id", "source", "sha256", "caption"]


@dataclass(frozen=True)
class CaptionCacheSettings:
    image_size: int = 224
    resample: str = "bilinear"
    val_fraction: float = 0.1  # share of distinct images (not pairs) held out for val, in [0, 0.5]
    max_val_images: int = 2000  # val scores image->caption retrieval over all val captions (N x N)
    seed: int = 0  # which images go to val
    num_workers: int | str | None = "auto"
    progress: bool = True

    def validate(self, where: str = "pretraining.cache") -> None:
        """Raise DataInputError naming ``<where>.<key>`` for the first bad setting."""
        def whole(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not whole(self.image_size) or not 8 <= self.image_size <= 2048:
            raise DataInputError(f"{where}.image_size is {self.image_size!r}; set it to an integer in [8, 2048].")
        if not isinstance(self.resample, str) or self.resample not in RESAMPLING:
            raise DataInputError(f"{where}.resample is {self.resample!r}; set it to one of {sorted(RESAMPLING)}.")
        fraction = self.val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 0.5:
            raise DataInputError(f"{where}.val_fraction is {fraction!r}; set it to a number in [0, 0.5].")
        if not whole(self.max_val_images) or self.max_val_images < 1:
            raise DataInputError(f"{where}.max_val_images is {self.max_val_images!r}; set it to a positive integer.")
        if not whole(self.seed):
            raise DataInputError(f"{where}.seed is {self.seed!r}; set it to an integer.")
        try:
            resolve_workers(self.num_workers)
        except (ValueError, TypeError):
            raise DataInputError(f"{where}.num_workers is {self.num_workers!r}; set it to 'auto' or a positive integer.") from None
        if not isinstance(self.progress, bool):
            raise DataInputError(f"{where}.progress is {self.progress!r}; set it to true or false.")


def caption_cache_fingerprint(pairs: pd.DataFrame, settings: CaptionCacheSettings) -> str:
    """Hash of the sorted ``(sha256, caption, image_id)`` rows and the settings that change bytes.

    Source paths (moving the corpus folder changes nothing) and row order are left out.
    """
    payload = {
        "format": CAPTION_CACHE_FORMAT,
        "image_size": settings.image_size,
        "resample": settings.resample,
        "val_fraction": float(settings.val_fraction),  # 0 and 0.0 are one setting
        "max_val_images": settings.max_val_images,
        "seed": settings.seed,
        "pairs": sorted(pairs[["sha256", "caption", "image_id"]].astype(str).values.tolist()),
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()[:32]


def _images(pairs: pd.DataFrame, captions: list[str]) -> pd.DataFrame:
    """One row per distinct sha256: representative image_id/source (the smallest image_id) and sorted caption ids."""
    ids = {text: i for i, text in enumerate(captions)}
    ordered = pairs.assign(caption_id=pairs["caption"].map(ids)).sort_values(["sha256", "image_id"], kind="stable")
    grouped = ordered.groupby("sha256", sort=True)
    images = grouped[["image_id", "source"]].first()
    images["caption_ids"] = [sorted({int(i) for i in ids}) for ids in grouped["caption_id"].agg(list)]
    images["n_ids"] = grouped["image_id"].nunique()
    return images


def _split(images: pd.DataFrame, settings: CaptionCacheSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, val)``: images ordered by ``sha256(f"{seed}:{sha}")``, the first ``n_val`` held out."""
    n = len(images)
    if n < 2:
        raise DataInputError(f"the caption corpus has {n} distinct image(s); pretraining needs at least 2 (one per split), so add images.")
    n_val = min(settings.max_val_images, max(round(settings.val_fraction * n), int(settings.val_fraction > 0)), n - 1)
    if n_val < 1 and settings.val_fraction > 0:  # only reachable with an unvalidated max_val_images < 1
        raise DataInputError(f"val_fraction {settings.val_fraction} of {n} images leaves val empty; raise val_fraction or max_val_images.")
    keys = [hashlib.sha256(f"{settings.seed}:{sha}".encode()).hexdigest() for sha in images.index]
    ordered = images.iloc[np.argsort(np.array(keys), kind="stable")]
    return ordered.iloc[n_val:], ordered.iloc[:n_val]


def _csr(caption_ids: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, count, ids)`` int64: image ``i``'s ids are ``ids[start[i] : start[i] + count[i]]``."""
    count = np.array([len(ids) for ids in caption_ids], dtype=np.int64)
    start = np.cumsum(count) - count
    flat = np.array([i for ids in caption_ids for i in ids], dtype=np.int64)
    return start, count, flat


def plan_caption_cache(pairs: pd.DataFrame, settings: CaptionCacheSettings) -> ArrayBundle:
    """Describe the cache; pixels are decoded only if the store does not already hold it."""
    settings.validate()
    missing = [c for c in _NEEDED if c not in pairs.columns]
    if missing:
        raise DataInputError(f"the caption pairs lack columns {missing}; build them with read_captions.")
    pairs = pairs.astype({"image_id": str, "source": str, "sha256": str, "caption": str})
    captions = sorted(set(pairs["caption"]))
    images = _images(pairs, captions)
    parts = dict(zip(CAPTION_SPLITS, _split(images, settings), strict=True))
    size, arrays, split_meta = settings.image_size, {}, {}
    for split, rows in parts.items():
        def blocks(sources: list[str] = rows["source"].tolist(), split: str = split) -> Iterator[np.ndarray]:
            return decode_chunks(sources, size, settings.resample, settings.num_workers, f"decoding {split} captions", settings.progress)

        arrays[f"{split}_images"] = LazyArray((len(rows), size, size, 3), "uint8", blocks=blocks)
        start, count, flat = _csr(rows["caption_ids"])
        arrays.update({f"{split}_caption_start": start, f"{split}_caption_count": count, f"{split}_caption_ids": flat})
        split_meta[split] = {"count": len(rows), "image_ids": rows["image_id"].tolist()}
    val_captions = sorted(set(arrays["val_caption_ids"].tolist()))
    position = {c: i for i, c in enumerate(val_captions)}
    firsts = arrays["val_caption_ids"][arrays["val_caption_start"]]  # each val image's smallest caption id
    arrays["train_labels"] = np.arange(len(parts["train"]), dtype=np.int64)
    arrays["val_labels"] = np.array([position[int(c)] for c in firsts], dtype=np.int64)
    metadata = {
        "image_size": size, "resample": settings.resample, "format": CAPTION_CACHE_FORMAT,
        "captions": captions, "val_captions": val_captions, "splits": split_meta,
        "n_pairs": len(pairs), "n_images": len(images), "n_merged_duplicates": int(images["n_ids"].sum() - len(images)),
    }
    return ArrayBundle(caption_cache_fingerprint(pairs, settings), arrays, metadata)


@dataclass(frozen=True)
class CaptionCache(SplitArrays):
    """Typed view over a loaded caption cache: train and val images, their caption ids, the captions."""

    kind = "caption cache"

    @property
    def captions(self) -> list[str]:
        return list(self.stored.metadata["captions"])

    @property
    def val_captions(self) -> list[int]:
        return [int(c) for c in self.stored.metadata["val_captions"]]

    @property
    def fingerprint(self) -> str:
        return self.stored.fingerprint

    def caption_index(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(start, count, ids)``: image ``i``'s caption ids are ``ids[start[i] : start[i] + count[i]]``."""
        split = self._check(split)
        return tuple(np.asarray(self.stored[f"{split}_caption_{k}"]) for k in ("start", "count", "ids"))  # type: ignore[return-value]
