"""Comparison of the trained models: metrics tables, figures, Markdown and an HTML report."""

from har_kedro.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
