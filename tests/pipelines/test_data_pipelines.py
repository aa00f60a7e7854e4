"""Real Kedro sessions over ingestion + preprocessing, on the demo and on real photographs.

The demo's ingestion and preprocessing are those of the suite's shared trained demo project
(``reported_project``); a second data run happens in a copy of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.image_cache import ImageCache
from har_kedro.demo import DemoSpec, generate_demo_dataset
from tests.conftest import ReportedProject
from tests.helpers import encode, photo_crop, write_kaggle
from tests.pipelines.conftest import runner_for

pytestmark = pytest.mark.slow


def _versions(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_demo_ingestion_and_preprocessing(reported_project: ReportedProject, tmp_path, monkeypatch):
    monkeypatch.chdir(reported_project.root)  # the image cache names its store relative to the project
    context = reported_project.context()
    catalog = context.catalog
    manifest = catalog.load("manifest")
    rejected = catalog.load("rejected_images")

    # The demo's deliberately broken entries all land in the rejected table; nothing else does.
    expected = generate_demo_dataset(tmp_path / "reference", DemoSpec(**context.params["ingestion"]["source"]["demo"]))
    # The shifted evaluation set (ingestion.evaluation_sets) is a split of its own, its ids prefixed with its name.
    shifted = manifest[manifest["split"] == "shifted"]
    per_class = context.params["ingestion"]["evaluation_sets"]["shifted"]["demo"]["images_per_class"]
    assert len(shifted) == per_class * len(HAR_CLASSES) and shifted["image_id"].str.startswith("shifted/").all()
    assert shifted.groupby("label").size().eq(per_class).all()
    manifest = manifest[manifest["split"] != "shifted"]
    assert len(manifest) == expected.n_good
    assert len(rejected) == len(expected.broken)
    assert set(rejected["category"]) == {
        "corrupt_image", "empty_file", "not_an_image", "missing_file", "unlisted_file",
        "unknown_label", "duplicate_row", "duplicate_image",
    }
    for name in expected.convertible:
        assert f"train/{name}" in set(manifest["image_id"]), name
    assert set(manifest["label"]) == set(HAR_CLASSES)
    assert manifest.groupby("label")["split"].value_counts().unstack().min().min() >= 1

    cache = ImageCache(catalog.load("image_cache"))
    size = context.params["preprocessing"]["image_size"]
    for split in ("train", "val", "test"):
        rows = manifest[manifest["split"] == split]
        assert cache.images(split).shape == (len(rows), size, size, 3)
        assert cache.image_ids(split) == rows["image_id"].tolist()
        assert cache.labels(split).tolist() == rows["label_id"].tolist()
    assert cache.images("train").reshape(len(cache.images("train")), -1).std(axis=1).min() > 5  # real pixels
    assert cache.image_ids("shifted") == shifted["image_id"].tolist()
    assert catalog.load("class_names") == list(HAR_CLASSES)
    prompts = catalog.load("class_prompts")
    assert prompts["using_laptop"][0] == "a photo of a person using a laptop."


def test_a_second_data_run_adds_versions_and_reuses_the_cache(reported_project: ReportedProject, reported_copy: Path):
    """Unchanged inputs give the same manifest bytes and reuse the cache (in a copy of the shared demo project)."""
    run = runner_for(reported_copy)
    run("ingestion", runtime_params=reported_project.runtime_params)
    run("preprocessing", runtime_params=reported_project.runtime_params)
    manifest_dir = reported_copy / "data/demo/02_intermediate/manifest.parquet"
    versions = _versions(manifest_dir)
    assert len(versions) == 2
    blobs = [(manifest_dir / v / "manifest.parquet").read_bytes() for v in versions]
    assert blobs[0] == blobs[1]
    assert len(_versions(reported_copy / "data/demo/05_model_input/image_cache.json")) == 2
    assert len(list((reported_copy / "data/demo/05_model_input/image_cache_store").iterdir())) == 1


def _real_photo_kaggle(root: Path) -> dict[str, str]:
    """Three real photographs per class at assorted sizes, plus broken files; returns expected rejections."""
    rows, files = [], {}
    sizes = [(400, 300), (640, 427), (300, 400), (1024, 768), (250, 250)]
    n = 0
    for c, cls in enumerate(HAR_CLASSES):
        for k in range(3):
            n += 1
            w, h = sizes[(c + k) % len(sizes)]
            rows.append((f"Image_{n}.jpg", cls))
            files[f"Image_{n}.jpg"] = encode(photo_crop(n, w, h, seed=c), quality=88)
    broken = {
        "Image_900.jpg": (files["Image_1.jpg"][:5000], "corrupt_image"),
        "Image_901.jpg": (b"", "empty_file"),
        "Image_902.jpg": (b"<html>not found</html>", "not_an_image"),
    }
    for name, (data, _) in broken.items():
        rows.append((name, "calling"))
        files[name] = data
    rows.append(("Image_903.jpg", "calling"))
    write_kaggle(root, rows, files)
    expected = {name: category for name, (_, category) in broken.items()}
    expected["Image_903.jpg"] = "missing_file"
    return expected


def test_real_photographs_where_the_readme_says(run_pipeline, project):
    expected = _real_photo_kaggle(project / "data/01_raw/har")
    # The 45 pictures are crops of two photographs, some of them overlapping look-alikes: near-duplicate
    # grouping is off here and tested on the real sample (tests/data/test_near_duplicates.py, test_real_sample.py).
    context = run_pipeline("ingestion", env=None, runtime_params={"ingestion": {"near_duplicates": {"max_distance": None}}})
    rejected = context.catalog.load("rejected_images")
    assert dict(zip(rejected["image_id"], rejected["category"])) == {f"train/{k}": v for k, v in expected.items()}
    assert rejected["reason"].str.len().min() > 10
    context = run_pipeline("preprocessing", env=None)
    cache = ImageCache(context.catalog.load("image_cache"))
    assert cache.image_size == 224
    total = sum(len(cache.image_ids(s)) for s in cache.splits)
    assert total == 45
    manifest = context.catalog.load("manifest")
    first = manifest[manifest["split"] == "train"].iloc[0]
    decoded = cache.images("train")[0].astype(np.float64)
    photo = Image.open(first["source"]).convert("RGB")
    side = min(photo.size)
    box = ((photo.width - side) // 2, (photo.height - side) // 2)
    reference = np.asarray(photo.crop((*box, box[0] + side, box[1] + side)).resize((224, 224)), dtype=np.float64)
    assert np.abs(decoded - reference).mean() < 8.0
