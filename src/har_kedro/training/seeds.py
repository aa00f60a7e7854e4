"""One model trained once per seed: the runs kept side by side, one of them deployed.

Every seed's test predictions and learning curve go to the catalog (``<model>.seed_predictions``,
``<model>.seed_histories``, each with a ``seed`` column), so the report can give the spread over seeds
and intervals that include it. One model is kept as ``<model>.trained_model`` (what inference and ONNX
export use): the seed with the best val accuracy, the first in the list on a tie. Only that one is
held in memory and saved; a ViT-B model per seed would be 0.6 GB each on disk for weights nobody
deploys, and any seed's model is one ``kedro run`` with ``seeds: [<that seed>]`` away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from har_kedro.training.runner import TrainingOutputs

logger = logging.getLogger(__name__)

# What run_info["seed_runs"] keeps of each seed's own run_info.
SEED_SUMMARY_KEYS = ("seed", "best_val_accuracy", "test_accuracy", "best_epoch", "epochs_run", "total_train_seconds", "peak_memory_mb")


@dataclass
class SeedRuns:
    selected: TrainingOutputs  # the deployed seed's outputs, its run_info with every seed's summary
    seed_predictions: pd.DataFrame  # every seed's test predictions, a ``seed`` column first
    seed_histories: pd.DataFrame  # every seed's history, a ``seed`` column first
    evaluation_predictions: pd.DataFrame  # every seed's zero-shot / fine-tuned / WiSE-FT predictions on test and the evaluation sets


def _with_seed(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    return frame.assign(seed=seed)[["seed", *frame.columns]]


def _summary(run_info: dict[str, Any]) -> dict[str, Any]:
    summary = {key: run_info.get(key) for key in SEED_SUMMARY_KEYS}
    summary["wise_ft_alpha"] = (run_info.get("wise_ft") or {}).get("chosen_alpha")
    return summary


def train_seeds(seeds: Sequence[int], train_one: Callable[[int], TrainingOutputs]) -> SeedRuns:
    """``train_one(seed)`` for every seed, in order; the best val accuracy is deployed (ties: the earlier seed)."""
    selected: TrainingOutputs | None = None
    predictions, histories, evaluations, summaries = [], [], [], []
    for index, seed in enumerate(seeds, start=1):
        if len(seeds) > 1:
            logger.info("Seed %d (%d of %d)", seed, index, len(seeds))
        outputs = train_one(seed)
        predictions.append(_with_seed(outputs.test_predictions, seed))
        histories.append(_with_seed(outputs.history, seed))
        evaluations.append(_with_seed(outputs.evaluation_predictions, seed))
        summaries.append(_summary(outputs.run_info))
        if selected is None or outputs.run_info["best_val_accuracy"] > selected.run_info["best_val_accuracy"]:
            selected = outputs
        del outputs  # a seed that is not deployed is dropped now: the deployed model and the one training, no more
    assert selected is not None, "seeds is never empty (config/seeds.py)"
    selected.run_info["seed_runs"] = summaries
    selected.run_info["selected_seed"] = selected.run_info["seed"]
    if len(seeds) > 1:
        logger.info("Deployed seed %d: the best val accuracy (%.4f) of seeds %s", selected.run_info["seed"], selected.run_info["best_val_accuracy"], list(seeds))
    return SeedRuns(selected, pd.concat(predictions, ignore_index=True), pd.concat(histories, ignore_index=True), pd.concat(evaluations, ignore_index=True))
