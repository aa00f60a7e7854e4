"""Hooks that keep every run quiet and offline-clean, record the inputs' versions, and track experiments."""

from __future__ import annotations

import json
import os
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io.core import AbstractVersionedDataset
from kedro.pipeline import Node, Pipeline

from har_kedro.provenance import INPUT_VERSIONS_KEY, reproduce_command, resolve_input_versions
from har_kedro.tracking import final_metrics, flatten, mark_model_training, tracking_enabled
from har_kedro.tracking.mlflow_runs import MODEL_TAG


class OfflineHooks:
    """Keep libraries from reaching for the network during a run.

    Model weights and data are given as local paths or were cached before; a library that
    tries the Hub anyway only adds a long timeout and a misleading error. Users who *do*
    want downloads set ``HF_HUB_OFFLINE=0`` explicitly, which this hook respects.
    """

    @hook_impl
    def after_context_created(self, context: object) -> None:
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("DO_NOT_TRACK", "1")  # MLflow's telemetry is turned off in settings.py, before its import


class MissingInputsError(RuntimeError):
    """A pipeline's input has never been written in this environment; the message names the pipeline to run first."""


class MissingInputsHook:
    """Stop a run before its first node when a stored input it needs was never written, and say what writes it.

    ``kedro run --env=smoke --pipeline=train_siglip`` on a fresh clone would otherwise fail inside the
    catalog with "Did not find any versions for ..."; this names the pipelines to run first instead.
    Only versioned datasets are checked (optional report inputs are allowed to be missing). ``tryfirst``:
    the check comes before kedro-mlflow opens the run's MLflow run, which nothing would close if this
    hook raised afterwards (Kedro calls no error hook for a failure in ``before_pipeline_run``).
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        missing = _never_written(pipeline, catalog)
        if missing:
            raise MissingInputsError(_missing_inputs_message(missing, _producers(missing, catalog), run_params))


def _never_written(pipeline: Pipeline, catalog: Any) -> set[str]:
    """The pipeline's stored (versioned, not optional) inputs that have no saved version."""
    # Imported here, not at the top: settings.py imports this module on every kedro command, and the
    # datasets package (like the pipeline registry below) pulls in torch, seconds of start-up for nothing.
    from har_kedro.datasets.optional import OptionalDataset

    missing = set()
    for name in pipeline.inputs():
        dataset = None if name.startswith("params:") or name == "parameters" else catalog.get(name)
        if isinstance(dataset, AbstractVersionedDataset) and not isinstance(dataset, OptionalDataset) and not catalog.exists(name):
            missing.add(name)
    return missing


def _producers(missing: set[str], catalog: Any) -> list[str]:
    """The registered pipelines that write ``missing``, and those that write their own missing inputs, in registry order."""
    from har_kedro.pipeline_registry import register_pipelines

    registered = {name: p for name, p in register_pipelines().items() if name not in ("__default__", "inference")}
    needed, chosen = set(missing), set()
    while needed:
        name = needed.pop()
        for producer, pipeline in registered.items():
            if producer not in chosen and name in pipeline.all_outputs():
                chosen.add(producer)
                needed |= _never_written(pipeline, catalog)
    return [name for name in registered if name in chosen]


