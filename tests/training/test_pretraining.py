"""Pretraining on the training engine: it learns image-caption matching, saves a loadable model, reuses it."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kedro.io.core import Version
from PIL import Image

from har_kedro.config.distributed import DistributedSettings
from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.caption_cache import CaptionCache, CaptionCacheSettings, plan_caption_cache
from har_kedro.data.captions import CaptionSource, read_captions
from har_kedro.datasets import ContentAddressedArrayDataset
from har_kedro.models.augment import prepare_eval_batch
from har_kedro.models.backbones import image_features, load_backbone, text_features
from har_kedro.models.tiny import build_tiny_backbone
from har_kedro.training.pretraining import count_truncated, pretrain_into_store, pretraining_config
from tests.helpers import encode

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (235, 215, 30), "black": (15, 15, 15), "white": (240, 240, 240)}
PHRASES = ("a {} picture.", "something {}.", "a photo that is {}.")
CONFIG = TrainConfig(
    method="full", loss="contrastive", epochs=6, batch_size=16, effective_batch_size=16, eval_batch_size=64, lr=3e-3,
    lr_multipliers={"vision": 1.0, "text": 1.0, "projection": 1.0, "head": 1.0}, weight_decay=0.0, warmup_ratio=0.0,
    early_stopping_patience=0, device="cpu", progress=False, zero_shot_baseline=False, calibrate=False,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CaptionCache:
    """96 noisy single-colour pictures, each with one or two captions that name its colour."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(96):
        name = list(COLOURS)[i % len(COLOURS)]
        pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
        (root / "img" / f"{i}.png").write_bytes(encode(Image.fromarray(pixels), "PNG"))
        for k in range(1 + i % 2):
            rows.append((f"img/{i}.png", PHRASES[(i + k) % len(PHRASES)].format(name)))
    with (root / "captions.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("image", "caption"), *rows])
    pairs, rejected = read_captions(CaptionSource("csv", str(root / "captions.csv")), 2, False)
    assert rejected.empty
    dataset = ContentAddressedArrayDataset(str(root / "cache.json"), str(root / "store"), Version(None, None))
    dataset.save(plan_caption_cache(pairs, CaptionCacheSettings(image_size=16, val_fraction=0.25, progress=False, num_workers=2)))
    return CaptionCache(dataset.load())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, corpus: CaptionCache) -> str:
    out = tmp_path_factory.mktemp("tiny") / "clip"
    return str(build_tiny_backbone("clip", out, corpus.captions, image_size=16, patch_size=8, hidden_size=32, num_layers=1, num_heads=2, projection_dim=32))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory, corpus: CaptionCache, tiny: str):
    store = tmp_path_factory.mktemp("pretrained") / "store"
    first = pretrain_into_store(store, "pretraining.clip", corpus, tiny, pretraining_config(CONFIG, "t"), 0, store.parent / "checkpoints")
    return store, first


def test_pretraining_learns_to_match_images_with_their_captions(pretrained, corpus: CaptionCache) -> None:
    _, (pointer, history, info) = pretrained
    chance = 1 / len(corpus.val_captions)
    print(f"val retrieval {info['val_retrieval_before']:.3f} -> {info['best_val_retrieval']:.3f} (chance {chance:.3f})")
    assert info["best_val_retrieval"] >= max(0.5, info["val_retrieval_before"] + 0.25), info
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert len(history) == CONFIG.epochs and set(history["stage"]) == {"pretrain"}
    assert chance < 0.2 and info["train_images"] + info["val_images"] == 96


def test_the_saved_model_loads_and_knows_the_colours(pretrained) -> None:
    _, (pointer, _, info) = pretrained
    backbone = load_backbone(pointer["path"])  # the same from_pretrained path as any checkpoint
    assert float(backbone.model.logit_scale.detach().exp()) == pytest.approx(info["logit_scale"], rel=1e-4)
    texts = [f"a {name} picture." for name in COLOURS]
    images = torch.from_numpy(np.stack([np.full((16, 16, 3), rgb, dtype=np.uint8) for rgb in COLOURS.values()]))
    with torch.no_grad():
        pixels = prepare_eval_batch(images, backbone.image_mean, backbone.image_std, 16, torch.device("cpu"))
        scores = F.normalize(image_features(backbone, pixels).float(), dim=-1) @ F.normalize(text_features(backbone, texts).float(), dim=-1).T
    assert (scores.argmax(dim=1) == torch.arange(len(COLOURS))).float().mean() >= 0.5  # zero-shot over colours


def test_unchanged_inputs_reuse_the_stored_model(pretrained, corpus: CaptionCache, tiny: str) -> None:
    store, (pointer, history, _) = pretrained
    again, history_again, info = pretrain_into_store(store, "pretraining.clip", corpus, tiny, pretraining_config(CONFIG, "t"), 0)
    assert info["reused"] and again["path"] == pointer["path"] and again["reused"]
    assert history_again.equals(history)
    shorter = pretraining_config(dataclasses.replace(CONFIG, epochs=1), "t")
    other, _, other_info = pretrain_into_store(store, "pretraining.clip", corpus, tiny, shorter, 1)
    assert other["path"] != pointer["path"] and not other_info["reused"]  # another seed and budget: another model
    assert sorted(p.name for p in store.iterdir() if p.name.startswith(".")) == []  # no scratch folder left


def test_pretraining_refuses_fine_tuning_settings() -> None:
    with pytest.raises(TrainingConfigError, match=r"pretraining.clip.training.loss is 'cross_entropy'"):
        pretraining_config(TrainConfig(loss="cross_entropy"), "pretraining.clip.training")
    with pytest.raises(TrainingConfigError, match="method is 'lora'"):
        pretraining_config(TrainConfig(method="lora", loss="contrastive"), "pretraining.clip.training")
    config = pretraining_config(TrainConfig(method="full", loss="sigmoid"), "x")
    assert config.train_text and config.wise_ft is None


def test_long_captions_are_counted(tiny: str) -> None:
    backbone = load_backbone(tiny)
    long = " ".join(["red"] * (backbone.max_text_length + 5))
    assert count_truncated(backbone, ["a red picture.", long]) == 1


def test_the_store_record_is_complete(pretrained) -> None:
    store, (pointer, _, _) = pretrained
    record = json.loads((store / pointer["key"] / "pretraining.json").read_text(encoding="utf-8"))
    assert record["run_info"]["best_epoch"] >= 1 and len(record["history"]) == CONFIG.epochs


def test_pretraining_in_two_processes_learns_too(tmp_path, corpus: CaptionCache, tiny: str) -> None:
    """The launcher of fine-tuning (training/launch.py) starts two gloo processes that gather the whole batch for the loss."""
    two = pretraining_config(dataclasses.replace(CONFIG, distributed=DistributedSettings(num_processes=2)), "t")
    pointer, history, info = pretrain_into_store(tmp_path / "store", "pretraining.clip", corpus, tiny, two, 0, tmp_path / "checkpoints")
    assert info["processes"] == 2 and len(history) == CONFIG.epochs
    assert info["best_val_retrieval"] >= info["val_retrieval_before"] + 0.25, info
    assert load_backbone(pointer["path"]).family == "clip"
