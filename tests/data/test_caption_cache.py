import csv

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import Version

from har_kedro.data.caption_cache import (
    CAPTION_CACHE_FORMAT,
    CaptionCache,
    CaptionCacheSettings,
    plan_caption_cache,
)
from har_kedro.data.captions import CaptionSource, read_captions
from har_kedro.data.errors import DataInputError
from har_kedro.datasets import ContentAddressedArrayDataset, LazyArray
from tests.helpers import encode, photo_crop, solid

SETTINGS = CaptionCacheSettings(image_size=16, val_fraction=0.5, progress=False, num_workers=2)


def write_corpus(root, rows, files):
    """Write ``files`` (name -> bytes) under ``root/img`` and a captions CSV of ``rows``; returns the pairs."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / "img" / name).write_bytes(data)
    with (root / "captions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    pairs, rejected = read_captions(CaptionSource("csv", str(root / "captions.csv"), str(root / "img")), 2, False)
    assert rejected.empty
    return pairs


@pytest.fixture
def files():
    photos = {f"{i}.jpg": encode(photo_crop(i, 40, 30)) for i in range(5)}
    return {**photos, "p.png": encode(solid(20, 20, (0, 90, 200)), "PNG"), "copy.jpg": photos["0.jpg"]}


ROWS = [
    ("0.jpg", "a dog on grass"), ("0.jpg", "a brown dog"), ("1.jpg", "a dog on grass"),
    ("2.jpg", "a bridge"), ("3.jpg", "a cat"), ("4.jpg", "a tree"), ("p.png", "blue"),
    ("copy.jpg", "a copied dog"), ("copy.jpg", "a brown dog"),
]


@pytest.fixture
def pairs(tmp_path, files):
    return write_corpus(tmp_path / "corpus", ROWS, files)


def dataset(tmp_path, name="c"):
    return ContentAddressedArrayDataset(str(tmp_path / f"{name}.json"), str(tmp_path / "store"), Version(None, None))


def saved(tmp_path, bundle):
    dataset(tmp_path).save(bundle)
    return CaptionCache(dataset(tmp_path).load())


def captions_of(cache, split):
    start, count, ids = cache.caption_index(split)
    return {image: {cache.captions[c] for c in ids[s : s + n]} for image, s, n in zip(cache.image_ids(split), start, count)}


def test_images_are_split_with_all_their_captions_and_byte_copies_merged(pairs, tmp_path):
    bundle = plan_caption_cache(pairs, SETTINGS)
    meta = bundle.metadata
    assert meta["format"] == CAPTION_CACHE_FORMAT and meta["n_pairs"] == 9
    assert meta["n_images"] == 6 and meta["n_merged_duplicates"] == 1
    assert meta["splits"]["train"]["count"] + meta["splits"]["val"]["count"] == 6 and meta["splits"]["val"]["count"] == 3
    cache = saved(tmp_path, bundle)
    merged = {**captions_of(cache, "train"), **captions_of(cache, "val")}
    # copy.jpg has 0.jpg's bytes: one image (named by the smallest image id) with the captions of both files.
    assert "copy.jpg" not in merged
    assert merged["0.jpg"] == {"a dog on grass", "a brown dog", "a copied dog"}
    assert merged["1.jpg"] == {"a dog on grass"}
    assert set(cache.image_ids("train")).isdisjoint(cache.image_ids("val"))
    for split in ("train", "val"):
        assert cache.images(split).shape == (len(cache.image_ids(split)), 16, 16, 3)
        assert cache.images(split).dtype == np.uint8
        assert cache.images(split).reshape(len(cache.image_ids(split)), -1).std(axis=1).min() > 1.0
        assert all(a.dtype == np.int64 for a in cache.caption_index(split))
    assert cache.labels("train").tolist() == list(range(3))


def test_identical_captions_share_one_id(pairs, tmp_path):
    cache = saved(tmp_path, plan_caption_cache(pairs, SETTINGS))
    assert cache.captions == sorted(set(pairs["caption"])) and len(cache.captions) == 7
    ids = {}
    for split in ("train", "val"):
        start, count, flat = cache.caption_index(split)
        for image, s, n in zip(cache.image_ids(split), start, count):
            ids[image] = flat[s : s + n].tolist()
            assert ids[image] == sorted(set(ids[image]))  # deduplicated
    shared = cache.captions.index("a dog on grass")
    assert shared in ids["0.jpg"] and ids["1.jpg"] == [shared]
    assert len(ids["0.jpg"]) == 3  # "a brown dog" twice (0.jpg and its copy) is one id


def test_val_labels_point_at_a_caption_of_the_image(pairs, tmp_path):
    cache = saved(tmp_path, plan_caption_cache(pairs, SETTINGS))
    start, count, flat = cache.caption_index("val")
    assert cache.val_captions == sorted(set(flat.tolist()))
    labels = cache.labels("val")
    assert labels.dtype == np.int64 and len(labels) == len(cache.image_ids("val"))
    for i, label in enumerate(labels):
        assert cache.val_captions[label] in flat[start[i] : start[i] + count[i]]


def test_split_is_deterministic_and_follows_the_seed(pairs):
    splits = [plan_caption_cache(pairs, SETTINGS).metadata["splits"] for _ in range(2)]
    assert splits[0] == splits[1]
    shuffled = plan_caption_cache(pairs.sample(frac=1, random_state=3), SETTINGS)
    assert shuffled.metadata["splits"] == splits[0]
    seeds = {tuple(plan_caption_cache(pairs, CaptionCacheSettings(val_fraction=0.5, seed=s)).metadata["splits"]["val"]["image_ids"]) for s in range(8)}
    assert len(seeds) > 1


def test_val_size_is_capped_and_at_least_one(pairs):
    def n_val(**kwargs):
        return plan_caption_cache(pairs, CaptionCacheSettings(progress=False, **kwargs)).metadata["splits"]["val"]["count"]

    assert n_val(val_fraction=0.5) == 3
    assert n_val(val_fraction=0.5, max_val_images=2) == 2
    assert n_val(val_fraction=0.01) == 1
    assert n_val(val_fraction=0.0) == 0


def test_no_val_split_saves_empty_val_arrays(pairs, tmp_path):
    cache = saved(tmp_path, plan_caption_cache(pairs, CaptionCacheSettings(**{**vars(SETTINGS), "val_fraction": 0.0})))
    assert cache.images("val").shape == (0, 16, 16, 3) and cache.images("train").shape == (6, 16, 16, 3)
    assert cache.labels("val").tolist() == [] and cache.val_captions == []
    assert [a.tolist() for a in cache.caption_index("val")] == [[], [], []]


def test_fingerprint_ignores_paths_and_row_order_but_tracks_content_and_settings(pairs):
    fp = plan_caption_cache(pairs, SETTINGS).fingerprint
    assert len(fp) == 32 and int(fp, 16) >= 0
    assert plan_caption_cache(pairs, SETTINGS).fingerprint == fp
    assert plan_caption_cache(pairs.assign(source="/moved/" + pairs["source"]), SETTINGS).fingerprint == fp
    assert plan_caption_cache(pairs.iloc[::-1].reset_index(drop=True), SETTINGS).fingerprint == fp
    for change in ({"image_size": 32}, {"resample": "bicubic"}, {"val_fraction": 0.3}, {"max_val_images": 1}, {"seed": 1}):
        assert plan_caption_cache(pairs, CaptionCacheSettings(**{**vars(SETTINGS), **change})).fingerprint != fp
    recaptioned = pairs.copy()
    recaptioned.loc[3, "caption"] = "a long bridge"
    assert plan_caption_cache(recaptioned, SETTINGS).fingerprint != fp
    rehashed = pairs.copy()
    rehashed.loc[3, "sha256"] = "f" * 64
    assert plan_caption_cache(rehashed, SETTINGS).fingerprint != fp
    # Neither workers nor progress bars change a byte.
    assert plan_caption_cache(pairs, CaptionCacheSettings(**{**vars(SETTINGS), "num_workers": 1, "progress": True})).fingerprint == fp


def test_moved_corpus_reuses_the_store_without_decoding(tmp_path, files):
    first = plan_caption_cache(write_corpus(tmp_path / "a", ROWS, files), SETTINGS)
    dataset(tmp_path).save(first)
    moved = plan_caption_cache(write_corpus(tmp_path / "elsewhere" / "b", ROWS, files), SETTINGS)
    assert moved.fingerprint == first.fingerprint
    decoded = []

    def recording(lazy, split):
        def blocks():
            decoded.append(split)
            yield from lazy.blocks()

        return LazyArray(lazy.shape, lazy.dtype, blocks=blocks)

    for split in ("train", "val"):
        moved.arrays[f"{split}_images"] = recording(moved.arrays[f"{split}_images"], split)
    dataset(tmp_path).save(moved)
    assert decoded == []
    assert CaptionCache(dataset(tmp_path).load()).fingerprint == first.fingerprint
    # A new fingerprint does decode, through the same producers.
    changed = plan_caption_cache(write_corpus(tmp_path / "c", ROWS, files), CaptionCacheSettings(**{**vars(SETTINGS), "seed": 5}))
    for split in ("train", "val"):
        changed.arrays[f"{split}_images"] = recording(changed.arrays[f"{split}_images"], split)
    dataset(tmp_path).save(changed)
    assert decoded == ["train", "val"]


def test_unknown_split_is_a_key_error(pairs, tmp_path):
    cache = saved(tmp_path, plan_caption_cache(pairs, SETTINGS))
    assert cache.image_size == 16
    for call in (cache.images, cache.labels, cache.caption_index, cache.image_ids):
        with pytest.raises(KeyError, match="'test'"):
            call("test")


@pytest.mark.parametrize(("change", "key"), [
    ({"image_size": 4}, "image_size"),
    ({"image_size": True}, "image_size"),
    ({"resample": "cubic-ish"}, "resample"),
    ({"val_fraction": 0.6}, "val_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"),
    ({"val_fraction": "0.1"}, "val_fraction"),
    ({"max_val_images": 0}, "max_val_images"),
    ({"seed": 1.5}, "seed"),
    ({"num_workers": "many"}, "num_workers"),
    ({"progress": "yes"}, "progress"),
])
def test_bad_settings_name_the_key(pairs, change, key):
    with pytest.raises(DataInputError, match=rf"pretraining\.cache\.{key} "):
        plan_caption_cache(pairs, CaptionCacheSettings(**change))
    with pytest.raises(DataInputError, match=rf"somewhere\.{key} "):
        CaptionCacheSettings(**change).validate("somewhere")


def test_fewer_than_two_distinct_images_is_an_error(tmp_path, files):
    copies = write_corpus(tmp_path, [("0.jpg", "a dog"), ("copy.jpg", "the same dog")], files)
    with pytest.raises(DataInputError, match="1 distinct image"):
        plan_caption_cache(copies, SETTINGS)
    empty = pd.DataFrame(columns=["pair_id", "image_id", "source", "sha256", "caption"])
    with pytest.raises(DataInputError, match="0 distinct image"):
        plan_caption_cache(empty, SETTINGS)
    with pytest.raises(DataInputError, match="lack columns"):
        plan_caption_cache(pd.DataFrame({"image_id": ["a"]}), SETTINGS)
