"""Encoding of rendered images: plain JPEG, and the unusual-but-valid formats a pipeline must convert."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def jpeg_bytes(img: Image.Image, quality: int, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def convert(kind: str, img: Image.Image, quality: int) -> tuple[str, bytes, str]:
    """Re-encode an RGB render as one of the unusual-but-valid formats; returns (ext, bytes, description)."""
    if kind == "gray":
        return "jpg", jpeg_bytes(img.convert("L"), quality), "grayscale JPEG (mode L)"
    if kind == "cmyk":
        return "jpg", jpeg_bytes(img.convert("CMYK"), quality), "CMYK JPEG (mode CMYK)"
    if kind == "palette":
        pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        return "png", png_bytes(pal), "palette PNG (mode P)"
    if kind == "rgba":
        rgba = img.convert("RGBA")
        alpha = np.full((img.height, img.width), 255, dtype=np.uint8)
        m = max(2, min(img.width, img.height) // 12)
        alpha[:m, :] = 0
        alpha[-m:, :] = 0
        alpha[:, :m] = 0
        alpha[:, -m:] = 0
        rgba.putalpha(Image.fromarray(alpha, "L"))
        return "png", png_bytes(rgba), "RGBA PNG with a transparent border (mode RGBA)"
    if kind == "gray16":
        arr = np.asarray(img.convert("L"), dtype=np.uint16) * np.uint16(257)
        return "png", png_bytes(Image.fromarray(arr)), "16-bit grayscale PNG (mode I;16)"
    if kind == "exif_rot":
        stored = img.transpose(Image.Transpose.ROTATE_90)  # pixels stored rotated 90 deg CCW
        exif = stored.getexif()
        exif[0x0112] = 6  # Orientation: rotate 90 deg CW to display upright
        return "jpg", jpeg_bytes(stored, quality, exif=exif), "JPEG stored rotated with EXIF Orientation=6"
    raise ValueError(kind)


CONVERTIBLE_KINDS = ("gray", "cmyk", "palette", "rgba", "gray16", "exif_rot")