def _missing_inputs_message(missing: set[str], producers: list[str], run_params: dict[str, Any]) -> str:
    env = run_params.get("env")
    env_flag = f" --env={env}" if env else ""
    asked = ",".join(run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"])
    first = f"run `kedro run{env_flag} --pipelines={','.join(producers)}` first, or in one go " if producers else "no registered pipeline writes them; "
    return (
        f"{', '.join(sorted(missing))} {'has' if len(missing) == 1 else 'have'} never been written in this environment"
        f"{f' ({env})' if env else ''}: {first}`kedro run{env_flag} --pipelines={','.join([*producers, asked])}`."
    )


class InputVersionsHook:
    """Write into every ``run_info`` / ``report_info`` / ``inference_info`` output the versions of the inputs it came from.

    A result is only reproducible if one knows what it was computed from: with the recorded
    ``input_versions``, ``kedro run --load-versions=...`` recomputes it from exactly those
    inputs (docs/reporting.md). The versions are resolved in ``before_node_run``, after the
    runner loaded the inputs (so each is the version actually read, not a later one), and
    added in ``after_node_run``, before the runner saves the outputs.
    """

    def __init__(self, output_suffixes: tuple[str, ...] = ("run_info", "report_info", "inference_info")) -> None:
        self._suffixes = output_suffixes
        self._pending: dict[str, dict[str, str]] = {}

    def _recorded_outputs(self, node: Node) -> list[str]:
        return [name for name in node.outputs if name.rsplit(".", 1)[-1] in self._suffixes]

    @hook_impl
    def before_node_run(self, node: Node, catalog: Any) -> None:
        if self._recorded_outputs(node):
            self._pending[node.name] = resolve_input_versions(catalog, node.inputs)

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        versions = self._pending.pop(node.name, None)
        if versions is None:
            return
        for name in self._recorded_outputs(node):
            if isinstance(outputs.get(name), dict):
                outputs[name] = {**outputs[name], INPUT_VERSIONS_KEY: versions}

    @hook_impl
    def on_node_error(self, node: Node) -> None:
        self._pending.pop(node.name, None)


class TrackingHook:
    """A child MLflow run per trained model (and per pretraining target) inside kedro-mlflow's run of the ``kedro run`` (docs/tracking.md).

    Opened before a ``<model>.train_model`` node and closed after it, both ``trylast``: kedro-mlflow
    re-activates the parent run before every node (and logs the node's parameters there), so the child
    must be pushed after that and popped before the next node. Closed with the final
    test metrics, the history and ``run_info`` as artifacts, and the dataset versions the node writes.
    The node itself feeds the per-epoch metrics (:func:`har_kedro.tracking.active_epoch_logger`).
    The report of a ``reporting`` run is logged to the parent run. Nothing is logged without an active
    MLflow run (kedro-mlflow off, ``HAR_KEDRO_TRACKING=off``, or a pipeline it does not track).
    """

    def __init__(self) -> None:
        self._open: dict[str, str] = {}  # node name -> the child run this hook opened for it
        self._outer: str | None = None  # the run active before the pipeline started (usually none)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self) -> None:
        self._outer = run.info.run_id if (run := mlflow.active_run()) is not None else None

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        self._unwind("FINISHED")

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._unwind("FAILED")

    def _unwind(self, status: str) -> None:
        """Leave MLflow's active-run stack as the pipeline found it. kedro-mlflow 2.0 re-starts its run
        before every node and MLflow 3 stacks each re-start, but it ends the run once: without this, the
        next session in the process (a notebook, a test) would log into the finished run."""
        while (run := mlflow.active_run()) is not None and run.info.run_id != self._outer:
            mlflow.end_run(status=status)
        self._open.clear()

    @staticmethod
    def _model(node: Node) -> str | None:
        """The model (``clip``) or pretraining target (``pretraining.clip``) whose run this node is, if any."""
        trains = node.name.endswith((".train_model", ".pretrain_backbone"))
        return node.namespace if trains and node.namespace else None

    @hook_impl(trylast=True)
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        model = self._model(node)
        if model is None or not tracking_enabled() or (parent := mlflow.active_run()) is None:
            return
        mark_model_training(parent.info.experiment_id)
        self._open[node.name] = mlflow.start_run(run_name=model, nested=True, tags={MODEL_TAG: model}).info.run_id
        params = flatten({"seeds": inputs.get("params:seeds"), "backbone": inputs.get(f"{model}.backbone_source")})  # seeds as "[0, 1]"
        params |= flatten(inputs.get(f"params:{model}.training") or {}, "training.")
        mlflow.log_params({key: value for key, value in params.items() if value is not None})

    @hook_impl(trylast=True)
    def after_node_run(self, node: Node, catalog: Any, outputs: dict[str, Any]) -> None:
        if "comparison_report" in outputs and mlflow.active_run() is not None and tracking_enabled():
            mlflow.log_text(outputs["comparison_report"], "comparison_report.html")
        run = mlflow.active_run()
        model = self._model(node)
        if model is None or run is None or self._open.pop(node.name, None) != run.info.run_id:
            return
        history, run_info = outputs[f"{model}.history"], outputs[f"{model}.run_info"]
        if f"{model}.test_predictions" in outputs:
            mlflow.log_metrics(final_metrics(outputs[f"{model}.test_predictions"], history, run_info, outputs.get(f"{model}.seed_predictions")))
        else:  # a pretraining run: its val image-to-caption retrieval and cost
            keys = ("best_val_retrieval", "val_retrieval_before", "total_train_seconds", "epochs_run", "truncated_captions")
            mlflow.log_metrics({key: float(run_info[key]) for key in keys if isinstance(run_info.get(key), int | float)})
        mlflow.log_text(history.to_csv(index=False), "history.csv")
        mlflow.log_dict(run_info, "run_info.json")
        datasets = {name: catalog.get(name) for name in node.outputs}
        written = {name: dataset.resolve_save_version() for name, dataset in datasets.items() if isinstance(dataset, AbstractVersionedDataset)}
        read = run_info.get(INPUT_VERSIONS_KEY, {})
        mlflow.set_tags({
            "kedro.output_versions": json.dumps(written, sort_keys=True),
            "kedro.input_versions": json.dumps(read, sort_keys=True),
            "kedro.reproduce_report": reproduce_command({**read, **written}),
        })
        mlflow.end_run()

    @hook_impl
    def on_node_error(self, node: Node) -> None:
        run = mlflow.active_run()
        if run is not None and self._open.pop(node.name, None) == run.info.run_id:
            mlflow.end_run(status="FAILED")
