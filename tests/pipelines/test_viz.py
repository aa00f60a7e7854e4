"""kedro-viz over the demo project: its HTTP API, the DAG in headless Chromium, and ``kedro viz build``.

The server is the session's ``reported_viz`` (tests/conftest.py): ``kedro viz run`` on 127.0.0.1 over
the trained demo project, shared with the report-preview test and stopped at the end of the session,
also when a test fails. The graph itself comes from the registry and the catalog; ``kedro viz build``
runs in a fresh copy of the project, where no pipeline has run.
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from har_kedro.pipeline_registry import register_pipelines
from tests.browser import chromium, screenshot_path, wait_until_still
from tests.pipelines.conftest import make_project
from tests.pipelines.viz_server import HOST, VizServer, offline_env

pytestmark = pytest.mark.slow

# The pipelines and report datasets the project promises (README, docs/viz.md); the registry
# is also asked directly, so a pipeline added later cannot be missing from viz either.
PROMISED_PIPELINES = {
    "ingestion", "preprocessing", "train_clip", "train_aclip", "train_siglip",
    "reporting", "inference", "inference_clip", "inference_aclip", "inference_siglip", "__default__",
}  # fmt: skip
REPORT_DATASETS = {
    "model_metrics", "per_class_metrics", "pairwise_comparisons", "model_metrics_markdown", "report_summary",
    "confusion_matrices_plot", "learning_curves_plot", "accuracy_vs_parameters_plot",
    "accuracy_vs_epoch_time_plot", "wise_ft_plot", "reliability_plot", "comparison_report", "report_info",
}  # fmt: skip
# Written before the app's scripts run: no first-visit feature tour over the screenshot.
NO_TOUR = {"KedroViz": json.dumps({"showFeatureHints": False})}


@pytest.fixture
def viz(reported_viz: VizServer) -> VizServer:
    return reported_viz


def _names(graph: dict, kind: str | None = None) -> set[str]:
    return {n["name"] for n in graph["nodes"] if kind is None or n["type"] == kind}


def test_every_registered_pipeline_is_listed(viz):
    main = viz.api("main")
    listed = {p["id"] for p in main["pipelines"]}
    assert listed == set(register_pipelines()), listed
    assert PROMISED_PIPELINES <= listed, PROMISED_PIPELINES - listed
    assert main["selected_pipeline"] == "__default__"
    for pipeline_id in listed:
        graph = viz.api(f"pipelines/{pipeline_id}")
        assert graph["selected_pipeline"] == pipeline_id
        expected_tasks = {node.name for node in register_pipelines()[pipeline_id].nodes}
        # viz names task nodes without their namespace prefix; compare the short names.
        assert {name.rsplit(".", 1)[-1] for name in expected_tasks} == _names(graph, "task"), pipeline_id


def test_report_datasets_are_nodes_of_the_graph(viz):
    for pipeline_id in ("reporting", "__default__"):
        datasets = _names(viz.api(f"pipelines/{pipeline_id}"), "data")
        assert REPORT_DATASETS <= datasets, (pipeline_id, REPORT_DATASETS - datasets)


def test_every_dataset_has_a_layer(viz):
    main = viz.api("main")
    unlayered = sorted(n["name"] for n in main["nodes"] if n["type"] == "data" and not n.get("layer"))
    assert not unlayered, f"datasets without metadata.kedro-viz.layer in the catalog: {unlayered}"
    assert {"raw", "intermediate", "model_input", "models", "model_output", "reporting"} <= set(main["layers"])
    # Layers are ordered along the DAG: raw data first, the report last.
    assert main["layers"][0] == "raw" and main["layers"][-1] == "reporting", main["layers"]


def test_dag_renders_in_chromium(viz):
    with chromium(viewport=(1920, 1400), local_storage=NO_TOUR) as browser:
        page = browser.new_page()
        page.goto(f"{viz.url}/?pid=__default__&expandAllPipelines=true", wait_until="load")
        page.locator(".pipeline-node", has_text="train_model").first.wait_for(timeout=60_000)
        wait_until_still(page, ".pipeline-node")
        dismiss = page.get_by_role("button", name="Dismiss")  # the "new version" banner
        if dismiss.count():
            dismiss.first.click()
        labels = set(page.locator(".pipeline-node").evaluate_all("els => els.map(e => e.textContent.trim())"))  # SVG: no innerText
        page.screenshot(path=screenshot_path("kedro_viz_dag.png"))
    expected = {"prepare_source", "ingest_images", "build_image_cache", "prepare_backbone", "train_model", "manifest", "image_cache"}
    assert expected | REPORT_DATASETS <= labels, sorted(expected | REPORT_DATASETS - labels)
    assert {f"{model}.trained_model" for model in ("clip", "aclip", "siglip")} <= labels
    # Only the Google Fonts stylesheet kedro-viz links to may have been attempted (and was refused).
    assert all(url.startswith("https://fonts.g") for url in browser.external_requests), browser.external_requests


def test_kedro_viz_build_writes_a_static_site_that_renders(tmp_path, monkeypatch):
    viz_project = make_project(tmp_path / "project")
    monkeypatch.chdir(viz_project)
    # `kedro viz build` has no --env option; it reads KEDRO_ENV like every Kedro command. The `kedro`
    # command's CLI object runs in this process (its build worker is forked from it, with nothing
    # to import again); every off-machine request goes to a dead proxy.
    for name, value in offline_env(KEDRO_ENV="demo").items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(KedroCLI(project_path=viz_project), ["viz", "build"], catch_exceptions=False)
    # The command reports failures as a message and still exits 0, so the files are the proof.
    build = viz_project / "build"
    assert result.exit_code == 0 and (build / "index.html").is_file(), result.output[-3000:]
    main = json.loads((build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(register_pipelines())
    assert REPORT_DATASETS <= _names(main, "data")
    for pipeline_id in register_pipelines():
        assert json.loads((build / "api" / "pipelines" / pipeline_id).read_text())["selected_pipeline"] == pipeline_id

    # The folder is a static site: any plain file server shows the same DAG.
    handler = functools.partial(_QuietHandler, directory=str(build))
    server = ThreadingHTTPServer((HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with chromium(local_storage=NO_TOUR) as browser:
            page = browser.new_page()
            page.goto(f"http://{HOST}:{server.server_port}/?pid=reporting", wait_until="load")
            page.locator(".pipeline-node", has_text="comparison_report").first.wait_for(timeout=60_000)
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass
