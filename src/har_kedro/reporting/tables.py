"""How the comparison table is shown: which columns, their headers and number formats.

One definition for the Markdown and the HTML report, so the two never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


# A no-break space keeps "87.9 %" on one line in narrow table cells.
NBSP = "\u00a0"


def percent(value: Any, digits: int = 1) -> str:
    number = float(value)
    return "–" if math.isnan(number) else f"{100 * number:.{digits}f}{NBSP}%"


def share(value: Any) -> str:
    """A fraction of parameters: small ones (LoRA: 0.02 %) keep their significant digits."""
    number = float(value)
    return "–" if math.isnan(number) else f"{100 * number:.3g}{NBSP}%"


def integer(value: Any) -> str:
    return f"{int(value):,}"


def decimal(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        number = float(value)
        return "–" if math.isnan(number) else f"{number:,.{digits}f}"

    return fmt


def text(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    format: Callable[[Any], str]
    numeric: bool = True


COMPARISON_COLUMNS: tuple[Column, ...] = (
    Column("model", "model", text, numeric=False),
    Column("method", "method", text, numeric=False),
    Column("loss", "loss", text, numeric=False),
    Column("top1_accuracy", "top-1", percent),
    Column("seeds", "seeds", integer),
    Column("top1_mean", "top-1 seed mean", percent),
    Column("top1_std", "top-1 seed std", percent),
    Column("top5_accuracy", "top-5", percent),
    Column("macro_f1", "macro F1", decimal(3)),
    Column("macro_precision", "macro precision", decimal(3)),
    Column("macro_recall", "macro recall", decimal(3)),
    Column("zero_shot_test_accuracy", "zero-shot top-1", percent),
    Column("trainable_parameters", "trainable params", integer),
    Column("trainable_fraction", "trainable share", share),
    Column("peak_memory_mb", "peak memory (MB)", decimal(1)),
    Column("mean_epoch_seconds", "s / epoch", decimal(2)),
    Column("images_per_second", "img / s", decimal(0)),
    Column("best_epoch", "best epoch", integer),
    Column("epochs_run", "epochs", integer),
)

UNCERTAINTY_COLUMNS: tuple[Column, ...] = (
    Column("model", "model", text, numeric=False),
    Column("seeds", "seeds", integer),
    Column("top1_mean", "top-1 mean", percent),
    Column("top1_std", "top-1 std", percent),
    Column("top1_ci_low", "top-1 CI low", percent),
    Column("top1_ci_high", "top-1 CI high", percent),
    Column("macro_f1_mean", "macro F1 mean", decimal(3)),
    Column("macro_f1_std", "macro F1 std", decimal(3)),
    Column("macro_f1_ci_low", "macro F1 CI low", decimal(3)),
    Column("macro_f1_ci_high", "macro F1 CI high", decimal(3)),
    Column("ece", "ECE", decimal(3)),
    Column("temperature", "temperature (val)", decimal(2)),
    Column("ece_scaled", "ECE after scaling", decimal(3)),
    Column("test_images", "test images", integer),
)

ZERO_SHOT_COLUMNS: tuple[Column, ...] = (
    Column("model", "model", text, numeric=False),
    Column("backbone", "backbone", text, numeric=False),
    Column("zero_shot_val_accuracy", "zero-shot val", percent),
    Column("zero_shot_test_accuracy", "zero-shot test", percent),
    Column("top1_accuracy", "fine-tuned test", percent),
    Column("wise_ft_alpha", "WiSE-FT α (val)", decimal(1)),
    Column("wise_ft_val_accuracy", "WiSE-FT val", percent),
    Column("wise_ft_test_accuracy", "WiSE-FT test", percent),
)

PER_CLASS_COLUMNS: tuple[Column, ...] = (
    Column("class", "class", text, numeric=False),
    Column("precision", "precision", decimal(3)),
    Column("recall", "recall", decimal(3)),
    Column("f1", "F1", decimal(3)),
    Column("support", "images", integer),
)


def formatted_rows(frame: pd.DataFrame, columns: Sequence[Column]) -> list[list[str]]:
    """The frame's rows as display strings, in the given column order."""
    return [[column.format(record[column.key]) for column in columns] for record in frame.to_dict(orient="records")]
