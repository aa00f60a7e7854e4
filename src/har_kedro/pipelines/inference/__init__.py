"""One inference pipeline template (predictions on a folder of images, ONNX export), instantiated per model by namespace."""

from har_kedro.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
