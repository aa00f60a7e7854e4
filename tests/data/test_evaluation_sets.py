"""ingestion.evaluation_sets: extra labelled sets under a split of their own, never sharing an image with the main set."""

from __future__ import annotations

import pytest

from har_kedro.data.errors import DataInputError
from har_kedro.data.ingestion import evaluation_splits, ingest
from tests.helpers import encode, photo_crop, write_kaggle

CLASSES = ["calling", "clapping"]


def _image_folder(root, images):
    for label, names in images.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for name, data in names.items():
            (root / label / name).write_bytes(data)
    return root


def _main(root):
    rows = [(f"Image_{i}.jpg", CLASSES[i % 2]) for i in range(1, 21)]
    files = {name: encode(photo_crop(i, 48, 40)) for i, (name, _) in enumerate(rows, start=1)}
    return write_kaggle(root, rows, files), files


def _params(sets):
    return {"class_names": CLASSES, "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
            "near_duplicates": {"max_distance": None}, "progress": False, "num_workers": 2, "evaluation_sets": sets}


def test_an_evaluation_set_is_a_split_of_its_own_and_shares_no_image_with_the_main_set(tmp_path):
    main, files = _main(tmp_path / "main")
    extra = _image_folder(tmp_path / "other", {
        "calling": {"a.jpg": encode(photo_crop(100, 50, 40)), "copy.jpg": files["Image_1.jpg"]},
        "clapping": {"b.jpg": encode(photo_crop(101, 50, 40)), "bad.jpg": b"not an image"},
    })
    manifest, rejected = ingest({"kind": "kaggle", "root": str(main), "unlabelled_csv": None}, _params({"other": {"kind": "image_folder", "root": str(extra)}}))
    other = manifest[manifest["split"] == "other"]
    assert sorted(other["image_id"]) == ["other/calling/a.jpg", "other/clapping/b.jpg"]
    assert evaluation_splits(manifest["split"].unique()) == ["other"]
    assert len(manifest[manifest["split"] != "other"]) == 20  # the main set as before
    reasons = dict(zip(rejected["image_id"], rejected["category"]))
    assert reasons["other/calling/copy.jpg"] == "in_main_set"  # a model may have trained on those bytes
    assert reasons["other/clapping/bad.jpg"] == "not_an_image"


@pytest.mark.parametrize("name", ["test", "Shifted", "two words", ""])
def test_a_bad_set_name_is_refused_with_the_fix(tmp_path, name):
    main, _ = _main(tmp_path / "main")
    with pytest.raises(DataInputError, match="ingestion.evaluation_sets has a set named"):
        ingest({"kind": "kaggle", "root": str(main), "unlabelled_csv": None}, _params({name: {"kind": "image_folder", "root": str(tmp_path)}}))


def test_a_bad_set_source_names_its_key(tmp_path):
    main, _ = _main(tmp_path / "main")
    with pytest.raises(DataInputError, match=r"ingestion.evaluation_sets.other has unknown keys \['roots'\]"):
        ingest({"kind": "kaggle", "root": str(main), "unlabelled_csv": None}, _params({"other": {"kind": "image_folder", "roots": "x"}}))
