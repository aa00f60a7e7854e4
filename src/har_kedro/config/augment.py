"""The ``augment`` block of the training parameters: what the batched augmentation does to a training batch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


def _float_pair(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"augment.{name} must be a pair [low, high], got {value!r}.")
    lo, hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"augment.{name} must hold two finite numbers, got {value!r}.")
    return float(lo), float(hi)


@dataclass(frozen=True)
class AugmentConfig:
    """What :func:`augment_batch` does to a training batch."""

    random_resized_crop: bool = True
    scale: tuple[float, float] = (0.6, 1.0)  # fraction of the image area a crop covers
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio (width / height), sampled log-uniformly
    horizontal_flip: bool = True

    def __post_init__(self) -> None:
        for name in ("random_resized_crop", "horizontal_flip"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"augment.{name} must be true or false, got {value!r}.")
            object.__setattr__(self, name, bool(value))
        lo, hi = _float_pair("scale", self.scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"augment.scale must satisfy 0 < low <= high <= 1, got {self.scale!r}.")
        object.__setattr__(self, "scale", (lo, hi))
        lo, hi = _float_pair("ratio", self.ratio)
        if not 0.0 < lo <= hi:
            raise ValueError(f"augment.ratio must satisfy 0 < low <= high, got {self.ratio!r}.")
        object.__setattr__(self, "ratio", (lo, hi))

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> AugmentConfig:
        """Build from a parameters mapping (the ``augment`` block of a model's training parameters); ``None`` gives the defaults.

        Unknown keys and out-of-range values raise :class:`ValueError` naming them.
        """
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise ValueError(f"augment must be a mapping, got {type(params).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in params if k not in known)
        if unknown:
            raise ValueError(f"augment has unknown keys {unknown}; allowed keys are {sorted(known)}.")
        return cls(**dict(params))
