"""notebooks/explore_report.ipynb runs top to bottom (nbclient, a real kernel) on a finished demo run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from har_kedro.pipelines.training import MODELS
from tests.pipelines.conftest import make_project

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_report.ipynb"


def _printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the code cells wrote: streams, and the plain-text form of displayed values."""
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                parts.append(output["text"])
            elif output["output_type"] in {"execute_result", "display_data"}:
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"clear the outputs of code cells {dirty} before committing (Kernel > Restart & Clear Output)"


@pytest.mark.slow
def test_notebook_runs_on_the_latest_report(reported_project, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this environment: the notebook picks the project and env from it.
    monkeypatch.setenv("KEDRO_ENV", reported_project.env)
    monkeypatch.setenv("HAR_KEDRO_PROJECT", str(reported_project.root))
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(reported_project.root)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    printed = _printed(notebook)
    assert f"Models in the report: {', '.join(sorted(MODELS))}" in printed, printed[-3000:]
    figures = [o for cell in notebook.cells for o in cell.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "the notebook displayed no plotly figure"


@pytest.mark.slow
def test_notebook_without_a_report_says_what_to_run(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    monkeypatch.setenv("KEDRO_ENV", "demo")
    monkeypatch.delenv("HAR_KEDRO_PROJECT", raising=False)  # found upwards from the kernel's working directory
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(project)}})
    with pytest.raises(CellExecutionError) as failure:
        client.execute()
    assert failure.value.ename == "FileNotFoundError"
    assert "run `kedro run --env=demo`" in failure.value.evalue, failure.value.evalue
