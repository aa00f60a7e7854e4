"""Contrastive image-caption pretraining: the captions table, its image cache, one pretrained backbone per target."""

from har_kedro.pipelines.pretraining.pipeline import create_pipeline

__all__ = ["create_pipeline"]
