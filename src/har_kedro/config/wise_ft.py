"""The ``wise_ft`` block of the training parameters: weight-space ensembling of the zero-shot and the
fine-tuned model (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022; models/wise_ft.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from har_kedro.config.errors import TrainingConfigError, known_keys

DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1 ... 1.0


@dataclass(frozen=True)
class WiseFtSettings:
    """``alphas``: the mixing weights evaluated on val and test (0 = zero-shot, 1 = fine-tuned); ``apply``: the
    trained model (inference, ONNX) and its test predictions use the α chosen on val instead of α = 1."""

    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    apply: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "training.wise_ft") -> WiseFtSettings:
        values = known_keys(cls, params, where)
        alphas = values.get("alphas", DEFAULT_ALPHAS)
        if not isinstance(alphas, list | tuple) or not alphas or not all(_is_alpha(a) for a in alphas):
            raise TrainingConfigError(f"{where}.alphas is {alphas!r}; give a non-empty list of numbers in [0, 1], e.g. [0, 0.5, 1].")
        if len(set(alphas)) != len(alphas):
            raise TrainingConfigError(f"{where}.alphas lists a value twice ({list(alphas)}); give each mixing weight once.")
        values["alphas"] = tuple(sorted(float(a) for a in alphas))
        if not isinstance(values.get("apply", False), bool):
            raise TrainingConfigError(f"{where}.apply must be true or false, got {values['apply']!r}.")
        return cls(**values)


def _is_alpha(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1
