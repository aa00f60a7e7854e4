"""Batched image augmentation on the training device.

Pixels arrive from the decoded cache as a uint8 ``(B, S, S, 3)`` batch. They are moved to the
device as uint8 (a quarter of the bytes of float32), converted there, and augmented for the
whole batch at once: every sample gets its own random-resized-crop box and horizontal flip,
all folded into one affine transform per sample and applied with a single ``grid_sample``.

Random numbers are always drawn on the CPU from the caller's generator, so a seed gives the
same boxes and flips on any device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from har_kedro.config.augment import AugmentConfig
from har_kedro.models.device import upload

# torchvision's RandomResizedCrop tries this many boxes before falling back to a centre crop.
CROP_ATTEMPTS = 10

__all__ = [
    "augment_batch",
    "crop_boxes_to_theta",
    "normalize",
    "prepare_eval_batch",
    "prepare_train_batch",
    "resample_affine",
    "sample_crop_boxes",
    "sample_flips",
    "to_float_batch",
]


# --------------------------------------------------------------------------- conversion


def to_float_batch(
    images_uint8: torch.Tensor | np.ndarray,
    device: torch.device | str,
    non_blocking: bool = True,
) -> torch.Tensor:
    """``(B, S, S, 3)`` uint8 (tensor, array or memmap) -> ``(B, 3, S, S)`` float32 in [0, 1] on ``device``.

    The copy to the device happens in uint8; the conversion to float runs on the device.
    """
    if isinstance(images_uint8, np.ndarray):
        array = images_uint8
        if array.dtype != np.uint8:
            raise ValueError(f"Expected a uint8 image batch, got dtype {array.dtype}.")
        if not (array.flags.c_contiguous and array.flags.writeable):
            # Read-only memmaps and strided views: one host copy, which torch may then own.
            array = np.array(array, dtype=np.uint8, order="C", copy=True)
        tensor = torch.from_numpy(np.asarray(array))
    elif isinstance(images_uint8, torch.Tensor):
        tensor = images_uint8
        if tensor.dtype != torch.uint8:
            raise ValueError(f"Expected a uint8 image batch, got dtype {tensor.dtype}.")
    else:
        raise TypeError(f"Expected a torch.Tensor or numpy array, got {type(images_uint8).__name__}.")
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"Expected an image batch of shape (B, H, W, 3), got {tuple(tensor.shape)}.")

    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu" and non_blocking and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    tensor = tensor.to(device, non_blocking=non_blocking)
    return tensor.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel ``(x - mean) / std`` for a ``(B, C, H, W)`` batch (returns a new tensor)."""
    if x.ndim != 4:
        raise ValueError(f"Expected a (B, C, H, W) batch, got shape {tuple(x.shape)}.")
    channels = x.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values each, got {len(mean)} and {len(std)}.")
    if any(float(s) <= 0.0 for s in std):
        raise ValueError(f"std values must be positive, got {list(std)}.")
    # Built on the host and uploaded from pinned memory: torch.tensor(..., device="cuda") would wait for the GPU.
    m = upload(torch.tensor([float(v) for v in mean], dtype=x.dtype).view(1, channels, 1, 1), x.device)
    s = upload(torch.tensor([float(v) for v in std], dtype=x.dtype).view(1, channels, 1, 1), x.device)
    return (x - m) / s


# --------------------------------------------------------------------------- geometry


