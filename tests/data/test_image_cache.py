import numpy as np
import pandas as pd
import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.data.image_cache import CacheSettings, ImageCache, cache_fingerprint, plan_image_cache
from har_kedro.datasets import ContentAddressedArrayDataset, LazyArray
from kedro.io.core import Version
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
])
def test_bad_settings(manifest, settings, match):
    with pytest.raises(DataInputError, match=match):
        plan_image_cache(manifest, ["a", "b"], settings)
