"""The comparison table as GitHub-flavoured Markdown (for READMEs, pull requests, notebooks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from har_kedro.reporting.tables import COMPARISON_COLUMNS, Column, formatted_rows


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """A pipe table; numeric columns are right-aligned."""
    header = "| " + " | ".join(_cell(c.header) for c in columns) + " |"
    rule = "|" + "|".join("---:" if c.numeric else ":---" for c in columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def test_images_phrase(metrics: pd.DataFrame) -> str:
    """"150 images", or "150 / 180 images" when the models were tested on different splits."""
    counts = sorted({int(n) for n in metrics["test_images"]})
    return " / ".join(f"{n:,}" for n in counts) + " images"


def metrics_markdown(metrics: pd.DataFrame, left_out: Mapping[str, str], pairwise: Sequence[str] = ()) -> str:
    """The comparison table, the pairwise tests in words, then one line per model left out and why."""
    parts = [
        "# Model comparison",
        "",
        f"Test split ({test_images_phrase(metrics)}); accuracy and F1 computed from the saved test predictions.",
        "",
        markdown_table(COMPARISON_COLUMNS, formatted_rows(metrics, COMPARISON_COLUMNS)),
    ]
    if pairwise:
        parts += ["", "Pairwise tests on the same test images:", ""] + [f"- {_cell(sentence)}" for sentence in pairwise]
    if left_out:
        parts += ["", "Left out:", ""] + [f"- **{model}**: {_cell(reason)}" for model, reason in left_out.items()]
    return "\n".join(parts) + "\n"
