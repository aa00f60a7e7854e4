import time

import numpy as np
import pytest
from PIL import Image

import har_kedro.data.parallel as parallel
from har_kedro.data.decoding import (
    centre_square_box,
    decode_chunks,
    decode_into,
    decode_square,
)
from tests.helpers import encode, photo_crop


def test_centre_square_box():
    assert centre_square_box(400, 300) == (50, 0, 350, 300)
    assert centre_square_box(30, 50) == (0, 10, 30, 40)


def test_decode_square_shape_and_dtype():
    out = decode_square(encode(photo_crop(0, 400, 300)), 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_draft_decode_matches_full_decode_closely():
    """Draft mode decodes a large JPEG at reduced scale; the result must still look the same."""
    big = photo_crop(0, 1600, 1200)
    data = encode(big, quality=95)
    ours = decode_square(data, 64).astype(np.float64)
    side = min(big.size)
    left = (big.width - side) // 2
    reference = np.asarray(big.crop((left, 0, left + side, side)).resize((64, 64), Image.Resampling.LANCZOS), dtype=np.float64)
    assert np.abs(ours - reference).mean() < 6.0


def test_exif_rotation_is_applied():
    # Left half red, right half blue; stored turned 90 degrees counter-clockwise with EXIF
    # orientation 6 ("rotate 90 clockwise to display"), as a camera held sideways writes it.
    upright = np.zeros((40, 80, 3), np.uint8)
    upright[:, :40] = (255, 0, 0)
    upright[:, 40:] = (0, 0, 255)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[0x0112] = 6
    out = decode_square(encode(stored, "PNG", exif=exif), 20).astype(int)
    # After transposition the image is upright again: red on the left, blue on the right.
    assert out[10, 2, 0] > 200 and out[10, 2, 2] < 60
    assert out[10, 17, 2] > 200 and out[10, 17, 0] < 60


def _mode_image(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray((np.arange(90 * 70).reshape(70, 90) * 10).astype(np.uint16))
    return photo_crop(1, 90, 70).convert(mode)


# Built in the test, not at collection: every pytest-xdist worker collects every module.
@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "I;16"])
def test_any_mode_decodes_to_rgb(mode):
    image = _mode_image(mode)
    fmt = "JPEG" if image.mode in ("L", "CMYK") else "PNG"
    out = decode_square(encode(image, fmt), 32)
    assert out.shape == (32, 32, 3)
    assert out.std() > 1.0  # not a blank image


def test_decode_into_threads_match_serial(tmp_path):
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(encode(photo_crop(i, 120 + 7 * i, 90)))
        paths.append(str(path))
    serial = np.zeros((12, 48, 48, 3), np.uint8)
    threaded = np.zeros_like(serial)
    decode_into(paths, serial, 48, num_workers=1, progress=False)
    decode_into(paths, threaded, 48, num_workers=4, progress=False)
    assert np.array_equal(serial, threaded)
    assert serial.reshape(12, -1).std(axis=1).min() > 1.0


def test_decode_into_rejects_wrong_buffer():
    with pytest.raises(ValueError, match="out must be uint8"):
        decode_into(["a"], np.zeros((2, 8, 8, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="unknown resample"):
        decode_into(["a"], np.zeros((1, 8, 8, 3), np.uint8), 8, resample="fancy")


def _jpegs(folder, count):
    paths = []
    for i in range(count):
        path = folder / f"{i}.jpg"
        path.write_bytes(encode(photo_crop(i, 100 + 5 * i, 80)))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize(("chunk_size", "workers"), [(4, 2), (3, 1), (10, 2), (64, 2)])
def test_decode_chunks_matches_decode_into(tmp_path, monkeypatch, chunk_size, workers):
    paths = _jpegs(tmp_path, 10)
    expected = np.zeros((10, 32, 32, 3), np.uint8)
    decode_into(paths, expected, 32, num_workers=1, progress=False)
    bars = []
    real_tqdm = parallel.tqdm
    monkeypatch.setattr(parallel, "tqdm", lambda **kwargs: bars.append(kwargs) or real_tqdm(**kwargs))
    got, bases = [], []
    for block in decode_chunks(paths, 32, num_workers=workers, desc="decoding train", progress=False, chunk_size=chunk_size):
        assert len(block) <= chunk_size
        done = sum(len(b) for b in got)
        time.sleep(0.05)  # a slow consumer: the next block is decoding meanwhile, into the other buffer
        assert np.array_equal(block, expected[done : done + len(block)])
        bases.append(block.base)
        got.append(block.copy())  # the buffer is reused for a later block
    assert np.array_equal(np.concatenate(got), expected)
    assert [len(b) for b in got] == [min(chunk_size, 10 - s) for s in range(0, 10, chunk_size)]
    assert len({id(b) for b in bases}) <= 2  # two buffers, taken in turn, whatever the number of blocks
    assert [(b["total"], b["desc"]) for b in bars] == [(10, "decoding train")]  # one bar for all blocks


def test_decode_chunks_edge_cases(tmp_path):
    assert list(decode_chunks([], 16, progress=False)) == []
    with pytest.raises(ValueError, match="chunk_size"):
        next(decode_chunks(_jpegs(tmp_path, 1), 16, chunk_size=0))
    with pytest.raises(FileNotFoundError):
        list(decode_chunks([str(tmp_path / "missing.jpg")], 16, num_workers=2, progress=False))
