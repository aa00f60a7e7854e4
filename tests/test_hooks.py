"""InputVersionsHook through Kedro's real runner: the saved run_info holds the versions its node read."""

from __future__ import annotations

import json
from pathlib import Path

from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from har_kedro.hooks import InputVersionsHook


def _catalog(root: Path, save_version: str) -> DataCatalog:
    config = {
        "source": {"type": "json.JSONDataset", "filepath": f"{root}/source.json", "versioned": True},
        "{model}.run_info": {"type": "json.JSONDataset", "filepath": f"{root}/{{model}}/run_info.json", "versioned": True},
        "other": {"type": "json.JSONDataset", "filepath": f"{root}/other.json", "versioned": True},
    }
    return DataCatalog.from_config(config, save_version=save_version)


def _run(catalog: DataCatalog, pipeline: Pipeline) -> None:
    manager = _create_hook_manager()
    manager.register(InputVersionsHook())
    SequentialRunner().run(pipeline, catalog, manager)


def _only_version(path: Path) -> str:
    (version,) = [p.name for p in path.iterdir()]
    return version


def test_run_info_outputs_get_the_input_versions_before_they_are_saved(tmp_path):
    _catalog(tmp_path, "2026-01-01T00.00.00.000Z").save("source", {"x": 1})
    # Namespaced like the training pipelines: the node writes `m.run_info`.
    pipeline = Pipeline(
        [Node(lambda source, seed: ({"accuracy": 0.5}, {"untouched": True}), ["source", "params:seed"], ["run_info", "other"], name="train")],
        namespace="m", inputs={"source"}, parameters={"params:seed"}, outputs={"other"},
    )
    catalog = _catalog(tmp_path, "2026-01-02T00.00.00.000Z")
    catalog["params:seed"] = 0
    _run(catalog, pipeline)

    run_info = json.loads((tmp_path / "m/run_info.json/2026-01-02T00.00.00.000Z/run_info.json").read_text())
    assert run_info == {"accuracy": 0.5, "input_versions": {"source": _only_version(tmp_path / "source.json")}}
    other = json.loads((tmp_path / "other.json/2026-01-02T00.00.00.000Z/other.json").read_text())
    assert other == {"untouched": True}  # only run_info / report_info outputs are annotated


def test_nodes_without_such_outputs_and_non_dict_outputs_are_left_alone():
    hook = InputVersionsHook()
    node = Node(lambda a: 1, "a", "run_info", name="n")
    hook.before_node_run(node, DataCatalog())
    outputs = {"run_info": 1}
    hook.after_node_run(node, outputs)
    assert outputs == {"run_info": 1}

    plain = Node(lambda a: {"x": 1}, "a", "result", name="plain")
    hook.before_node_run(plain, DataCatalog())
    outputs = {"result": {"x": 1}}
    hook.after_node_run(plain, outputs)
    assert outputs == {"result": {"x": 1}}


def test_a_failed_node_leaves_nothing_pending():
    hook = InputVersionsHook()
    node = Node(lambda a: {}, "a", "report_info", name="report")
    hook.before_node_run(node, DataCatalog())
    hook.on_node_error(node)
    outputs = {"report_info": {}}
    hook.after_node_run(node, outputs)
    assert outputs == {"report_info": {}}
