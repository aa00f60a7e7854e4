"""The saved form of a trained classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class TrainedModel:
    """The trained part of a classifier (head, adapters or all weights) plus what is needed to rebuild it."""

    state: dict[str, torch.Tensor]
    config: dict[str, Any]
