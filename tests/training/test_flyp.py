"""``method: flyp`` end to end: it trains both towers and learns, resumes exactly, and its saved model
predicts as the trained one did (the class embeddings of its fine-tuned text tower)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from kedro.io.core import Version

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.datasets.trained_model import TrainedModelDataset
from har_kedro.models.backbones import load_backbone
from har_kedro.models.factory import build_classifier, rebuild_classifier
from har_kedro.models.flyp import FlypClassifier
from har_kedro.models.predict import predict_logits
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.loop import Split, fit
from har_kedro.training.runner import run_training
from har_kedro.training.seeding import seed_everything
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")
CLASSES = list(HAR_CLASSES[:4])  # chance is 1/4
NO_AUGMENT = {"random_resized_crop": False, "horizontal_flip": False}


def _config(**overrides) -> TrainConfig:
    base = dict(
        method="flyp", loss="contrastive", epochs=6, batch_size=16, effective_batch_size=16, lr=2e-3, device="cpu", progress=False,
        early_stopping_patience=0, warmup_ratio=0.1, augment=NO_AUGMENT, lr_multipliers={"vision": 1.0, "text": 1.0, "projection": 1.0, "head": 1.0},
    )
    return TrainConfig.from_params(base | overrides)


def _squares(n: int, seed: int) -> Split:
    """Noise with a white 12 px square in one of four corners, the corner being the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = 4 + 12 * (label % 2), 4 + 12 * (label // 2)
        images[i, row : row + 12, col : col + 12] = 255
    return Split(images, labels)


def _model(source: str, config: TrainConfig) -> FlypClassifier:
    seed_everything(0)
    model = training_classifier(load_backbone(source), CLASSES, {c: PROMPTS[c] for c in CLASSES}, config, CPU, 32)
    assert isinstance(model, FlypClassifier)
    return model


def _moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> float:
    return max(float((after[n] - before[n]).abs().max()) for n in before if n.startswith(prefix))


def test_flyp_trains_both_towers_and_learns_well_above_chance(tiny_backbones):
    config = _config()
    model = _model(tiny_backbones["clip"], config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, _squares(48, 1), _squares(24, 2), config, CPU, seed=0)
    after = {n: p.detach() for n, p in model.named_parameters()}
    for prefix in ("model.vision_model.", "model.text_model.", "model.visual_projection.", "model.text_projection."):
        assert _moved(before, after, prefix) > 1e-3, prefix
    assert result.best_val_accuracy >= 2 * (1 / len(CLASSES))
    assert result.history[-1]["train_loss"] < 0.75 * result.history[0]["train_loss"]


def test_a_resumed_flyp_run_ends_like_an_uninterrupted_one(tiny_backbones, tmp_path):
    """The prompts are drawn from the loop's generator, which the checkpoint restores."""
    config = _config(epochs=2, batch_size=8, effective_batch_size=8)
    train, val = _squares(16, 3), _squares(8, 4)
    reference = fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=5, checkpoint_dir=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill(epoch: int, row: dict) -> None:
        raise Killed

    with pytest.raises(Killed):
        fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=5, checkpoint_dir=tmp_path / "b", on_epoch_end=kill)
    torch.manual_seed(12345)  # a new process would have drawn other numbers before fitting
    resumed = fit(_model(tiny_backbones["clip"], config), train, val, dataclasses.replace(config, resume=True), CPU, seed=5, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 2
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in reference.history]
    for name, value in reference.best_state.items():
        assert torch.equal(value, resumed.best_state[name]), name


@pytest.mark.parametrize("method", ["flyp", "full"])
def test_a_saved_model_with_a_trained_text_tower_predicts_like_the_trained_one(tiny_backbones, image_cache, tmp_path, method):
    """run_training (flyp, or full with train_text) → TrainedModelDataset save → load → rebuild: the same test logits."""
    config = _config(
        method=method, loss="contrastive", train_text=method == "full", epochs=1, batch_size=8, effective_batch_size=8,
        zero_shot_baseline=False, calibrate=False,
    )
    source = tiny_backbones["clip"]
    outputs = run_training("clip", image_cache, HAR_CLASSES, PROMPTS, source, config, 0)
    trained = outputs.trained_model
    assert trained.spec.method == method and trained.spec.train_text and trained.spec.class_prompts == {k: tuple(v) for k, v in PROMPTS.items()}
    start = dict(build_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, config, CPU, 32).named_parameters())
    for prefix in ("model.vision_model.", "model.text_model."):
        assert _moved({n: start[n].detach() for n in trained.state if n.startswith(prefix)}, trained.state, prefix) > 0, prefix

    dataset = TrainedModelDataset(str(tmp_path / "trained_model"), version=Version(None, None))
    dataset.save(trained)
    rebuilt = rebuild_classifier(TrainedModelDataset(str(tmp_path / "trained_model"), version=Version(None, None)).load())
    logits = predict_logits(rebuilt, image_cache.images("test"), 8, CPU)
    probabilities = outputs.test_predictions[[f"prob_{c}" for c in HAR_CLASSES]].to_numpy()
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), probabilities, atol=1e-5)
    # The class embeddings are the fine-tuned text tower's, not the zero-shot head saved beside them.
    with torch.no_grad():
        classes = rebuilt.class_side()[0]
    assert not torch.allclose(classes, torch.nn.functional.normalize(trained.state["head.weight"], dim=-1), atol=1e-4)
