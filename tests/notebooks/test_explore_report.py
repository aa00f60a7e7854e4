"""notebooks/explore_report.ipynb runs top to bottom (nbclient, a real kernel) on a finished demo run."""

from __future__ import annotations

import copy
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
def test_notebook_says_what_to_run_without_a_report_then_runs_on_the_latest(reported_project, tmp_path, monkeypatch):
    """One kernel (starting one and importing the project costs seconds): first in a project with no
    report, where the set-up cell must stop with the command to run; then, pointed at the trained demo
    project through HAR_KEDRO_PROJECT, every cell must run."""
    empty = make_project(tmp_path / "project")
    # The kernel inherits this environment; without HAR_KEDRO_PROJECT the project is found upwards
    # from the kernel's working directory.
    monkeypatch.setenv("KEDRO_ENV", reported_project.env)
    monkeypatch.delenv("HAR_KEDRO_PROJECT", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    setup = next(cell for cell in notebook.cells if cell.cell_type == "code")
    # execute_cell stores each cell at its index in the client's notebook: the two probe cells live in a
    # notebook of their own, then the client is handed the real one.
    pointer = f"import os\nos.environ['HAR_KEDRO_PROJECT'] = {str(reported_project.root)!r}"
    probe = nbformat.v4.new_notebook(cells=[copy.deepcopy(setup), nbformat.v4.new_code_cell(pointer)])
    client = NotebookClient(probe, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(empty)}})
    with client.setup_kernel():
        with pytest.raises(CellExecutionError) as failure:
            client.execute_cell(probe.cells[0], 0)
        assert failure.value.ename == "FileNotFoundError"
        assert f"No report in {empty}" in failure.value.evalue and "run `kedro run --env=demo`" in failure.value.evalue, failure.value.evalue
        client.execute_cell(probe.cells[1], 1)

        client.nb = notebook
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    printed = _printed(notebook)
    assert f"Kedro project {reported_project.root}, env 'demo'" in printed, printed[:3000]
    assert f"Models in the report: {', '.join(sorted(MODELS))}" in printed, printed[-3000:]
    figures = [o for cell in notebook.cells for o in cell.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "the notebook displayed no plotly figure"
