"""Thin nodes over :mod:`har_kedro.data.image_cache` and :mod:`har_kedro.data.prompts`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from har_kedro.data.errors import DataInputError
from har_kedro.data.image_cache import CacheSettings, plan_image_cache
from har_kedro.data.ingestion import evaluation_splits
from har_kedro.data.prompts import DEFAULT_TEMPLATES, build_class_prompts
from har_kedro.datasets.array_store import ArrayBundle


def class_names_from_manifest(manifest: pd.DataFrame) -> list[str]:
    """Class names in label-id order, as ingestion numbered them."""
    labelled = manifest[manifest["label_id"] >= 0][["label_id", "label"]].drop_duplicates().sort_values("label_id")
    if labelled["label_id"].duplicated().any() or labelled["label_id"].tolist() != list(range(len(labelled))):
        raise DataInputError("the manifest's label ids are not 0..K-1 with one label each; re-run the ingestion pipeline.")
    return [str(label) for label in labelled["label"]]


def make_class_prompts(class_names: list[str], prompts: dict[str, Any]) -> dict[str, list[str]]:
    return build_class_prompts(class_names, prompts.get("templates") or DEFAULT_TEMPLATES, prompts.get("class_phrases"))


def build_image_cache(manifest: pd.DataFrame, class_names: list[str], params: dict[str, Any]) -> ArrayBundle:
    settings = CacheSettings(
        image_size=params.get("image_size", 224),
        resample=params.get("resample", "bilinear"),
        # The evaluation sets ingestion added (ingestion.evaluation_sets) are cached too, each as a split.
        splits=tuple(params.get("splits", ("train", "val", "test"))) + tuple(evaluation_splits(manifest["split"].unique())),
        num_workers=params.get("num_workers", "auto"),
        progress=bool(params.get("progress", True)),
    )
    return plan_image_cache(manifest, class_names, settings)
