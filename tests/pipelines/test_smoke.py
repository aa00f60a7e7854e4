"""The real-size smoke configuration (conf/smoke) in a real Kedro session, on the real-photo sample.

ViT-B/16 CLIP with random weights, built from its published config, saved with save_pretrained and
loaded back through from_pretrained, trained with its real method (LoRA) for one optimizer step of four
224 px real photographs, with one photograph per class in val and in test and no zero-shot baseline
(evaluating at ViT-B size is what costs on a CPU). ``kedro run --env=smoke --pipeline=train_<model>`` does the same with two
steps for each model (docs/smoke.md); one model with one step keeps the suite's cost to minutes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.pipelines.conftest import make_project, runner_for
from tests.real_sample import ENV_VAR, real_sample_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def every_core() -> Iterator[None]:
    """Under pytest-xdist each worker runs torch on one thread (tests/conftest.py). This test's ViT-B
    passes are most of the suite's arithmetic and its longest item, so it takes every core while it runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("every_core")
def test_train_clip_at_real_shapes_on_real_photographs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(real_sample_dir()))  # what conf/smoke reads
    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    run = runner_for(root)
    run("ingestion", env="smoke", runtime_params={"ingestion": {"split": {"fractions": {"train": 0.95, "val": 0.025, "test": 0.025}}}})
    run("preprocessing", env="smoke")
    one_step = {"max_steps": 1, "batch_size": 4, "effective_batch_size": 4}
    context = run("train_clip", env="smoke", runtime_params={"clip": {"training": one_step}})

    built = root / "data" / "smoke" / "06_models" / "clip-vit-b-16"
    config = json.loads((built / "config.json").read_text())["vision_config"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["patch_size"], config["image_size"]) == (768, 12, 16, 224)
    info = context.catalog.load("clip.run_info")
    assert info["family"] == "clip" and info["method"] == "lora" and info["image_size"] == 224
    assert info["device"] == "cpu" and info["backbone"] == "data/smoke/06_models/clip-vit-b-16"
    assert 149_000_000 < info["total_parameters"] < 151_500_000  # CLIP ViT-B/16: 149.6 M, plus LoRA and the head
    assert 0 < info["trainable_parameters"] < 0.02 * info["total_parameters"]
    assert info["zero_shot"] is None and info["calibration"] is None and info["wise_ft"] is None  # conf/smoke turns these passes off
    assert [run["seed"] for run in info["seed_runs"]] == [0]  # conf/smoke: one seed
    history = context.catalog.load("clip.history")
    assert history["epoch"].tolist() == [1]
    assert round(float(history["images_per_second"].iloc[0] * history["seconds"].iloc[0])) == 4  # one step of 4 images
    predictions = context.catalog.load("clip.test_predictions")
    assert sorted(predictions["label"]) == sorted(context.catalog.load("class_names"))  # one photograph of each class
    assert predictions["image_id"].str.startswith("train/Image_").all()
    assert not list(root.rglob("*.jpg")), "photographs were copied into the project"
