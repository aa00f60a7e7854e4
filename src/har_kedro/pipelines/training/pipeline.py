"""The training template, instantiated once per model under its own namespace.

``create_pipeline(model="siglip")`` reads ``params:siglip.model`` / ``params:siglip.training``
and writes ``siglip.trained_model``, ``siglip.history`` … whose catalog entries come from
the ``{model}.*`` dataset factories. Shared inputs (image cache, class names, prompts, seeds)
stay un-namespaced; ``pretrained_backbone`` is the model's pretraining target's output
(``pretraining.<target>.backbone``, config/models.py), used when ``model.from_pretraining`` is true.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from har_kedro.config.models import MODELS, PRETRAINED_FOR
from har_kedro.pipelines.training.nodes import prepare_backbone, train_model


def create_pipeline(model: str = "clip", **kwargs: object) -> Pipeline:
    if model not in MODELS:
        raise ValueError(f"unknown model '{model}'; the training template knows {list(MODELS)}")
    train = update_wrapper(partial(train_model, model_name=model), train_model)
    template = Pipeline(
        [
            Node(prepare_backbone, ["params:model", "class_prompts", "pretrained_backbone"], "backbone_source", name="prepare_backbone"),
            Node(
                train,
                ["image_cache", "class_names", "class_prompts", "checkpoints", "backbone_source", "params:training", "params:seeds"],
                ["trained_model", "history", "test_predictions", "run_info", "seed_predictions", "seed_histories", "evaluation_predictions"],
                name="train_model",
            ),
        ],
        tags=["training", f"train_{model}"],
    )
    return Pipeline(
        template,
        namespace=model,
        inputs={"image_cache": "image_cache", "class_names": "class_names", "class_prompts": "class_prompts", "pretrained_backbone": f"pretraining.{PRETRAINED_FOR[model]}.backbone"},
        parameters={"params:seeds"},
    )
