"""The ``aclip`` block of the training parameters: A-CLIP's attentive-mask training (models/aclip.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from har_kedro.config.errors import TrainingConfigError, known_keys

SELECTIONS = ("attentive", "random", "none")
LOSS_TERMS = ("contrastive", "cross_entropy", "distill", "simclr")
ACLIP_METHODS = ("full", "lora")


class AclipConfigError(TrainingConfigError):
    """An ``aclip`` training parameter is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class AclipSettings:
    selection: str = "attentive"  # attentive | random | none
    keep_ratio: float = 0.5  # fraction of patch tokens the online tower sees
    num_views: int = 1  # masked views per image (2 adds cross-view distillation and SimCLR)
    ema_momentum: tuple[float, float] = (0.996, 1.0)  # cosine schedule from the first to the second value
    ema_image_scale: float = 1.0  # side of the view the EMA tower scores, as a fraction of the image size
    weights: Mapping[str, float] = field(default_factory=lambda: {"contrastive": 1.0, "cross_entropy": 1.0, "distill": 1.0, "simclr": 0.0})
    predictor_hidden: int | None = None  # hidden width of the distillation predictor; None = 2 × embedding size
    simclr_temperature: float = 0.1
    measure_speedup: bool = True  # time a masked step against a full-token step on one batch after training
    speedup_repeats: int = 5
    speedup_batch_size: int | None = None  # None = the training batch size

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "training.aclip") -> AclipSettings:
        values = known_keys(cls, params, where, AclipConfigError)
        if "ema_momentum" in values:
            values["ema_momentum"] = tuple(values["ema_momentum"]) if isinstance(values["ema_momentum"], (list, tuple)) else values["ema_momentum"]
        if "weights" in values:
            weights = values["weights"]
            if not isinstance(weights, Mapping):
                raise AclipConfigError(f"{where}.weights must be a mapping of {list(LOSS_TERMS)} to numbers.")
            bad = sorted(set(weights) - set(LOSS_TERMS))
            if bad:
                raise AclipConfigError(f"{where}.weights has unknown terms {bad}; use {list(LOSS_TERMS)}.")
            values["weights"] = {**cls().weights, **weights}
        settings = cls(**values)
        settings.validate(where)
        return settings

    def validate(self, where: str = "training.aclip") -> None:
        def fail(message: str) -> None:
            raise AclipConfigError(f"{where}.{message}")

        if self.selection not in SELECTIONS:
            fail(f"selection is {self.selection!r}; use one of {list(SELECTIONS)}.")
        if isinstance(self.keep_ratio, bool) or not isinstance(self.keep_ratio, (int, float)) or not 0 < self.keep_ratio <= 1:
            fail(f"keep_ratio must be in (0, 1], got {self.keep_ratio!r}.")
        if self.selection == "none" and self.keep_ratio != 1:
            fail(f"keep_ratio is {self.keep_ratio} but selection none keeps every token; set keep_ratio: 1.0 or choose attentive / random.")
        scale = self.ema_image_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            fail(f"ema_image_scale must be in (0, 1], got {scale!r}.")
        if self.num_views not in (1, 2):
            fail(f"num_views must be 1 or 2, got {self.num_views!r}.")
        momentum = self.ema_momentum
        if not (isinstance(momentum, tuple) and len(momentum) == 2 and all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in momentum)):
            fail(f"ema_momentum must be a pair [start, end], got {momentum!r}.")
        if not 0 <= momentum[0] <= momentum[1] <= 1:
            fail(f"ema_momentum must satisfy 0 <= start <= end <= 1, got {list(momentum)}.")
        for term, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                fail(f"weights.{term} must be a number >= 0, got {weight!r}.")
        if self.weights["contrastive"] == 0 and self.weights["cross_entropy"] == 0:
            fail("weights: contrastive and cross_entropy are both 0; the head would never be trained for classification.")
        if self.weights["simclr"] > 0 and self.num_views != 2:
            fail("weights.simclr > 0 needs num_views: 2 (SimCLR contrasts two masked views).")
        if self.predictor_hidden is not None and (not isinstance(self.predictor_hidden, int) or self.predictor_hidden < 1):
            fail(f"predictor_hidden must be a positive integer or null, got {self.predictor_hidden!r}.")
        if not self.simclr_temperature > 0:
            fail(f"simclr_temperature must be > 0, got {self.simclr_temperature!r}.")
        if not isinstance(self.speedup_repeats, int) or self.speedup_repeats < 1:
            fail(f"speedup_repeats must be a positive integer, got {self.speedup_repeats!r}.")
        if self.speedup_batch_size is not None and (not isinstance(self.speedup_batch_size, int) or self.speedup_batch_size < 1):
            fail(f"speedup_batch_size must be a positive integer or null, got {self.speedup_batch_size!r}.")
