"""The inference template, instantiated once per model under its own namespace.

``create_pipeline(model="clip")`` reads ``clip.trained_model`` (the latest version, or the one
named with ``--load-versions=clip.trained_model:<version>``) and writes ``clip.inference_*``,
``clip.onnx_model`` and ``clip.onnx_parity`` through the ``{model}.*`` dataset factories.
``params:inference`` and ``params:preprocessing`` (the decode size and filter) are shared and
stay un-namespaced. Consuming ``<model>.trained_model`` puts inference after training in the DAG.
Nodes are tagged ``predict`` and ``onnx`` so either half can run alone (``--tags=predict``).
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from har_kedro.pipelines.inference.nodes import (
    check_onnx_parity,
    export_onnx_model,
    predict_images,
)
from har_kedro.pipelines.training import MODELS

SHARED_PARAMETERS = {"params:inference", "params:preprocessing"}


def create_pipeline(model: str = "clip", **kwargs: object) -> Pipeline:
    if model not in MODELS:
        raise ValueError(f"unknown model '{model}'; the inference template knows {list(MODELS)}")
    predict = update_wrapper(partial(predict_images, model_name=model), predict_images)
    template = Pipeline(
        [
            Node(
                predict,
                ["trained_model", "params:inference", "params:preprocessing"],
                ["inference_predictions", "inference_predictions_csv", "inference_bad_files", "inference_info"],
                name="predict_images",
                tags=["predict"],
            ),
            Node(export_onnx_model, ["trained_model", "params:inference", "params:preprocessing"], "onnx_model", name="export_onnx", tags=["onnx"]),
            Node(
                check_onnx_parity,
                ["onnx_model", "trained_model", "params:inference", "params:preprocessing"],
                "onnx_parity",
                name="check_onnx_parity",
                tags=["onnx"],
            ),
        ],
        tags=["inference", f"inference_{model}"],
    )
    return Pipeline(template, namespace=model, parameters=SHARED_PARAMETERS)
