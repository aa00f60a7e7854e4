"""Comparison of the trained models. Placeholder until the reporting issue fills it."""

from har_kedro.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
