"""The training template. Placeholder until the training-engine issue fills it.

``create_pipeline(model=...)`` is what ``pipeline_registry`` calls for each model, so the
registry, CLI names (``train_clip`` …) and namespaces are already in their final shape.
"""

from kedro.pipeline import Pipeline

MODELS: tuple[str, ...] = ("clip", "aclip", "siglip")


def create_pipeline(model: str = "clip", **kwargs: object) -> Pipeline:
    if model not in MODELS:
        raise ValueError(f"unknown model '{model}'; the training template knows {list(MODELS)}")
    return Pipeline([])
