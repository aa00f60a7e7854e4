"""Acceptance: after ``kedro run`` (whole ``__default__``, short training) the comparison report
opens in headless Chromium with no network, shows every model and renders its plotly figures;
kedro-viz previews the report's tables, JSON and figures.

The run itself is the session-scoped ``reported_project`` fixture (tests/conftest.py), shared
with the notebook test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.session import KedroSession

from har_kedro.pipeline_registry import register_pipelines
from har_kedro.pipelines.training import MODELS
from tests.browser import chromium, screenshot_path
from tests.conftest import SHORT_RUN, ReportedProject

pytestmark = pytest.mark.slow


def _catalog(project: ReportedProject):
    with KedroSession.create(project_path=project.root, env=project.env) as session:
        return session.load_context().catalog


def test_comparison_report_renders_offline_with_every_model(reported_project):
    catalog = _catalog(reported_project)
    metrics: pd.DataFrame = catalog.load("model_metrics")
    report = Path(catalog.get("comparison_report")._get_load_path())  # the stored, versioned file
    assert report.is_file() and report.suffix == ".html", report
    figures = sorted(name for name in register_pipelines()["reporting"].all_outputs() if name.endswith("_plot"))

    requests: list[str] = []
    errors: list[str] = []
    with chromium(viewport=(1400, 900)) as browser:
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        start = time.perf_counter()
        page.goto(report.as_uri(), wait_until="load")
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        render_seconds = time.perf_counter() - start
        text = page.inner_text("body")
        plots = page.locator(".js-plotly-plot").count()
        # Mistake thumbnails that the browser decoded (a broken data: URI has naturalWidth 0), per model.
        thumbnails = {
            model: page.locator(f"#mistakes-{model} ~ .mistakes").first.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
            for model in MODELS
        }
        f1_rows = page.locator("#per-class-f1-table tbody tr").count()
        f1_header = page.locator("#per-class-f1-table thead th").all_inner_texts()
        page.screenshot(path=screenshot_path("comparison_report.png"), full_page=True)

    print(f"run: {reported_project.run_seconds:.1f} s, report rendered in {render_seconds:.1f} s, {plots} plotly figures")
    assert not browser.external_requests, f"the report reached for the network: {browser.external_requests}"
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    assert not errors, errors
    assert set(metrics["model"]) == set(MODELS), metrics
    missing = [model for model in MODELS if model not in text.lower()]
    assert not missing, f"models not shown in the rendered report: {missing}"
    assert plots >= len(figures) > 0, (plots, figures)  # every figure the pipeline draws is in the report
    class_names = catalog.load("class_names")
    assert f1_rows == len(class_names) and f1_header == ["class", *MODELS], (f1_rows, f1_header)
    predictions = {model: catalog.load(f"{model}.test_predictions") for model in MODELS}
    for model, widths in thumbnails.items():
        wrong = int((~predictions[model]["correct"]).sum())
        assert len(widths) == min(8, wrong) and all(w == 96 for w in widths), (model, widths, wrong)


def test_kedro_viz_previews_the_report(reported_viz):
    viz = reported_viz
    ids = {n["name"]: n["id"] for n in viz.api("pipelines/reporting")["nodes"] if n["type"] == "data"}
    table = viz.api(f"nodes/{ids['model_metrics']}")
    figure = viz.api(f"nodes/{ids['accuracy_vs_parameters_plot']}")
    summary = viz.api(f"nodes/{ids['report_summary']}")
    history = viz.api(f"nodes/{ids['clip.history']}")  # a training output, seen through OptionalDataset
    assert table["preview_type"] == "TablePreview", table
    assert set(MODELS) <= {row[table["preview"]["columns"].index("model")] for row in table["preview"]["data"]}
    assert figure["preview_type"] == "PlotlyPreview" and figure["preview"]["data"], figure
    assert summary["preview_type"] == "JSONPreview" and summary["preview"], summary
    assert history["preview_type"] == "TablePreview", history
    assert len(history["preview"]["data"]) == SHORT_RUN["clip"]["training"]["epochs"], history  # one row per epoch
