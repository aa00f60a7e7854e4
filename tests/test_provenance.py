"""Resolving the versions a node read, and the --load-versions value that reads them again."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.cli.utils import _split_load_versions
from kedro.io import DataCatalog

from har_kedro.provenance import (
    load_versions_option,
    reproduce_command,
    resolve_input_versions,
)


def _catalog(root: Path, **kwargs) -> DataCatalog:
    config = {
        "versioned_json": {"type": "json.JSONDataset", "filepath": f"{root}/a.json", "versioned": True},
        "plain_json": {"type": "json.JSONDataset", "filepath": f"{root}/b.json"},
        "clip.run_info": {
            "type": "har_kedro.datasets.OptionalDataset",
            "dataset": {"type": "json.JSONDataset", "filepath": f"{root}/clip/run_info.json"},
            "versioned": True,
        },
        "siglip.run_info": {
            "type": "har_kedro.datasets.OptionalDataset",
            "dataset": {"type": "json.JSONDataset", "filepath": f"{root}/siglip/run_info.json"},
            "versioned": True,
        },
    }
    return DataCatalog.from_config(config, **kwargs)


def test_only_versioned_inputs_that_exist_are_recorded_with_the_version_read(tmp_path):
    for version in ("2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"):
        writer = _catalog(tmp_path, save_version=version)
        writer.save("versioned_json", {"v": version})
        writer.save("clip.run_info", {"v": version})
    writer.save("plain_json", {"v": 0})

    catalog = _catalog(tmp_path)
    catalog["params:seed"] = 1
    catalog["in_memory"] = 2
    names = ["versioned_json", "plain_json", "clip.run_info", "siglip.run_info", "params:seed", "in_memory", "parameters"]
    for name in names:
        if name != "parameters":
            catalog.load(name)
    latest = sorted(p.name for p in (tmp_path / "a.json").iterdir())[-1]
    assert resolve_input_versions(catalog, names) == {"clip.run_info": latest, "versioned_json": latest}

    pinned = _catalog(tmp_path, load_versions={"versioned_json": "2026-01-01T00.00.00.000Z"})
    pinned.load("versioned_json")
    assert resolve_input_versions(pinned, ["versioned_json"]) == {"versioned_json": "2026-01-01T00.00.00.000Z"}


def test_load_versions_option_parses_back_with_kedros_own_cli_parser():
    versions = {"clip.run_info": "2026-01-02T00.00.00.000Z", "class_names": "2026-01-01T00.00.00.000Z"}
    option = load_versions_option(versions)
    assert option == "class_names:2026-01-01T00.00.00.000Z,clip.run_info:2026-01-02T00.00.00.000Z"
    assert _split_load_versions(None, None, option) == versions
    assert reproduce_command(versions) == f"kedro run --pipelines=reporting --load-versions={option}"
