"""A pipeline whose stored inputs were never written stops before its first node and names what writes them."""

from __future__ import annotations

import mlflow
import pytest

from har_kedro.hooks import MissingInputsError
from tests.conftest import tracked


def test_training_before_the_data_pipelines_names_them(run_pipeline, project) -> None:
    with tracked(), pytest.raises(MissingInputsError) as error:  # tracked: no MLflow run may be left open
        run_pipeline("train_siglip", env="demo")
    message = str(error.value)
    assert message.startswith("class_names, class_prompts, image_cache have never been written in this environment (demo)")
    assert "`kedro run --env=demo --pipelines=ingestion,preprocessing` first" in message
    assert "`kedro run --env=demo --pipelines=ingestion,preprocessing,train_siglip`" in message
    assert not (project / "data" / "demo" / "06_models").exists()  # stopped before prepare_backbone built anything
    # ... and before an MLflow run was opened: none is left active for the next session in this process.
    assert mlflow.active_run() is None


def test_the_data_pipelines_themselves_are_not_stopped(run_pipeline, project) -> None:
    run_pipeline("ingestion", env="demo", runtime_params={"ingestion": {"source": {"demo": {"images_per_class": 4}}}})
    with pytest.raises(MissingInputsError, match=r"^class_names, class_prompts, image_cache have never been written .*--pipelines=preprocessing` first"):
        run_pipeline("train_clip", env="demo")
