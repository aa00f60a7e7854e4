"""One training pipeline template, instantiated per model by namespace."""

from har_kedro.pipelines.training.pipeline import MODELS, create_pipeline

__all__ = ["MODELS", "create_pipeline"]
