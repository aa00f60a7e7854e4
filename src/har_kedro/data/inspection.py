"""Checking one encoded image well enough to promise preprocessing it will succeed.

Ingestion decodes every image once (at reduced scale for JPEG, which still reads every
entropy-coded byte and so catches truncation) so that a broken file is quarantined with a
reason here rather than crashing the long preprocessing step later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from har_kedro.data.image_io import open_image, oriented_size
from har_kedro.data.near_duplicates import perceptual_hash

DEFAULT_MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class ImageInfo:
    """What the manifest records about a usable image (size after EXIF rotation)."""

    sha256: str
    width: int
    height: int
    format: str
    mode: str
    n_bytes: int
    dhash: str  # 256-bit perceptual hash in hex (data/near_duplicates.py)


class ImageRejected(Exception):
    """An image that cannot be used; ``reason`` is the sentence stored in the rejected table."""

    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate encoded image bytes and describe them.

    Raises:
        ImageRejected: empty, not an image, truncated/corrupt, or larger than ``max_pixels``.
    """
    if len(data) == 0:
        raise ImageRejected("empty_file", "empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = open_image(data)
    except UnidentifiedImageError:
        raise ImageRejected(
            "not_an_image", f"not an image PIL can read ({len(data)} bytes, starts with {data[:8]!r})"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_large", f"decompression bomb guard: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt_image", f"image header cannot be read (truncated or corrupt file): {exc}") from None
    with image:
        width, height = oriented_size(image)
        if width * height > max_pixels:
            raise ImageRejected(
                "too_large",
                f"image is {width}x{height} = {width * height:,} pixels, over the "
                f"max_image_pixels limit of {max_pixels:,} (decompression bomb guard); "
                "raise ingestion.max_image_pixels if the image is genuine"
            )
        if width < 1 or height < 1:
            raise ImageRejected("corrupt_image", f"image has no pixels ({width}x{height})")
        fmt = image.format or "unknown"
        mode = image.mode
        try:
            if fmt == "JPEG":
                # A reduced-scale decode (down to 1/8) still parses the whole entropy-coded stream. At least
                # 64 px a side, so that the perceptual hash of a small copy and of a large one see alike
                # thumbnails.
                image.draft(image.mode, (min(64, image.width), min(64, image.height)))
            image.load()
            dhash = perceptual_hash(image)
        except Image.DecompressionBombError as exc:
            raise ImageRejected("too_large", f"decompression bomb guard: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise ImageRejected("corrupt_image", f"{fmt} image cannot be decoded: {exc}") from None
    return ImageInfo(
        sha256=digest, width=width, height=height, format=fmt, mode=mode, n_bytes=len(data), dhash=dhash
    )
