import csv
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import har_kedro.data.captions as captions
from har_kedro.data.captions import (
    CAPTION_COLUMNS,
    REJECTED_CAPTION_COLUMNS,
    CaptionSource,
    read_captions,
)
from har_kedro.data.errors import DataInputError
from tests.helpers import encode, solid

RED = encode(solid(8, 8, (200, 0, 0)))
BLUE = encode(solid(8, 8, (0, 0, 200)), "PNG")


def write_csv(path, rows, header=("image", "caption")):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read(path, **kwargs):
    return read_captions(CaptionSource("csv", str(path), **kwargs), num_workers=2, progress=False)


def by_category(rejected):
    return {category: sorted(group["image"]) for category, group in rejected.groupby("category")}


def test_csv_pairs_keep_every_caption_of_an_image_in_file_order(tmp_path):
    (tmp_path / "img" / "sub").mkdir(parents=True)
    (tmp_path / "img" / "a.jpg").write_bytes(RED)
    (tmp_path / "img" / "sub" / "b.png").write_bytes(BLUE)
    listing = write_csv(tmp_path / "captions.csv", [
        ("a.jpg", "  A red   square,\n with \"quotes\" "),
        ("./sub//b.png", "a blue one"),
        ("a.jpg", "Cafe\u0301 red"),  # decomposed é: stored in NFC
    ])
    pairs, rejected = read(listing, image_root=str(tmp_path / "img"))
    assert list(pairs.columns) == CAPTION_COLUMNS and list(rejected.columns) == REJECTED_CAPTION_COLUMNS
    assert rejected.empty
    assert pairs["pair_id"].tolist() == [0, 1, 2]
    assert pairs["image_id"].tolist() == ["a.jpg", "sub/b.png", "a.jpg"]
    assert pairs["caption"].tolist() == ['A red square, with "quotes"', "a blue one", "Caf\u00e9 red"]
    assert pairs["source"][1] == (tmp_path / "img" / "sub" / "b.png").as_posix()
    assert pairs["sha256"][0] == pairs["sha256"][2] != pairs["sha256"][1]


def test_csv_header_is_case_insensitive_and_image_root_defaults_to_the_csv_folder(tmp_path):
    (tmp_path / "a.jpg").write_bytes(RED)
    listing = tmp_path / "c.csv"
    listing.write_text("\ufeff Image , CAPTION\na.jpg,red\n", encoding="utf-8")
    pairs, _ = read(listing)
    assert pairs[["image_id", "caption"]].values.tolist() == [["a.jpg", "red"]]


def test_parquet_pairs_from_hf_struct_cells_and_a_text_column(tmp_path):
    table = pa.table({
        "image": [{"bytes": RED, "path": "x.jpg"}, {"bytes": BLUE, "path": None}, None, {"bytes": RED, "path": None}],
        "text": ["red", "blue", "no image", " "],
    })
    folder = tmp_path / "export"
    folder.mkdir()
    pq.write_table(table, folder / "train-00000.parquet")
    pairs, rejected = read_captions(CaptionSource("parquet", str(folder), caption_column="text"), progress=False)
    assert pairs["image_id"].tolist() == ["train-00000/0", "train-00000/1"]
    assert pairs["source"].tolist() == [f"{(folder / 'train-00000.parquet').as_posix()}::{i}" for i in (0, 1)]
    assert pairs["caption"].tolist() == ["red", "blue"]
    assert rejected[["row", "image", "category"]].values.tolist() == [
        [2, "train-00000/2", "missing_file"],
        [3, "train-00000/3", "empty_caption"],
    ]


