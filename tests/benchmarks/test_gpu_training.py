"""benchmarks/gpu_training.py: its analytic FLOP count agrees with torch's FLOP counter, and it runs end to end at toy size."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForImageClassification

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.losses import compute_loss
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.seeding import seed_everything

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_training.py"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_training"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_training", None)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _counted_flops_per_image(bench, shape, method: str, batch: int = 8, ema_scale: float = 1.0) -> float:
    """FLOPs torch counts for one training step (forward + backward), per image; math SDPA so attention is counted."""
    aclip = {"keep_ratio": 0.5, "ema_image_scale": ema_scale} if method == "aclip" else None
    config = TrainConfig.from_params(dict(
        method="lora" if method == "lora" else "full", loss="contrastive" if aclip else bench.LOSS[shape.family],
        device="cpu", progress=False, lora=dict(bench.LORA, dropout=0.0), aclip=aclip,
    ))
    seed_everything(0)
    backbone = bench.build_backbone(shape, CPU)
    images = torch.randint(0, 256, (batch, shape.image_size, shape.image_size, 3), dtype=torch.uint8)
    labels = torch.arange(batch) % len(HAR_CLASSES)
    if method == "trainer":  # the peer's model: the same vision tower under a mean-pool + linear classifier
        config = copy.deepcopy(backbone.model.config)
        config.num_labels = len(HAR_CLASSES)
        model = AutoModelForImageClassification.from_config(config).train()
    elif method != "naive":  # outside the counter: building the head runs the text tower over every prompt
        model = training_classifier(backbone, HAR_CLASSES, bench.prompt_texts(), config, CPU, shape.image_size).train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if method == "trainer":
            loss = model(pixel_values=torch.randn(batch, 3, shape.image_size, shape.image_size), labels=labels).loss
        elif method == "naive":
            tokens = backbone.tokenizer([t[0] for t in bench.prompt_texts().values()], padding="max_length", max_length=shape.text_len, return_tensors="pt")
            pixels = torch.randn(batch, 3, shape.image_size, shape.image_size)
            out = backbone.model.train()(input_ids=tokens["input_ids"], pixel_values=pixels)
            loss = torch.nn.functional.cross_entropy(out.logits_per_image, labels)
        else:
            generator = torch.Generator().manual_seed(0)
            if aclip:
                loss = model.training_loss(images, labels, generator)[0]
            else:
                classes, scale, bias = model.class_side()
                loss = compute_loss(config.loss, model.embed(images, generator), classes, labels, scale, bias)
        loss.backward()
    return counter.get_total_flops() / batch


@pytest.mark.parametrize(
    ("model", "method", "ema_scale"),
    [
        ("clip-b16", "full", 1.0), ("clip-b16", "lora", 1.0), ("clip-b16", "aclip", 1.0), ("clip-b16", "aclip", 0.5), ("clip-b32", "aclip", 1.0),
        ("siglip-b16", "full", 1.0), ("siglip-b16", "lora", 1.0), ("clip-b32", "naive", 1.0),
        ("clip-b16", "trainer", 1.0), ("siglip-b16", "trainer", 1.0),
    ],
)
def test_analytic_flops_match_torchs_flop_counter(bench, one_thread, model, method, ema_scale):
    torch.set_num_threads(1)
    shape = bench.tiny_shape(bench.SHAPES[model], 64)
    counted = _counted_flops_per_image(bench, shape, method, ema_scale=ema_scale)
    formula = bench.train_flops_per_image(shape, method, keep_ratio=0.5, lora_rank=bench.LORA["rank"], lora_targets=4, batch_size=8, ema_scale=ema_scale)
    # What the formula leaves out is the class head and the loss: a few thousand FLOPs per image.
    assert formula == pytest.approx(counted, rel=2e-3)


def test_real_shapes_cost_what_vit_b_is_known_to_cost(bench):
    """ViT-B/16 at 224 px is ~17.6 GMACs forward (timm, fvcore); B/32 about a quarter of that."""
    forward = bench.vision_forward_macs(bench.SHAPES["clip-b16"])
    assert 17.4e9 < forward < 17.8e9
    assert 4.3e9 < bench.vision_forward_macs(bench.SHAPES["clip-b32"]) < 4.5e9
    full = bench.train_flops_per_image(bench.SHAPES["clip-b16"], "full")
    assert full == pytest.approx(3 * 2 * forward, rel=0.01)
    assert bench.train_flops_per_image(bench.SHAPES["clip-b16"], "lora") < 0.7 * full
    # A-CLIP at half the tokens: the full-size EMA pass caps the FLOP ratio near 1.2x; a half-size EMA view lifts it past 1.6x.
    assert 1.15 < full / bench.train_flops_per_image(bench.SHAPES["clip-b16"], "aclip", keep_ratio=0.5) < 1.25
    assert full / bench.train_flops_per_image(bench.SHAPES["clip-b16"], "aclip", keep_ratio=0.5, ema_scale=0.5) > 1.6


def test_peak_table_is_matched_by_device_name(bench, monkeypatch):
    cuda = torch.device("cuda")
    for name, peak in (("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("Tesla T4", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert bench.peak_tflops(cuda, None) == peak
    assert bench.peak_tflops(CPU, None) is None and bench.peak_tflops(CPU, 12.5) == 12.5


def test_main_runs_every_method_at_toy_size(bench, one_thread, tmp_path, capsys):
    out = tmp_path / "rows.json"
    rows = bench.main([
        "--tiny", "--threads", "1", "--images", "32", "--batch-size", "16", "--epochs", "1", "--naive-steps", "1",
        "--models", "clip-b32", "--aclip-keep", "0.5", "--aclip-ema-scales", "1", "0.5", "--peak-tflops", "1",
        "--trainer-workers", "1", "--json", str(out),
    ])
    assert [r.method for r in rows] == ["full", "lora", "aclip@0.50", "aclip@0.50/ema@0.50", "naive", "trainer"]
    assert rows[3].gflops_per_image < rows[2].gflops_per_image  # the smaller EMA view costs less
    for row in rows:
        assert row.images_per_second > 0 and row.epoch_seconds == pytest.approx(10_080 / row.images_per_second)
        assert row.mfu == pytest.approx(row.tflops / 1.0) and row.trainable_parameters > 0
    assert rows[1].trainable_parameters < rows[0].trainable_parameters  # LoRA trains less than full
    full, naive, trainer = rows[0], rows[4], rows[5]
    assert "HF Trainer" in trainer.note and trainer.peak_memory_gib > 0
    ratios = bench.peer_ratios(rows)["clip-b32"]
    assert ratios["trainer"] == pytest.approx(full.images_per_second / trainer.images_per_second)
    assert ratios["naive"] == pytest.approx(full.images_per_second / naive.images_per_second)
    printed = capsys.readouterr().out
    assert "img/s" in printed and "clip-b32: aclip@0.50 / full = " in printed
    assert f"clip-b32: ours full / Trainer = {ratios['trainer']:.2f}x, ours full / naive = {ratios['naive']:.2f}x" in printed
    assert [r["method"] for r in json.loads(out.read_text())] == [r.method for r in rows]


def test_trainer_peer_times_each_epoch_on_the_jpegs(bench, one_thread, tmp_path):
    """The Trainer row's model comes from the saved checkpoint and its epochs are timed one by one (2 workers)."""
    torch.set_num_threads(1)
    shape = bench.tiny_shape(bench.SHAPES["siglip-b16"], 32)
    seed_everything(0)
    model_dir = bench.save_as_pretrained(bench.build_backbone(shape, CPU), bench._image_processor(shape), tmp_path / "model")
    paths = bench.write_jpegs(tmp_path / "jpegs", 12, (48, 36))
    run = bench.train_with_hf_trainer(model_dir, paths, [i % 15 for i in range(12)], CPU, tmp_path / "out", batch_size=4, epochs=2, length=20, workers=2)
    assert len(run.epoch_seconds) == 2 and all(s > 0 for s in run.epoch_seconds)
    assert run.trainer_samples_per_second > 0 and run.workers == 2 and run.processor.startswith("Siglip")
    assert run.trainable_parameters > 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))  # nothing saved
