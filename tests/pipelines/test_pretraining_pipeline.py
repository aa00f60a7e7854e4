"""The pretraining pipeline in real Kedro sessions: the demo's (in the shared project), and the base default (no corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from har_kedro.config.errors import TrainingConfigError
from har_kedro.config.models import PRETRAINING_TARGETS
from har_kedro.models.backbones import load_backbone
from har_kedro.pipelines.training.nodes import prepare_backbone
from tests.conftest import ReportedProject
from tests.pipelines.conftest import runner_for

pytestmark = pytest.mark.slow


def test_the_demo_pretrains_both_targets_and_the_models_fine_tune_from_them(reported_project: ReportedProject, monkeypatch):
    monkeypatch.chdir(reported_project.root)
    context = reported_project.context()
    catalog = context.catalog
    pairs, rejected = catalog.load("caption_pairs"), catalog.load("rejected_captions")
    per_class = context.params["pretraining"]["corpus"]["demo"]["images_per_class"]
    assert pairs["image_id"].nunique() == 15 * per_class and rejected.empty
    assert len(pairs) > pairs["image_id"].nunique()  # some images carry two captions
    for target in PRETRAINING_TARGETS:
        pointer, info = catalog.load(f"pretraining.{target}.backbone"), catalog.load(f"pretraining.{target}.run_info")
        history = catalog.load(f"pretraining.{target}.history")
        assert not Path(pointer["path"]).is_absolute() and Path(pointer["path"], "model.safetensors").is_file()
        assert load_backbone(pointer["path"]).family == target
        assert info["loss"] == ("contrastive" if target == "clip" else "sigmoid") and len(history) == info["epochs_run"] == 2
        assert info["train_images"] + info["val_images"] == 15 * per_class
    for model in ("clip", "aclip", "siglip"):  # the training pipelines took their family's pointer
        family = "siglip" if model == "siglip" else "clip"
        assert catalog.load(f"{model}.run_info")["backbone"] == catalog.load(f"pretraining.{family}.backbone")["path"]


def test_unchanged_inputs_reuse_the_pretrained_models(reported_project: ReportedProject, reported_copy: Path):
    context = runner_for(reported_copy)("pretraining", runtime_params=reported_project.runtime_params)
    for target in PRETRAINING_TARGETS:
        pointer = context.catalog.load(f"pretraining.{target}.backbone")
        assert pointer["reused"] and context.catalog.load(f"pretraining.{target}.run_info")["reused"]
        store = reported_copy / f"data/demo/06_models/pretraining/{target}/store"
        assert [p.name for p in store.iterdir()] == [pointer["key"]]  # one model, no scratch folder
        versions = reported_copy / f"data/demo/06_models/pretraining/{target}/backbone.json"
        assert len(list(versions.iterdir())) == 2  # a new version of the pointer per run


def test_without_a_corpus_nothing_is_pretrained_and_fine_tuning_from_it_is_refused(run_pipeline):
    context = run_pipeline("pretraining", env=None)  # base: pretraining.corpus is null
    for target in PRETRAINING_TARGETS:
        assert context.catalog.load(f"pretraining.{target}.backbone")["path"] is None
        assert context.catalog.load(f"pretraining.{target}.run_info")["skipped"].startswith("pretraining.corpus is null")
    # A model told to fine-tune from it is refused with the reason and the fix (the training node, fed that pointer).
    pointer = context.catalog.load("pretraining.clip.backbone")
    with pytest.raises(TrainingConfigError, match=r"model.from_pretraining is true but there is no pretrained model \(pretraining.corpus is null.*kedro run --pipeline=pretraining"):
        prepare_backbone({"backbone": "openai/clip-vit-base-patch16", "from_pretraining": True}, {}, pointer)


def test_a_corpus_without_val_images_is_refused_before_training(tmp_path):
    import numpy as np

    from har_kedro.datasets.array_store import StoredArrays
    from har_kedro.pipelines.pretraining.nodes import pretrain_backbone

    np.save(tmp_path / "val_labels.npy", np.zeros(0, dtype=np.int64))
    stored = StoredArrays(tmp_path, "f", {"splits": {"train": {"count": 3}, "val": {"count": 0}}}, ("val_labels",))
    training = {"method": "full", "loss": "contrastive", "device": "cpu"}
    with pytest.raises(TrainingConfigError, match=r"pretraining.cache.val_fraction leaves no val images.*set it above 0"):
        pretrain_backbone(stored, tmp_path, tmp_path, {"backbone": "x"}, training, 0, target="pretraining.clip")
