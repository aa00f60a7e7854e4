"""OptionalDataset: None while never saved, the inner dataset's behaviour otherwise."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from har_kedro.datasets import OptionalDataset


def _catalog(root: Path, **kwargs) -> DataCatalog:
    """The project's factory shape: an optional, versioned JSON and parquet per model."""
    config = {
        "{model}.run_info": {
            "type": "har_kedro.datasets.OptionalDataset",
            "dataset": {"type": "json.JSONDataset", "filepath": f"{root}/{{model}}/run_info.json"},
            "versioned": True,
        },
        "{model}.test_predictions": {
            "type": "har_kedro.datasets.OptionalDataset",
            "dataset": {"type": "pandas.ParquetDataset", "filepath": f"{root}/{{model}}/predictions.parquet"},
            "versioned": True,
        },
    }
    return DataCatalog.from_config(config, **kwargs)


def _versions(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_never_saved_loads_none_and_does_not_exist(tmp_path):
    catalog = _catalog(tmp_path)
    assert catalog.load("clip.run_info") is None
    assert catalog.load("clip.test_predictions") is None
    assert not catalog.exists("clip.run_info")


def test_saves_versioned_like_the_inner_dataset_and_loads_the_latest(tmp_path):
    _catalog(tmp_path, save_version="2026-01-01T00.00.00.000Z").save("clip.run_info", {"run": 1})
    _catalog(tmp_path, save_version="2026-01-02T00.00.00.000Z").save("clip.run_info", {"run": 2})
    folder = tmp_path / "clip" / "run_info.json"
    assert _versions(folder) == ["2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"]
    assert (folder / "2026-01-01T00.00.00.000Z" / "run_info.json").is_file()  # the inner dataset's own layout

    catalog = _catalog(tmp_path)
    assert catalog.load("clip.run_info") == {"run": 2}
    assert catalog.get("clip.run_info").resolve_load_version() == "2026-01-02T00.00.00.000Z"
    assert catalog.load("clip.run_info", version="2026-01-01T00.00.00.000Z") == {"run": 1}
    assert catalog.get("clip.run_info").list_versions(full_path=False) == ["2026-01-02T00.00.00.000Z", "2026-01-01T00.00.00.000Z"]


def test_load_versions_pin_an_old_version(tmp_path):
    for i, version in enumerate(["2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"]):
        _catalog(tmp_path, save_version=version).save("clip.run_info", {"run": i})
    pinned = _catalog(tmp_path, load_versions={"clip.run_info": "2026-01-01T00.00.00.000Z"})
    assert pinned.load("clip.run_info") == {"run": 0}
    assert pinned.get("clip.run_info").resolve_load_version() == "2026-01-01T00.00.00.000Z"


def test_a_pinned_version_that_does_not_exist_is_an_error_not_none(tmp_path):
    _catalog(tmp_path, save_version="2026-01-01T00.00.00.000Z").save("clip.run_info", {"run": 1})
    catalog = _catalog(tmp_path, load_versions={"clip.run_info": "2020-05-05T00.00.00.000Z", "siglip.run_info": "2020-05-05T00.00.00.000Z"})
    with pytest.raises(DatasetError, match=r"clip.run_info: version '2020-05-05T00.00.00.000Z' of .* does not exist \(versions on disk: \['2026-01-01T00.00.00.000Z'\]\)"):
        catalog.load("clip.run_info")
    with pytest.raises(DatasetError, match=r"versions on disk: none"):
        catalog.load("siglip.run_info")


def test_preview_is_the_inner_preview_with_its_return_type_and_none_before_saving(tmp_path):
    catalog = _catalog(tmp_path)
    dataset = catalog.get("clip.test_predictions")
    assert hasattr(dataset, "preview")
    annotation = inspect.signature(dataset.preview).return_annotation
    assert getattr(annotation, "__name__", annotation) == "TablePreview"  # what kedro-viz reads to pick the preview widget
    assert dataset.preview() is None
    catalog.save("clip.test_predictions", pd.DataFrame({"x": [1, 2, 3]}))
    assert dataset.preview(nrows=2) == {"index": [0, 1], "columns": ["x"], "data": [[1], [2]]}


def test_no_preview_when_the_inner_dataset_has_none():
    dataset = OptionalDataset(dataset={"type": "MemoryDataset"})
    assert not hasattr(dataset, "preview")
    assert dataset.load() is None
    dataset.save(3)
    assert dataset.load() == 3


def test_unversioned_file_missing_loads_none(tmp_path):
    dataset = OptionalDataset(dataset={"type": "json.JSONDataset", "filepath": str(tmp_path / "x.json")})
    assert dataset.load() is None
    dataset.save({"a": 1})
    assert dataset.load() == {"a": 1} and (tmp_path / "x.json").is_file()


def test_misconfigured_inner_dataset_fails_when_the_catalog_is_built(tmp_path):
    with pytest.raises(DatasetError, match="put `versioned: true` on the OptionalDataset entry itself"):
        OptionalDataset(dataset={"type": "json.JSONDataset", "filepath": str(tmp_path / "x.json"), "versioned": True})
    with pytest.raises(DatasetError, match="has no `type`"):
        OptionalDataset(dataset={"filepath": str(tmp_path / "x.json")})
