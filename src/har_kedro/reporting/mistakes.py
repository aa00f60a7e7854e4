"""What a model gets wrong, with the pictures: its most confident mistakes and its most confused class
pairs on the test split, and the thumbnails the report embeds for them.

Thumbnails come from the image cache the model was tested on (the test split as the model saw it, after
the centre crop), as small JPEG ``data:`` URIs, so the report stays one offline file. Everything here is
deterministic (ties broken by image id, fixed JPEG settings): a report rebuilt from the same input
versions has the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from har_kedro.reporting.runs import ModelRun

MISTAKES_SHOWN = 8  # most confident mistakes per model
PAIRS_SHOWN = 5  # most confused (true, predicted) class pairs per model
THUMBNAIL_SIDE = 96  # px; a JPEG of this size is about 3-4 kB, about 5 kB as base64
THUMBNAIL_QUALITY = 80


@dataclass(frozen=True)
class Mistake:
    image_id: str
    label: str
    predicted: str
    probability: float  # of the predicted class


@dataclass(frozen=True)
class ConfusedPair:
    label: str
    predicted: str
    count: int
    share: float  # of the true class's test images
    example: Mistake  # the most confident mistake of this pair


def _mistakes(run: ModelRun) -> pd.DataFrame:
    frame = run.predictions
    wrong = frame[frame["label_id"] != frame["pred_id"]].copy()
    wrong["probability"] = [float(row["prob_" + row["pred"]]) for _, row in wrong.iterrows()]
    return wrong.sort_values(["probability", "image_id"], ascending=[False, True], kind="mergesort")


def _as_mistake(row: pd.Series) -> Mistake:
    return Mistake(str(row["image_id"]), str(row["label"]), str(row["pred"]), float(row["probability"]))


def confident_mistakes(run: ModelRun, count: int = MISTAKES_SHOWN) -> list[Mistake]:
    """The ``count`` wrong test predictions with the highest probability on the predicted class."""
    return [_as_mistake(row) for _, row in _mistakes(run).head(count).iterrows()]


def confused_pairs(run: ModelRun, count: int = PAIRS_SHOWN) -> list[ConfusedPair]:
    """The ``count`` (true, predicted) pairs with the most mistakes, each with its most confident example."""
    wrong = _mistakes(run)
    if wrong.empty:
        return []
    per_class = run.predictions["label"].value_counts()
    sizes = wrong.groupby(["label", "pred"], sort=True).size().rename("count").reset_index()
    sizes = sizes.sort_values(["count", "label", "pred"], ascending=[False, True, True], kind="mergesort").head(count)
    pairs = []
    for _, pair in sizes.iterrows():
        example = wrong[(wrong["label"] == pair["label"]) & (wrong["pred"] == pair["pred"])].iloc[0]
        share = int(pair["count"]) / int(per_class[pair["label"]])
        pairs.append(ConfusedPair(str(pair["label"]), str(pair["pred"]), int(pair["count"]), share, _as_mistake(example)))
    return pairs


def shown_images(runs: Sequence[ModelRun]) -> list[str]:
    """Every image id the report shows a thumbnail of, sorted."""
    ids = {m.image_id for run in runs for m in confident_mistakes(run)}
    ids |= {p.example.image_id for run in runs for p in confused_pairs(run)}
    return sorted(ids)


def thumbnail_uri(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> str:
    """A ``data:image/jpeg;base64,...`` URI of an ``(S, S, 3)`` uint8 image scaled to ``side`` px."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=False, progressive=False)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def thumbnails(image_ids: Sequence[str], test_ids: Sequence[str], test_images: np.ndarray) -> dict[str, str]:
    """Thumbnails of ``image_ids`` found among the cached test images (``test_ids`` row by row); an id the
    cache does not hold (predictions from another cache version) gets none and is shown as text only."""
    row_of: Mapping[str, int] = {image_id: row for row, image_id in enumerate(test_ids)}
    return {image_id: thumbnail_uri(test_images[row_of[image_id]]) for image_id in image_ids if image_id in row_of}
