"""Which models can be reported, and checks that their saved outputs fit together.

Each model contributes three datasets written by its training pipeline: ``<model>.run_info``,
``<model>.history`` and ``<model>.test_predictions``. They load as ``None`` when never saved
(:class:`har_kedro.datasets.OptionalDataset`). A model with none of them, or only some (an
interrupted run), is *left out* with a reason that the report shows; a model whose outputs are
present but malformed or from different runs is an error, because a report built on it would
be wrong without anyone noticing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from har_kedro.reporting.errors import ReportingInputError

OUTPUT_KINDS: tuple[str, ...] = ("run_info", "history", "test_predictions")
# Every seed's test predictions (training/seeds.py); a run from before seeds has none: its one seed is its predictions.
SEED_KIND = "seed_predictions"
# Every seed's zero-shot / fine-tuned / WiSE-FT predictions on test and the evaluation sets (reporting/robustness.py);
# optional too: a run from before evaluation sets has none and gets no row in that table.
EVALUATION_KIND = "evaluation_predictions"
EVALUATION_COLUMNS = ("seed", "set", "image_id", "label_id", "zero_shot_pred", "fine_tuned_pred", "wise_ft_pred")

REQUIRED_RUN_INFO_KEYS: tuple[str, ...] = (
    "model", "family", "backbone", "method", "loss", "device",
    "trainable_parameters", "total_parameters", "trainable_fraction",
    "epochs_run", "best_epoch", "test_accuracy", "peak_memory_mb",
    "mean_epoch_seconds", "mean_images_per_second", "zero_shot",
)
REQUIRED_HISTORY_COLUMNS: tuple[str, ...] = (
    "stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
)
PROBABILITY_PREFIX = "prob_"


@dataclass(frozen=True)
class ModelRun:
    """One trained model's outputs, checked to be complete and consistent."""

    name: str
    run_info: dict[str, Any]
    history: pd.DataFrame
    predictions: pd.DataFrame
    seed_predictions: pd.DataFrame | None = None  # checked: every seed predicted exactly ``predictions``' images
    evaluation: pd.DataFrame | None = None  # checked: its test rows are ``predictions``' images

    def labels(self) -> np.ndarray:
        return self.predictions["label_id"].to_numpy(dtype=np.int64)

    def predicted(self) -> np.ndarray:
        return self.predictions["pred_id"].to_numpy(dtype=np.int64)

    def seeds(self) -> list[int]:
        if self.seed_predictions is None:
            return [int(self.run_info.get("seed", -1))]
        return sorted(int(s) for s in self.seed_predictions["seed"].unique())

    def seed_predicted(self) -> np.ndarray:
        """``(seeds, images)`` predicted class ids, images in ``predictions``' order, seeds in ``seeds()`` order."""
        if self.seed_predictions is None:
            return self.predicted()[None, :]
        order = self.predictions["image_id"].to_numpy()
        by_seed = self.seed_predictions.set_index(["seed", "image_id"])["pred_id"]
        return np.stack([by_seed.loc[seed].reindex(order).to_numpy(dtype=np.int64) for seed in self.seeds()])

    def probabilities(self, class_names: Sequence[str]) -> np.ndarray:
        """(images, classes) in ``class_names`` order, whatever the column order on disk."""
        return self.predictions[[PROBABILITY_PREFIX + name for name in class_names]].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class RunSelection:
    """The models that can be reported (in the given model order) and why the others cannot."""

    runs: list[ModelRun]
    left_out: dict[str, str] = field(default_factory=dict)
    thumbnails: dict[str, str] = field(default_factory=dict)  # image id -> data: URI (reporting/mistakes.py)

    @property
    def names(self) -> list[str]:
        return [run.name for run in self.runs]


def dataset_name(model: str, kind: str) -> str:
    return f"{model}.{kind}"


def check_class_names(class_names: Any) -> list[str]:
    if not isinstance(class_names, list) or not class_names or not all(isinstance(c, str) and c for c in class_names):
        raise ReportingInputError("class_names must be a non-empty list of class-name strings; re-run the preprocessing pipeline.")
    if len(set(class_names)) != len(class_names):
        raise ReportingInputError(f"class_names lists some classes twice ({class_names}); re-run the preprocessing pipeline.")
    return list(class_names)


