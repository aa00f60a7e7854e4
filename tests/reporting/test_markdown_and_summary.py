"""The Markdown table and the JSON summaries."""

from __future__ import annotations

import json

from har_kedro.reporting.markdown import markdown_table, metrics_markdown
from har_kedro.reporting.metrics import model_metrics_table
from har_kedro.reporting.runs import select_runs
from har_kedro.reporting.summary import report_info, report_summary
from har_kedro.reporting.tables import COMPARISON_COLUMNS, Column, text
from tests.reporting.conftest import CLASSES

MODELS = ["clip", "aclip", "siglip"]


def test_markdown_has_a_header_a_rule_and_one_row_per_model_then_the_left_out(two_models):
    selection = select_runs(CLASSES, two_models, MODELS)
    md = metrics_markdown(model_metrics_table(selection.runs, CLASSES), selection.left_out)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2
    assert table[0].count("|") == len(COMPARISON_COLUMNS) + 1
    assert table[1].startswith("|:---|")  # model left-aligned, numbers right-aligned
    assert table[2].startswith("| clip | full | cross_entropy | 91.7\u00a0% |")  # 11 of 12 right
    assert "- **aclip**: not trained" in md
    assert "Test split (12 images)" in md


def test_markdown_cells_escape_pipes():
    table = markdown_table([Column("a", "a|b", text, numeric=False)], [["x|y"]])
    assert table.splitlines()[0] == "| a\\|b |" and table.splitlines()[2] == "| x\\|y |"


def test_summary_names_the_best_model_and_the_left_out_and_is_json(two_models):
    selection = select_runs(CLASSES, two_models, MODELS)
    summary = report_summary(model_metrics_table(selection.runs, CLASSES), selection.left_out)
    assert summary["best_model_by_top1"] == "clip"
    assert summary["models"]["siglip"]["top1_accuracy"] == 0.5
    assert summary["models"]["clip"]["trainable_parameters"] == 1000
    assert set(summary["left_out"]) == {"aclip"}
    json.dumps(summary)  # plain Python types only

    info = report_info(selection)
    assert info == {"models_included": ["clip", "siglip"], "models_left_out": selection.left_out}
