"""Batched GPU-style augmentation: geometry is exact, randomness is reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from har_kedro.config.augment import AugmentConfig
from har_kedro.models.augment import (
    augment_batch,
    crop_boxes_to_theta,
    normalize,
    prepare_eval_batch,
    prepare_train_batch,
    resample_affine,
    sample_crop_boxes,
    to_float_batch,
)

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
NO_AUG = AugmentConfig(random_resized_crop=False, horizontal_flip=False)
FLIP_ONLY = AugmentConfig(random_resized_crop=False, horizontal_flip=True)


def _uint8_batch(b: int = 6, s: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(b, s, s, 3), dtype=np.uint8)


def _float_batch(b: int = 6, h: int = 32, w: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w or h, generator=g)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- conversion


def test_to_float_batch_shapes_dtype_range_and_values():
    images = _uint8_batch()
    x = to_float_batch(images, "cpu")
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    expected = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-7)
    # Tensors and read-only memmap-like arrays give the same result.
    torch.testing.assert_close(to_float_batch(torch.from_numpy(images), "cpu"), x, rtol=0, atol=0)
    readonly = images.copy()
    readonly.flags.writeable = False
    torch.testing.assert_close(to_float_batch(readonly[::-1][::-1], "cpu"), x, rtol=0, atol=0)


def test_to_float_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        to_float_batch(np.zeros((1, 4, 4, 3), np.float32), "cpu")
    with pytest.raises(ValueError, match="shape"):
        to_float_batch(np.zeros((1, 3, 4, 4), np.uint8), "cpu")


def test_normalize_math():
    x = _float_batch(2, 5)
    out = normalize(x, MEAN, STD)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (x[:, c] - MEAN[c]) / STD[c])
    with pytest.raises(ValueError):
        normalize(x, MEAN[:2], STD)
    with pytest.raises(ValueError):
        normalize(x, MEAN, (1.0, 0.0, 1.0))


# --------------------------------------------------------------------------- augment_batch


def test_augment_shapes_dtype_and_range():
    x = _float_batch(5, 40, 48)
    out = augment_batch(x, AugmentConfig(), 24, _gen(0))
    assert out.shape == (5, 3, 24, 24) and out.dtype == torch.float32
    # Bilinear interpolation of values in [0, 1] stays in [0, 1].
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_augment_reproducible_with_same_seed_and_differs_with_another():
    x = _float_batch(8, 32)
    a = augment_batch(x, AugmentConfig(), 24, _gen(123))
    b = augment_batch(x, AugmentConfig(), 24, _gen(123))
    c = augment_batch(x, AugmentConfig(), 24, _gen(124))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_augment_disabled_is_exact_identity_or_plain_resize():
    x = _float_batch(4, 32)
    same = augment_batch(x, NO_AUG, 32, _gen(0))
    torch.testing.assert_close(same, x, rtol=0, atol=1e-5)
    for size in (20, 48):
        resized = augment_batch(x, NO_AUG, size, _gen(0))
        expected = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        torch.testing.assert_close(resized, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("h,w", [(32, 32), (24, 40)])
def test_identity_affine_is_exact(h, w):
    """The full-image box through affine_grid + grid_sample: no half-pixel shift, no blur."""
    x = _float_batch(3, h, w)
    theta = crop_boxes_to_theta(torch.tensor([[0.0, 0.0, float(w), float(h)]]).expand(3, 4), h, w)
    torch.testing.assert_close(resample_affine(x, theta, (h, w)), x, rtol=0, atol=1e-5)
    for size in (20, 48):  # and the same box resized is exactly bilinear F.interpolate
        expected = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        torch.testing.assert_close(resample_affine(x, theta, size), expected, rtol=0, atol=1e-5)
    # Half-precision batches are sampled at float32 positions, so they stay as exact as their dtype.
    out = resample_affine(x.to(torch.bfloat16), theta, (h, w))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), x.to(torch.bfloat16).float(), rtol=0, atol=1e-2)


def test_flip_only_flips_exactly_some_samples():
    x = _float_batch(16, 24)
    out = augment_batch(x, FLIP_ONLY, 24, _gen(7))
    flipped = []
    for i in range(16):
        if torch.allclose(out[i], x[i], rtol=0, atol=1e-5):
            flipped.append(False)
        else:
            torch.testing.assert_close(out[i], torch.flip(x[i], dims=[-1]), rtol=0, atol=1e-5)
            flipped.append(True)
    assert any(flipped) and not all(flipped)


def test_hand_made_crop_box_matches_slice_and_resize():
    x = _float_batch(2, 64, 48)  # H=64, W=48
    boxes = torch.tensor([[10.0, 5.0, 42.0, 37.0], [0.0, 16.0, 48.0, 64.0]])  # (x0, y0, x1, y1)
    theta = crop_boxes_to_theta(boxes, 64, 48)
    # Same size as the crop: the pixels themselves.
    out = resample_affine(x[:1], theta[:1], 32)
    torch.testing.assert_close(out[0], x[0, :, 5:37, 10:42], rtol=0, atol=1e-5)
    # Downscaled: bilinear resize of the slice.
    out = resample_affine(x, theta, 16)
    for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        expected = F.interpolate(x[i : i + 1, :, y0:y1, x0:x1], size=(16, 16), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[i], expected[0], rtol=0, atol=1e-5)
    # A flipped box mirrors the crop.
    theta_flip = crop_boxes_to_theta(boxes[:1], 64, 48, flip=torch.tensor([True]))
    out = resample_affine(x[:1], theta_flip, 32)
    torch.testing.assert_close(out[0], torch.flip(x[0, :, 5:37, 10:42], dims=[-1]), rtol=0, atol=1e-5)


def test_sampled_boxes_follow_the_rule():
    boxes = sample_crop_boxes(2000, 40, 60, (0.3, 0.9), (3 / 4, 4 / 3), _gen(0))
    x0, y0, x1, y1 = boxes.unbind(1)
    w, h = x1 - x0, y1 - y0
    assert torch.equal(boxes, boxes.round())  # whole pixels
    assert bool((x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 60).all() and (y1 <= 40).all())
    assert bool((w > 0).all() and (h > 0).all())
    area = w * h / (40 * 60)
    # Rounding to whole pixels moves the area and ratio a little past the bounds.
    assert float(area.min()) > 0.3 - 0.05 and float(area.max()) < 0.9 + 0.05
    ratio = w / h
    assert float(ratio.min()) > 3 / 4 - 0.1 and float(ratio.max()) < 4 / 3 + 0.1
    assert len({tuple(b) for b in boxes.tolist()}) > 1000  # each sample its own box


def test_impossible_ratio_falls_back_to_centre_crop():
    # A 10-wide, 100-high strip cannot hold a box of ratio (w/h) in [2, 3] covering 90% of it:
    # centre crop of full width at the smallest allowed ratio, 10 x 5.
    boxes = sample_crop_boxes(4, 100, 10, (0.9, 1.0), (2.0, 3.0), _gen(0))
    expected = torch.tensor([[0.0, 47.0, 10.0, 52.0]], dtype=torch.float64).expand(4, 4)
    assert torch.equal(boxes, expected)


def test_random_numbers_come_from_the_cpu_generator_only():
    x = _float_batch(4, 16)
    torch.manual_seed(0)
    a = augment_batch(x, AugmentConfig(), 16, _gen(5))
    torch.manual_seed(999)
    b = augment_batch(x, AugmentConfig(), 16, _gen(5))
    assert torch.equal(a, b)  # the global RNG does not matter when a generator is given


# --------------------------------------------------------------------------- whole pipelines


def test_prepare_eval_batch_matches_manual_computation():
    images = _uint8_batch(3, 40)
    out = prepare_eval_batch(images, MEAN, STD, 24, "cpu")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
    expected = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert out.shape == (3, 3, 24, 24)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # Same size: no resize at all.
    same = prepare_eval_batch(images, MEAN, STD, 40, "cpu")
    torch.testing.assert_close(same, normalize(to_float_batch(images, "cpu"), MEAN, STD), rtol=0, atol=0)


def test_prepare_train_batch_shapes_and_reproducibility():
    images = _uint8_batch(5, 32)
    a = prepare_train_batch(images, MEAN, STD, 28, AugmentConfig(), "cpu", _gen(3))
    b = prepare_train_batch(images, MEAN, STD, 28, AugmentConfig(), "cpu", _gen(3))
    assert a.shape == (5, 3, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b)
    plain = prepare_train_batch(images, MEAN, STD, 32, NO_AUG, "cpu", _gen(3))
    torch.testing.assert_close(plain, prepare_eval_batch(images, MEAN, STD, 32, "cpu"), rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_result_on_gpu_as_on_cpu():
    images = _uint8_batch(4, 32)
    cpu = prepare_train_batch(images, MEAN, STD, 24, AugmentConfig(), "cpu", _gen(11))
    gpu = prepare_train_batch(images, MEAN, STD, 24, AugmentConfig(), "cuda", _gen(11))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- config


def test_from_params_defaults_and_values():
    assert AugmentConfig.from_params(None) == AugmentConfig()
    assert AugmentConfig.from_params({}) == AugmentConfig()
    cfg = AugmentConfig.from_params({"scale": [0.5, 1], "ratio": [0.8, 1.25], "horizontal_flip": False})
    assert cfg.scale == (0.5, 1.0) and cfg.ratio == (0.8, 1.25) and cfg.horizontal_flip is False


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"scal": [0.5, 1.0], "flip": True}, r"unknown keys \['flip', 'scal'\]"),
        ({"scale": [0.0, 1.0]}, "scale"),
        ({"scale": [0.9, 0.5]}, "scale"),
        ({"scale": [0.5, 1.5]}, "scale"),
        ({"scale": 0.5}, "scale"),
        ({"ratio": [1.5, 1.0]}, "ratio"),
        ({"ratio": [0.0, 1.0]}, "ratio"),
        ({"ratio": ["a", 1.0]}, "ratio"),
        ({"horizontal_flip": "yes"}, "horizontal_flip"),
        ({"random_resized_crop": 1}, "random_resized_crop"),
    ],
)
def test_from_params_errors_name_the_problem(params, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig.from_params(params)
