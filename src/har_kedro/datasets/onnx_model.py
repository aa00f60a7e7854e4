"""A versioned ``.onnx`` file: the serialized model bytes in, the same bytes out.

Bytes rather than a loaded ``onnx.ModelProto`` or an onnxruntime session: the file is the
serving artifact, and ``onnxruntime.InferenceSession(bytes)`` opens it directly, so loading
needs neither onnx nor onnxruntime until someone actually runs it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version


class OnnxModelDataset(AbstractVersionedDataset[bytes, bytes]):
    """``<filepath>/<version>/<name>.onnx`` holding one serialized ONNX model."""

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
        return path.is_file()

    def load(self) -> bytes:
        path = Path(str(self._get_load_path()))
        if not path.is_file():
            raise DatasetError(f"{path} does not exist; export the model first (kedro run --pipeline=inference_<model>).")
        return path.read_bytes()

    def save(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray) or not data:
            raise DatasetError(f"OnnxModelDataset saves the serialized model as non-empty bytes, got {type(data).__name__}.")
        path = Path(str(self._get_save_path()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
