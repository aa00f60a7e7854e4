"""In distribution and under shift: each model zero-shot, fine-tuned and WiSE-FT on test and every evaluation set.

Wortsman et al. (WiSE-FT), Kumar et al. (LP-FT) and Goyal et al. (FLYP) all make their claims on this table:
fine-tuning raises accuracy where it trained and may lower it under distribution shift, and the robust recipes
keep more of the zero-shot model's accuracy there. Each cell is the top-1 averaged over the model's seeds, with
the percentile-bootstrap interval over the set's images of that seed mean (reporting/statistics.py), from the
per-image predictions training saved (``<model>.evaluation_predictions``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from har_kedro.reporting.runs import ModelRun
from har_kedro.reporting.statistics import StatisticsSettings, accuracy_interval
from har_kedro.reporting.tables import Column, integer, percent, text

STAGES = (("zero_shot", "zero-shot"), ("fine_tuned", "fine-tuned"), ("wise_ft", "WiSE-FT"))
ROBUSTNESS_COLUMNS: tuple[Column, ...] = (
    Column("model", "model", text, numeric=False),
    Column("set", "set", text, numeric=False),
    Column("images", "images", integer),
    Column("seeds", "seeds", integer),
    *(Column(f"{key}{suffix}", f"{label}{head}", percent) for key, label in STAGES for suffix, head in (("", ""), ("_ci_low", " CI low"), ("_ci_high", " CI high"))),
)


def _cells(rows: pd.DataFrame, stage: str, settings: StatisticsSettings) -> dict[str, float]:
    """The stage's seed-mean top-1 and interval over the set's images; NaN where the stage was not scored."""
    column = f"{stage}_pred"
    table = rows.pivot(index="image_id", columns="seed", values=column)
    if table.empty or (table < 0).any().any():
        return {stage: np.nan, f"{stage}_ci_low": np.nan, f"{stage}_ci_high": np.nan}
    labels = rows.drop_duplicates("image_id").set_index("image_id")["label_id"].reindex(table.index).to_numpy()
    interval = accuracy_interval(labels, table.to_numpy().T, settings)
    return {stage: interval.estimate, f"{stage}_ci_low": interval.low, f"{stage}_ci_high": interval.high}


def robustness_table(runs: Sequence[ModelRun], settings: StatisticsSettings) -> pd.DataFrame:
    """One row per model and set (``test`` first, then the evaluation sets by name); models without saved
    evaluation predictions (trained before they existed) have no rows."""
    rows = []
    for run in runs:
        frame = run.evaluation
        if frame is None or frame.empty:
            continue
        for name in sorted(frame["set"].unique(), key=lambda s: (s != "test", s)):
            part = frame[frame["set"] == name]
            row = {"model": run.name, "set": name, "images": part["image_id"].nunique(), "seeds": part["seed"].nunique()}
            for stage, _ in STAGES:
                row |= _cells(part, stage, settings)
            rows.append(row)
    return pd.DataFrame(rows, columns=[c.key for c in ROBUSTNESS_COLUMNS])
