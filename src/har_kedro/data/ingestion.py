"""Ingestion as library code: any supported layout in, manifest + rejected table out."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from har_kedro.data.errors import DataInputError
from har_kedro.data.manifest import REJECTED_COLUMNS, SplitSpec, build_manifest
from har_kedro.data.near_duplicates import DEFAULT_MAX_DISTANCE, HASH_BITS
from har_kedro.data.source_config import SourceConfig
from har_kedro.data.sources import UNLABELLED, Collected, collect_image_folder, collect_kaggle, collect_parquet, read_class_names_file

logger = logging.getLogger(__name__)


def collect(config: SourceConfig, class_names: Sequence[str] | None) -> Collected:
    """List the candidates of the configured layout (``demo`` is a Kaggle layout once generated)."""
    if config.kind in ("kaggle", "demo"):
        return collect_kaggle(config.root, config.labelled_csv, config.labelled_dir, config.unlabelled_csv, config.unlabelled_dir)
    if config.kind == "image_folder":
        return collect_image_folder(config.root)
    names = class_names
    if config.class_names_file:
        names = read_class_names_file(config.class_names_file, config.label_column)
    return collect_parquet(config.paths, config.unlabelled_paths, config.image_column, config.label_column, names)


def resolve_class_names(configured: Sequence[str] | None, collected: Collected) -> list[str]:
    """Configured names win; else the layout's own; else the sorted distinct labels."""
    if configured:
        names = [str(n) for n in configured]
    elif collected.class_names:
        names = list(collected.class_names)
    else:
        names = sorted({c.label for c in collected.candidates if c.label is not None})
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataInputError(f"ingestion.class_names lists {duplicates} more than once; list each class once.")
    if not names:
        raise DataInputError("no class names: set ingestion.class_names or give labelled images.")
    return names


