"""Versioned trained-model and checkpoint-store datasets. Weights are safetensors; nothing is pickled."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractDataset, AbstractVersionedDataset, DatasetError, Version
from safetensors.torch import load_file, save_file

from har_kedro.config.model_spec import ModelSpec, TrainedModel

WEIGHTS = "weights.safetensors"
CONFIG = "model_config.json"


class TrainedModelDataset(AbstractVersionedDataset[TrainedModel, TrainedModel]):
    """A directory per version: ``weights.safetensors`` (trainable part) + ``model_config.json`` (how to rebuild)."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}

    def _exists(self) -> bool:
        try:
            path = Path(str(self._get_load_path()))
        except DatasetError:
            return False
        return (path / WEIGHTS).is_file()

    def load(self) -> TrainedModel:
        path = Path(str(self._get_load_path()))
        if not (path / WEIGHTS).is_file():
            raise DatasetError(f"{path} holds no {WEIGHTS}; train the model first (kedro run --pipeline=train_<model>).")
        try:
            spec = ModelSpec.from_dict(json.loads((path / CONFIG).read_text(encoding="utf-8")), where=str(path / CONFIG))
        except (OSError, ValueError) as error:
            raise DatasetError(f"{path / CONFIG} cannot be read as a model spec: {error}") from None
        return TrainedModel(load_file(str(path / WEIGHTS)), spec)

    def save(self, data: TrainedModel) -> None:
        path = Path(str(self._get_save_path()))
        path.mkdir(parents=True, exist_ok=False)
        save_file({k: v.contiguous() for k, v in data.state.items()}, str(path / WEIGHTS), metadata={"format": "har_kedro.trained_model/1"})
        (path / CONFIG).write_text(json.dumps(data.spec.to_dict(), indent=2, sort_keys=True), encoding="utf-8")


class CheckpointStoreDataset(AbstractDataset[None, Path]):
    """Hands the training node the folder its resumable per-epoch checkpoints live in.

    Checkpoints are written during a node (every epoch), so they cannot be node outputs;
    declaring the folder in the catalog keeps its location in configuration with every
    other artifact. Loading creates the folder and returns its path.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def load(self) -> Path:
        self._path.mkdir(parents=True, exist_ok=True)
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("the checkpoint store is written by the training loop, not saved as a node output")

    def _exists(self) -> bool:
        return True
