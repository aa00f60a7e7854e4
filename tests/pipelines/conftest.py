"""A throw-away copy of the project (configuration only) for real Kedro sessions.

Sessions run in a temporary directory so tests never write into the repository's data/,
and each test starts from an empty catalog.
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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # Kedro checks it exists; the package itself is the installed one
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


@pytest.fixture
def run_pipeline(project: Path) -> Callable[..., KedroContext]:
    """Run a registered pipeline in a fresh session; returns the session's context."""

    def run(pipeline: str, env: str | None = "demo", **kwargs: object):
        with KedroSession.create(project_path=project, env=env) as session:
            session.run(pipeline_names=[pipeline], **kwargs)
            return session.load_context()

    return run
