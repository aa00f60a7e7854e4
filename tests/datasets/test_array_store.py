import json

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from har_kedro.datasets import ArrayBundle, ContentAddressedArrayDataset, LazyArray


def _bundle(fingerprint, calls):
    def fill(out):
        calls.append(out.shape)
        out[:] = np.arange(out.size, dtype=np.uint8).reshape(out.shape)

    return ArrayBundle(fingerprint, {"x": LazyArray((2, 3), "uint8", fill), "y": np.array([7, 8])}, {"note": "hi"})


def _dataset(tmp_path, save=None, load=None):
    return ContentAddressedArrayDataset(
        filepath=str(tmp_path / "cache.json"), store=str(tmp_path / "store"), version=Version(load, save)
    )


def test_round_trip_is_memory_mapped(tmp_path):
    calls = []
    _dataset(tmp_path, save="v1").save(_bundle("abc", calls))
    loaded = _dataset(tmp_path).load()
    assert isinstance(loaded["x"], np.memmap)
    assert loaded["x"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert loaded["y"].tolist() == [7, 8]
    assert loaded.metadata == {"note": "hi"} and loaded.fingerprint == "abc"
    with pytest.raises(KeyError, match="holds"):
        loaded["z"]
    assert calls == [(2, 3)]


def test_same_fingerprint_adds_a_version_without_rewriting(tmp_path):
    calls = []
    _dataset(tmp_path, save="v1").save(_bundle("abc", calls))
    _dataset(tmp_path, save="v2").save(_bundle("abc", calls))
    assert calls == [(2, 3)]  # fill ran once
    pointers = sorted((tmp_path / "cache.json").iterdir())
    assert [p.name for p in pointers] == ["v1", "v2"]
    second = json.loads((tmp_path / "cache.json" / "v2" / "cache.json").read_text())
    assert second["reused_existing_store"] is True
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["abc"]
    _dataset(tmp_path, save="v3").save(_bundle("def", calls))
    assert len(calls) == 2
    assert _dataset(tmp_path, load="v2").load().fingerprint == "abc"
    assert _dataset(tmp_path).load().fingerprint == "def"


def test_failed_fill_leaves_no_partial_blob(tmp_path):
    def broken(out):
        raise RuntimeError("decoder exploded")

    with pytest.raises(DatasetError, match="decoder exploded"):
        _dataset(tmp_path, save="v1").save(ArrayBundle("abc", {"x": LazyArray((1,), "uint8", broken)}))
    assert list((tmp_path / "store").iterdir()) == []
    assert not _dataset(tmp_path).exists()


def test_missing_blob_is_explained(tmp_path):
    _dataset(tmp_path, save="v1").save(_bundle("abc", []))
    (tmp_path / "store" / "abc" / "index.json").unlink()
    with pytest.raises(DatasetError, match="missing or incomplete.*preprocessing"):
        _dataset(tmp_path).load()


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="saves an ArrayBundle"):
        _dataset(tmp_path, save="v1").save({"x": 1})
    with pytest.raises(DatasetError, match="plain name"):
        _dataset(tmp_path, save="v2").save(ArrayBundle("../evil", {}))


def _blocks_of(full, rows_per_block, log=None):
    """A producer that, like the image cache, hands out views of one reused buffer."""

    def blocks():
        buffer = np.empty((rows_per_block, *full.shape[1:]), full.dtype)
        try:
            for start in range(0, len(full), rows_per_block):
                block = buffer[: len(full[start : start + rows_per_block])]
                block[:] = full[start : start + rows_per_block]
                if log is not None:
                    log.append(len(block))
                yield block
        finally:
            if log is not None:
                log.append("closed")

    return blocks


@pytest.mark.parametrize(
    ("shape", "dtype", "rows_per_block"),
    [((7, 5, 5, 3), "uint8", 3), ((4, 6), "float32", 4), ((10,), "int64", 1), ((0, 4, 4, 3), "uint8", 2)],
)
def test_blocks_write_the_same_npy_as_a_memory_map(tmp_path, shape, dtype, rows_per_block):
    """Streaming blocks must give the exact bytes filling a memory map gave (same cache files)."""
    full = (np.arange(int(np.prod(shape))) * 37 % 251).astype(dtype).reshape(shape)
    log = []
    bundle = ArrayBundle("abc", {"x": LazyArray(shape, dtype, blocks=_blocks_of(full, rows_per_block, log))})
    _dataset(tmp_path, save="v1").save(bundle)
    reference = np.lib.format.open_memmap(tmp_path / "ref.npy", mode="w+", dtype=np.dtype(dtype), shape=shape)
    reference[...] = full
    reference.flush()
    del reference
    assert (tmp_path / "store" / "abc" / "x.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert np.array_equal(_dataset(tmp_path).load()["x"], full)
    assert all(n <= rows_per_block for n in log[:-1]) and log[-1] == "closed"
    assert sum(log[:-1]) == shape[0]


@pytest.mark.parametrize(
    ("blocks", "match"),
    [
        (lambda: iter([np.zeros((2, 3), np.uint8)]), "held 2 rows"),
        (lambda: iter([np.zeros((3, 3), np.uint8), np.zeros((1, 3), np.uint8)]), "more than the 3 rows"),
        (lambda: iter([np.zeros((3, 3), np.float32)]), "does not fit"),
        (lambda: iter([np.zeros((3, 4), np.uint8)]), "does not fit"),
    ],
)
def test_blocks_that_do_not_add_up_leave_no_blob(tmp_path, blocks, match):
    with pytest.raises(DatasetError, match=match):
        _dataset(tmp_path, save="v1").save(ArrayBundle("abc", {"x": LazyArray((3, 3), "uint8", blocks=blocks)}))
    assert list((tmp_path / "store").iterdir()) == []


def test_failed_write_closes_the_producer(tmp_path):
    log = []
    full = np.zeros((6, 2), np.uint8)
    bad = ArrayBundle("abc", {"x": LazyArray((5, 2), "uint8", blocks=_blocks_of(full, 2, log))})
    with pytest.raises(DatasetError, match="more than the 5 rows"):
        _dataset(tmp_path, save="v1").save(bad)
    assert log == [2, 2, 2, "closed"]


def test_lazy_array_needs_one_producer():
    with pytest.raises(ValueError, match="exactly one"):
        LazyArray((1,), "uint8")
    with pytest.raises(ValueError, match="exactly one"):
        LazyArray((1,), "uint8", fill=lambda out: None, blocks=lambda: iter([]))
