"""The reporting pipeline in real Kedro sessions on the demo configuration.

Reproduction: a report is recomputed byte for byte from the input versions its report_info
recorded, after newer training runs changed what "latest" means. Also: a model that was never
trained is left out with a note, and unusable inputs stop the run with a clear message.

Each test works in its own copy of the suite's shared trained demo project (``reported_copy``:
``__default__`` with ``SHORT_RUN`` has run, so every model is trained and a report exists).
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.io.core import DatasetError

from har_kedro.reporting.errors import ReportingInputError
from tests.conftest import SHORT_RUN
from tests.pipelines.conftest import runner_for

pytestmark = pytest.mark.slow

DATA = Path("data/demo")
REPORT_FILES = (
    "08_reporting/model_metrics.parquet",
    "08_reporting/per_class_metrics.parquet",
    "08_reporting/pairwise_comparisons.parquet",
    "08_reporting/model_metrics.md",
    "08_reporting/report_summary.json",
    "08_reporting/confusion_matrices.json",
    "08_reporting/learning_curves.json",
    "08_reporting/accuracy_vs_parameters.json",
    "08_reporting/accuracy_vs_epoch_time.json",
    "08_reporting/reliability.json",
    "08_reporting/comparison_report.html",
)


def _version_names(root: Path, relative: str) -> list[str]:
    return sorted(p.name for p in (root / DATA / relative).iterdir())


def _newest(root: Path, relative: str) -> Path:
    folder = root / DATA / relative
    return folder / _version_names(root, relative)[-1] / folder.name


def _report_bytes(root: Path) -> dict[str, bytes]:
    return {name: _newest(root, name).read_bytes() for name in REPORT_FILES}


def _epochs(model: str, n: int) -> dict:
    return {model: {"training": {"epochs": n}}, "seeds": [0]}  # one seed: a shorter run


def _report_and_info(root: Path) -> dict[str, bytes]:
    return {**_report_bytes(root), "08_reporting/report_info.json": _newest(root, "08_reporting/report_info.json").read_bytes()}


# What a model's training writes and reporting reads (the OptionalDataset entries of the catalog).
TRAINING_OUTPUTS = (
    "08_reporting/{model}/run_info.json", "07_model_output/{model}/history.csv", "07_model_output/{model}/test_predictions.parquet",
    "07_model_output/{model}/seed_predictions.parquet", "07_model_output/{model}/evaluation_predictions.parquet",
)


@pytest.fixture
def clip_only_report(reported_copy: Path) -> dict[str, bytes]:
    """Reporting in a project where only clip was ever trained: the other models' training outputs are not there."""
    for model in ("aclip", "siglip"):
        for path in TRAINING_OUTPUTS:
            shutil.rmtree(reported_copy / DATA / path.format(model=model))
    runner_for(reported_copy)("reporting")
    return _report_and_info(reported_copy)


def test_only_clip_trained_the_report_covers_clip_and_notes_the_others(clip_only_report):
    info = json.loads(clip_only_report["08_reporting/report_info.json"])
    assert info["models_included"] == ["clip"]
    assert set(info["models_left_out"]) == {"aclip", "siglip"}
    assert "kedro run --pipeline=train_siglip" in info["models_left_out"]["siglip"]
    assert set(info["input_versions"]) == {"class_names", "image_cache", "clip.run_info", "clip.history", "clip.test_predictions", "clip.seed_predictions", "clip.evaluation_predictions"}

    metrics = pd.read_parquet(io.BytesIO(clip_only_report["08_reporting/model_metrics.parquet"]))
    assert metrics["model"].tolist() == ["clip"]
    markdown = clip_only_report["08_reporting/model_metrics.md"].decode("utf-8")
    assert "- **aclip**: not trained" in markdown and "- **siglip**: not trained" in markdown

    page = clip_only_report["08_reporting/comparison_report.html"].decode("utf-8")
    assert "<strong>aclip</strong>: not trained" in page and "<strong>siglip</strong>: not trained" in page
    assert 'id="model-clip"' in page and 'id="model-siglip"' not in page
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page
    assert len(page.encode()) < 10_000_000


