"""train_clip and train_siglip in real Kedro sessions on the demo configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from har_kedro.data.image_cache import ImageCache
from har_kedro.models.factory import rebuild_classifier
from har_kedro.training.runner import HISTORY_COLUMNS
from tests.pipelines.conftest import runner_for

pytestmark = pytest.mark.slow
CHANCE = 1 / 15


def _versions(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("model", ["clip", "siglip", "aclip"])
def test_demo_training_learns_and_versions_everything(demo_project, model):
    run = runner_for(demo_project)
    context = run(f"train_{model}")
    catalog, params = context.catalog, context.params[model]["training"]

    info = catalog.load(f"{model}.run_info")
    history = catalog.load(f"{model}.history")
    predictions = catalog.load(f"{model}.test_predictions")
    trained = catalog.load(f"{model}.trained_model")
    cache = ImageCache(catalog.load("image_cache"))

    assert info["best_val_accuracy"] > 3 * CHANCE, info
    assert info["method"] == params["method"] and info["loss"] == params["loss"]
    assert 0 < info["trainable_parameters"] <= info["total_parameters"]
    assert set(info["zero_shot"]) == {"val_accuracy", "test_accuracy"}
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

    # Checkpoints were written every epoch and contain no pickles.
    checkpoint_files = list((demo_project / f"data/demo/06_models/{model}/checkpoints").rglob("*.*"))
    assert checkpoint_files and {p.suffix for p in checkpoint_files} <= {".json", ".safetensors"}


def test_same_seed_gives_the_same_metrics_and_new_versions(demo_project):
    run = runner_for(demo_project)
    short = {"clip": {"training": {"epochs": 2}}}
    infos = []
    for _ in range(2):
        context = run("train_clip", runtime_params=short)
        infos.append((context.catalog.load("clip.run_info"), context.catalog.load("clip.history")))
    (first, h1), (second, h2) = infos
    assert len(h1) == len(h2) == 2  # the runtime override reached the run
    for key in ("best_val_accuracy", "test_accuracy", "zero_shot", "trainable_parameters"):
        assert first[key] == second[key], key
    timing = ["seconds", "images_per_second", "peak_memory_mb"]
    assert h1.drop(columns=timing).equals(h2.drop(columns=timing))
    runs_dir = demo_project / "data/demo/08_reporting/clip/run_info.json"
    assert len(_versions(runs_dir)) >= 2
    assert len(_versions(demo_project / "data/demo/06_models/clip/trained_model")) >= 2
