"""Reading image bytes from wherever a manifest says they live, and turning any PIL mode into RGB.

A manifest ``source`` is either a file path or ``<file.parquet>::<row>`` for images stored
inside a HuggingFace parquet export; keeping one string form lets ingestion, preprocessing
and inference share a reader.
"""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

PARQUET_ROW_SEPARATOR = "::"

_parquet_lock = threading.Lock()


def parquet_source(path: str | Path, row: int) -> str:
    """The manifest ``source`` string of row ``row`` of a parquet file."""
    return f"{Path(path).as_posix()}{PARQUET_ROW_SEPARATOR}{row}"


def split_parquet_source(source: str) -> tuple[str, int] | None:
    """``(path, row)`` when ``source`` points into a parquet file, else ``None``."""
    path, sep, row = source.rpartition(PARQUET_ROW_SEPARATOR)
    if not sep or not row.isdigit() or not path.endswith(".parquet"):
        return None
    return path, int(row)


def image_bytes_from_cell(cell: object) -> bytes | None:
    """Bytes of a parquet ``image`` cell: HF stores ``{"bytes": ..., "path": ...}`` structs."""
    if cell is None:
        return None
    if isinstance(cell, bytes | bytearray | memoryview):
        return bytes(cell)
    if isinstance(cell, dict):
        data = cell.get("bytes")
        if data is not None:
            return bytes(data)
        path = cell.get("path")
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    return None


@lru_cache(maxsize=4)
def _parquet_column(path: str, column: str) -> tuple[bytes | None, ...]:
    # One read of the whole column per file: random access to row N of a parquet file
    # would otherwise decompress its row group once per image.
    table = pq.read_table(path, columns=[column])
    return tuple(image_bytes_from_cell(cell) for cell in table.column(column).to_pylist())


def read_source_bytes(source: str, image_column: str = "image") -> bytes:
    """The raw encoded bytes behind a manifest ``source``.

    Raises:
        FileNotFoundError: the file (or parquet row) does not exist.
    """
    parquet = split_parquet_source(source)
    if parquet is None:
        return Path(source).read_bytes()
    path, row = parquet
    with _parquet_lock:
        column = _parquet_column(path, image_column)
    if row >= len(column) or column[row] is None:
        raise FileNotFoundError(f"{source}: no image bytes in row {row} of {path}")
    return column[row]  # type: ignore[return-value]


_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without surprises.

    PIL's own ``convert("RGB")`` clips 16-bit grey to white and drops transparency onto
    black, both of which would hand the model images that do not look like the photo.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or array.max(initial=0) > 255:
            array = array / 257.0
        grey = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


# EXIF orientations 5-8 swap width and height once applied.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def exif_orientation(image: Image.Image) -> int:
    """EXIF orientation tag (1 when absent or unreadable)."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block must not reject a decodable image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as the image will look after its EXIF rotation is applied."""
    width, height = image.size
    if exif_orientation(image) in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def open_image(data: bytes) -> Image.Image:
    """Open encoded bytes lazily (header only) with PIL."""
    return Image.open(io.BytesIO(data))
