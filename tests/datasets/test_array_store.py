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
