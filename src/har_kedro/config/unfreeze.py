"""The ``unfreeze`` block of the training parameters: staged (gradual) unfreezing of the vision tower.

At a fine-tune stage's epoch 1 only the top ``initial_blocks`` vision encoder blocks (and what sits
above them: post-layernorm, projection, head, the text tower when trained) are trained; every
``every_epochs`` epochs ``blocks_per_step`` more blocks from the top join them; the step after the
last block has joined, the embeddings do too (ULMFiT's gradual unfreezing, Howard & Ruder 2018).
The schedule is a function of the epoch alone, so a resumed run freezes what an uninterrupted one did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from har_kedro.config.errors import TrainingConfigError, known_keys

UNFREEZE_METHODS = ("full", "lp_ft")


class UnfreezeConfigError(TrainingConfigError):
    """An ``unfreeze`` training parameter is unknown or out of range; the message names it."""


@dataclass(frozen=True)
class UnfreezeSettings:
    initial_blocks: int = 1  # top vision encoder blocks trained from epoch 1
    blocks_per_step: int = 1  # blocks unfrozen at each step
    every_epochs: int = 1  # epochs between steps

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "training.unfreeze") -> UnfreezeSettings:
        """The settings from a parameters mapping; ``{}`` gives the defaults (the caller maps ``null`` to off)."""
        settings = cls(**known_keys(cls, params, where, UnfreezeConfigError))
        settings.validate(where)
        return settings

    def validate(self, where: str = "training.unfreeze") -> None:
        for name in ("initial_blocks", "blocks_per_step", "every_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UnfreezeConfigError(f"{where}.{name} must be a positive integer, got {value!r}.")

    def unfrozen_depth(self, epoch: int, num_layers: int) -> int:
        """How deep from the top the vision tower trains at ``epoch`` (1-based, within the stage).

        Depth counts blocks from the top: the top encoder block is depth 1, the bottom one
        ``num_layers``, the embeddings ``num_layers + 1`` (and what sits above the blocks, 0). A
        parameter trains at ``epoch`` when its depth is at most this value.
        """
        step = (epoch - 1) // self.every_epochs
        blocks = self.initial_blocks + step * self.blocks_per_step
        if blocks < num_layers:
            return blocks
        all_blocks_step = max(0, math.ceil((num_layers - self.initial_blocks) / self.blocks_per_step))
        return num_layers + 1 if step > all_blocks_step else num_layers
