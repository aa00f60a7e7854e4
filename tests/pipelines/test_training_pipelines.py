"""train_clip, train_siglip and train_aclip in real Kedro sessions on the demo configuration.

What each training wrote is checked on the suite's shared trained demo project
(``reported_project``: ``__default__`` with ``SHORT_RUN``). Learning is checked on a set the tiny
models learn in a few epochs (the demo set needs 15-25 epochs of 1,200 images per model to pass
3x chance, minutes on a CPU; docs/training.md has those numbers). Reproducibility trains clip once
more in a copy of the shared project.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.image_cache import ImageCache
from har_kedro.models.factory import rebuild_classifier
from har_kedro.pipelines.training import MODELS
from har_kedro.training.runner import HISTORY_COLUMNS
from tests.conftest import SHORT_RUN, ReportedProject
from tests.helpers import encode, write_kaggle
from tests.pipelines.conftest import make_project, runner_for

pytestmark = pytest.mark.slow
CHANCE = 1 / 15


def _versions(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("model", MODELS)
def test_demo_training_records_predicts_and_versions_everything(reported_project: ReportedProject, model, monkeypatch):
    monkeypatch.chdir(reported_project.root)  # the trained model names its backbone folder relative to the project
    context = reported_project.context()
    catalog, params = context.catalog, context.params[model]["training"]

    info = catalog.load(f"{model}.run_info")
    history = catalog.load(f"{model}.history")
    predictions = catalog.load(f"{model}.test_predictions")
    trained = catalog.load(f"{model}.trained_model")
    cache = ImageCache(catalog.load("image_cache"))

    assert info["method"] == params["method"] and info["loss"] == params["loss"]
    assert 0 < info["trainable_parameters"] <= info["total_parameters"]
    assert set(info["zero_shot"]) == {"val_accuracy", "test_accuracy", "shifted_accuracy"}  # shifted: the demo's evaluation set
    assert set(info["evaluation_sets"]) == {"shifted"} and 0 <= info["evaluation_sets"]["shifted"] <= 1
    assert info["backbone"].startswith(f"data/demo/06_models/pretraining/{'siglip' if model == 'siglip' else 'clip'}/store/")
    assert info["device"] == "cpu" and info["library_versions"]["torch"] == torch.__version__
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == params["epochs"]
    assert history["val_accuracy"].max() == pytest.approx(info["best_val_accuracy"])
    assert len(predictions) == len(cache.image_ids("test"))
    probs = predictions[[f"prob_{c}" for c in cache.class_names]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert info["test_accuracy"] == pytest.approx(predictions["correct"].mean())

    # The saved weights rebuild the same classifier: same test predictions.
    model_again = rebuild_classifier(trained)
    with torch.no_grad():
        classes, scale, bias = model_again.class_side()
        images = torch.from_numpy(np.array(cache.images("test")))
        logits = (model_again.embed(images) @ classes.T) * scale
    assert (logits.argmax(1).numpy() == predictions["pred_id"].to_numpy()).mean() == 1.0

    if model == "aclip":
        aclip = info["aclip"]
        assert aclip["tokens_kept_fraction"] == 0.5 and aclip["patch_tokens_per_image"] == 64
        assert aclip["views_trained"] == params["epochs"] * len(cache.image_ids("train"))
        # Measured and recorded; how much faster the masked step is belongs to benchmarks/aclip_step.py.
        assert aclip["masked_step_speedup"] == pytest.approx(aclip["full_step_seconds"] / aclip["masked_step_seconds"])
        assert 0.0 <= aclip["ema_val_accuracy"] <= 1.0
        assert not any(name.startswith(("predictor.", "ema.")) for name in trained.state)

    # Every seed's predictions and curve are versioned; the deployed seed is the best val accuracy (the earlier on a tie).
    seed_predictions, seed_histories = catalog.load(f"{model}.seed_predictions"), catalog.load(f"{model}.seed_histories")
    runs = info["seed_runs"]
    assert [r["seed"] for r in runs] == context.params["seeds"] == [0, 1]
    assert sorted(seed_predictions["seed"].unique()) == sorted(seed_histories["seed"].unique()) == [0, 1]
    best = max(r["best_val_accuracy"] for r in runs)
    assert info["seed"] == info["selected_seed"] == next(r["seed"] for r in runs if r["best_val_accuracy"] == best)
    deployed = seed_predictions[seed_predictions["seed"] == info["seed"]].reset_index(drop=True)
    assert deployed["pred_id"].tolist() == predictions["pred_id"].tolist()
    for run in runs:
        rows = seed_predictions[seed_predictions["seed"] == run["seed"]]
        assert rows["correct"].mean() == pytest.approx(run["test_accuracy"])

    # WiSE-FT's curve (SHORT_RUN's grid) ends exactly at the zero-shot and the fine-tuned model.
    curve = info["wise_ft"]
    assert curve["alphas"] == SHORT_RUN[model]["training"]["wise_ft"]["alphas"] and curve["applied"] is False
    assert curve["val_accuracy"][0] == info["zero_shot"]["val_accuracy"] and curve["val_accuracy"][-1] == info["best_val_accuracy"]

    # Checkpoints were written every epoch, per seed, and contain no pickles.
    for seed in (0, 1):
        checkpoint_files = list((reported_project.root / f"data/demo/06_models/{model}/checkpoints/seed_{seed}").rglob("*.*"))
        assert checkpoint_files and {p.suffix for p in checkpoint_files} <= {".json", ".safetensors"}


def _write_colour_set(root: Path, per_class: int = 10) -> Path:
    """A Kaggle-layout set whose class is its colour (plus noise, assorted sizes): learnable in a few epochs."""
    rng = np.random.default_rng(0)
    rows, files = [], {}
    for c, label in enumerate(HAR_CLASSES):
        colour = 255 * np.array(colorsys.hsv_to_rgb(c / len(HAR_CLASSES), 0.9, 0.9))
        for _ in range(per_class):
            name = f"Image_{len(rows) + 1}.jpg"
            side = int(rng.integers(48, 96))
            pixels = np.clip(colour + rng.normal(0, 20, (side, side, 3)), 0, 255).astype(np.uint8)
            rows.append((name, label))
            files[name] = encode(Image.fromarray(pixels))
    return write_kaggle(root, rows, files)


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory):
    """ingestion, preprocessing and the three trainings (demo settings, 6 epochs) on the colour set, in one session."""
    import os

    root = make_project(tmp_path_factory.mktemp("learned") / "project")
    _write_colour_set(root / "data/01_raw/colours")
    params: dict = {"ingestion": {"source": {"kind": "kaggle", "root": "data/01_raw/colours"}}, "seeds": [0]}
    for model in MODELS:  # ~150 training images: smaller batches, so that 6 epochs are 60 optimizer steps
        family = "siglip" if model == "siglip" else "clip"  # random tiny models: what the loop learns from scratch
        random = {"family": family, "image_size": 64, "patch_size": 8, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "projection_dim": 64}
        params[model] = {
            "model": {"from_pretraining": False, "backbone": f"data/demo/06_models/tiny_{family}", "build_random": random},
            "training": {"epochs": 6, "batch_size": 16, "effective_batch_size": 16},
        }
    # A randomly initialised SigLIP has logit scale 1 and bias 0; start where SigLIP training does.
    params["siglip"]["training"] |= {"logit_scale_init": 2.302585, "logit_bias_init": -10.0}
    params["aclip"]["training"]["aclip"] = {"measure_speedup": False}
    previous = Path.cwd()
    os.chdir(root)
    try:
        context = runner_for(root)(["ingestion", "preprocessing", *(f"train_{m}" for m in MODELS)], env="demo", runtime_params=params)
        yield context
    finally:
        os.chdir(previous)


@pytest.mark.xdist_group("learned")  # one worker trains the three models once (pytest --dist loadgroup)
@pytest.mark.parametrize("model", MODELS)
def test_demo_training_settings_learn(learned, model):
    info = learned.catalog.load(f"{model}.run_info")
    assert info["method"] == learned.params[model]["training"]["method"] == "full" and info["epochs_run"] == 6
    assert info["best_val_accuracy"] > 3 * CHANCE, info


def test_same_seed_gives_the_same_metrics_and_new_versions(reported_project: ReportedProject, reported_copy: Path):
    first_context = reported_project.context()
    first = first_context.catalog.load("clip.run_info")
    h1 = first_context.catalog.load("clip.history")
    # Only clip's epochs given at run time (the copy's demo set is already ingested).
    # The deployed seed alone, so the run is the one clip.run_info describes.
    short = {"clip": {"training": {"epochs": SHORT_RUN["clip"]["training"]["epochs"]}}, "seeds": [first["seed"]]}
    context = runner_for(reported_copy)("train_clip", runtime_params=short)
    second, h2 = context.catalog.load("clip.run_info"), context.catalog.load("clip.history")
    assert len(h1) == len(h2) == 2  # the runtime override reached the run
    for key in ("best_val_accuracy", "test_accuracy", "zero_shot", "trainable_parameters"):
        assert first[key] == second[key], key
    timing = ["seconds", "images_per_second", "peak_memory_mb"]
    assert h1.drop(columns=timing).equals(h2.drop(columns=timing))
    runs_dir = reported_copy / "data/demo/08_reporting/clip/run_info.json"
    assert len(_versions(runs_dir)) >= 2
    assert len(_versions(reported_copy / "data/demo/06_models/clip/trained_model")) >= 2
