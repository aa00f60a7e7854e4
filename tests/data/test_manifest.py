
import numpy as np
import pytest
from PIL import Image

from har_kedro.data.errors import DataInputError
from har_kedro.data.ingestion import collect, ingest, summarise
from har_kedro.data.manifest import (
    MANIFEST_COLUMNS,
    REJECTED_COLUMNS,
    SplitSpec,
    build_manifest,
)
from har_kedro.data.source_config import SourceConfig
from tests.helpers import encode, photo_crop, write_kaggle

CLASSES = ["calling", "running", "sitting"]
SPLIT = SplitSpec({"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)


def _bad_kaggle(root):
    """Five good photos per class plus one of every bad input the ingestion must survive."""
    rows, files = [], {}
    n = 0
    for c, cls in enumerate(CLASSES):
        for k in range(5):
            n += 1
            rows.append((f"Image_{n}.jpg", cls))
            files[f"Image_{n}.jpg"] = encode(photo_crop(c * 5 + k, 200 + 10 * k, 150, seed=c))
    good = encode(photo_crop(99, 120, 90))
    exif_image = photo_crop(98, 80, 40)
    exif = exif_image.getexif()
    exif[0x0112] = 6
    extra = {
        "truncated.jpg": (good[: len(good) // 2], "calling"),
        "empty.jpg": (b"", "calling"),
        "notes.jpg": (b"hello, I am text", "running"),
        "juggling.jpg": (encode(photo_crop(97, 64, 64)), "juggling"),
        "copy.jpg": (files["Image_1.jpg"], "calling"),
        "grey.jpg": (encode(photo_crop(96, 64, 48).convert("L")), "sitting"),
        "cmyk.jpg": (encode(photo_crop(95, 64, 48).convert("CMYK")), "sitting"),
        "palette.png": (encode(photo_crop(94, 64, 48).convert("P"), "PNG"), "running"),
        "alpha.png": (encode(photo_crop(93, 64, 48).convert("RGBA"), "PNG"), "running"),
        "deep.png": (encode(Image.fromarray(np.full((40, 30), 50000, np.uint16)), "PNG"), "calling"),
        "rotated.jpg": (encode(exif_image, exif=exif), "sitting"),
        "huge.png": (encode(Image.new("RGB", (4000, 3000)), "PNG"), "sitting"),
    }
    for name, (data, label) in extra.items():
        rows.append((name, label))
        files[name] = data
    rows.append(("Image_2.jpg", "calling"))  # duplicate row
    rows.append(("ghost.jpg", "calling"))  # missing file
    files["unlisted.jpg"] = good
    return write_kaggle(root, rows, files)


@pytest.fixture
def bad_kaggle(tmp_path):
    return _bad_kaggle(tmp_path / "har")


def test_every_bad_input_is_quarantined_with_a_reason(bad_kaggle):
    config = SourceConfig(kind="kaggle", root=str(bad_kaggle))
    manifest, rejected = build_manifest(collect(config, CLASSES), CLASSES, SPLIT, max_pixels=10_000_000, progress=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(rejected.columns) == REJECTED_COLUMNS
    why = dict(zip(rejected["image_id"], rejected["reason"]))
    assert "truncated" in why["train/truncated.jpg"]
    assert why["train/empty.jpg"] == "empty file (0 bytes)"
    assert "not an image" in why["train/notes.jpg"]
    assert "label 'juggling' is not one of the 3 classes" in why["train/juggling.jpg"]
    assert "duplicate image" in why["train/copy.jpg"] and "train/Image_1.jpg" in why["train/copy.jpg"]
    assert "duplicate row" in why["train/Image_2.jpg"]
    assert "does not exist" in why["train/ghost.jpg"]
    assert "not listed" in why["train/unlisted.jpg"]
    assert "max_image_pixels" in why["train/huge.png"]
    category = dict(zip(rejected["image_id"], rejected["category"]))
    assert [category[f"train/{name}"] for name in ("truncated.jpg", "empty.jpg", "notes.jpg", "juggling.jpg", "copy.jpg", "Image_2.jpg", "ghost.jpg", "unlisted.jpg", "huge.png")] == [
        "corrupt_image", "empty_file", "not_an_image", "unknown_label", "duplicate_image", "duplicate_row", "missing_file", "unlisted_file", "too_large",
    ]
    kept = set(manifest["image_id"])
    # Nothing lost: every file and row is in exactly one table.
    assert {f"train/Image_{i}.jpg" for i in range(1, 16)} <= kept
    assert kept.isdisjoint(set(rejected["image_id"]) - {"train/Image_2.jpg"})
    modes = dict(zip(manifest["image_id"], manifest["mode"]))
    assert (modes["train/grey.jpg"], modes["train/cmyk.jpg"], modes["train/palette.png"], modes["train/alpha.png"], modes["train/deep.png"]) == (
        "L", "CMYK", "P", "RGBA", "I;16",
    )
    rotated = manifest.set_index("image_id").loc["train/rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (40, 80)
    assert manifest["sha256"].is_unique
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert (manifest["label_id"] == manifest["label"].map(CLASSES.index)).all()


def test_same_inputs_give_byte_identical_manifest(bad_kaggle, tmp_path):
    params = {"class_names": CLASSES, "split": {"fractions": dict(SPLIT.fractions), "seed": 3}, "progress": False}
    source = {"kind": "kaggle", "root": str(bad_kaggle)}
    blobs = []
    for attempt in range(2):
        manifest, rejected = ingest(source, {**params, "num_workers": attempt + 1})
        out = tmp_path / f"m{attempt}.parquet"
        manifest.to_parquet(out)
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1]
    other, _ = ingest(source, {**params, "split": {"fractions": dict(SPLIT.fractions), "seed": 4}})
    assert not other["split"].equals(manifest["split"])


def test_conflicting_duplicate_images_are_all_rejected(tmp_path):
    photos = {f"Image_{i}.jpg": encode(photo_crop(i, 64, 64)) for i in range(1, 13)}
    photos["Image_13.jpg"] = photos["Image_1.jpg"]
    rows = [(f"Image_{i}.jpg", CLASSES[i % 3]) for i in range(1, 13)] + [("Image_13.jpg", "sitting")]
    root = write_kaggle(tmp_path / "har", rows, photos)
    manifest, rejected = ingest({"kind": "kaggle", "root": str(root)}, {"class_names": CLASSES, "progress": False})
    assert "train/Image_1.jpg" not in set(manifest["image_id"])
    assert rejected["reason"].str.contains("different labels").sum() == 2


def test_folder_without_images_stops_with_one_sentence(tmp_path):
    root = write_kaggle(tmp_path / "har", [], {})
    with pytest.raises(DataInputError, match=r"^no images found in .*har \(kaggle layout\); put the images there"):
        ingest({"kind": "kaggle", "root": str(root)}, {"class_names": CLASSES, "progress": False})


def test_only_broken_images_stops(tmp_path):
    root = write_kaggle(tmp_path / "har", [("a.jpg", "calling")], {"a.jpg": b""})
    with pytest.raises(DataInputError, match="none of the 1 images"):
        ingest({"kind": "kaggle", "root": str(root)}, {"class_names": CLASSES, "progress": False})


def test_too_small_class_stops(tmp_path):
    photos = {f"Image_{i}.jpg": encode(photo_crop(i, 64, 64)) for i in range(1, 8)}
    rows = [(f"Image_{i}.jpg", "calling" if i < 6 else "running") for i in range(1, 8)]
    root = write_kaggle(tmp_path / "har", rows, photos)
    with pytest.raises(DataInputError, match="class 'running' has 2"):
        ingest({"kind": "kaggle", "root": str(root)}, {"class_names": ["calling", "running"], "progress": False})


def test_unknown_source_settings_are_named():
    with pytest.raises(DataInputError, match="unknown keys \\['rooot'\\]"):
        SourceConfig.from_params({"kind": "kaggle", "rooot": "x"})
    with pytest.raises(DataInputError, match="kind is 'zip'"):
        SourceConfig.from_params({"kind": "zip"})


def test_summary_counts(bad_kaggle):
    manifest, rejected = ingest({"kind": "kaggle", "root": str(bad_kaggle)}, {"class_names": CLASSES, "progress": False})
    summary = summarise(manifest, rejected)
    assert summary["images_kept"] == len(manifest)
    assert summary["images_rejected"] == len(rejected)
    assert sum(summary["per_split"].values()) == len(manifest)
    assert sum(summary["rejection_reasons"].values()) == len(rejected)
    assert set(summary["per_class"]) == set(CLASSES)
