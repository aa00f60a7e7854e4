"""Thin nodes over :mod:`har_kedro.data.captions`, :mod:`har_kedro.data.caption_cache` and
:mod:`har_kedro.training.pretraining` (and :mod:`har_kedro.demo.corpus` for ``kind: demo``)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from har_kedro.config.errors import known_keys
from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.caption_cache import CaptionCache, CaptionCacheSettings, plan_caption_cache
from har_kedro.data.captions import CAPTION_COLUMNS, REJECTED_CAPTION_COLUMNS, CaptionSource, read_captions
from har_kedro.data.errors import DataInputError
from har_kedro.datasets.array_store import ArrayBundle, StoredArrays
from har_kedro.demo.corpus import CORPUS_CSV, CorpusSpec, generate_caption_corpus
from har_kedro.pipelines.training.nodes import backbone_from_block, check_model_keys
from har_kedro.tracking import active_epoch_logger
from har_kedro.training.pretraining import pretrain_into_store, pretraining_config

logger = logging.getLogger(__name__)
NO_CORPUS = "pretraining.corpus is null: there are no captions to pretrain on"
_EMPTY_CACHE = "no-corpus"


def prepare_corpus(corpus: dict[str, Any] | None) -> dict[str, Any]:
    """The validated captions source (empty without one); ``kind: demo`` writes the generated corpus first and reads it as CSV."""
    if corpus is None:
        logger.info("%s; every model trains from its own `backbone` (set pretraining.corpus to pretrain, docs/training.md).", NO_CORPUS)
        return {}
    if not isinstance(corpus, dict):
        raise DataInputError(f"pretraining.corpus must be a mapping (kind, path, ...) or null, got {type(corpus).__name__}.")
    if corpus.get("kind") == "demo":
        folder = Path(str(corpus.get("path") or "")).parent
        rows = generate_caption_corpus(folder, CorpusSpec.from_params(corpus.get("demo") or {}))
        logger.info("Generated the demo captions corpus in %s: %d (image, caption) rows", folder, rows)
        corpus = {"kind": "csv", "path": str(folder / CORPUS_CSV)}
    elif "demo" in corpus:
        raise DataInputError("pretraining.corpus.demo only applies to kind: demo; remove it or set kind: demo.")
    return dataclasses.asdict(CaptionSource.from_params(corpus))


def ingest_captions(corpus: dict[str, Any], cache: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (image, caption) pairs and the rejected rows, each with a reason (none without a corpus)."""
    if not corpus:
        return pd.DataFrame(columns=CAPTION_COLUMNS), pd.DataFrame(columns=REJECTED_CAPTION_COLUMNS)
    pairs, rejected = read_captions(CaptionSource(**corpus), cache.get("num_workers", "auto"), bool(cache.get("progress", True)))
    logger.info("Captions: %d pairs over %d images kept, %d rows rejected%s", len(pairs), pairs["image_id"].nunique(), len(rejected), _reasons(rejected))
    return pairs, rejected


def _reasons(rejected: pd.DataFrame) -> str:
    if rejected.empty:
        return ""
    return " (" + ", ".join(f"{n} {category}" for category, n in rejected["category"].value_counts().items()) + ")"


def build_caption_cache(pairs: pd.DataFrame, cache: dict[str, Any]) -> ArrayBundle:
    """Decoded images of the pairs, split by image into train and val; an empty marker without a corpus."""
    if pairs.empty:
        return ArrayBundle(_EMPTY_CACHE, {}, {"empty": True})
    settings = CaptionCacheSettings(**known_keys(CaptionCacheSettings, cache, "pretraining.cache", DataInputError))
    settings.validate()
    return plan_caption_cache(pairs, settings)


def pretrain_backbone(
    caption_cache: StoredArrays, store: Path, checkpoints: Path, model: dict[str, Any], training: dict[str, Any], seed: int, target: str = "pretraining",
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Pretrain (or reuse, for unchanged inputs) the target's backbone; its folder's pointer, history and run info."""
    config = pretraining_config(TrainConfig.from_params(training, where=f"{target}.training"), f"{target}.training")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TrainingConfigError(f"{target}.seed must be a non-negative integer, got {seed!r}.")
    if caption_cache.metadata.get("empty"):
        logger.info("%s: %s; nothing pretrained.", target, NO_CORPUS)
        return {"path": None, "reason": NO_CORPUS}, pd.DataFrame(), {"name": target, "skipped": NO_CORPUS}
    cache = CaptionCache(caption_cache)
    if not len(cache.labels("val")):
        raise TrainingConfigError(f"pretraining.cache.val_fraction leaves no val images, but {target} keeps its best val epoch; set it above 0 (e.g. 0.05).")
    model = model or {}
    check_model_keys(model, f"{target}.model", ("backbone", "build_random"))
    source = backbone_from_block(model, cache.captions, f"{target}.model")
    return pretrain_into_store(store, target, cache, source, config, seed, checkpoints / f"seed_{seed}", active_epoch_logger(target))
