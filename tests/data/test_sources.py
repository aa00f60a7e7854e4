import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.data.sources import (
    UNLABELLED,
    collect_image_folder,
    collect_kaggle,
    collect_parquet,
    natural_key,
    read_class_names_file,
)
from tests.helpers import encode, solid, write_kaggle

JPEG = encode(solid(8, 8, (100, 0, 0)))


def reasons(collected):
    return {r.image_id: r.reason for r in collected.rejections}


def test_natural_order():
    assert sorted(["Image_10.jpg", "Image_2.jpg", "Image_1.jpg"], key=natural_key) == [
        "Image_1.jpg", "Image_2.jpg", "Image_10.jpg",
    ]


def test_kaggle_lists_rows_and_reports_every_layout_problem(tmp_path):
    root = write_kaggle(
        tmp_path / "har",
        rows=[
            ("Image_1.jpg", "calling"),
            ("Image_2.jpg", "running"),
            ("Image_2.jpg", "running"),  # exact duplicate row
            ("Image_3.jpg", "sitting"),
            ("Image_3.jpg", "eating"),  # conflicting label
            ("Image_4.jpg", "eating"),  # file missing
            ("Image_6.jpg", ""),  # empty label
        ],
        files={"Image_1.jpg": JPEG, "Image_2.jpg": JPEG, "Image_3.jpg": JPEG, "Image_5.jpg": JPEG, "Image_6.jpg": JPEG},
    )
    collected = collect_kaggle(root)
    assert [(c.image_id, c.label, c.split) for c in collected.candidates] == [
        ("train/Image_1.jpg", "calling", None),
        ("train/Image_2.jpg", "running", None),
    ]
    found = [(r.image_id, r.reason) for r in collected.rejections]
    assert ("train/Image_2.jpg", "duplicate row: Training_set.csv line 4 repeats line 3 (kept once)") in found
    assert sum(1 for i, r in found if i == "train/Image_3.jpg" and "conflicting labels" in r) == 2
    assert any(i == "train/Image_4.jpg" and "does not exist" in r and "line 7" in r for i, r in found)
    assert any(i == "train/Image_5.jpg" and "not listed in Training_set.csv" in r for i, r in found)
    assert any(i == "train/Image_6.jpg" and "empty label" in r for i, r in found)


def test_kaggle_unlabelled_test_set_is_kept_as_unlabelled(tmp_path):
    root = write_kaggle(tmp_path / "har", [("Image_1.jpg", "calling")], {"Image_1.jpg": JPEG})
    (root / "test").mkdir()
    (root / "test" / "Image_1.jpg").write_bytes(JPEG)
    (root / "Testing_set.csv").write_text("filename\nImage_1.jpg\n")
    collected = collect_kaggle(root)
    assert [(c.image_id, c.label, c.split) for c in collected.candidates] == [
        ("train/Image_1.jpg", "calling", None),
        ("test/Image_1.jpg", None, UNLABELLED),
    ]


def test_kaggle_missing_csv_is_one_clear_error(tmp_path):
    with pytest.raises(DataInputError, match=r"Training_set.csv does not exist.*README"):
        collect_kaggle(tmp_path / "nowhere")


def test_kaggle_bad_header_names_the_fix(tmp_path):
    root = tmp_path / "har"
    root.mkdir()
    (root / "Training_set.csv").write_text("file,class\nImage_1.jpg,calling\n")
    with pytest.raises(DataInputError, match=r"needs \['filename', 'label'\]"):
        collect_kaggle(root)


def test_kaggle_missing_image_folder(tmp_path):
    root = tmp_path / "har"
    root.mkdir()
    (root / "Training_set.csv").write_text("filename,label\nImage_1.jpg,calling\n")
    with pytest.raises(DataInputError, match="does not exist"):
        collect_kaggle(root)


def test_image_folder_without_splits(tmp_path):
    for cls in ("calling", "running"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "a.jpg").write_bytes(JPEG)
    (tmp_path / "stray.jpg").write_bytes(JPEG)
    collected = collect_image_folder(tmp_path)
    assert [(c.image_id, c.label, c.split) for c in collected.candidates] == [
        ("calling/a.jpg", "calling", None), ("running/a.jpg", "running", None),
    ]
    assert "not at <class>/<image>" in reasons(collected)["stray.jpg"]


def test_image_folder_with_splits(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / split / "calling").mkdir(parents=True)
        (tmp_path / split / "calling" / "a.jpg").write_bytes(JPEG)
    collected = collect_image_folder(tmp_path)
    assert sorted(c.split for c in collected.candidates) == ["test", "train", "val"]


def _write_parquet(path, labels):
    images = [{"bytes": encode(solid(6, 6, (i, 0, 0)), "PNG"), "path": None} for i in range(len(labels))]
    pq.write_table(pa.table({"image": images, "labels": labels}), path)


def test_parquet_int_labels_use_class_names_file(tmp_path):
    _write_parquet(tmp_path / "train-00000.parquet", [0, 1, 5, None])
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"features": {"labels": {"names": ["calling", "clapping"], "_type": "ClassLabel"}}}))
    names = read_class_names_file(info)
    collected = collect_parquet(str(tmp_path / "train-*.parquet"), class_names=names)
    assert [(c.image_id, c.label) for c in collected.candidates] == [("train-00000/0", "calling"), ("train-00000/1", "clapping")]
    why = reasons(collected)
    assert "label id 5, outside the 2 known class names" in why["train-00000/2"]
    assert "has no label" in why["train-00000/3"]


def test_parquet_string_labels_and_missing_columns(tmp_path):
    _write_parquet(tmp_path / "a.parquet", ["calling", "running"])
    assert [c.label for c in collect_parquet(str(tmp_path / "a.parquet")).candidates] == ["calling", "running"]
    with pytest.raises(DataInputError, match="not \\['label'\\]"):
        collect_parquet(str(tmp_path / "a.parquet"), label_column="label")
    with pytest.raises(DataInputError, match="no parquet files match"):
        collect_parquet(str(tmp_path / "missing-*.parquet"))


def test_class_names_file_errors(tmp_path):
    with pytest.raises(DataInputError, match="does not exist"):
        read_class_names_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(DataInputError, match="no class names"):
        read_class_names_file(bad)
