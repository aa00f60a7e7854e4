"""Project pipelines: the data half, pretraining, one training and one inference pipeline per model, reporting."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from har_kedro.pipelines import inference, ingestion, preprocessing, pretraining, reporting, training


def register_pipelines() -> dict[str, Pipeline]:
    pipelines: dict[str, Pipeline] = {
        "ingestion": ingestion.create_pipeline(),
        "preprocessing": preprocessing.create_pipeline(),
        "pretraining": pretraining.create_pipeline(),
    }
    for model in training.MODELS:
        pipelines[f"train_{model}"] = training.create_pipeline(model=model)
    pipelines["reporting"] = reporting.create_pipeline()
    for model in training.MODELS:
        pipelines[f"inference_{model}"] = inference.create_pipeline(model=model)
    pipelines["inference"] = sum((pipelines[f"inference_{m}"] for m in training.MODELS), Pipeline([]))
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