def check_run_info(model: str, info: Any) -> dict[str, Any]:
    name = dataset_name(model, "run_info")
    if not isinstance(info, dict):
        raise ReportingInputError(f"{name} is a {type(info).__name__}, not the dict train_{model} writes; re-run kedro run --pipeline=train_{model}.")
    missing = [key for key in REQUIRED_RUN_INFO_KEYS if key not in info]
    if missing:
        raise ReportingInputError(f"{name} lacks the keys {missing}; it was written by another version of train_{model}, so re-run kedro run --pipeline=train_{model}.")
    if info["model"] != model:
        raise ReportingInputError(f"{name} describes model '{info['model']}', not '{model}'; check the file at that path or re-run kedro run --pipeline=train_{model}.")
    zero_shot = info["zero_shot"]  # None: trained with zero_shot_baseline: false
    if zero_shot is not None and (not isinstance(zero_shot, dict) or not {"val_accuracy", "test_accuracy"} <= set(zero_shot)):
        raise ReportingInputError(f"{name}'s zero_shot entry needs val_accuracy and test_accuracy; re-run kedro run --pipeline=train_{model}.")
    return info


def check_history(model: str, history: Any) -> pd.DataFrame:
    name = dataset_name(model, "history")
    if not isinstance(history, pd.DataFrame):
        raise ReportingInputError(f"{name} is a {type(history).__name__}, not a table; re-run kedro run --pipeline=train_{model}.")
    missing = [column for column in REQUIRED_HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ReportingInputError(
            f"{name} lacks the columns {missing} (it has {list(history.columns)}); the learning curves need "
            f"{list(REQUIRED_HISTORY_COLUMNS)}, so re-run kedro run --pipeline=train_{model}."
        )
    return history


def check_predictions(model: str, predictions: Any, class_names: Sequence[str]) -> pd.DataFrame:
    name = dataset_name(model, "test_predictions")
    if not isinstance(predictions, pd.DataFrame):
        raise ReportingInputError(f"{name} is a {type(predictions).__name__}, not a table; re-run kedro run --pipeline=train_{model}.")
    missing = [column for column in ("label_id", "pred_id") if column not in predictions.columns]
    if missing:
        raise ReportingInputError(f"{name} lacks the columns {missing}; re-run kedro run --pipeline=train_{model}.")
    if predictions.empty:
        raise ReportingInputError(f"{name} has no rows, so there is nothing to score; re-run kedro run --pipeline=train_{model} with a non-empty test split.")
    found = [c[len(PROBABILITY_PREFIX):] for c in predictions.columns if str(c).startswith(PROBABILITY_PREFIX)]
    if sorted(found) != sorted(class_names):
        extra, lacking = sorted(set(found) - set(class_names)), sorted(set(class_names) - set(found))
        problems = [f"probability columns for {extra}, which class_names does not list"] if extra else []
        problems += [f"no probability column for {lacking}"] if lacking else []
        problems = problems or ["the same probability column twice"]
        raise ReportingInputError(
            f"{name} has {' and '.join(problems)}, so it was made with other class names; re-run "
            f"kedro run --pipeline=train_{model}, or load class_names and the predictions from the same run."
        )
    n = len(class_names)
    for column in ("label_id", "pred_id"):
        values = pd.to_numeric(predictions[column], errors="coerce")
        if values.isna().any() or (values < 0).any() or (values >= n).any() or not (values == values.round()).all():
            raise ReportingInputError(f"{name} has {column} values outside the class ids 0..{n - 1}; re-run kedro run --pipeline=train_{model}.")
    probabilities = predictions[[PROBABILITY_PREFIX + c for c in class_names]].to_numpy(dtype=np.float64)
    if not np.isfinite(probabilities).all():
        raise ReportingInputError(f"{name} has missing or infinite class probabilities; re-run kedro run --pipeline=train_{model}.")
    return predictions


def check_same_run(model: str, info: dict[str, Any], predictions: pd.DataFrame) -> None:
    """The run info's test accuracy is the predictions' accuracy, or they are from different runs."""
    recorded = float(info["test_accuracy"])
    measured = float((predictions["label_id"].to_numpy() == predictions["pred_id"].to_numpy()).mean())
    if not math.isclose(recorded, measured, rel_tol=0.0, abs_tol=1e-9):
        raise ReportingInputError(
            f"{dataset_name(model, 'run_info')} records test accuracy {recorded:.4f} but {dataset_name(model, 'test_predictions')} "
            f"scores {measured:.4f}, so they come from different training runs; load versions of both from the same run "
            f"(the same timestamp) or re-run kedro run --pipeline=train_{model}."
        )


def check_seed_predictions(model: str, frame: Any, info: dict[str, Any], predictions: pd.DataFrame) -> pd.DataFrame | None:
    """Every seed predicted the same test images as ``predictions``, and the deployed seed's rows are ``predictions``."""
    if frame is None:
        return None
    name = dataset_name(model, SEED_KIND)
    missing = [c for c in ("seed", "image_id", "pred_id") if not isinstance(frame, pd.DataFrame) or c not in frame.columns]
    if missing:
        raise ReportingInputError(f"{name} lacks the columns {missing}; re-run kedro run --pipeline=train_{model}.")
    images = set(predictions["image_id"])
    for seed, rows in frame.groupby("seed"):
        if set(rows["image_id"]) != images or rows["image_id"].duplicated().any():
            raise ReportingInputError(
                f"{name} holds other test images for seed {seed} than {dataset_name(model, 'test_predictions')}, so they come from "
                f"different runs; load versions of both from the same run or re-run kedro run --pipeline=train_{model}."
            )
    deployed = frame[frame["seed"] == info.get("seed")].set_index("image_id")["pred_id"]
    if deployed.empty or not deployed.reindex(predictions["image_id"]).to_numpy().tolist() == predictions["pred_id"].tolist():
        raise ReportingInputError(
            f"{name} has no rows of seed {info.get('seed')} matching {dataset_name(model, 'test_predictions')}, so they come from "
            f"different runs; load versions of both from the same run or re-run kedro run --pipeline=train_{model}."
        )
    return frame


def check_evaluation(model: str, frame: Any, predictions: pd.DataFrame) -> pd.DataFrame | None:
    """The evaluation predictions hold :data:`EVALUATION_COLUMNS` and, for test, the images of ``predictions``."""
    if frame is None:
        return None
    name = dataset_name(model, EVALUATION_KIND)
    missing = [c for c in EVALUATION_COLUMNS if not isinstance(frame, pd.DataFrame) or c not in frame.columns]
    if missing:
        raise ReportingInputError(f"{name} lacks the columns {missing}; re-run kedro run --pipeline=train_{model}.")
    if set(frame.loc[frame["set"] == "test", "image_id"]) != set(predictions["image_id"]):
        raise ReportingInputError(
            f"{name} holds other test images than {dataset_name(model, 'test_predictions')}, so they come from different runs; "
            f"load versions of both from the same run or re-run kedro run --pipeline=train_{model}."
        )
    return frame


def _left_out_reason(model: str, missing: Sequence[str]) -> str:
    names = [dataset_name(model, kind) for kind in missing]
    if len(missing) == len(OUTPUT_KINDS):
        return f"not trained: {', '.join(names)} were never saved; run kedro run --pipeline=train_{model}"
    return (
        f"incomplete: {', '.join(names)} {'was' if len(names) == 1 else 'were'} never saved (an interrupted run?); "
        f"run kedro run --pipeline=train_{model} again"
    )


def select_runs(class_names: Any, outputs: Mapping[str, Any], models: Sequence[str]) -> RunSelection:
    """Every model of ``models`` whose three outputs are in ``outputs`` (keyed ``<model>.<kind>``), checked.

    Raises :class:`ReportingInputError` when no model can be reported or an output is malformed.
    """
    classes = check_class_names(class_names)
    runs: list[ModelRun] = []
    left_out: dict[str, str] = {}
    for model in models:
        present = {kind: outputs.get(dataset_name(model, kind)) for kind in OUTPUT_KINDS}
        missing = [kind for kind, value in present.items() if value is None]
        if missing:
            left_out[model] = _left_out_reason(model, missing)
            continue
        info = check_run_info(model, present["run_info"])
        history = check_history(model, present["history"])
        predictions = check_predictions(model, present["test_predictions"], classes)
        check_same_run(model, info, predictions)
        seeds = check_seed_predictions(model, outputs.get(dataset_name(model, SEED_KIND)), info, predictions)
        evaluation = check_evaluation(model, outputs.get(dataset_name(model, EVALUATION_KIND)), predictions)
        runs.append(ModelRun(model, info, history, predictions, seeds, evaluation))
    if not runs:
        raise ReportingInputError(
            f"no model has training outputs yet ({', '.join(models)}), so there is nothing to report; "
            f"train one first, e.g. kedro run --pipeline=train_{models[0] if models else 'clip'}."
        )
    return RunSelection(runs, left_out)
