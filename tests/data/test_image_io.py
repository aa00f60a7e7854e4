import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from har_kedro.data.image_io import (
    exif_orientation,
    oriented_size,
    parquet_source,
    read_source_bytes,
    split_parquet_source,
    to_rgb,
)
from tests.helpers import encode, open_bytes, solid


def test_to_rgb_keeps_rgb_untouched():
    image = solid(4, 3, (10, 20, 30))
    assert to_rgb(image) is image


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "YCbCr"])
def test_to_rgb_converts_plain_modes(mode):
    out = to_rgb(solid(5, 4, (200, 200, 200)).convert(mode))
    assert out.mode == "RGB" and out.size == (5, 4)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)
    out = np.asarray(to_rgb(Image.fromarray(values)))
    assert out[0, :, 0].tolist() == [0, 128, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_alpha_is_composited_on_white_not_black():
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 0))
    out = np.asarray(to_rgb(rgba))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_palette_with_transparency_goes_through_alpha():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 255, 9, 9, 9] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 1
    out = np.asarray(to_rgb(image))
    assert out[0, 0].tolist() == [0, 0, 255]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_exif_orientation_and_oriented_size():
    image = solid(40, 20, (1, 2, 3))
    exif = image.getexif()
    exif[0x0112] = 6
    rotated = open_bytes(encode(image, exif=exif))
    assert exif_orientation(rotated) == 6
    assert oriented_size(rotated) == (20, 40)
    assert oriented_size(open_bytes(encode(image))) == (40, 20)


def test_parquet_sources_round_trip(tmp_path):
    payloads = [encode(solid(4, 4, (i * 40, 0, 0)), "PNG") for i in range(3)]
    path = tmp_path / "train-00000.parquet"
    table = pa.table({"image": [{"bytes": p, "path": None} for p in payloads], "labels": [0, 1, 2]})
    pq.write_table(table, path)
    for row, payload in enumerate(payloads):
        source = parquet_source(path, row)
        assert split_parquet_source(source) == (path.as_posix(), row)
        assert read_source_bytes(source) == payload
    with pytest.raises(FileNotFoundError):
        read_source_bytes(parquet_source(path, 7))
    assert split_parquet_source("photos/a::b.jpg") is None


def test_plain_paths_are_read_from_disk(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"abc")
    assert read_source_bytes(str(path)) == b"abc"
