import numpy as np
import pytest
from PIL import Image

from har_kedro.data.inspection import ImageRejected, inspect_image
from tests.helpers import encode, photo_crop, solid


def test_good_jpeg_is_described():
    data = encode(photo_crop(0, 400, 300))
    info = inspect_image(data)
    assert (info.width, info.height, info.format, info.mode) == (400, 300, "JPEG", "RGB")
    assert info.n_bytes == len(data) and len(info.sha256) == 64


def test_empty_file_is_rejected():
    with pytest.raises(ImageRejected, match="empty file"):
        inspect_image(b"")


def test_text_file_is_rejected():
    with pytest.raises(ImageRejected, match="not an image"):
        inspect_image(b"this is not a jpeg at all\n")


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.95])
def test_truncated_jpeg_is_rejected(keep):
    data = encode(photo_crop(1, 400, 300))
    with pytest.raises(ImageRejected, match="truncated"):
        inspect_image(data[: int(len(data) * keep)])


def test_truncated_png_is_rejected():
    data = encode(photo_crop(1, 120, 90), "PNG")
    with pytest.raises(ImageRejected, match="cannot be decoded|truncated|corrupt"):
        inspect_image(data[: len(data) // 2])


def test_decompression_bomb_guard_uses_header_size_only():
    data = encode(solid(3000, 2000, (5, 5, 5)), "PNG")
    with pytest.raises(ImageRejected, match="over the max_image_pixels limit"):
        inspect_image(data, max_pixels=1_000_000)
    assert inspect_image(data, max_pixels=6_000_000).width == 3000


def test_pil_own_bomb_error_is_a_rejection(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageRejected, match="decompression bomb"):
        inspect_image(encode(solid(100, 100, (1, 1, 1)), "PNG"), max_pixels=10**9)


def test_exif_rotated_size_is_reported_as_displayed():
    image = solid(60, 20, (9, 9, 9))
    exif = image.getexif()
    exif[0x0112] = 8
    info = inspect_image(encode(image, exif=exif))
    assert (info.width, info.height) == (20, 60)


@pytest.mark.parametrize(
    ("image", "fmt", "mode"),
    [
        (solid(8, 8, (1, 2, 3)).convert("L"), "JPEG", "L"),
        (solid(8, 8, (1, 2, 3)).convert("CMYK"), "JPEG", "CMYK"),
        (solid(8, 8, (1, 2, 3)).convert("P"), "PNG", "P"),
        (solid(8, 8, (1, 2, 3)).convert("RGBA"), "PNG", "RGBA"),
        (Image.fromarray(np.full((8, 8), 40000, np.uint16)), "PNG", "I;16"),
    ],
)
def test_unusual_modes_are_accepted_and_recorded(image, fmt, mode):
    info = inspect_image(encode(image, fmt))
    assert info.mode == mode and info.format == fmt
