"""Manifest to a decoded, memory-mappable image cache, class names and class prompts."""

from har_kedro.pipelines.preprocessing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
