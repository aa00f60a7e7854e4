"""Near-duplicate search and grouping: the vectorised search against a plain loop, transitive groups,
and (on the real-photograph sample) re-encoded, resized and cropped copies found while distinct
photographs are not."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from har_kedro.data.inspection import inspect_image
from har_kedro.data.near_duplicates import DEFAULT_MAX_DISTANCE, HASH_BITS, components, hamming, hash_words, near_pairs
from tests.real_sample import real_sample_dir


def _random_hashes(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(HASH_BITS // 8).hex() for _ in range(n)]


def _flip(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << int(bit)
    return f"{value:0{HASH_BITS // 4}x}"


def test_vectorised_search_finds_exactly_the_pairs_a_loop_finds():
    hashes = _random_hashes(300, 0)
    rng = np.random.default_rng(1)
    # Plant copies at known distances (random hashes are ~128 bits apart, far beyond any threshold).
    for source, copy_index, distance in [(3, 10, 0), (5, 200, 12), (7, 299, 40), (8, 150, 41)]:
        hashes[copy_index] = _flip(hashes[source], list(rng.choice(HASH_BITS, distance, replace=False)))
    expected = {(i, j) for i in range(300) for j in range(i + 1, 300) if hamming(hashes[i], hashes[j]) <= 40}
    found = {tuple(p) for p in near_pairs(hash_words(hashes), 40, block=7).tolist()}  # blocks that do not divide 300
    assert found == expected == {(3, 10), (5, 200), (7, 299)}


def test_hamming_counts_bits_across_all_four_words():
    zero = "0" * 64
    assert hamming(zero, zero) == 0 and hamming(zero, "f" * 64) == 256 and hamming(zero, _flip(zero, [0, 63, 64, 255])) == 4


def test_groups_are_transitive():
    # 0 ~ 1 ~ 2 (a chain), 3 alone, 4 ~ 5.
    pairs = np.array([[0, 1], [1, 2], [4, 5]])
    labels = components(6, pairs)
    assert labels[0] == labels[1] == labels[2] and len({labels[0], labels[3], labels[4]}) == 3 and labels[4] == labels[5]
    assert components(0, np.zeros((0, 2), dtype=np.int64)).shape == (0,)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _reencoded(image: Image.Image) -> bytes:
    return _jpeg(image, quality=40)


def _half_size(image: Image.Image) -> bytes:
    return _jpeg(image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR))


def _cropped(image: Image.Image) -> bytes:  # 1 % off every side
    dx, dy = max(1, image.width // 100), max(1, image.height // 100)
    return _jpeg(image.crop((dx, dy, image.width - dx, image.height - dy)))


EDITS: dict[str, Callable[[Image.Image], bytes]] = {"reencoded": _reencoded, "half_size": _half_size, "cropped": _cropped}


@pytest.fixture(scope="module")
def sample_hashes() -> pd.DataFrame:
    folder = real_sample_dir()
    rows = []
    for path in sorted((folder / "train").glob("*.jpg")):
        data = path.read_bytes()
        rows.append({"name": path.name, "dhash": inspect_image(data).dhash, "data": data})
    return pd.DataFrame(rows)


def test_no_two_sample_photographs_are_near_duplicates_at_the_default_threshold(sample_hashes):
    assert len(sample_hashes) == 600
    pairs = near_pairs(hash_words(sample_hashes["dhash"].tolist()), DEFAULT_MAX_DISTANCE)
    named = [(sample_hashes["name"][i], sample_hashes["name"][j]) for i, j in pairs]
    assert not named, named


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_copies_of_sample_photographs_are_found(sample_hashes, edit):
    originals = sample_hashes.iloc[::12]  # 50 photographs, every class
    copies = [inspect_image(EDITS[edit](Image.open(io.BytesIO(data)).convert("RGB"))).dhash for data in originals["data"]]
    hashes = sample_hashes["dhash"].tolist() + copies
    pairs = {tuple(p) for p in near_pairs(hash_words(hashes), DEFAULT_MAX_DISTANCE).tolist()}
    expected = {(int(i), 600 + k) for k, i in enumerate(originals.index)}
    assert pairs == expected, sorted(pairs ^ expected)[:10]


def test_the_hash_follows_the_exif_rotation(tmp_path: Path):
    image = Image.open(next((real_sample_dir() / "train").glob("*.jpg"))).convert("RGB")
    upright = _jpeg(image.transpose(Image.Transpose.ROTATE_90))
    exif = Image.Exif()
    exif[0x0112] = 8  # stored unrotated, shown rotated by 90 degrees counter-clockwise
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    assert hamming(inspect_image(upright).dhash, inspect_image(out.getvalue()).dhash) <= 10


def test_ingestion_groups_edited_copies_of_sample_photographs_into_one_split(tmp_path: Path):
    """A Kaggle layout of 45 sample photographs (3 per class) plus an edited copy of 6 of them (each edit
    twice), under new names: every copy shares its original's group and split; nothing else is grouped."""
    from har_kedro.data.ingestion import ingest, summarise
    from tests.helpers import write_kaggle

    folder = real_sample_dir()
    rows = [line.split(",") for line in (folder / "Training_set.csv").read_text().splitlines()[1:] if line]
    chosen = [next(r for r in rows if r[1] == label and sum(1 for q in rows[: rows.index(r)] if q[1] == label) == k)
              for label in sorted({r[1] for r in rows}) for k in range(3)]
    listing, files, copies = [], {}, {}
    for index, (name, label) in enumerate(chosen):
        data = (folder / "train" / name).read_bytes()
        listing.append((f"Image_{index + 1}.jpg", label))
        files[f"Image_{index + 1}.jpg"] = data
        if index % 8 == 0:  # photographs 1, 9, 17, 25, 33, 41: each edit, in turn
            edit = list(EDITS.values())[(index // 8) % len(EDITS)]
            copy_name = f"Image_{100 + index}.jpg"
            listing.append((copy_name, label))
            files[copy_name] = edit(Image.open(io.BytesIO(data)).convert("RGB"))
            copies[f"train/{copy_name}"] = f"train/Image_{index + 1}.jpg"
    root = write_kaggle(tmp_path / "har", listing, files)
    manifest, rejected = ingest({"kind": "kaggle", "root": str(root)}, {"split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 1}, "progress": False})
    assert rejected.empty
    table = manifest.set_index("image_id")
    for copy_id, original in copies.items():
        assert table.loc[copy_id, "group_id"] == table.loc[original, "group_id"] == original
        assert table.loc[copy_id, "split"] == table.loc[original, "split"]
    summary = summarise(manifest, rejected)
    assert summary["near_duplicate_groups"] == len(copies) == 6 and summary["near_duplicate_images"] == 12
