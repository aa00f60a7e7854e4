"""Small image and layout builders shared by the tests."""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image


@lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """Two real photographs (427x640) that scikit-learn ships, so no download is needed."""
    from sklearn.datasets import load_sample_images

    return tuple(load_sample_images().images)


def photo_crop(index: int, width: int, height: int, seed: int = 0) -> Image.Image:
    """A ``width`` x ``height`` RGB crop (resized if larger than the photo) of a real photograph."""
    photos = sample_photos()
    photo = photos[index % len(photos)]
    rng = np.random.default_rng([seed, index])
    h, w = photo.shape[:2]
    # A random zoom as well as a random window, so no two crops are the same picture.
    scale = max(width / w, height / h, 1.0) * float(rng.uniform(1.05, 1.4))
    image = Image.fromarray(photo).resize((int(np.ceil(w * scale)), int(np.ceil(h * scale))), Image.Resampling.BILINEAR)
    w, h = image.size
    x = int(rng.integers(0, w - width + 1))
    y = int(rng.integers(0, h - height + 1))
    return image.crop((x, y, x + width, y + height))


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def solid(width: int, height: int, colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def write_kaggle(root: Path, rows: Iterable[tuple[str, str]], files: dict[str, bytes], csv_name: str = "Training_set.csv", folder: str = "train") -> Path:
    """Write a Kaggle-layout folder: ``rows`` go to the CSV, ``files`` into ``<folder>/``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / folder).mkdir(exist_ok=True)
    lines = ["filename,label"] + [f"{name},{label}" for name, label in rows]
    (root / csv_name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, data in files.items():
        (root / folder / name).write_bytes(data)
    return root


def open_bytes(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def separable_split(n: int, seed: int = 0, size: int = 32):
    """Random uint8 images with a class-dependent bright square: a ``Split`` a tiny model can learn."""
    from har_kedro.training.loop import Split

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 15
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * (label % 5) : 2 * (label % 5) + 8, 2 * (label // 5) : 2 * (label // 5) + 8] = 255
    return Split(images, labels)
