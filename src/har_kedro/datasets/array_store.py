"""A versioned dataset of large numpy arrays stored once per content fingerprint.

Each saved version is a small JSON pointer; the arrays live in ``<store>/<fingerprint>/``
as ``.npy`` files that loaders memory-map. Large arrays are written block by block with
plain file writes, so saving one costs the memory of a block, not of the array. Saving a
bundle whose fingerprint is already in the store writes only a new pointer and never calls
the arrays' producers (``blocks`` / ``fill``),
so re-running preprocessing over unchanged inputs costs a hash, not a multi-GB decode
and copy, while every run still gets its own catalog version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

_INDEX = "index.json"


@dataclass(frozen=True)
class LazyArray:
    """An array described by shape and dtype whose values are produced only if they must be stored.

    Give exactly one producer:

    * ``blocks``: returns an iterable of consecutive arrays along the first axis (their
      dtype and trailing shape those of the array, their lengths summing to ``shape[0]``).
      Each block is appended to the ``.npy`` file with ordinary writes before the next is
      asked for, so a producer may reuse one buffer and memory stays at one block however
      large the array. Use this for anything big.
    * ``fill``: is handed a writable memory map of the whole array to fill in place. Every
      page it writes counts toward the process's resident memory while the map is open,
      so peak memory grows with the array; fine for small arrays.
    """

    shape: tuple[int, ...]
    dtype: str
    fill: Callable[[np.ndarray], None] | None = None
    blocks: Callable[[], Iterable[np.ndarray]] | None = None

    def __post_init__(self) -> None:
        if (self.fill is None) == (self.blocks is None):
            raise ValueError("LazyArray needs exactly one of fill or blocks")


@dataclass
class ArrayBundle:
    """What a node returns to be saved: named arrays plus JSON metadata, under one fingerprint."""

    fingerprint: str
    arrays: Mapping[str, LazyArray | np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredArrays:
    """What loading returns: metadata in memory, arrays memory-mapped read-only on access."""

    path: Path
    fingerprint: str
    metadata: dict[str, Any]
    names: tuple[str, ...]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"no array '{name}' in {self.path}; it holds {list(self.names)}")
        return np.load(self.path / _file_name(name), mmap_mode="r", allow_pickle=False)


def _file_name(name: str) -> str:
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise ValueError(f"array name {name!r} must be a plain file-name stem")
    return f"{name}.npy"


class ContentAddressedArrayDataset(AbstractVersionedDataset[ArrayBundle, StoredArrays]):
    """Versioned pointer file + content-addressed array store.

    Example catalog entry::

        image_cache:
          type: har_kedro.datasets.ContentAddressedArrayDataset
          filepath: data/05_model_input/image_cache.json
          store: data/05_model_input/image_cache_store
          versioned: true
    """

    def __init__(
        self,
        filepath: str,
        store: str | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version)
        self._store = Path(store) if store else Path(f"{filepath}.store")
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "store": str(self._store), "version": self._version}

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return Path(str(path)).is_file()

    def load(self) -> StoredArrays:
        pointer_path = Path(str(self._get_load_path()))
        pointer = json.loads(pointer_path.read_text(encoding="utf-8"))
        blob = self._store / pointer["fingerprint"]
        index_path = blob / _INDEX
        if not index_path.is_file():
            raise DatasetError(
                f"{pointer_path} points at {blob}, which is missing or incomplete; re-run the "
                "pipeline that produced it (kedro run --pipeline=preprocessing) to rebuild it."
            )
        index = json.loads(index_path.read_text(encoding="utf-8"))
        return StoredArrays(blob, pointer["fingerprint"], index["metadata"], tuple(index["arrays"]))

    def save(self, data: ArrayBundle) -> None:
        if not isinstance(data, ArrayBundle):
            raise DatasetError(f"{type(self).__name__} saves an ArrayBundle, got {type(data).__name__}")
        fingerprint = data.fingerprint
        if not fingerprint or any(ch in fingerprint for ch in "/\\.") :
            raise DatasetError(f"fingerprint {fingerprint!r} must be a plain name (e.g. a hex digest)")
        blob = self._store / fingerprint
        reused = (blob / _INDEX).is_file()
        if not reused:
            self._write_blob(blob, data)
        pointer_path = Path(str(self._get_save_path()))
        pointer_path.parent.mkdir(parents=True, exist_ok=True)
        pointer = {"fingerprint": fingerprint, "reused_existing_store": reused, "metadata": data.metadata}
        pointer_path.write_text(json.dumps(pointer, indent=2, sort_keys=True), encoding="utf-8")

    def _write_blob(self, blob: Path, data: ArrayBundle) -> None:
        partial = blob.parent / f".{blob.name}.partial-{uuid.uuid4().hex[:8]}"
        partial.mkdir(parents=True)
        try:
            for name, array in data.arrays.items():
                target = partial / _file_name(name)
                if isinstance(array, LazyArray):
                    _write_lazy(target, array)
                else:
                    np.save(target, np.ascontiguousarray(array), allow_pickle=False)
            index = {"arrays": list(data.arrays), "metadata": data.metadata}
            # The index is written last: its presence marks the blob complete.
            (partial / _INDEX).write_text(json.dumps(index, sort_keys=True), encoding="utf-8")
            try:
                os.rename(partial, blob)
            except OSError:
                if not (blob / _INDEX).is_file():
                    raise
                shutil.rmtree(partial, ignore_errors=True)  # another run finished the same blob first
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise


def _write_lazy(target: Path, array: LazyArray) -> None:
    """Produce ``array`` into the ``.npy`` file ``target``, durably (flushed to disk)."""
    dtype = np.dtype(array.dtype)
    shape = tuple(int(n) for n in array.shape)
    if array.fill is not None:
        buffer = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=shape)
        array.fill(buffer)
        buffer.flush()
        del buffer
        return
    assert array.blocks is not None  # __post_init__ guarantees one producer
    if not shape:
        raise ValueError(f"{target.name}: blocks need an array of at least one dimension, got shape {shape}")
    with target.open("wb") as handle:
        _write_npy_header(handle, dtype, shape)
        rows = _append_blocks(handle, array.blocks(), dtype, shape)
        if rows != shape[0]:
            raise ValueError(f"{target.name}: the blocks held {rows} rows, the array has shape {shape}")
        handle.flush()
        os.fsync(handle.fileno())


def _write_npy_header(handle: BinaryIO, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The header ``np.lib.format.open_memmap`` and ``np.save`` write for a C-ordered array."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(handle, header)
    except ValueError:  # a header over 64 KiB needs format 2.0, as numpy itself would pick
        np.lib.format.write_array_header_2_0(handle, header)


def _append_blocks(handle: BinaryIO, blocks: Iterable[np.ndarray], dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Append each block's bytes to ``handle``; returns the number of rows written."""
    rows = 0
    iterator = iter(blocks)
    try:
        for block in iterator:
            block = np.asarray(block)
            if block.dtype != dtype or block.shape[1:] != shape[1:] or block.ndim != len(shape):
                raise ValueError(f"a block of {block.dtype} {block.shape} does not fit an array of {dtype} {shape}")
            rows += len(block)
            if rows > shape[0]:
                raise ValueError(f"the blocks hold more than the {shape[0]} rows of an array of shape {shape}")
            handle.write(memoryview(np.ascontiguousarray(block)).cast("B"))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # a generator releases its buffer and threads now, even after an error
    return rows