def ingest(source: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifest and rejected table for ``source`` under the ``ingestion`` parameters."""
    config = SourceConfig.from_params(source)
    split = params.get("split", {})
    collected = collect(config, params.get("class_names"))
    class_names = resolve_class_names(params.get("class_names"), collected)
    manifest, rejected = build_manifest(
        collected,
        class_names,
        SplitSpec(
            fractions=dict(split.get("fractions", {"train": 0.8, "val": 0.1, "test": 0.1})), seed=int(split.get("seed", 42)),
            near_duplicate_distance=near_duplicate_distance(params.get("near_duplicates")),
        ),
        max_pixels=int(params.get("max_image_pixels", 50_000_000)),
        num_workers=params.get("num_workers", "auto"),
        source_description=config.describe(),
        progress=bool(params.get("progress", True)),
    )
    manifest, rejected = _with_evaluation_sets(manifest, rejected, params, class_names)
    if len(rejected):
        shown = "; ".join(f"{r.image_id}: {r.reason}" for r in rejected.head(5).itertuples())
        logger.warning("Rejected %d of %d images (see rejected_images): %s%s", len(rejected), len(manifest) + len(rejected), shown, " ..." if len(rejected) > 5 else "")
    return manifest, rejected


def near_duplicate_distance(block: Any) -> int | None:
    """``ingestion.near_duplicates.max_distance``: bits of the 256-bit hash, or None (grouping off)."""
    block = {} if block is None else block
    if not isinstance(block, Mapping) or set(block) - {"max_distance"}:
        raise DataInputError(f"ingestion.near_duplicates must be a mapping with the one key max_distance; got {block!r}.")
    value = block.get("max_distance", DEFAULT_MAX_DISTANCE)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < HASH_BITS:
        raise DataInputError(
            f"ingestion.near_duplicates.max_distance is {value!r}; set an integer from 0 to {HASH_BITS - 1} "
            f"(bits of the {HASH_BITS}-bit perceptual hash; default {DEFAULT_MAX_DISTANCE}) or null to turn near-duplicate grouping off."
        )
    return value


def summarise(manifest: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, Any]:
    """Counts a reader checks first: images per split and class, and why images were rejected."""
    per_split = manifest.groupby("split").size().sort_index()
    per_class = manifest[manifest["label_id"] >= 0].pivot_table(
        index="label", columns="split", values="image_id", aggfunc="count", fill_value=0
    )
    reasons = rejected["category"].value_counts().sort_index()
    group_sizes = manifest.groupby("group_id").size()
    return {
        "images_kept": int(len(manifest)),
        "images_rejected": int(len(rejected)),
        "per_split": {str(k): int(v) for k, v in per_split.items()},
        "per_class": {str(label): {str(s): int(n) for s, n in row.items()} for label, row in per_class.iterrows()},
        "rejection_reasons": {str(k): int(v) for k, v in reasons.items()},
        "near_duplicate_groups": int((group_sizes > 1).sum()),
        "near_duplicate_images": int(group_sizes[group_sizes > 1].sum()),
    }


# --------------------------------------------------------------------------- evaluation sets

RESERVED_SPLITS = ("train", "val", "test", UNLABELLED)
_SET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def evaluation_splits(splits: Sequence[str]) -> list[str]:
    """The evaluation sets among a manifest's or a cache's splits: every split that is not train, val, test or unlabelled."""
    return sorted(str(s) for s in set(splits) - set(RESERVED_SPLITS))


def _check_set_name(name: object) -> str:
    if not isinstance(name, str) or name in RESERVED_SPLITS or not _SET_NAME.match(name):
        raise DataInputError(
            f"ingestion.evaluation_sets has a set named {name!r}; name each set in lower case letters, digits and "
            f"underscores (e.g. shifted), not one of {list(RESERVED_SPLITS)}."
        )
    return name


def ingest_evaluation_set(name: str, source: Mapping[str, Any], params: Mapping[str, Any], class_names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Manifest rows (split ``name``, ids ``<name>/<id>``) and rejected rows of one labelled evaluation set, in any layout."""
    config = SourceConfig.from_params(source, where=f"ingestion.evaluation_sets.{name}")
    collected = collect(config, class_names)
    collected = Collected(
        [dataclasses.replace(c, image_id=f"{name}/{c.image_id}", split=name) for c in collected.candidates if c.label is not None],
        [dataclasses.replace(r, image_id=f"{name}/{r.image_id}") for r in collected.rejections],
    )
    return build_manifest(
        collected, class_names, SplitSpec(fractions={}, seed=0, near_duplicate_distance=None),
        max_pixels=int(params.get("max_image_pixels", 50_000_000)), num_workers=params.get("num_workers", "auto"),
        source_description=f"ingestion.evaluation_sets.{name} ({config.describe()})", progress=bool(params.get("progress", True)), require_train=False,
    )


def _with_evaluation_sets(manifest: pd.DataFrame, rejected: pd.DataFrame, params: Mapping[str, Any], class_names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ingestion.evaluation_sets`` appended: each set's images under a split of its own. An image whose bytes are
    also in the main set is rejected (``in_main_set``): a model may have trained on it."""
    sets = params.get("evaluation_sets") or {}
    if not isinstance(sets, Mapping):
        raise DataInputError(f"ingestion.evaluation_sets must map set names to sources, got {type(sets).__name__}.")
    frames, rejections = [manifest], [rejected]
    seen = set(manifest["sha256"])
    for name, source in sets.items():
        rows, bad = ingest_evaluation_set(_check_set_name(name), source, params, class_names)
        leaked = rows["sha256"].isin(seen)
        if leaked.any():
            bad = pd.concat([bad, rows[leaked].assign(category="in_main_set", reason="the same bytes are an image of the main set")[REJECTED_COLUMNS].astype("string")])
        frames.append(rows[~leaked])
        rejections.append(bad)
        logger.info("Evaluation set %s: %d images kept, %d rejected", name, int((~leaked).sum()), len(bad))
    return pd.concat(frames, ignore_index=True), pd.concat(rejections, ignore_index=True)
