"""Experiment tracking: after the demo run the MLflow store (SQLite under the data root) holds a run per
``kedro run`` and a child run per model, with per-epoch and final metrics, artifacts and the dataset
versions written; a second run adds a second set; HAR_KEDRO_TRACKING=off logs nothing and changes nothing else."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from har_kedro.config.models import MODELS, PRETRAINING_TARGETS
from har_kedro.tracking import EpochMetricsLogger, final_metrics, flatten, mark_model_training, tracking_enabled
from har_kedro.tracking.mlflow_runs import EPOCH_METRICS
from tests.conftest import SHORT_RUN, ReportedProject, tracked
from tests.pipelines.conftest import runner_for


def _client(project: Path) -> MlflowClient:
    database = project / "data" / "demo" / "mlflow" / "mlflow.db"
    assert database.is_file(), f"no tracking database at {database}"
    return MlflowClient(f"sqlite:///{database}")


def _runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("har_kedro")
    assert experiment is not None, "no har_kedro experiment"
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _children(runs: list, model: str) -> list:
    return [run for run in runs if run.data.tags.get("har_kedro.model") == model]


def test_the_demo_run_is_tracked_with_a_child_run_per_model(reported_project: ReportedProject):
    client = _client(reported_project.root)
    runs = _runs(client)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.run_name for run in parents] == ["__default__"] and parents[0].info.status == "FINISHED"
    parent = parents[0]
    # MLflow's UI shows it as model training (runs table, charts), not as a GenAI experiment
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert "comparison_report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    context = reported_project.context()
    for target in PRETRAINING_TARGETS:  # a child run per pretraining target, its curve and its retrieval score
        (child,) = _children(runs, f"pretraining.{target}")
        info = context.catalog.load(f"pretraining.{target}.run_info")
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
        assert child.data.metrics["best_val_retrieval"] == pytest.approx(info["best_val_retrieval"])
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == list(range(1, info["epochs_run"] + 1))
        assert child.data.params["training.loss"] == info["loss"]
    for model in MODELS:
        (child,) = _children(runs, model)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
        info = context.catalog.load(f"{model}.run_info")
        histories = context.catalog.load(f"{model}.seed_histories")
        seeds = [s["seed"] for s in info["seed_runs"]]
        assert seeds == [0, 1] and sorted(histories["seed"].unique()) == seeds  # the demo's two seeds
        # per-epoch metrics of every seed under seed_<n>., step = epoch, the same numbers as the histories the catalog holds
        for seed in seeds:
            history = histories[histories["seed"] == seed]
            for key in ("train_loss", "val_accuracy", "lr", "images_per_second"):
                logged = client.get_metric_history(child.info.run_id, f"seed_{seed}.{key}")
                assert [m.step for m in logged] == history["epoch"].tolist() == list(range(1, SHORT_RUN[model]["training"]["epochs"] + 1))
                assert [m.value for m in logged] == pytest.approx(history[key].tolist(), rel=1e-6), key
        final = child.data.metrics
        assert final["test_top1_accuracy"] == pytest.approx(info["test_accuracy"])
        assert 0 <= final["test_macro_f1"] <= 1 and final["test_top1_accuracy"] <= final["test_top5_accuracy"] <= 1
        assert final["zero_shot_test_accuracy"] == pytest.approx(info["zero_shot"]["test_accuracy"])
        params = child.data.params
        assert params["training.method"] == info["method"] and params["training.epochs"] == str(SHORT_RUN[model]["training"]["epochs"])
        assert params["seeds"] == "[0, 1]" and params["backbone"] == info["backbone"]
        assert final["test_top1_mean"] == pytest.approx(np.mean([s["test_accuracy"] for s in info["seed_runs"]]))
        assert {"history.csv", "run_info.json"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
        # the versions it wrote lead back to the catalog, and to the command that reproduces a report from them
        written = json.loads(child.data.tags["kedro.output_versions"])
        assert set(written) == {f"{model}.{name}" for name in ("trained_model", "history", "test_predictions", "run_info", "seed_predictions", "seed_histories", "evaluation_predictions")}
        for name, version in written.items():
            assert (reported_project.root / context.catalog.get(name)._get_versioned_path(version)).exists(), (name, version)
        assert child.data.tags["kedro.reproduce_report"].startswith("kedro run --pipelines=reporting --load-versions=")
        assert f"{model}.run_info:{written[f'{model}.run_info']}" in child.data.tags["kedro.reproduce_report"]


def test_a_second_run_adds_runs_and_tracking_off_adds_none_and_changes_nothing_else(reported_project: ReportedProject, reported_copy: Path, monkeypatch):
    # clip's deployed seed alone: a shorter run, and the one whose history the shared project holds
    deployed = reported_project.context().catalog.load("clip.run_info")["seed"]
    short = {"clip": {"training": {"epochs": SHORT_RUN["clip"]["training"]["epochs"]}}, "seeds": [deployed]}
    with tracked():
        runner_for(reported_copy)("train_clip", runtime_params=short)
    client = _client(reported_copy)
    runs = _runs(client)
    assert len(_children(runs, "clip")) == 2
    # a second set: the new kedro run is a parent run of its own, holding the new clip run
    parents = {run.info.run_name: run for run in runs if "mlflow.parentRunId" not in run.data.tags}
    assert sorted(parents) == ["__default__", "train_clip"]
    (new,) = [run for run in _children(runs, "clip") if run.data.tags["mlflow.parentRunId"] == parents["train_clip"].info.run_id]
    assert new.info.status == "FINISHED" and new.data.metrics["test_top1_accuracy"] >= 0

    # Tracking off (as tests/conftest.py sets it for the suite): settings.py leaves kedro-mlflow's hooks out.
    from kedro.framework.project import settings

    assert "kedro_mlflow" in settings.DISABLE_HOOKS_FOR_PLUGINS
    before = len(_runs(client))
    context = runner_for(reported_copy)("train_clip", runtime_params=short)
    assert len(_runs(client)) == before
    tracked_history = reported_project.context().catalog.load("clip.history")
    untracked = context.catalog.load("clip.history")
    timing = ["seconds", "images_per_second", "peak_memory_mb"]
    assert untracked.drop(columns=timing).equals(tracked_history.drop(columns=timing))
    # ... and what settings.py computes from the variable, either way.
    import har_kedro.settings as project_settings

    for value, disabled in (("on", ()), ("off", ("kedro_mlflow", "kedro-mlflow"))):
        monkeypatch.setenv("HAR_KEDRO_TRACKING", value)
        assert importlib.reload(project_settings).DISABLE_HOOKS_FOR_PLUGINS == disabled


def test_settings_leave_mlflows_job_runner_off_unless_the_user_says(monkeypatch):
    """`kedro mlflow ui` inherits the environment settings.py sets: no GenAI job runner and its seven workers
    (tests/pipelines/test_mlflow_ui.py checks the server's processes); a user's own value wins."""
    import har_kedro.settings as project_settings

    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    importlib.reload(project_settings)
    assert os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    importlib.reload(project_settings)
    assert os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("on", True), ("off", False), ("0", False), ("False", False), (" no ", False)])
def test_tracking_is_on_unless_the_variable_says_off(value, enabled):
    assert tracking_enabled({} if value is None else {"HAR_KEDRO_TRACKING": value}) is enabled


def test_settings_are_flattened_with_dotted_names():
    assert flatten({"lr": 1e-4, "lora": {"rank": 16, "targets": ["q", "v"]}, "aclip": None, "augment": {}}, "training.") == {
        "training.lr": 1e-4, "training.lora.rank": 16, "training.lora.targets": "['q', 'v']", "training.aclip": None, "training.augment": "{}",
    }


def test_the_epoch_logger_survives_pickling_and_prefixes_other_stages(tmp_path):
    import pickle

    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    active = mlflow.active_run()
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("t"))
    logger = pickle.loads(pickle.dumps(EpochMetricsLogger(uri, run.info.run_id)))
    logger(1, {"stage": "linear_probe", "epoch": 1, "train_loss": 2.0, "val_accuracy": 0.25})
    logger(1, {"stage": "fine_tune", "epoch": 1, "train_loss": 1.5, "val_accuracy": 0.5})
    logger(2, {"stage": "fine_tune", "epoch": 2, "train_loss": 1.0, "val_accuracy": float("nan")})
    assert [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1.5, 1.0]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "linear_probe.train_loss")] == [2.0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1]  # NaN is not logged
    assert mlflow.active_run() is active  # it logs by run id and never starts or ends a run


def test_the_experiment_is_marked_as_model_training_unless_its_kind_was_chosen(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    fresh, chosen = client.create_experiment("fresh"), client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    for experiment in (fresh, chosen):
        mark_model_training(experiment, uri)
    assert client.get_experiment(fresh).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"


def test_final_metrics_are_the_reports_numbers_by_hand():
    """Labels a a b c, predicted a b b b: top-1 2/4; F1 a 2/3, b 1/2, c 0 -> macro 7/18; top-5 of 3 classes is 1."""
    import pandas as pd

    probabilities = [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4]]
    predictions = pd.DataFrame({"label_id": [0, 0, 1, 2], "pred_id": [0, 1, 1, 1]})
    predictions[["prob_a", "prob_b", "prob_c"]] = probabilities
    run_info = {
        "model": "clip", "family": "clip", "backbone": "b", "method": "full", "loss": "cross_entropy", "device": "cpu",
        "trainable_parameters": 10, "total_parameters": 40, "trainable_fraction": 0.25, "epochs_run": 2, "best_epoch": 2,
        "peak_memory_mb": 12.5, "mean_epoch_seconds": 3.0, "mean_images_per_second": 8.0, "zero_shot": None, "seed": 7,
    }
    metrics = final_metrics(predictions, pd.DataFrame({"seconds": [2.0, 4.0]}), run_info)
    assert metrics["test_top1_accuracy"] == 0.5 and metrics["test_top5_accuracy"] == 1.0
    assert metrics["test_macro_f1"] == pytest.approx(7 / 18)
    assert metrics["total_train_seconds"] == 6.0 and metrics["trainable_parameters"] == 10.0 and metrics["test_images"] == 4.0
    # whole-run numbers named like a per-epoch metric get run_, or they would add a step to that curve
    assert metrics["run_images_per_second"] == 8.0 and metrics["run_peak_memory_mb"] == 12.5
    assert not set(metrics) & set(EPOCH_METRICS)
    assert metrics["test_top1_ci_low"] <= 0.5 <= metrics["test_top1_ci_high"] and 0 <= metrics["test_ece"] <= 1
    assert not {"zero_shot_val_accuracy", "zero_shot_test_accuracy", "seed", "top1_accuracy"} & set(metrics)  # no baseline; seed is a parameter
