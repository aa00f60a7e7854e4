"""Fixtures shared across test folders.

``reported_project`` is the most expensive set-up of the suite (the whole ``__default__``
pipeline on the demo configuration), so it is built once per test session and shared by the
report acceptance test (tests/pipelines) and the notebook test (tests/notebooks).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from har_kedro.pipelines.training import MODELS
from tests.pipelines.conftest import make_project, runner_for

# As short as a run can be while still producing every artifact: a smaller generated image set
# (24 per class: train, val and test all hold every class), two epochs per model (so the
# learning curves have a line and not a point), and no A-CLIP step timing (a benchmark of
# 2 x 10 extra steps that costs more than the training itself here).
SHORT_RUN: dict = {
    "ingestion": {"source": {"demo": {"images_per_class": 24}}},
    **{model: {"training": {"epochs": 2}} for model in MODELS},
}
SHORT_RUN["aclip"]["training"]["aclip"] = {"measure_speedup": False}


@dataclass(frozen=True)
class ReportedProject:
    root: Path
    env: str
    run_seconds: float


@pytest.fixture(scope="session")
def reported_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportedProject]:
    """A throw-away demo project in which ``kedro run`` (``__default__``, short training) has finished."""
    root = make_project(tmp_path_factory.mktemp("reported") / "project")
    previous = Path.cwd()
    os.chdir(root)  # path parameters (demo images, tiny backbones, inference folder) are relative to it
    try:
        start = time.perf_counter()
        runner_for(root)("__default__", env="demo", runtime_params=SHORT_RUN)
        seconds = time.perf_counter() - start
    finally:
        os.chdir(previous)
    yield ReportedProject(root=root, env="demo", run_seconds=seconds)
