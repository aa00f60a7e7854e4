"""Fixtures shared across test folders.

``reported_project`` is the one trained demo project of the suite: the whole ``__default__``
pipeline (demo generation, ingestion, preprocessing, the three trainings, reporting, inference
with ONNX export) on the demo configuration, shortened by ``SHORT_RUN``. It is built once per
test session (once per xdist worker; every test that uses it is put in one xdist group, so in
practice once) and is read by the data, training, inference, reporting, viz and notebook tests.
It is never written to after it is built: a test that adds versions or breaks inputs takes
``reported_copy``, a private copy of it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kedro.framework.context import KedroContext
from kedro.framework.session import KedroSession

# Experiment tracking is off in the test processes (and the servers and kernels they start) unless a
# test asks for it with tracked(): setting up MLflow's store costs seconds per project, and what it
# logs is tested where it is the subject (tests/pipelines/test_tracking.py, test_mlflow_ui.py, on the
# shared demo run, which is tracked). That tracking changes no catalog output is tested there too.
os.environ.setdefault("HAR_KEDRO_TRACKING", "off")

from har_kedro.config.models import MODELS, PRETRAINING_TARGETS  # not the pipelines: pytest-xdist's controller loads this file too
from tests.pipelines.conftest import make_project, runner_for
from tests.pipelines.viz_server import VizServer, kedro_viz

# As short as a run can be while still producing every artifact: a smaller generated image set
# (24 per class: train, val and test all hold every class), two epochs per model (so the
# learning curves have a line and not a point), and A-CLIP's step timing on one repeat of a
# 16-image batch (measured and recorded like a real run, at a fraction of the default's cost).
SHORT_RUN: dict = {
    "ingestion": {"source": {"demo": {"images_per_class": 24}}, "evaluation_sets": {"shifted": {"demo": {"images_per_class": 4}}}},
    **{model: {"training": {"epochs": 2}} for model in MODELS},
    # A small captions corpus and two pretraining epochs: the models fine-tune from what pretraining saved,
    # through the same pointer and folder as the demo's (what the miniatures learn is tested elsewhere).
    "pretraining": {
        "corpus": {"demo": {"images_per_class": 8}},
        **{target: {"training": {"epochs": 2}} for target in PRETRAINING_TARGETS},
    },
}
SHORT_RUN["aclip"]["training"]["aclip"] = {"speedup_repeats": 1, "speedup_batch_size": 16}
# WiSE-FT's two ends and its middle (the demo's grid has 11 points; each is a val and a test pass).
for _model in MODELS:
    SHORT_RUN[_model]["training"]["wise_ft"] = {"alphas": [0.0, 0.5, 1.0]}
# ONNX export is the slowest node of the run (torch.export, seconds per model): the shared project exports
# clip's, which tests/pipelines/test_inference_pipeline.py checks; aclip is the same CLIP graph, and SigLIP's
# export is checked against onnxruntime in tests/inference/test_onnx_export.py.
ONNX_ELSEWHERE = {f"{model}.{node}" for model in MODELS if model != "clip" for node in ("export_onnx", "check_onnx_parity")}

# The xdist group of every test that uses the shared trained project: one worker builds it once.
REPORTED_GROUP = "reported_project"


@contextmanager
def tracked() -> Iterator[None]:
    """Sessions created inside log to MLflow, as a user's ``kedro run`` does (tracking on is the default)."""
    from kedro.framework.project import configure_project, settings

    os.environ["HAR_KEDRO_TRACKING"] = "on"
    settings.DISABLE_HOOKS_FOR_PLUGINS = ()  # what settings.py computes with tracking on
    try:
        yield
    finally:
        os.environ["HAR_KEDRO_TRACKING"] = "off"
        # Kedro's settings read settings.py again (tracking off, as imported); assigning the old value
        # back would leave Kedro's lazy settings object without the key.
        configure_project("har_kedro")


@dataclass(frozen=True)
class ReportedProject:
    root: Path
    env: str
    run_seconds: float
    runtime_params: dict

    def context(self) -> KedroContext:
        """A fresh session's context with the parameters the run used (``SHORT_RUN`` included)."""
        with KedroSession.create(project_path=self.root, env=self.env, runtime_params=self.runtime_params) as session:
            return session.load_context()


@pytest.fixture(scope="session")
def reported_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportedProject]:
    """A throw-away demo project in which ``kedro run`` (``__default__``, short training) has finished.

    Read-only for the tests: use ``reported_copy`` to run more pipelines or save new versions.
    """
    root = make_project(tmp_path_factory.mktemp("reported") / "project")
    previous = Path.cwd()
    os.chdir(root)  # path parameters (demo images, tiny backbones, inference folder) are relative to it
    try:
        start = time.perf_counter()
        from har_kedro.pipeline_registry import register_pipelines  # here: the xdist controller never needs it

        nodes = [node.name for node in register_pipelines()["__default__"].nodes if node.name not in ONNX_ELSEWHERE]
        with tracked():  # the demo run as users get it: logged to MLflow (tests/pipelines/test_tracking.py reads it)
            runner_for(root)("__default__", env="demo", runtime_params=SHORT_RUN, node_names=nodes)
        seconds = time.perf_counter() - start
    finally:
        os.chdir(previous)
    yield ReportedProject(root=root, env="demo", run_seconds=seconds, runtime_params=SHORT_RUN)


@pytest.fixture(scope="session")
def reported_viz(reported_project: ReportedProject) -> Iterator[VizServer]:
    """One ``kedro viz run`` (127.0.0.1, offline) over the trained demo project, shared by the viz tests
    (graph, layers, DAG in Chromium) and the report-preview test; stopped at the end of the session."""
    with kedro_viz(reported_project.root, env=reported_project.env) as server:
        yield server


@pytest.fixture
def reported_copy(reported_project: ReportedProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained demo project (working directory inside it), free to be changed."""
    root = tmp_path / "project"
    shutil.copytree(reported_project.root, root, symlinks=True, ignore=shutil.ignore_patterns("kedro_viz_*.log", "build"))
    monkeypatch.chdir(root)
    return root


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``) all tests of the shared project run on one worker."""
    for item in items:
        if {"reported_project", "reported_copy"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(REPORTED_GROUP))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): tests that pytest-xdist runs on one worker (--dist loadgroup)")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Several workers share the cores: one intra-op thread each, or they oversubscribe them.
        import torch

        torch.set_num_threads(1)
