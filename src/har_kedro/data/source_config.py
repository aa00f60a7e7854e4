"""Typed reading of ``parameters_ingestion.yml``: unknown keys and kinds fail with the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from har_kedro.config.errors import known_keys
from har_kedro.data.errors import DataInputError

SOURCE_KINDS = ("kaggle", "image_folder", "parquet", "demo")


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "kaggle"
    root: str = "data/01_raw/har"
    labelled_csv: str = "Training_set.csv"
    labelled_dir: str = "train"
    unlabelled_csv: str | None = "Testing_set.csv"
    unlabelled_dir: str = "test"
    paths: list[str] = field(default_factory=list)
    unlabelled_paths: list[str] = field(default_factory=list)
    image_column: str = "image"
    label_column: str = "labels"
    class_names_file: str | None = None
    #: settings of the ``kind: demo`` generator, kept here unparsed: the ingestion node reads
    #: them into a :class:`har_kedro.demo.DemoSpec` (``har_kedro.data`` never imports ``har_kedro.demo``).
    demo: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "ingestion.source") -> SourceConfig:
        values = known_keys(cls, params, where, DataInputError)
        config = cls(**{k: (list(v) if isinstance(v, list | tuple) else v) for k, v in values.items()})
        if config.kind not in SOURCE_KINDS:
            raise DataInputError(f"{where}.kind is '{config.kind}'; use one of {list(SOURCE_KINDS)}.")
        if isinstance(config.paths, str) or isinstance(config.unlabelled_paths, str):
            object.__setattr__(config, "paths", [config.paths] if isinstance(config.paths, str) else config.paths)
            object.__setattr__(
                config, "unlabelled_paths",
                [config.unlabelled_paths] if isinstance(config.unlabelled_paths, str) else config.unlabelled_paths,
            )
        return config

    def describe(self) -> str:
        """Where the images are expected, for error messages."""
        if self.kind == "parquet":
            return f"parquet files {self.paths}"
        return f"{self.root} ({self.kind} layout)"
