"""What the demo generator is asked for (:class:`DemoSpec`) and what it wrote (:class:`DemoSummary`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from har_kedro.config.errors import known_keys
from har_kedro.data.errors import DataInputError

CSV_NAME = "Training_set.csv"
IMAGE_DIR = "train"
#: the label written for the "unknown label" broken entry; not one of the HAR classes.
UNKNOWN_LABEL = "juggling"


@dataclass(frozen=True)
class DemoSpec:
    """What to generate.

    The defaults give 720 good images of at most 160 px: big enough for a model to reach
    clearly-above-chance accuracy, small enough to generate in a couple of seconds.
    """

    images_per_class: int = 48
    #: each image gets a random width and height in ``[min_size, max_size]`` so that the
    #: pipeline's resizing is exercised with non-square, varying inputs.
    min_size: int = 96
    max_size: int = 160
    seed: int = 0
    #: add the broken / problematic entries that an ingestion step must reject.
    include_broken: bool = True
    jpeg_quality: int = 90
    #: figure height as a fraction of the image height, and how far from the centre the
    #: figure may sit (0: centred, 1: anywhere); see :func:`har_kedro.demo.render.render_action`.
    min_scale: float = 0.4
    max_scale: float = 0.9
    placement: float = 1.0

    @classmethod
    def from_params(cls, settings: Mapping[str, Any]) -> DemoSpec:
        """The generator settings of ``kind: demo`` (``ingestion.source.demo``), with the key or value at fault named."""
        values = known_keys(cls, settings, "ingestion.source.demo", DataInputError)
        try:
            return cls(**values)
        except ValueError as exc:
            raise DataInputError(f"ingestion.source.demo: {exc}") from None

    def __post_init__(self) -> None:
        if self.images_per_class < 1:
            raise ValueError("images_per_class must be >= 1")
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError("need 16 <= min_size <= max_size")
        if self.seed < 0:
            raise ValueError("seed must be >= 0 (it seeds numpy's SeedSequence)")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in [1, 100]")
        if not 0.05 <= self.min_scale <= self.max_scale <= 1.0:
            raise ValueError("need 0.05 <= min_scale <= max_scale <= 1")
        if not 0.0 <= self.placement <= 1.0:
            raise ValueError("placement must be in [0, 1]")


@dataclass(frozen=True)
class DemoSummary:
    """What was written, so tests and demos can check the ingestion step against it.

    ``broken`` is keyed by filename (relative to ``train/``); problems that live only in
    the CSV are keyed ``"Training_set.csv row <k>"`` where ``k`` is the 0-based data-row
    index (the pandas index after ``read_csv``). ``convertible`` lists good images that are
    valid but not plain RGB JPEGs: they are counted in ``n_good`` because a pipeline should
    convert them, not reject them.
    """

    root: Path
    n_listed: int  # rows in Training_set.csv (header excluded)
    n_good: int  # valid, correctly labelled, unique images
    broken: dict[str, str] = field(default_factory=dict)
    convertible: dict[str, str] = field(default_factory=dict)

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    @property
    def image_dir(self) -> Path:
        return self.root / IMAGE_DIR
