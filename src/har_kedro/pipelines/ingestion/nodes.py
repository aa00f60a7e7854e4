"""Thin nodes over :mod:`har_kedro.data.ingestion` (and :mod:`har_kedro.demo` for ``kind: demo``)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import pandas as pd

from har_kedro.data import ingestion
from har_kedro.data.source_config import SourceConfig
from har_kedro.demo import DemoSpec, generate_demo_dataset

logger = logging.getLogger(__name__)


def prepare_source(source: dict[str, Any]) -> dict[str, Any]:
    """Validate the source settings; for ``kind: demo`` write the generated Kaggle-layout set first."""
    config = SourceConfig.from_params(source)
    if config.kind == "demo":
        summary = generate_demo_dataset(config.root, DemoSpec.from_params(config.demo))
        logger.info(
            "Generated demo HAR set in %s: %d good images, %d deliberately broken entries",
            summary.root, summary.n_good, len(summary.broken),
        )
    return asdict(config)


def ingest_images(source: dict[str, Any], params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    manifest, rejected = ingestion.ingest(source, params)
    return manifest, rejected, ingestion.summarise(manifest, rejected)
