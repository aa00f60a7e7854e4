import pytest
from kedro.io.core import DatasetError, Version

from har_kedro.datasets.onnx_model import OnnxModelDataset


def test_versions_round_trip_the_bytes(tmp_path):
    path = str(tmp_path / "onnx" / "model.onnx")
    OnnxModelDataset(path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(b"first")
    OnnxModelDataset(path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(b"second")

    assert OnnxModelDataset(path, version=Version(None, None)).load() == b"second"  # latest
    assert OnnxModelDataset(path, version=Version("2026-01-01T00.00.00.000Z", None)).load() == b"first"
    assert (tmp_path / "onnx/model.onnx/2026-01-01T00.00.00.000Z/model.onnx").read_bytes() == b"first"
    assert OnnxModelDataset(path, version=Version(None, None)).exists()


def test_refuses_what_is_not_model_bytes_and_explains_a_missing_export(tmp_path):
    dataset = OnnxModelDataset(str(tmp_path / "model.onnx"), version=Version(None, "2026-01-01T00.00.00.000Z"))
    with pytest.raises(DatasetError, match="non-empty bytes"):
        dataset.save(b"")
    assert not OnnxModelDataset(str(tmp_path / "model.onnx"), version=Version(None, None)).exists()
    with pytest.raises(DatasetError):
        OnnxModelDataset(str(tmp_path / "model.onnx"), version=Version(None, None)).load()
