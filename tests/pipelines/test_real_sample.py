"""Ingestion and preprocessing of real HAR photographs in a real Kedro session, with the real settings.

The project's own configuration (``conf/base``: 224 px, 80/10/10 split, seed 42) with one change,
the source folder, given as a runtime parameter the way ``--params`` does. The outputs are checked
against the photographs themselves, read independently here with PIL and hashlib.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.image_cache import ImageCache
from tests.real_sample import real_sample_dir

# One worker runs the module (pytest --dist loadgroup): the sample is ingested once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_sample")]


@pytest.fixture(scope="module")
def sample() -> Path:
    return real_sample_dir()


@pytest.fixture(scope="module")
def real_run(sample: Path, tmp_path_factory: pytest.TempPathFactory):
    """Ingestion then preprocessing of the sample in one throw-away project; the context after each."""
    import os

    from tests.pipelines.conftest import make_project, runner_for

    root = make_project(tmp_path_factory.mktemp("real") / "project")
    previous = Path.cwd()
    os.chdir(root)
    try:
        run = runner_for(root)
        params = {"ingestion": {"source": {"root": str(sample)}}}
        ingested = run("ingestion", env=None, runtime_params=params)
        preprocessed = run("preprocessing", env=None, runtime_params=params)
        yield root, ingested, preprocessed
    finally:
        os.chdir(previous)


def _labels(sample: Path) -> dict[str, str]:
    table = pd.read_csv(sample / "Training_set.csv")
    return dict(zip(table["filename"], table["label"], strict=True))


def _reference_pixels(path: Path, size: int) -> np.ndarray:
    """Shorter side to ``size``, centre square, RGB: the cache's contract, computed the plain way."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return np.asarray(image.crop(box).resize((size, size), Image.Resampling.BILINEAR), dtype=np.int16)


def test_the_manifest_matches_the_photographs(sample: Path, real_run) -> None:
    root, ingested, _ = real_run
    manifest = ingested.catalog.load("manifest")
    labels = _labels(sample)
    assert len(manifest) == len(labels) == 600
    assert manifest["image_id"].tolist() == sorted(manifest["image_id"], key=lambda s: int(s.split("_")[-1].split(".")[0]))
    for row in manifest.itertuples():
        path = Path(row.source)
        assert path.parent == sample / "train"  # read where it lies, never copied
        assert row.label == labels[path.name]
        assert HAR_CLASSES[row.label_id] == row.label
        data = path.read_bytes()
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.n_bytes == len(data)
        with Image.open(path) as image:
            assert (row.width, row.height) == image.size and row.format == "JPEG"
    # Stratified 80/10/10 of 40 photos per class, as conf/base says.
    counts = manifest.groupby(["label", "split"]).size().unstack()
    assert (counts["train"] == 32).all() and (counts["val"] == 4).all() and (counts["test"] == 4).all()
    assert not list(root.rglob("*.jpg")), "photographs were copied into the project"


def test_nothing_is_rejected_from_the_clean_sample(real_run) -> None:
    _, ingested, _ = real_run
    rejected = ingested.catalog.load("rejected_images")
    summary = ingested.catalog.load("ingestion_summary")
    assert list(rejected.columns) == ["image_id", "source", "category", "reason"]
    assert len(rejected) == 0  # 600 distinct, readable JPEGs, every label known
    assert summary["images_kept"] == 600 and summary["images_rejected"] == 0
    # Near-duplicate detection ran at the real settings and found no two of the 600 photographs alike.
    assert summary["near_duplicate_groups"] == 0 and summary["near_duplicate_images"] == 0
    manifest = ingested.catalog.load("manifest")
    assert manifest["dhash"].str.fullmatch(r"[0-9a-f]{64}").all() and (manifest["group_id"] == manifest["image_id"]).all()


def test_the_cache_holds_the_photographs_at_224_px(real_run) -> None:
    _, ingested, preprocessed = real_run
    manifest = ingested.catalog.load("manifest")
    cache = ImageCache(preprocessed.catalog.load("image_cache"))
    assert preprocessed.params["preprocessing"]["image_size"] == cache.image_size == 224
    for split in ("train", "val", "test"):
        rows = manifest[manifest["split"] == split]
        images = cache.images(split)
        assert images.shape == (len(rows), 224, 224, 3) and images.dtype == np.uint8
        assert cache.image_ids(split) == rows["image_id"].tolist()
        assert cache.labels(split).tolist() == rows["label_id"].tolist()
        for i in np.linspace(0, len(rows) - 1, 4).astype(int):  # first, last and two between
            expected = _reference_pixels(Path(rows["source"].iloc[i]), 224)
            diff = np.abs(images[i].astype(np.int16) - expected)
            # Same picture, same crop; resampling details differ by a few levels at most on average.
            assert diff.mean() < 4.0, (split, rows["image_id"].iloc[i], diff.mean())
        other = np.abs(images[0].astype(np.int16) - _reference_pixels(Path(rows["source"].iloc[1]), 224)).mean()
        assert other > 10.0  # a different photograph is far off: the comparison can fail
