from pathlib import Path

import numpy as np
import pytest

from har_kedro.data.decoding import decode_into
from har_kedro.data.errors import DataInputError
from har_kedro.inference.folder_images import (
    decode_image_files,
    list_image_files,
    sample_images,
)
from tests.inference.conftest import BAD, GOOD


def _relative(files: list[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


def test_lists_every_visible_file_in_natural_order(image_folder):
    top = _relative(list_image_files(image_folder), image_folder)
    # Image_2 before Image_10; broken files are listed too (they must be reported, not dropped).
    assert top == ["Image_1.jpg", "Image_2.png", "Image_4.jpg", "Image_5.jpg", "Image_6.jpg", "Image_10.jpg"]
    everything = _relative(list_image_files(image_folder, recursive=True), image_folder)
    assert everything == ["Image_1.jpg", "Image_2.png", "Image_4.jpg", "Image_5.jpg", "Image_6.jpg", "Image_10.jpg", "nested/Image_3.jpg"]


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "only_subfolders"])
def test_unusable_folder_is_one_sentence_naming_the_parameter(tmp_path, kind):
    folder = tmp_path / "images"
    if kind == "file":
        folder.write_text("x")
    elif kind == "empty":
        folder.mkdir()
    elif kind == "only_subfolders":
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataInputError) as error:
        list_image_files(folder)
    message = str(error.value)
    assert "inference.images_dir" in message and str(folder) in message and message.count(". ") == 0
    if kind == "only_subfolders":
        assert "inference.recursive" in message
        assert len(list_image_files(folder, recursive=True)) == 1


def test_decodes_as_preprocessing_does_and_reports_bad_files(image_folder):
    files = list_image_files(image_folder, recursive=True)
    decoded = decode_image_files(files, image_folder, size=24, resample="bicubic", num_workers=2)

    assert sorted(decoded.paths) == sorted(GOOD)
    assert {b.image: b.category for b in decoded.bad} == BAD
    assert all(b.reason for b in decoded.bad)
    # Pixel for pixel what preprocessing writes into the image cache for the same files.
    expected = np.zeros((len(decoded.paths), 24, 24, 3), np.uint8)
    decode_into([str(image_folder / p) for p in decoded.paths], expected, 24, "bicubic", num_workers=1, progress=False)
    assert decoded.images.dtype == np.uint8 and np.array_equal(decoded.images, expected)


def test_sample_takes_the_first_usable_images(image_folder):
    sample = sample_images(image_folder, count=3, size=16)
    # Image_1, Image_2 usable; Image_4..6 broken and passed over; then Image_10.
    assert sample.paths == ["Image_1.jpg", "Image_2.png", "Image_10.jpg"]
    assert sample.images.shape == (3, 16, 16, 3)
    assert {b.image for b in sample.bad} == set(BAD)
    assert sample_images(image_folder, count=100, size=16).images.shape[0] == 3  # fewer than asked: what there is


def test_no_usable_image_gives_an_empty_batch(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    decoded = decode_image_files(list_image_files(tmp_path), tmp_path, size=8)
    assert decoded.images.shape == (0, 8, 8, 3) and decoded.paths == [] and len(decoded.bad) == 1
