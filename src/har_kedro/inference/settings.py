"""Typed inference settings read from ``parameters_inference.yml``, with errors that name the key.

The decode size and resample filter default to the preprocessing ones, because the model was
trained on the image cache those produced: new images must be decoded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from har_kedro.data.decoding import RESAMPLING
from har_kedro.data.errors import DataInputError
from har_kedro.data.parallel import resolve_workers
from har_kedro.config.training import AMP_MODES

PIXEL_FORMATS = ("uint8", "float")


class InferenceConfigError(ValueError):
    """An inference parameter is missing, unknown or out of range; the message names it."""


def _check_keys(params: Mapping[str, Any], cls: type, where: str) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InferenceConfigError(f"{where} has unknown keys {unknown}; allowed keys are {sorted(allowed)}.")


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InferenceConfigError(f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class OnnxSettings:
    """How the classifier is exported to ONNX and checked against PyTorch."""

    pixels: str = "uint8"  # uint8: (B, S, S, 3) 0..255 as decoded | float: (B, 3, S, S) normalised pixel_values
    merge_lora: bool = True  # fold LoRA adapters into the weights before export
    opset: int = 18
    parity_images: int = 16  # images of images_dir compared between onnxruntime and PyTorch
    tolerance: float = 1e-4  # max abs difference of probabilities that still counts as a pass

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "inference.onnx") -> OnnxSettings:
        params = dict(params or {})
        _check_keys(params, cls, where)
        settings = cls(**params)
        if settings.pixels not in PIXEL_FORMATS:
            raise InferenceConfigError(f"{where}.pixels is '{settings.pixels}'; use one of {list(PIXEL_FORMATS)}.")
        if not isinstance(settings.merge_lora, bool):
            raise InferenceConfigError(f"{where}.merge_lora must be true or false, got {settings.merge_lora!r}.")
        _positive_int(settings.opset, f"{where}.opset")
        if settings.opset < 18:
            raise InferenceConfigError(f"{where}.opset must be >= 18 (the antialiased Resize needs it), got {settings.opset}.")
        _positive_int(settings.parity_images, f"{where}.parity_images")
        if isinstance(settings.tolerance, bool) or not isinstance(settings.tolerance, (int, float)) or not settings.tolerance > 0:
            raise InferenceConfigError(f"{where}.tolerance must be a number > 0, got {settings.tolerance!r}.")
        return settings


@dataclass(frozen=True)
class InferenceSettings:
    """Where the new images are and how to decode, batch and rank them."""

    images_dir: str = ""
    recursive: bool = False
    top_k: int = 5
    batch_size: int = 64
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:1 | mps
    amp: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | off
    num_workers: int | str = "auto"  # decoding threads
    image_size: int | None = None  # decode size; None = preprocessing.image_size
    resample: str | None = None  # None = preprocessing.resample
    max_image_pixels: int = 50_000_000  # decompression-bomb guard, as in ingestion
    progress: bool = True
    onnx: OnnxSettings = field(default_factory=OnnxSettings)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], preprocessing: Mapping[str, Any] | None = None, where: str = "inference"
    ) -> InferenceSettings:
        """Validate ``params:inference``; unset decode settings come from ``params:preprocessing``."""
        params = dict(params)
        _check_keys(params, cls, where)
        onnx = OnnxSettings.from_params(params.pop("onnx", None), f"{where}.onnx")
        settings = cls(**params, onnx=onnx)
        preprocessing = preprocessing or {}
        settings = replace(
            settings,
            image_size=settings.image_size if settings.image_size is not None else preprocessing.get("image_size", 224),
            resample=settings.resample if settings.resample is not None else preprocessing.get("resample", "bilinear"),
        )
        settings.validate(where)
        return settings

    def validate(self, where: str = "inference") -> None:
        if not isinstance(self.images_dir, str) or not self.images_dir.strip():
            raise DataInputError(f"{where}.images_dir is empty; set it to a folder of images, for instance with --params \"{where}.images_dir=path/to/images\".")
        if not isinstance(self.recursive, bool) or not isinstance(self.progress, bool):
            raise InferenceConfigError(f"{where}.recursive and {where}.progress must be true or false.")
        _positive_int(self.top_k, f"{where}.top_k")
        _positive_int(self.batch_size, f"{where}.batch_size")
        _positive_int(self.max_image_pixels, f"{where}.max_image_pixels")
        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) or not 8 <= self.image_size <= 2048:
            raise InferenceConfigError(f"{where}.image_size must be null or an integer in [8, 2048], got {self.image_size!r}.")
        if self.resample not in RESAMPLING:
            raise InferenceConfigError(f"{where}.resample is '{self.resample}'; use null or one of {sorted(RESAMPLING)}.")
        if self.amp not in AMP_MODES:
            raise InferenceConfigError(f"{where}.amp is '{self.amp}'; use one of {list(AMP_MODES)}.")
        try:
            resolve_workers(self.num_workers)
        except (TypeError, ValueError):
            raise InferenceConfigError(f"{where}.num_workers must be 'auto' or a positive integer, got {self.num_workers!r}.") from None
