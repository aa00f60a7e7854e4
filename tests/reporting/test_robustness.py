"""The "in distribution and under shift" table: seed means, intervals, and stages that were not scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from har_kedro.reporting.robustness import robustness_table
from har_kedro.reporting.runs import ModelRun
from har_kedro.reporting.statistics import StatisticsSettings


def _run(evaluation: pd.DataFrame | None) -> ModelRun:
    return ModelRun("clip", {}, pd.DataFrame(), pd.DataFrame(), None, evaluation)


def _frame(rng: np.random.Generator, sets: dict[str, int], seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for name, n in sets.items():
        labels = rng.integers(0, 15, n)
        for seed in seeds:
            for i, label in enumerate(labels):
                rows.append({
                    "seed": seed, "set": name, "image_id": f"{name}/{i}", "label_id": int(label),
                    "zero_shot_pred": int(label) if i % 4 == 0 else (int(label) + 1) % 15,   # right on a quarter
                    "fine_tuned_pred": int(label) if (i + seed) % 2 == 0 else (int(label) + 1) % 15,  # half, other half per seed
                    "wise_ft_pred": -1,  # not scored (WiSE-FT off)
                })
    return pd.DataFrame(rows)


def test_each_set_gets_seed_mean_accuracy_with_an_interval_and_test_comes_first():
    frame = _frame(np.random.default_rng(0), {"shifted": 40, "test": 20})
    table = robustness_table([_run(frame)], StatisticsSettings(bootstrap_resamples=200))
    assert table["set"].tolist() == ["test", "shifted"] and table["seeds"].tolist() == [2, 2]
    assert table["images"].tolist() == [20, 40]
    assert table["zero_shot"].tolist() == pytest.approx([0.25, 0.25])
    assert table["fine_tuned"].tolist() == pytest.approx([0.5, 0.5])  # each image right for one seed of two
    row = table.iloc[1]
    assert row["zero_shot_ci_low"] < 0.25 < row["zero_shot_ci_high"]
    assert table["wise_ft"].isna().all() and table["wise_ft_ci_low"].isna().all()


def test_a_model_without_evaluation_predictions_has_no_rows():
    assert robustness_table([_run(None)], StatisticsSettings()).empty


def test_the_report_shows_the_table_or_says_why_not():
    from har_kedro.reporting.html_report import robustness_section

    table = robustness_table([_run(_frame(np.random.default_rng(1), {"test": 10, "shifted": 12}))], StatisticsSettings(bootstrap_resamples=100))
    page = robustness_section(table, StatisticsSettings())
    assert 'id="shift-table"' in page and ">shifted<" in page and "WiSE-FT CI low" in page
    assert "No evaluation predictions were saved" in robustness_section(pd.DataFrame(), StatisticsSettings())
