"""Throw-away copies of the project (configuration only) for real Kedro sessions.

Sessions run in a temporary directory so tests never write into the repository's data/,
and each project starts from an empty catalog.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from kedro.framework.context import KedroContext
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

REPO = Path(__file__).resolve().parents[2]


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # Kedro checks it exists; the package itself is the installed one
    bootstrap_project(root)
    return root


def runner_for(project: Path) -> Callable[..., KedroContext]:
    """Run registered pipelines (one name or several) in a fresh session; returns the session's context."""

    def run(pipeline: str | list[str], env: str | None = "demo", **kwargs: object) -> KedroContext:
        runtime_params = kwargs.pop("runtime_params", None)
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session:
            session.run(pipeline_names=[pipeline] if isinstance(pipeline, str) else list(pipeline), **kwargs)
            return session.load_context()

    return run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def run_pipeline(project: Path) -> Callable[..., KedroContext]:
    return runner_for(project)
