
import io

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


def _five_photos_per_class(seed: int, width_step: int) -> tuple[list[tuple[str, str]], dict[str, bytes]]:
    """``Image_1.jpg`` ... ``Image_15.jpg``: five distinct photo crops per class, as CSV rows and files."""
    rows, files = [], {}
    for c, cls in enumerate(CLASSES):
        for k in range(5):
            name = f"Image_{c * 5 + k + 1}.jpg"
            rows.append((name, cls))
            files[name] = encode(photo_crop(c * 5 + k, 200 + width_step * k, 150, seed=seed + c))
    return rows, files


def _bad_kaggle(root):
    """Five good photos per class plus one of every bad input the ingestion must survive."""
    rows, files = _five_photos_per_class(seed=0, width_step=10)
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
        # Textured: a flat image hashes to all zeros, like the black huge.png, and would be its near-duplicate.
        "deep.png": (encode(Image.fromarray(np.random.default_rng(0).integers(0, 65535, (40, 30), dtype=np.uint16)), "PNG"), "calling"),
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


# --------------------------------------------------------------------------- near-duplicates


def _near_duplicate_kaggle(root, copy_label="calling"):
    """Five distinct photos per class; Image_1 (calling) also as a smaller, re-encoded copy."""
    rows, files = _five_photos_per_class(seed=10, width_step=0)
    small = Image.open(io.BytesIO(files["Image_1.jpg"])).resize((100, 75))
    rows.append(("Image_99.jpg", copy_label))
    files["Image_99.jpg"] = encode(small, quality=60)
    return {"kind": "kaggle", "root": str(write_kaggle(root, rows, files))}


def test_near_duplicates_share_a_group_and_a_split(tmp_path):
    source = _near_duplicate_kaggle(tmp_path / "har")
    manifest, rejected = ingest(source, {"split": {"fractions": dict(SPLIT.fractions), "seed": 3}, "progress": False})
    assert rejected.empty
    pair = manifest.set_index("image_id").loc[["train/Image_1.jpg", "train/Image_99.jpg"]]
    assert pair["group_id"].tolist() == ["train/Image_1.jpg"] * 2 and pair["split"].nunique() == 1
    others = manifest[~manifest["image_id"].isin(pair.index)]
    assert (others["group_id"] == others["image_id"]).all()  # no false groups among distinct photos
    summary = summarise(manifest, rejected)
    assert summary["near_duplicate_groups"] == 1 and summary["near_duplicate_images"] == 2
    off, _ = ingest(source, {"split": {"fractions": dict(SPLIT.fractions), "seed": 3}, "near_duplicates": {"max_distance": None}, "progress": False})
    assert (off["group_id"] == off["image_id"]).all()


def test_near_duplicates_with_different_labels_are_rejected_naming_both(tmp_path):
    source = _near_duplicate_kaggle(tmp_path / "har", copy_label="running")
    manifest, rejected = ingest(source, {"split": {"fractions": dict(SPLIT.fractions), "seed": 3}, "progress": False})
    conflict = rejected[rejected["category"] == "conflicting_labels"]
    assert sorted(conflict["image_id"]) == ["train/Image_1.jpg", "train/Image_99.jpg"]
    assert all("train/Image_1.jpg ('calling') and train/Image_99.jpg ('running') have different labels" in r
               or "train/Image_99.jpg ('running') and train/Image_1.jpg ('calling') have different labels" in r for r in conflict["reason"])
    assert not manifest["image_id"].isin(conflict["image_id"]).any()


def test_a_class_emptied_by_rejections_says_how_many_and_why(tmp_path):
    rows, files = [], {}
    for k in range(8):
        rows.append((f"Image_{k + 1}.jpg", "calling"))
        files[f"Image_{k + 1}.jpg"] = encode(photo_crop(k, 200, 150, seed=1))
    for k in range(3):  # every 'sitting' image is a copy of a 'calling' one
        rows.append((f"Image_{k + 11}.jpg", "sitting"))
        files[f"Image_{k + 11}.jpg"] = files[f"Image_{k + 1}.jpg"]
    source = {"kind": "kaggle", "root": str(write_kaggle(tmp_path / "har", rows, files))}
    with pytest.raises(DataInputError) as failure:
        ingest(source, {"class_names": ["calling", "sitting"], "split": {"fractions": dict(SPLIT.fractions), "seed": 3}, "progress": False})
    message = str(failure.value)
    assert "class 'sitting' has 0 usable image(s)" in message
    assert "3 of its images were rejected (3 conflicting_labels)" in message and "train/Image_11.jpg" in message, message


@pytest.mark.parametrize("block", [{"max_distance": 256}, {"max_distance": -1}, {"max_distance": "40"}, {"distance": 4}, [40]])
def test_bad_near_duplicate_settings_are_named(tmp_path, block):
    source = _near_duplicate_kaggle(tmp_path / "har")
    with pytest.raises(DataInputError, match=r"ingestion\.near_duplicates"):
        ingest(source, {"near_duplicates": block, "progress": False})


def test_only_the_conflicting_pair_is_rejected_not_the_whole_chain():
    """a ~ b ~ c ~ d in a chain of look-alikes: only a (calling) and b (running) conflict directly."""
    from har_kedro.data.inspection import ImageInfo
    from har_kedro.data.manifest import _group_near_duplicates
    from har_kedro.data.sources import Candidate

    def info(bits: int) -> ImageInfo:  # a hash with the lowest ``bits`` bits set
        return ImageInfo("0" * 64, 10, 10, "JPEG", "RGB", 100, f"{(1 << bits) - 1:064x}")

    kept = [
        (Candidate("a", "a", "calling"), info(0)),
        (Candidate("b", "b", "running"), info(30)),
        (Candidate("c", "c", "running"), info(60)),
        (Candidate("d", "d", "running"), info(90)),
        (Candidate("e", "e", "calling"), info(200)),
    ]
    survivors, groups, rejections = _group_near_duplicates(kept, 40)
    assert sorted(r.image_id for r in rejections) == ["a", "b"]
    assert [c.image_id for c, _ in survivors] == ["c", "d", "e"]
    assert groups == {"c": "c", "d": "c", "e": "e"}