def test_every_csv_rejection_has_a_category_and_a_line(tmp_path):
    root = tmp_path / "img"
    root.mkdir()
    (root / "a.jpg").write_bytes(RED)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_bytes(b"hello, not a picture")
    (root / "cut.jpg").write_bytes(RED[: len(RED) // 2])
    listing = write_csv(tmp_path / "captions.csv", [
        ("a.jpg", "red"),            # line 2, kept
        ("a.jpg", "   "),            # line 3
        ("gone.jpg", "lost"),        # line 4
        ("a.jpg", "red"),            # line 5: repeats line 2
        ("empty.jpg", "nothing"),    # line 6
        ("text.jpg", "words"),       # line 7
        ("cut.jpg", "half"),         # line 8
        ("a.jpg",),                  # line 9: caption cell missing
        ("", "no image"),            # line 10
    ])
    pairs, rejected = read(listing, image_root=str(root))
    assert pairs["caption"].tolist() == ["red"]
    assert rejected["row"].tolist() == [3, 4, 5, 6, 7, 8, 9, 10]
    assert rejected["category"].tolist() == [
        "empty_caption", "missing_file", "duplicate_row", "empty_file", "not_an_image",
        "corrupt_image", "empty_caption", "bad_row",
    ]
    assert "repeats" in rejected["reason"][2] and "line 2" in rejected["reason"][2]
    assert all(rejected["reason"].str.len() > 10)


def test_paths_outside_the_root_are_rejected_without_being_read(tmp_path, monkeypatch):
    root = tmp_path / "img"
    root.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(RED)
    os.symlink(secret, root / "link.jpg")
    (root / "a.jpg").write_bytes(RED)
    listing = write_csv(tmp_path / "captions.csv", [
        ("a.jpg", "inside"), ("../secret.jpg", "dots"), (str(secret), "absolute"),
        ("link.jpg", "symlink"), ("sub/../../secret.jpg", "sneaky"),
    ])
    opened = []
    real_inspect = captions._inspect
    monkeypatch.setattr(captions, "_inspect", lambda read, src: opened.append(src) or real_inspect(read, src))
    pairs, rejected = read(listing, image_root=str(root))
    assert pairs["image_id"].tolist() == ["a.jpg"]
    assert rejected["category"].tolist() == ["outside_root"] * 4
    assert rejected["image"].tolist() == ["../secret.jpg", str(secret), "link.jpg", "sub/../../secret.jpg"]
    assert opened == [(root / "a.jpg").as_posix()]

    pairs, rejected = read(listing, image_root=str(root), follow_symlinks=True)
    assert pairs["image_id"].tolist() == ["a.jpg", "link.jpg"]
    assert rejected["image"].tolist() == ["../secret.jpg", str(secret), "sub/../../secret.jpg"]


def test_an_absolute_path_inside_the_root_is_accepted(tmp_path):
    (tmp_path / "a.jpg").write_bytes(RED)
    listing = write_csv(tmp_path / "c.csv", [(str(tmp_path / "a.jpg"), "red")])
    assert read(listing)[0]["image_id"].tolist() == ["a.jpg"]


def test_csv_input_errors_name_the_file(tmp_path):
    with pytest.raises(DataInputError, match=r"nope\.csv does not exist"):
        read(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataInputError, match=r"empty\.csv is empty"):
        read(tmp_path / "empty.csv")
    header_only = write_csv(tmp_path / "header.csv", [])
    with pytest.raises(DataInputError, match=r"header\.csv has a header but no data rows"):
        read(header_only)
    wrong = write_csv(tmp_path / "wrong.csv", [("a.jpg", "x")], header=("file", "caption"))
    with pytest.raises(DataInputError, match=r"wrong\.csv has columns \['file', 'caption'\] but needs 'image' and 'caption'"):
        read(wrong)


def test_all_rejected_says_how_many_and_the_commonest_reason(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(RED)
    listing = write_csv(tmp_path / "captions.csv", [("a.jpg", "x"), ("b.jpg", "y"), ("c.jpg", "")])
    with pytest.raises(DataInputError) as error:
        read(listing)  # images are in images/, not next to the CSV
    message = str(error.value)
    assert "all 3 rows of" in message and "captions.csv" in message
    assert "2 missing_file: the first is 'a.jpg'" in message and "image_root" in message
    assert "no images found" not in message


def test_parquet_missing_column_names_the_file_and_its_columns(tmp_path):
    file = tmp_path / "part.parquet"
    pq.write_table(pa.table({"image": [RED], "caption": ["x"]}), file)
    with pytest.raises(DataInputError, match=r"part\.parquet has columns \['image', 'caption'\] but not \['text'\]"):
        read_captions(CaptionSource("parquet", str(file), caption_column="text"), progress=False)
    with pytest.raises(DataInputError, match=r"no parquet files"):
        read_captions(CaptionSource("parquet", str(tmp_path / "*.nothing")), progress=False)


def test_from_params_reads_settings_and_names_the_bad_key():
    source = CaptionSource.from_params({"kind": "parquet", "path": "data/*.parquet", "caption_column": "text"})
    assert source == CaptionSource("parquet", "data/*.parquet", caption_column="text")
    cases = [
        ({"kind": "csv", "path": "c.csv", "root": "x"}, r"pretraining\.corpus\.root is not a setting"),
        ({"kind": "tsv", "path": "c.csv"}, r"pretraining\.corpus\.kind is 'tsv'.*\['csv', 'parquet'\]"),
        ({"kind": "csv"}, r"pretraining\.corpus\.path is ''"),
        ({"kind": "csv", "path": "c.csv", "caption_column": 3}, r"pretraining\.corpus\.caption_column is 3"),
        ({"kind": "csv", "path": "c.csv", "follow_symlinks": "yes"}, r"pretraining\.corpus\.follow_symlinks"),
        ({"kind": "parquet", "path": "p", "image_root": "x"}, r"pretraining\.corpus\.image_root applies only to kind 'csv'"),
    ]
    for params, pattern in cases:
        with pytest.raises(DataInputError, match=pattern):
            CaptionSource.from_params(params)
    with pytest.raises(DataInputError, match=r"clip\.data\.path"):
        CaptionSource.from_params({"kind": "csv", "path": None}, where="clip.data")
