"""Top-k predictions of a trained classifier for every image of a folder.

The folder is decoded and classified one batch at a time, so memory stays at one batch of
images whatever the folder's size (Kaggle's 5,400 test images at 224 px would be 0.8 GB).
Scoring goes through the training loop's own :func:`~har_kedro.training.loop.predict_logits`,
so inference, validation and the test predictions rank classes identically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from har_kedro.inference.folder_images import BadFile, decode_image_files, list_image_files
from har_kedro.inference.settings import InferenceConfigError, InferenceSettings
from har_kedro.models.classifier import ImageClassifier
from har_kedro.models.predict import predict_logits

logger = logging.getLogger(__name__)

BAD_FILE_COLUMNS = ["image", "category", "reason"]


@dataclass
class FolderPredictions:
    predictions: pd.DataFrame
    bad_files: pd.DataFrame
    info: dict[str, Any]


def prediction_columns(top_k: int) -> list[str]:
    """``image, label_1, prob_1, …, label_k, prob_k``."""
    return ["image"] + [name for rank in range(1, top_k + 1) for name in (f"label_{rank}", f"prob_{rank}")]


def top_k_frame(paths: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str], top_k: int) -> pd.DataFrame:
    """One row per image: its ``top_k`` classes, most probable first, with their probabilities.

    Ties keep class order (a stable sort), so equal probabilities always rank the same way.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(len(paths), len(class_names))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    names = np.asarray(class_names, dtype=object)
    columns: dict[str, Any] = {"image": list(paths)}
    for rank in range(top_k):
        columns[f"label_{rank + 1}"] = names[order[:, rank]].tolist() if len(paths) else []
        columns[f"prob_{rank + 1}"] = np.take_along_axis(probabilities, order[:, rank : rank + 1], axis=1)[:, 0]
    return pd.DataFrame(columns, columns=prediction_columns(top_k))


def bad_files_frame(bad: Sequence[BadFile]) -> pd.DataFrame:
    return pd.DataFrame([(b.image, b.category, b.reason) for b in bad], columns=BAD_FILE_COLUMNS)


def predict_probabilities(
    classifier: ImageClassifier, images: np.ndarray, batch_size: int, device: torch.device, amp: str = "auto"
) -> np.ndarray:
    """``(N, C)`` softmax probabilities of uint8 ``(N, S, S, 3)`` images, as the test predictions compute them."""
    logits = predict_logits(classifier, images, batch_size, device, amp)
    return torch.softmax(logits.float(), dim=1).numpy()


def predict_folder(
    classifier: ImageClassifier, class_names: Sequence[str], settings: InferenceSettings, device: torch.device
) -> FolderPredictions:
    """Classify every file of ``settings.images_dir``; unusable files are listed with a reason instead."""
    if settings.top_k > len(class_names):
        raise InferenceConfigError(f"inference.top_k is {settings.top_k} but the model has only {len(class_names)} classes; lower inference.top_k.")
    root = Path(settings.images_dir)
    files = list_image_files(root, settings.recursive)
    assert settings.image_size is not None and settings.resample is not None  # filled by from_params
    frames: list[pd.DataFrame] = []
    bad: list[BadFile] = []
    start_time = time.perf_counter()
    bar = tqdm(total=len(files), desc="inference", unit="img", disable=None if settings.progress else True, dynamic_ncols=True)
    try:
        for start in range(0, len(files), settings.batch_size):
            chunk = files[start : start + settings.batch_size]
            decoded = decode_image_files(chunk, root, settings.image_size, settings.resample, settings.max_image_pixels, settings.num_workers)
            bad.extend(decoded.bad)
            if decoded.paths:
                probabilities = predict_probabilities(classifier, decoded.images, settings.batch_size, device, settings.amp)
                frames.append(top_k_frame(decoded.paths, probabilities, class_names, settings.top_k))
            bar.update(len(chunk))
    finally:
        bar.close()
    seconds = time.perf_counter() - start_time
    predictions = pd.concat(frames, ignore_index=True) if frames else top_k_frame([], np.zeros((0, len(class_names))), class_names, settings.top_k)
    if bad:
        shown = "; ".join(f"{b.image}: {b.reason}" for b in bad[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        logger.warning("inference: %d of %d files got no prediction (listed in the bad-files table): %s%s", len(bad), len(files), shown, more)
    if not len(predictions):
        logger.warning("inference: none of the %d files in %s could be decoded; see the bad-files table.", len(files), root)
    info = {
        "images_dir": str(root),
        "recursive": settings.recursive,
        "files": len(files),
        "predicted": len(predictions),
        "bad_files": len(bad),
        "top_k": settings.top_k,
        "decode_size": settings.image_size,
        "resample": settings.resample,
        "model_image_size": classifier.image_size,
        "device": str(device),
        "seconds": seconds,
        "images_per_second": len(files) / seconds if seconds > 0 else 0.0,
    }
    return FolderPredictions(predictions, bad_files_frame(bad), info)
