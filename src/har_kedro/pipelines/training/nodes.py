"""Thin nodes over :mod:`har_kedro.training.runner`; shared by every model's namespace."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from har_kedro.config.model_spec import TrainedModel
from har_kedro.config.seeds import parse_seeds
from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.image_cache import ImageCache
from har_kedro.datasets.array_store import StoredArrays
from har_kedro.models.tiny import ensure_random_backbone
from har_kedro.tracking import active_epoch_logger
from har_kedro.training.runner import TrainingOutputs, run_training
from har_kedro.training.seeds import train_seeds

logger = logging.getLogger(__name__)


def check_model_keys(model: dict[str, Any], where: str, allowed: Sequence[str]) -> None:
    unknown = sorted(set(model) - set(allowed))
    if unknown:
        raise TrainingConfigError(f"{where} has unknown keys {unknown}; allowed keys are {list(allowed)}.")


def backbone_from_block(model: dict[str, Any], vocabulary: Iterable[str], where: str) -> str:
    """``<where>.backbone`` (a HuggingFace id or a directory); with ``build_random`` (demo, smoke) a random model whose
    tokenizer knows ``vocabulary`` is built there first. Shared by the training and the pretraining nodes."""
    source = model.get("backbone")
    if not source:
        raise TrainingConfigError(f"{where}.backbone is empty; give a HuggingFace id or a local directory.")
    spec = model.get("build_random")
    if spec:
        try:
            ensure_random_backbone(source, vocabulary, **spec)
        except ValueError as error:
            raise TrainingConfigError(f"{where}.{error}") from None
        logger.info("Random %s backbone ready in %s", spec.get("preset") or spec.get("family"), source)
    return str(source)


def prepare_backbone(model: dict[str, Any], class_prompts: dict[str, list[str]], pretrained: dict[str, Any] | None = None) -> str:
    """The backbone id or directory: the pretraining pipeline's model with ``from_pretraining``; with
    ``build_random`` (demo, smoke), a random model over the class prompts' words built there first."""
    check_model_keys(model, "model", ("backbone", "build_random", "from_pretraining"))
    if model.get("from_pretraining"):
        path = (pretrained or {}).get("path")
        if not path:
            why = (pretrained or {}).get("reason") or "the pretraining pipeline has not run yet"
            raise TrainingConfigError(f"model.from_pretraining is true but there is no pretrained model ({why}); run `kedro run --pipeline=pretraining` first, or set from_pretraining: false.")
        logger.info("Fine-tuning from the pretrained model in %s", path)
        return str(path)
    return backbone_from_block(model, [text for texts in class_prompts.values() for text in texts], "model")


def train_model(
    image_cache: StoredArrays,
    class_names: list[str],
    class_prompts: dict[str, list[str]],
    checkpoints: Path,
    backbone_source: str,
    training: dict[str, Any],
    seeds: list[int],
    model_name: str = "model",
) -> tuple[TrainedModel, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train once per seed (training/seeds.py): the deployed seed's model, history, test predictions and
    run info, then every seed's test predictions, history, and zero-shot / fine-tuned / WiSE-FT predictions
    on test and the evaluation sets."""
    config = TrainConfig.from_params(training, where=f"{model_name}.training")
    seed_list = parse_seeds(seeds)
    cache = ImageCache(image_cache)
    # Per-epoch metrics to this model's MLflow run when har_kedro.hooks.TrackingHook opened one (else None).
    epoch_logger = active_epoch_logger(model_name)

    def train_one(seed: int) -> TrainingOutputs:
        on_epoch_end = epoch_logger.for_seed(seed) if epoch_logger is not None and len(seed_list) > 1 else epoch_logger
        return run_training(model_name, cache, class_names, class_prompts, backbone_source, config, seed, checkpoints / f"seed_{seed}", on_epoch_end)

    runs = train_seeds(seed_list, train_one)
    chosen = runs.selected
    return chosen.trained_model, chosen.history, chosen.test_predictions, chosen.run_info, runs.seed_predictions, runs.seed_histories, runs.evaluation_predictions
