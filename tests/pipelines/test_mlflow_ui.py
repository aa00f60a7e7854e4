"""Acceptance: after the demo run, ``mlflow ui`` (127.0.0.1 only, offline) serves the tracking store;
in headless Chromium the three model runs show side by side and a per-epoch metric chart renders. Screenshots are saved."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from har_kedro.config.models import MODELS
from tests.browser import chromium, screenshot_path
from tests.conftest import ReportedProject
from tests.pipelines.viz_server import HOST, free_port, group_members, http_get, offline_env, stop_process_group

pytestmark = pytest.mark.slow


# MLflow's GenAI job runner and its seven workers, which this project never uses (settings.py turns them
# off for `kedro mlflow ui` the same way).
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def mlflow_ui(project: Path, store: str, timeout_s: float = 120.0) -> Iterator[Callable[[], str]]:
    """``mlflow ui`` on the demo store as docs/tracking.md gives it (one worker, no job runner), on a free
    port. Yields a function that waits until ``/health`` answers and returns the URL, so that the caller
    can start its browser while the server boots."""
    port = free_port()
    log = project / f"mlflow_ui_{port}.log"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", HOST, "--port", str(port), "--workers", "1"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=project, stdout=out, stderr=subprocess.STDOUT, env=offline_env(**UI_ENV), start_new_session=True)
    url = f"http://{HOST}:{port}"

    def ready() -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mlflow ui exited with code {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                http_get(f"{url}/health", timeout=5)
                return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"mlflow ui did not answer within {timeout_s:.0f} s:\n{log.read_text()[-4000:]}") from None
                time.sleep(0.25)

    try:
        yield ready
        # No stray job runner or huey consumer: only the CLI and its uvicorn server.
        members = group_members(process.pid)
        assert len(members) <= 2 and not any("huey" in m or "_job_runner" in m for m in members), members
    finally:
        stop_process_group(process)


def test_the_mlflow_ui_shows_each_models_run_and_a_metric_chart(reported_project: ReportedProject):
    database = reported_project.root / "data" / "demo" / "mlflow" / "mlflow.db"
    store = f"sqlite:///{database}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("har_kedro")
    runs = {run.data.tags.get("har_kedro.model"): run for run in client.search_runs([experiment.experiment_id])}
    assert set(MODELS) <= set(runs)

    with mlflow_ui(reported_project.root, store) as ready, chromium(viewport=(1400, 900)) as browser:
        page = browser.new_page()
        url = ready()
        # The three model runs side by side on MLflow's compare page (one page load for all three).
        ids = [runs[model].info.run_id for model in MODELS]
        page.goto(f'{url}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([experiment.experiment_id])}', wait_until="load")
        # A final metric in the compare grid (it renders only the rows in view, alphabetically: best_val_accuracy
        # is near the top; the test_ scores sit below the per-seed curves' seed_<n>.* rows, below the fold).
        page.get_by_text("best_val_accuracy", exact=True).first.wait_for(timeout=60_000)
        compared = page.inner_text("body")
        page.screenshot(path=screenshot_path("mlflow_compare_runs.png"), full_page=True)
        # Same document (only the fragment changes): MLflow's app is not loaded a second time.
        page.goto(f"{url}/#/experiments/{experiment.experiment_id}/runs/{runs['clip'].info.run_id}/model-metrics")
        page.get_by_placeholder("Search metric charts").fill("seed_0.train_loss")
        # The chart of seed 0's per-epoch train_loss with its line drawn (plotly draws each trace as a path; a
        # path counts as visible when its box has an area, so not a flat line: val accuracy can stay flat
        # over the short run's two epochs, the loss does not).
        line = page.locator(".js-plotly-plot .scatterlayer .trace path.js-line:visible").first
        line.wait_for(timeout=60_000)
        titles = page.locator(".js-plotly-plot").count()
        page.screenshot(path=screenshot_path("mlflow_metric_chart.png"), full_page=True)
        charted = page.inner_text("body")

    assert not browser.external_requests, f"the MLflow UI reached for the network: {browser.external_requests}"
    for model in MODELS:
        assert model in compared and runs[model].info.run_id in compared, f"{model}'s run is not on the compare page"
    assert titles >= 1 and "seed_0.train_loss" in charted, charted[:2000]
