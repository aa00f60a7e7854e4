"""Thin nodes over :mod:`har_kedro.data.ingestion` (and :mod:`har_kedro.demo` for ``kind: demo``)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import pandas as pd

from har_kedro.data import ingestion
from har_kedro.data.source_config import SourceConfig
from har_kedro.data.errors import DataInputError
from har_kedro.demo import DemoSpec, generate_demo_dataset
from har_kedro.demo.corpus import CorpusSpec, generate_shifted_set

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


def _shifted_demo(name: str, source: dict[str, Any]) -> dict[str, Any]:
    """``kind: demo`` evaluation set: drawings in styles the HAR-like set never uses (demo/corpus.py), as an image folder."""
    settings = dict(source.get("demo") or {})
    styles = settings.pop("styles", ["bold", "sketch", "dotted"])
    per_class = settings.pop("images_per_class", 20)
    root = source.get("root")
    if not root or set(source) - {"kind", "root", "demo"}:
        raise DataInputError(f"ingestion.evaluation_sets.{name} of kind demo takes root and demo only, got {sorted(source)}.")
    count = generate_shifted_set(root, CorpusSpec.from_params(settings, where=f"ingestion.evaluation_sets.{name}.demo"), styles, per_class)
    logger.info("Generated the demo evaluation set %s in %s: %d images drawn in %s", name, root, count, styles)
    return {"kind": "image_folder", "root": root}


def ingest_images(source: dict[str, Any], params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    sets = params.get("evaluation_sets") or {}
    if isinstance(sets, dict) and any(isinstance(s, dict) and s.get("kind") == "demo" for s in sets.values()):
        sets = {name: _shifted_demo(name, s) if s.get("kind") == "demo" else s for name, s in sets.items()}
        params = {**params, "evaluation_sets": sets}
    manifest, rejected = ingestion.ingest(source, params)
    return manifest, rejected, ingestion.summarise(manifest, rejected)
