"""What one training run trains from and on, in one typed value shared by its stages and worker processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from har_kedro.config.training import TrainConfig
from har_kedro.data.image_cache import SplitArrays
from har_kedro.training.loop import Split


@dataclass(frozen=True)
class RunInputs:
    """What one run trains from and on; shared by its stages and its worker processes."""

    cache: SplitArrays  # the image cache (fine-tuning) or the caption cache (pretraining)
    class_names: Sequence[str]
    class_prompts: Mapping[str, Sequence[str]]
    backbone_source: str
    config: TrainConfig
    seed: int
    image_size: int
    device: torch.device
    checkpoint_dir: Path | None
    identity: Mapping[str, str]  # backbone, its weights hash and the image cache: what a checkpoint must match
    # Called after each epoch with (epoch, history row) by the process that logs (rank 0); picklable,
    # since worker processes get it too (e.g. har_kedro.tracking.EpochMetricsLogger).
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None

    def split(self, name: str) -> Split:
        return Split(self.cache.images(name), self.cache.labels(name))