def test_a_report_is_reproduced_byte_for_byte_from_its_recorded_input_versions(reported_copy: Path):
    root = reported_copy
    run = runner_for(root)
    # The report that __default__ wrote once every model was trained (clip for SHORT_RUN's epochs).
    first = _report_bytes(root)
    report_info = json.loads(_newest(root, "08_reporting/report_info.json").read_text())
    recorded = report_info["input_versions"]
    assert report_info["models_included"] == ["clip", "aclip", "siglip"] and report_info["models_left_out"] == {}
    clip_epochs = SHORT_RUN["clip"]["training"]["epochs"]

    # What was recorded is what is on disk: the training inputs of a run_info, and every input of the report.
    siglip_info = json.loads(_newest(root, "08_reporting/siglip/run_info.json").read_text())
    assert siglip_info["input_versions"] == {
        name: _version_names(root, path)[-1]
        for name, path in {
            "image_cache": "05_model_input/image_cache.json",
            "class_names": "05_model_input/class_names.json",
            "class_prompts": "05_model_input/class_prompts.json",
        }.items()
    }
    expected_inputs = {"class_names": "05_model_input/class_names.json", "image_cache": "05_model_input/image_cache.json"}
    for model in ("clip", "aclip", "siglip"):
        expected_inputs |= {
            f"{model}.run_info": f"08_reporting/{model}/run_info.json",
            f"{model}.history": f"07_model_output/{model}/history.csv",
            f"{model}.test_predictions": f"07_model_output/{model}/test_predictions.parquet",
            f"{model}.seed_predictions": f"07_model_output/{model}/seed_predictions.parquet",
            f"{model}.evaluation_predictions": f"07_model_output/{model}/evaluation_predictions.parquet",
        }
    assert recorded == {name: _version_names(root, path)[-1] for name, path in expected_inputs.items()}

    # Train clip again with another setting: the latest report is a different one.
    run("train_clip", runtime_params=_epochs("clip", clip_epochs - 1))
    run("reporting")
    second = _report_bytes(root)
    assert second["08_reporting/model_metrics.parquet"] != first["08_reporting/model_metrics.parquet"]
    assert pd.read_parquet(_newest(root, "08_reporting/model_metrics.parquet")).set_index("model").loc["clip", "epochs_run"] == clip_epochs - 1

    # The documented way back: --load-versions with the versions report_info recorded.
    versions_before = len(_version_names(root, "08_reporting/model_metrics.parquet"))
    run("reporting", load_versions=recorded)
    third = _report_bytes(root)
    assert len(_version_names(root, "08_reporting/model_metrics.parquet")) == versions_before + 1  # a new version
    assert pd.read_parquet(_newest(root, "08_reporting/model_metrics.parquet")).set_index("model").loc["clip", "epochs_run"] == clip_epochs
    for name in REPORT_FILES:
        assert third[name] == first[name], f"{name} differs from the first report"
    assert json.loads(third["08_reporting/learning_curves.json"])["data"] == json.loads(first["08_reporting/learning_curves.json"])["data"]


def _save(root: Path, name: str, data: object) -> None:
    with KedroSession.create(project_path=root, env="demo") as session:
        session.load_context().catalog.save(name, data)


def test_unusable_inputs_stop_reporting_with_a_clear_message(reported_copy: Path):
    broken_project = reported_copy  # a private copy: saving bad versions disturbs no other test
    run = runner_for(broken_project)
    good_history = _version_names(broken_project, "07_model_output/clip/history.csv")[-1]
    predictions = pd.read_parquet(_newest(broken_project, "07_model_output/clip/test_predictions.parquet"))
    history = pd.read_csv(_newest(broken_project, "07_model_output/clip/history.csv"))

    _save(broken_project, "clip.history", history.drop(columns=["val_loss"]))
    with pytest.raises(ReportingInputError, match=r"clip.history lacks the columns \['val_loss'\]"):
        run("reporting")

    _save(broken_project, "clip.test_predictions", predictions.rename(columns={"prob_sitting": "prob_standing"}))
    with pytest.raises(ReportingInputError, match=r"clip.test_predictions has probability columns for \['standing'\].*no probability column for \['sitting'\]"):
        run("reporting", load_versions={"clip.history": good_history})

    with pytest.raises(DatasetError, match=r"clip.run_info: version '2000-01-01T00.00.00.000Z' of .* does not exist \(versions on disk: \["):
        run("reporting", load_versions={"clip.run_info": "2000-01-01T00.00.00.000Z"})