def sample_crop_boxes(
    batch_size: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-resized-crop boxes, one per sample, as ``(B, 4)`` float64 ``(x0, y0, x1, y1)`` pixel edges.

    Same rule as torchvision's ``RandomResizedCrop``: up to ten tries of an area drawn uniformly
    from ``scale * H * W`` and an aspect ratio drawn log-uniformly from ``ratio``, rounded to whole
    pixels; the first that fits is placed uniformly at random. When none fits, a centre crop of
    the largest box within ``ratio``. Vectorised: all tries are drawn at once on the CPU.
    """
    _check_cpu_generator(generator)
    n, t = batch_size, CROP_ATTEMPTS
    kw = {"generator": generator, "dtype": torch.float64}
    area = float(height * width) * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, t, **kw))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, t, **kw))
    place = torch.rand(n, 2, **kw)

    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int64).argmax(dim=1, keepdim=True)  # index of the first try that fits
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    top = torch.floor(place[:, 0] * (height - h + 1)).clamp_(max=height - h)
    left = torch.floor(place[:, 1] * (width - w + 1)).clamp_(max=width - w)

    # Fallback: centre crop, clipped to the ratio range.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    top = torch.where(found, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(found, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([left, top, left + w, top + h], dim=1)


def sample_flips(batch_size: int, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B,)`` bool: which samples to mirror, each with probability ``p`` (drawn on the CPU)."""
    _check_cpu_generator(generator)
    return torch.rand(batch_size, generator=generator, dtype=torch.float64) < p


def crop_boxes_to_theta(
    boxes: torch.Tensor,
    height: int,
    width: int,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affine matrices ``(B, 2, 3)`` (float64) that map an output grid onto each box for ``F.affine_grid``.

    ``boxes`` are ``(x0, y0, x1, y1)`` pixel *edges* in the input (the full image is
    ``(0, 0, W, H)``); with ``align_corners=False`` the box edges land exactly on the output's
    edges, so the full-image box is the exact identity. ``flip`` (bool ``(B,)``) mirrors a
    sample about its box centre by negating the x scale.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}.")
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    sx = (x1 - x0) / width
    sy = (y1 - y0) / height
    tx = (x0 + x1) / width - 1.0
    ty = (y0 + y1) / height - 1.0
    if flip is not None:
        sx = torch.where(torch.as_tensor(flip, dtype=torch.bool), -sx, sx)
    zero = torch.zeros_like(sx)
    return torch.stack(
        [torch.stack([sx, zero, tx], dim=1), torch.stack([zero, sy, ty], dim=1)],
        dim=1,
    )


def resample_affine(x: torch.Tensor, theta: torch.Tensor, out_size: int | tuple[int, int]) -> torch.Tensor:
    """One bilinear ``grid_sample`` of the whole batch through per-sample ``theta`` ``(B, 2, 3)``.

    Border padding, so sampling half a pixel past an edge repeats the edge (as ``F.interpolate`` does).
    """
    out_h, out_w = (out_size, out_size) if isinstance(out_size, int) else out_size
    # Sampling positions in half precision would be off by up to a pixel: sample in float32 at least.
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    # The grid is built in float64 (a few MB) and rounded once, which halves the position error.
    theta = upload(theta.to(torch.float64), x.device)  # non-blocking: the boxes were drawn on the CPU
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], out_h, out_w], align_corners=False).to(work)
    out = F.grid_sample(x.to(work), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(x.dtype)


def augment_batch(
    x: torch.Tensor,
    config: AugmentConfig,
    out_size: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random resized crop and horizontal flip, per sample, for a ``(B, 3, H, W)`` float batch.

    Returns ``(B, 3, out_size, out_size)`` on ``x``'s device. Random numbers come from
    ``generator`` (a CPU generator; the global one when ``None``), crops first, then flips.
    With both steps disabled this is a plain bilinear ``F.interpolate`` (``x`` itself when the
    sizes match), which is what the affine path computes too, minus its float rounding (~1e-5).
    """
    if x.ndim != 4:
        raise ValueError(f"Expected a (B, C, H, W) batch, got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"augment_batch needs a floating-point batch, got {x.dtype}.")
    if not isinstance(out_size, int) or out_size <= 0:
        raise ValueError(f"out_size must be a positive integer, got {out_size!r}.")
    batch, _, height, width = x.shape
    if batch == 0:
        return x.new_empty((0, x.shape[1], out_size, out_size))

    if not (config.random_resized_crop or config.horizontal_flip):
        if (height, width) == (out_size, out_size):
            return x
        return F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)

    if config.random_resized_crop:
        boxes = sample_crop_boxes(batch, height, width, config.scale, config.ratio, generator)
    else:
        boxes = torch.tensor([[0.0, 0.0, float(width), float(height)]], dtype=torch.float64).expand(batch, 4)
    flip = sample_flips(batch, 0.5, generator) if config.horizontal_flip else None
    theta = crop_boxes_to_theta(boxes, height, width, flip)
    return resample_affine(x, theta, out_size)


# --------------------------------------------------------------------------- whole pipelines


def _resize(x: torch.Tensor, out_size: int, mode: str) -> torch.Tensor:
    if x.shape[-2:] == (out_size, out_size):
        return x
    antialias = mode in ("bilinear", "bicubic")
    return F.interpolate(x, size=(out_size, out_size), mode=mode, align_corners=False, antialias=antialias)


def prepare_eval_batch(
    images_uint8: torch.Tensor | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    out_size: int,
    device: torch.device | str,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """uint8 ``(B, S, S, 3)`` -> normalised float ``(B, 3, out_size, out_size)`` on ``device``, no randomness.

    Resizes (antialiased) only when ``S != out_size``.
    """
    x = to_float_batch(images_uint8, device)
    x = _resize(x, out_size, interpolation)
    if interpolation == "bicubic":
        x = x.clamp_(0.0, 1.0)
    return normalize(x, mean, std)


def prepare_train_batch(
    images_uint8: torch.Tensor | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    out_size: int,
    config: AugmentConfig,
    device: torch.device | str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """uint8 ``(B, S, S, 3)`` -> augmented, normalised float ``(B, 3, out_size, out_size)`` on ``device``."""
    x = to_float_batch(images_uint8, device)
    x = augment_batch(x, config, out_size, generator)
    return normalize(x, mean, std)


def _check_cpu_generator(generator: torch.Generator | None) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"Augmentation draws its random numbers on the CPU; pass a CPU torch.Generator, not one on {generator.device}."
        )
