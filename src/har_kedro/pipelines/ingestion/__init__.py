"""Raw images (Kaggle, ImageFolder, HF parquet or the demo generator) to a manifest."""

from har_kedro.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
