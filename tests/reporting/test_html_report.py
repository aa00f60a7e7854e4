"""The HTML report: self-contained, complete, escaped and reproducible."""

from __future__ import annotations

import re

import pytest

from har_kedro.reporting.figures import (
    accuracy_vs_epoch_time_figure,
    accuracy_vs_parameters_figure,
    confusion_matrices_figure,
    learning_curves_figure,
    reliability_figure,
    wise_ft_figure,
)
from har_kedro.reporting.html_report import FIGURE_SECTIONS, build_html_report
from har_kedro.reporting.metrics import model_metrics_table, pairwise_table, per_class_table
from har_kedro.reporting.runs import select_runs
from har_kedro.reporting.summary import report_info
from tests.reporting.conftest import CLASSES

VERSIONS = {"class_names": "2026-01-01T00.00.00.000Z", "clip.run_info": "2026-01-02T00.00.00.000Z"}


def _report(outputs, versions=VERSIONS):
    selection = select_runs(CLASSES, outputs, ["clip", "aclip", "siglip"])
    metrics = model_metrics_table(selection.runs, CLASSES)
    figures = {
        "confusion_matrices": confusion_matrices_figure(selection.runs, CLASSES),
        "learning_curves": learning_curves_figure(selection.runs),
        "accuracy_vs_parameters": accuracy_vs_parameters_figure(metrics),
        "accuracy_vs_epoch_time": accuracy_vs_epoch_time_figure(metrics),
        "wise_ft": wise_ft_figure(selection.runs),
        "reliability": reliability_figure(selection.runs, CLASSES, 15),
    }
    info = {**report_info(selection), **({"input_versions": versions} if versions else {})}
    pairwise = pairwise_table(selection.runs)
    return build_html_report(metrics, per_class_table(selection.runs, CLASSES), selection.runs, info, figures, pairwise=pairwise)


def _without_plotly_js(page: str) -> str:
    """The page minus the inlined plotly.js bundle (whose own code mentions URLs it never loads here)."""
    start = page.index("/* plotly.js as bundled")
    return page[:start] + page[page.index("</script>", start):]


def test_self_contained_no_external_scripts_styles_or_links(two_models):
    page = _report(two_models)
    assert not re.search(r"<script[^>]*\bsrc=", page, flags=re.I)
    assert not re.search(r"<link\b", page, flags=re.I)
    assert "Plotly.newPlot" in page and page.count("/* plotly.js as bundled") == 1
    assert "http://" not in _without_plotly_js(page) and "https://" not in _without_plotly_js(page)


def test_has_every_section_figure_model_and_left_out_note(two_models):
    page = _report(two_models)
    for key, heading, _ in FIGURE_SECTIONS:
        assert f'id="figure-{key}"' in page and heading in page
    assert 'id="comparison-table"' in page and 'id="zero-shot-table"' in page and 'id="uncertainty-table"' in page
    # the one pair, in words, with its interval and test
    (pair,) = re.findall(r'<ul id="pairwise-tests"><li>([^<]*)</li></ul>', page)
    assert re.fullmatch(r"clip vs siglip: [+-]\d+\.\d points top-1, 95 % CI \[[+-]\d+\.\d, [+-]\d+\.\d\], McNemar p (= \d\.\d{3}|< 0\.001) \(clip alone right on \d+ images, siglip alone on \d+\)", pair), pair
    assert 'id="model-clip"' in page and 'id="model-siglip"' in page and 'id="model-aclip"' not in page
    assert "<strong>aclip</strong>: not trained" in page
    for name in CLASSES:
        assert f">{name}</td>" in page  # per-class tables
    assert "kedro run --pipelines=reporting --load-versions=class_names:2026-01-01T00.00.00.000Z,clip.run_info:2026-01-02T00.00.00.000Z" in page


def test_says_so_when_input_versions_were_not_recorded(two_models):
    assert "Input versions were not recorded" in _report(two_models, versions=None)


def test_same_inputs_give_the_same_bytes_and_no_generation_time(two_models):
    first, second = _report(two_models), _report(two_models)
    assert first == second
    body = _without_plotly_js(first)
    for version in VERSIONS.values():
        body = body.replace(version, "")
    assert not re.search(r"\b20\d\d-\d\d-\d\d", body)  # no date other than the input versions


def test_text_from_the_data_is_escaped(two_models):
    outputs = {**two_models, "clip.run_info": {**two_models["clip.run_info"], "backbone": "<script>alert(1)</script>"}}
    page = _report(outputs)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_missing_figure_is_refused(two_models):
    selection = select_runs(CLASSES, two_models, ["clip", "siglip"])
    metrics = model_metrics_table(selection.runs, CLASSES)
    with pytest.raises(ValueError, match="needs the figures"):
        build_html_report(metrics, per_class_table(selection.runs, CLASSES), selection.runs, report_info(selection), {})


def test_a_run_trained_without_the_zero_shot_baseline_shows_a_dash_and_summarises_to_null(two_models):
    """zero_shot_baseline: false records zero_shot: null; the report says nothing was measured, not 0 %."""
    from har_kedro.reporting.summary import report_summary

    outputs = {**two_models, "siglip.run_info": {**two_models["siglip.run_info"], "zero_shot": None}}
    selection = select_runs(CLASSES, outputs, ["clip", "aclip", "siglip"])
    metrics = model_metrics_table(selection.runs, CLASSES).set_index("model")
    assert metrics["zero_shot_test_accuracy"].isna().tolist() == [False, True]
    table = re.search(r'<table[^>]*id="zero-shot-table".*?</table>', _report(outputs), flags=re.S).group(0)
    siglip_row = re.search(r"<tr>\s*<td[^>]*>siglip</td>.*?</tr>", table, flags=re.S).group(0)
    assert siglip_row.count('<td class="num">–</td>') == 5  # zero-shot val and test, and the three WiSE-FT cells (no curve); the fine-tuned number stays
    summary = report_summary(metrics.reset_index(), selection.left_out)
    assert summary["models"]["siglip"]["zero_shot_test_accuracy"] is None
    assert summary["models"]["clip"]["zero_shot_test_accuracy"] == 0.12
