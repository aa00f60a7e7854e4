"""The ``lora`` block of the training parameters: LoRA adapters on the encoder layers (models/lora.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from har_kedro.config.errors import TrainingConfigError, known_keys

ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")
MLP = ("fc1", "fc2")
TOWERS = ("vision", "text")
_KNOWN = set(ATTENTION) | set(MLP)


class LoraConfigError(TrainingConfigError):
    """A ``lora`` training parameter is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ATTENTION  # module names inside each encoder layer
    towers: tuple[str, ...] = ("vision",)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "training.lora") -> LoraSettings:
        """The settings from a parameters mapping; ``None`` or ``{}`` gives the defaults."""
        values = known_keys(cls, params, where, LoraConfigError)
        settings = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        settings.validate(where)
        return settings

    def validate(self, where: str = "training.lora") -> None:
        unknown = sorted(set(self.targets) - _KNOWN)
        if unknown or not self.targets:
            raise LoraConfigError(f"{where}.targets {list(self.targets)} must be a non-empty subset of {sorted(_KNOWN)}.")
        bad_towers = sorted(set(self.towers) - set(TOWERS))
        if bad_towers or not self.towers:
            raise LoraConfigError(f"{where}.towers {list(self.towers)} must be a non-empty subset of {list(TOWERS)}.")
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise LoraConfigError(f"{where} needs rank >= 1, alpha > 0 and 0 <= dropout < 1; got {self.rank}, {self.alpha}, {self.dropout}.")
