"""Thin nodes over :mod:`har_kedro.inference`; shared by every model's namespace."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from har_kedro.config.model_spec import TrainedModel
from har_kedro.inference.folder_images import sample_images
from har_kedro.inference.onnx_export import export_onnx, parity_report
from har_kedro.inference.predict import predict_folder
from har_kedro.inference.settings import InferenceSettings
from har_kedro.models.device import select_device
from har_kedro.models.factory import rebuild_classifier

logger = logging.getLogger(__name__)


def _model_summary(trained: TrainedModel, model_name: str) -> dict[str, Any]:
    spec = trained.spec
    return {"backbone": spec.backbone, "family": spec.family, "method": spec.method, "loss": spec.loss, "image_size": spec.image_size, "model": model_name}


def predict_images(
    trained_model: TrainedModel, inference: dict[str, Any], preprocessing: dict[str, Any], model_name: str = "model"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Top-k predictions for every image of ``inference.images_dir`` (parquet and CSV), bad files, and a summary."""
    settings = InferenceSettings.from_params(inference, preprocessing)
    device = select_device(settings.device)
    classifier = rebuild_classifier(trained_model, device)
    result = predict_folder(classifier, list(trained_model.spec.class_names), settings, device)
    logger.info(
        "%s inference: %d of %d files predicted, %d bad, %.1f images/s",
        model_name, result.info["predicted"], result.info["files"], result.info["bad_files"], result.info["images_per_second"],
    )
    info = _model_summary(trained_model, model_name) | result.info
    return result.predictions, result.predictions, result.bad_files, info


def export_onnx_model(trained_model: TrainedModel, inference: dict[str, Any], preprocessing: dict[str, Any]) -> bytes:
    """The trained classifier as an ONNX model taking images at the decode size."""
    settings = InferenceSettings.from_params(inference, preprocessing)
    classifier = rebuild_classifier(trained_model, "cpu")
    assert settings.image_size is not None
    metadata = {"resample": settings.resample, "backbone": trained_model.spec.backbone, "method": trained_model.spec.method}
    return export_onnx(classifier, list(trained_model.spec.class_names), settings.image_size, settings.onnx, metadata)


def check_onnx_parity(
    onnx_model: bytes, trained_model: TrainedModel, inference: dict[str, Any], preprocessing: dict[str, Any]
) -> dict[str, Any]:
    """onnxruntime against PyTorch on the first ``inference.onnx.parity_images`` images of the folder."""
    settings = InferenceSettings.from_params(inference, preprocessing)
    classifier = rebuild_classifier(trained_model, "cpu")
    assert settings.image_size is not None and settings.resample is not None
    sample = sample_images(
        settings.images_dir, settings.onnx.parity_images, settings.image_size, settings.resample,
        settings.recursive, settings.max_image_pixels, settings.num_workers,
    )
    report = parity_report(onnx_model, classifier, sample.images, settings.onnx, settings.batch_size)
    return report | {"image_files": sample.paths}
