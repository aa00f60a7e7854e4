"""A folder of new images, listed and decoded exactly as preprocessing decoded the training images.

A model is only as good on new images as they resemble what it was trained on, so inference
reuses preprocessing's decoder (:func:`har_kedro.data.decoding.decode_square`: EXIF rotation,
RGB conversion, shorter side scaled to the cache size, centre crop, same resample filter) and
ingestion's validation (:func:`har_kedro.data.inspection.inspect_image`). A file that cannot be
used (empty, not an image, truncated, too large) becomes a :class:`BadFile` with the same
category and reason sentence the ingestion's rejected table would give it; the run goes on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from har_kedro.data.decoding import decode_square
from har_kedro.data.errors import DataInputError
from har_kedro.data.inspection import DEFAULT_MAX_PIXELS, ImageRejected, inspect_image
from har_kedro.data.parallel import parallel_map

IMAGES_DIR_PARAMETER = "inference.images_dir"


@dataclass(frozen=True)
class BadFile:
    """A file of the folder that got no prediction, and why (``category`` as in the rejected table)."""

    image: str
    category: str
    reason: str


@dataclass(frozen=True)
class DecodedImages:
    """The usable files of a batch as one uint8 ``(n, S, S, 3)`` array, plus the files that were not."""

    images: np.ndarray
    paths: list[str]
    bad: list[BadFile]


def _natural_key(relative: str) -> list[object]:
    # Image_2.jpg before Image_10.jpg, the order of Kaggle's Testing_set.csv.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", relative)]


def list_image_files(folder: str | Path, recursive: bool = False, parameter: str = IMAGES_DIR_PARAMETER) -> list[Path]:
    """Every non-hidden file in ``folder`` (and its subfolders when ``recursive``), in natural order.

    No extension filter: a text file named ``.jpg`` or a stray ``.txt`` must show up in the
    bad-files table rather than disappear. Hidden files and folders (``.DS_Store``, ``.git``)
    are not images anyone asked about and are left out.

    Raises:
        DataInputError: ``folder`` does not exist, is not a folder, or holds no files.
    """
    root = Path(folder)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataInputError(
            f"{parameter} '{root}' {what} (resolved to {root.resolve()}); set {parameter} to a folder of images, "
            f"for instance with --params \"{parameter}=path/to/images\"."
        )
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = [
        path for path in candidates
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    if not files:
        where = "or its subfolders" if recursive else "(subfolders are not searched unless inference.recursive is true)"
        raise DataInputError(f"{parameter} '{root}' holds no files {where}; set {parameter} to a folder that contains the images to classify.")
    return sorted(files, key=lambda path: _natural_key(path.relative_to(root).as_posix()))


def decode_image_file(path: Path, size: int, resample: str = "bilinear", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``(size, size, 3)`` uint8 of one file, validated the way ingestion validates.

    Raises:
        ImageRejected: unreadable, empty, not an image, truncated/corrupt, or over ``max_pixels``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable", f"file cannot be read: {exc.strerror or exc}") from None
    inspect_image(data, max_pixels)
    try:
        return decode_square(data, size, resample)
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageRejected("corrupt_image", f"image cannot be decoded: {exc}") from None


def decode_image_files(
    files: Sequence[Path],
    root: str | Path,
    size: int,
    resample: str = "bilinear",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_workers: int | str | None = "auto",
) -> DecodedImages:
    """Decode ``files`` on a thread pool; paths come back relative to ``root`` (POSIX form)."""
    base = Path(root)

    def work(path: Path) -> np.ndarray | BadFile:
        relative = path.relative_to(base).as_posix()
        try:
            return decode_image_file(path, size, resample, max_pixels)
        except ImageRejected as rejected:
            return BadFile(relative, rejected.category, rejected.reason)

    results = parallel_map(work, list(files), num_workers, progress=False)
    good = [(path, r) for path, r in zip(files, results, strict=True) if isinstance(r, np.ndarray)]
    images = np.stack([r for _, r in good]) if good else np.zeros((0, size, size, 3), dtype=np.uint8)
    return DecodedImages(
        images=images,
        paths=[path.relative_to(base).as_posix() for path, _ in good],
        bad=[r for r in results if isinstance(r, BadFile)],
    )


def sample_images(
    folder: str | Path,
    count: int,
    size: int,
    resample: str = "bilinear",
    recursive: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_workers: int | str | None = "auto",
) -> DecodedImages:
    """The first ``count`` usable images of ``folder`` (bad files are passed over and returned too)."""
    files = list_image_files(folder, recursive)
    images: list[np.ndarray] = []
    paths: list[str] = []
    bad: list[BadFile] = []
    start = 0
    while len(paths) < count and start < len(files):
        chunk = files[start : start + max(count - len(paths), 1)]
        start += len(chunk)
        decoded = decode_image_files(chunk, folder, size, resample, max_pixels, num_workers)
        images.extend(decoded.images)
        paths.extend(decoded.paths)
        bad.extend(decoded.bad)
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    return DecodedImages(stacked, paths, bad)
