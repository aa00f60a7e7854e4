import numpy as np
import pandas as pd
import pytest
from kedro.io.core import Version

from har_kedro.data.decoding import decode_into
from har_kedro.data.errors import DataInputError
from har_kedro.data.image_cache import (
    CacheSettings,
    ImageCache,
    cache_fingerprint,
    plan_image_cache,
)
from har_kedro.datasets import ContentAddressedArrayDataset, LazyArray
from tests.helpers import encode, photo_crop


@pytest.fixture
def manifest(tmp_path):
    rows = []
    for i, split in enumerate(["train", "train", "train", "val", "test", "unlabelled"]):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encode(photo_crop(i, 100, 80)))
        rows.append({
            "image_id": f"train/{i}.jpg", "source": str(path), "label": None if split == "unlabelled" else "a",
            "label_id": -1 if split == "unlabelled" else i % 2, "split": split, "sha256": f"{i:064d}",
        })
    return pd.DataFrame(rows)


def test_plan_describes_each_split(manifest):
    bundle = plan_image_cache(manifest, ["a", "b"], CacheSettings(image_size=16, progress=False))
    assert set(bundle.arrays) == {f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")}
    assert isinstance(bundle.arrays["train_images"], LazyArray)
    assert bundle.arrays["train_images"].shape == (3, 16, 16, 3)
    assert bundle.arrays["train_labels"].tolist() == [0, 1, 0]
    assert bundle.metadata["splits"]["val"]["image_ids"] == ["train/3.jpg"]


def test_fingerprint_tracks_what_changes_pixels(manifest):
    base = CacheSettings(image_size=16)
    fp = cache_fingerprint(manifest, ["a", "b"], base)
    assert fp == cache_fingerprint(manifest.assign(source="moved/" + manifest["source"]), ["a", "b"], base)
    assert fp != cache_fingerprint(manifest, ["a", "b"], CacheSettings(image_size=32))
    assert fp != cache_fingerprint(manifest, ["a", "b"], CacheSettings(image_size=16, resample="bicubic"))
    changed = manifest.copy()
    changed.loc[0, "sha256"] = "f" * 64
    assert fp != cache_fingerprint(changed, ["a", "b"], base)
    # The unlabelled split is not cached by default, so its rows do not count.
    unlabelled_changed = manifest.copy()
    unlabelled_changed.loc[5, "sha256"] = "e" * 64
    assert fp == cache_fingerprint(unlabelled_changed, ["a", "b"], base)


def test_saved_cache_loads_as_typed_view(manifest, tmp_path):
    settings = CacheSettings(image_size=16, progress=False, splits=("train", "val", "test", "unlabelled"))
    dataset = ContentAddressedArrayDataset(str(tmp_path / "c.json"), str(tmp_path / "store"), Version(None, None))
    dataset.save(plan_image_cache(manifest, ["a", "b"], settings))
    cache = ImageCache(ContentAddressedArrayDataset(str(tmp_path / "c.json"), str(tmp_path / "store"), Version(None, None)).load())
    assert cache.class_names == ["a", "b"] and cache.image_size == 16
    assert cache.images("train").shape == (3, 16, 16, 3)
    assert cache.labels("unlabelled").tolist() == [-1]
    assert cache.image_ids("test") == ["train/4.jpg"]
    assert cache.images("train").reshape(3, -1).std(axis=1).min() > 1.0
    with pytest.raises(KeyError, match="not in the image cache"):
        cache.images("holdout")


@pytest.mark.parametrize(("settings", "match"), [
    (CacheSettings(image_size=4), "image_size"),
    (CacheSettings(image_size=64, resample="cubic-ish"), "resample"),
    (CacheSettings(image_size=64, chunk_size=0), "chunk_size"),
])
def test_bad_settings(manifest, settings, match):
    with pytest.raises(DataInputError, match=match):
        plan_image_cache(manifest, ["a", "b"], settings)


def test_cache_is_decoded_one_chunk_at_a_time_into_the_same_bytes(manifest, tmp_path):
    """The writer is handed one chunk at a time, and the .npy files hold the bytes a memory map
    of the whole split filled by ``decode_into`` held (the previous way of writing the cache)."""
    settings = CacheSettings(image_size=16, progress=False, chunk_size=2, splits=("train", "val", "test", "unlabelled"))
    bundle = plan_image_cache(manifest, ["a", "b"], settings)
    handed = []

    def recording(lazy, split):
        def blocks():
            for block in lazy.blocks():
                handed.append((split, block.shape))
                yield block

        return LazyArray(lazy.shape, lazy.dtype, blocks=blocks)

    for split in settings.splits:
        bundle.arrays[f"{split}_images"] = recording(bundle.arrays[f"{split}_images"], split)
    dataset = ContentAddressedArrayDataset(str(tmp_path / "c.json"), str(tmp_path / "store"), Version(None, None))
    dataset.save(bundle)
    assert handed == [
        ("train", (2, 16, 16, 3)), ("train", (1, 16, 16, 3)),
        ("val", (1, 16, 16, 3)), ("test", (1, 16, 16, 3)), ("unlabelled", (1, 16, 16, 3)),
    ]
    for split in settings.splits:
        rows = manifest[manifest["split"] == split]
        reference = np.lib.format.open_memmap(tmp_path / f"{split}.npy", mode="w+", dtype=np.uint8, shape=(len(rows), 16, 16, 3))
        decode_into(rows["source"].tolist(), reference, 16, num_workers=1, progress=False)
        reference.flush()
        del reference
        stored = tmp_path / "store" / bundle.fingerprint / f"{split}_images.npy"
        assert stored.read_bytes() == (tmp_path / f"{split}.npy").read_bytes()
    # The chunk size changes neither the fingerprint nor the bytes.
    assert bundle.fingerprint == cache_fingerprint(manifest, ["a", "b"], CacheSettings(image_size=16, splits=settings.splits))
