"""One model trained once per seed: every seed's outputs kept, the best val accuracy deployed."""

from __future__ import annotations

import pandas as pd
import pytest

from har_kedro.config.errors import TrainingConfigError
from har_kedro.config.seeds import parse_seeds
from har_kedro.training.runner import TrainingOutputs
from har_kedro.training.seeds import train_seeds

VAL = {0: 0.50, 1: 0.75, 2: 0.75}  # seeds 1 and 2 tie: the earlier one is deployed


def _fake_run(seed: int) -> TrainingOutputs:
    """What run_training returns, reduced to what train_seeds reads."""
    info = {"seed": seed, "best_val_accuracy": VAL[seed], "test_accuracy": 0.1 * seed, "best_epoch": 1, "epochs_run": 2,
            "total_train_seconds": 3.0, "peak_memory_mb": 9.0, "wise_ft": {"chosen_alpha": 0.5} if seed else None}
    history = pd.DataFrame({"stage": ["fine_tune"] * 2, "epoch": [1, 2], "val_accuracy": [0.1, VAL[seed]]})
    predictions = pd.DataFrame({"image_id": ["a", "b"], "pred_id": [seed, seed]})
    return TrainingOutputs(trained_model=f"model of seed {seed}", history=history, test_predictions=predictions, run_info=info)


def test_every_seed_is_trained_in_order_and_the_best_val_seed_is_deployed_the_earlier_on_a_tie():
    trained: list[int] = []
    runs = train_seeds([0, 1, 2], lambda seed: trained.append(seed) or _fake_run(seed))
    assert trained == [0, 1, 2]
    assert runs.selected.trained_model == "model of seed 1" and runs.selected.run_info["selected_seed"] == 1
    assert [s["seed"] for s in runs.selected.run_info["seed_runs"]] == [0, 1, 2]
    assert [s["wise_ft_alpha"] for s in runs.selected.run_info["seed_runs"]] == [None, 0.5, 0.5]
    assert runs.seed_predictions.columns[0] == "seed" and runs.seed_predictions["seed"].tolist() == [0, 0, 1, 1, 2, 2]
    assert runs.seed_predictions["pred_id"].tolist() == [0, 0, 1, 1, 2, 2]
    assert runs.seed_histories.columns[0] == "seed" and len(runs.seed_histories) == 6


def test_one_seed_is_that_seeds_run():
    runs = train_seeds([2], _fake_run)
    assert runs.selected.run_info["seed"] == 2 and len(runs.seed_predictions) == 2


@pytest.mark.parametrize(("value", "message"), [
    (42, r"seeds is 42; give a list, e.g. seeds: \[42\]"),
    ([], r"seeds is \[\]; give a non-empty list of whole numbers >= 0"),
    ([0, "1"], r"seeds is \[0, '1'\]; give a non-empty list"),
    ([0, -1], r"seeds is \[0, -1\]; give a non-empty list"),
    ([3, 3], r"seeds lists a seed twice \(\[3, 3\]\)"),
])
def test_bad_seeds_are_refused_naming_the_parameter(value, message):
    with pytest.raises(TrainingConfigError, match=message):
        parse_seeds(value)


def test_good_seeds_are_kept_in_order():
    assert parse_seeds([2, 0, 1]) == (2, 0, 1)
