"""The GPU fast path on a CPU: same batches from every feed, checkpointing and compilation change no numbers, clear errors.

What needs a GPU (that the hot loop does not wait on the device) is the last test, skipped without one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from transformers.modeling_layers import GradientCheckpointingLayer

from har_kedro.config.training import TrainConfig, TrainingConfigError
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.backbones import load_backbone
from har_kedro.models.losses import compute_loss
from har_kedro.training.fast_path import (
    BatchFeed,
    DeviceCacheError,
    compile_vision_layers,
    resolve_cache_mode,
    training_classifier,
)
from har_kedro.training.fingerprint import run_fingerprint
from har_kedro.training.loop import Split, _micro_batches, fit
from har_kedro.training.seeding import seed_everything
from tests.helpers import separable_split
from tests.models.conftest import PROMPTS

CPU = torch.device("cpu")
LORA = {"rank": 2, "alpha": 4, "dropout": 0.1}


def _config(**overrides) -> TrainConfig:
    base = dict(
        method="full", epochs=2, batch_size=8, effective_batch_size=16, lr=1e-3, device="cpu", progress=False,
        early_stopping_patience=0, augment={"random_resized_crop": True, "horizontal_flip": True}, lora=LORA,
    )
    base.update(overrides)
    return TrainConfig.from_params(base)


def _variant(name: str, **overrides) -> TrainConfig:
    if name == "lora":
        return _config(method="lora", **overrides)
    if name == "aclip":
        return _config(loss="contrastive", aclip={"keep_ratio": 0.5}, **overrides)
    return _config(**overrides)


def _model(source: str, config: TrainConfig):
    seed_everything(0)
    return training_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, config, CPU, 32)


def _loss_and_grads(model, config: TrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """One training forward + backward on a fixed batch, dropout and augmentation seeded."""
    split = separable_split(12, 3)
    images, labels = torch.from_numpy(split.inputs), torch.from_numpy(split.labels)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # LoRA dropout
    generator = torch.Generator().manual_seed(0)  # crops and flips
    if config.aclip is not None:
        loss = model.training_loss(images, labels, generator)[0]
    else:
        classes, scale, bias = model.class_side()
        loss = compute_loss(config.loss, model.embed(images, generator), classes, labels, scale, bias)
    loss.backward()
    return loss.detach(), {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters() if p.requires_grad}


def _assert_same(reference, other) -> None:
    loss_a, grads_a = reference
    loss_b, grads_b = other
    assert torch.allclose(loss_a, loss_b, rtol=1e-6, atol=1e-7)
    assert grads_a.keys() == grads_b.keys()
    for name, grad in grads_a.items():
        assert grad is not None and grads_b[name] is not None, name
        assert torch.allclose(grad, grads_b[name], rtol=1e-4, atol=1e-7), name


# --------------------------------------------------------------------------- activation checkpointing


@pytest.mark.parametrize("method", ["full", "lora", "aclip"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(tiny_backbones, method):
    plain = _variant(method)
    checkpointed = _variant(method, activation_checkpointing=True)
    model = _model(tiny_backbones["clip"], checkpointed)
    on = [m for m in model.model.vision_model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert on and all(m.gradient_checkpointing for m in on)

    reference = _loss_and_grads(_model(tiny_backbones["clip"], plain), plain)
    result = _loss_and_grads(model, checkpointed)
    _assert_same(reference, result)
    if method == "lora":
        lora = {n: g for n, g in result[1].items() if "lora_" in n}
        assert lora and all(g is not None for g in lora.values())
        # B starts at zero (so A's first gradient is zero too); B's gradient is what shows the adapters learn.
        assert all(g.abs().sum() > 0 for n, g in lora.items() if "lora_B" in n)


def test_reentrant_checkpointing_would_starve_lora(tiny_backbones):
    """Why use_reentrant=False: with the reentrant variant the frozen layers' input needs no gradient and LoRA gets none."""
    config = _variant("lora")
    model = _model(tiny_backbones["clip"], config)
    model.model.vision_model.encoder.gradient_checkpointing = True
    for layer in model.model.vision_model.encoder.layers:
        layer.gradient_checkpointing = True
        layer._gradient_checkpointing_func = lambda f, *a: torch.utils.checkpoint.checkpoint(f, *a, use_reentrant=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that no checkpoint input requires a gradient: the point here
        _, grads = _loss_and_grads(model, config)
    lora = {n: g for n, g in grads.items() if "lora_" in n}
    assert lora and all(g is None for g in lora.values())


# --------------------------------------------------------------------------- torch.compile


def test_compile_is_wired_to_every_vision_layer(tiny_backbones):
    """compile: true compiles each vision encoder layer (A-CLIP's EMA tower too); compilation itself is lazy."""
    model = _model(tiny_backbones["clip"], _variant("aclip", compile=True))
    layers = list(model.model.vision_model.encoder.layers) + list(model.ema.vision_model.encoder.layers)
    assert len(layers) == 4 and all(layer._compiled_call_impl is not None for layer in layers)
    text_layers = model.model.text_model.encoder.layers
    assert all(layer._compiled_call_impl is None for layer in text_layers)
    plain = _model(tiny_backbones["clip"], _variant("aclip"))
    assert all(layer._compiled_call_impl is None for layer in plain.model.vision_model.encoder.layers)
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in plain.named_parameters()]  # checkpoints and saved weights keep their keys


@pytest.mark.parametrize("method", ["lora", "aclip"])
def test_compiled_layers_compute_what_eager_ones_do(tiny_backbones, method):
    """Dynamo captures the real layers (LoRA adapters, A-CLIP's token subsets) with the eager backend.

    Inductor code generation for the same graphs takes about a minute on a 2-core CPU, so it is left to
    ``benchmarks/gpu_training.py --compile`` on a GPU.
    """
    config = _variant(method)
    reference = _loss_and_grads(_model(tiny_backbones["clip"], config), config)
    model = _model(tiny_backbones["clip"], config)
    assert compile_vision_layers(model, backend="eager") == (4 if method == "aclip" else 2)
    try:
        _assert_same(reference, _loss_and_grads(model, config))
    finally:
        torch._dynamo.reset()


# --------------------------------------------------------------------------- where the images live


def _inputs(kind: str, tmp_path) -> np.ndarray | torch.Tensor:
    rng = np.random.default_rng(0)
    if kind == "features":
        return torch.from_numpy(rng.standard_normal((45, 16)).astype(np.float32))
    images = rng.integers(0, 256, (45, 8, 8, 3), dtype=np.uint8)
    if kind == "memmap":
        stored = np.lib.format.open_memmap(tmp_path / "cache.npy", mode="w+", dtype=np.uint8, shape=images.shape)
        stored[:] = images
        stored.flush()
        return np.load(tmp_path / "cache.npy", mmap_mode="r")
    return images


@pytest.mark.parametrize("kind", ["array", "memmap", "features"])
def test_streamed_and_device_feeds_give_the_plain_batches(kind, tmp_path):
    inputs = _inputs(kind, tmp_path)
    labels = np.arange(45) % 15
    feeds = {
        mode: BatchFeed(inputs, labels, CPU, mode, prefetch=2, pin=False) for mode in ("host", "stream", "device")
    }
    for epoch in (1, 2):
        steps = _micro_batches(45, 8, 2, seed=4, epoch=epoch)  # ragged: the last micro-batch holds 5
        expected = [(torch.as_tensor(np.asarray(inputs)[i]), torch.from_numpy(labels[i])) for step in steps for i in step]
        for mode, feed in feeds.items():
            got = list(feed.epoch(steps))
            assert len(got) == len(expected), mode
            for (x, y), (ex, ey) in zip(got, expected, strict=True):
                assert x.dtype == ex.dtype and torch.equal(x, ex) and torch.equal(y, ey), mode


def test_stream_gathers_ahead_and_stops_when_the_loop_does():
    inputs = np.arange(40 * 3, dtype=np.uint8).reshape(40, 1, 1, 3)
    feed = BatchFeed(inputs, np.zeros(40), CPU, "stream", prefetch=2, pin=False)
    gathered: list[int] = []
    original = feed._gather
    feed._gather = lambda index: (gathered.append(int(index[0])), original(index))[1]
    steps = _micro_batches(40, 4, 1, seed=0, epoch=1)
    batches = feed.epoch(steps)
    next(batches)
    deadline = time.monotonic() + 5
    while len(gathered) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(gathered) == 3  # the one handed over plus two ahead, before the loop asked for them
    batches.close()
    time.sleep(0.05)
    assert len(gathered) <= 4 and not [t for t in threading.enumerate() if t.name.startswith("har-prefetch")]


def test_cache_on_device_is_a_no_op_on_cpu(tiny_backbones):
    train, val = separable_split(32, 1), separable_split(15, 2)
    assert {resolve_cache_mode(setting, CPU, 10**12) for setting in ("auto", True, False)} == {"host"}
    runs = []
    for setting in ("auto", True, False):
        config = _config(cache_on_device=setting, epochs=1)
        runs.append(fit(_model(tiny_backbones["clip"], config), train, val, config, CPU, seed=3))
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    for other in runs[1:]:
        assert [[h[k] for k in keys] for h in other.history] == [[h[k] for k in keys] for h in runs[0].history]
        assert all(torch.equal(v, other.best_state[n]) for n, v in runs[0].best_state.items())


def test_cache_mode_on_cuda_follows_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    cuda = torch.device("cuda")
    assert resolve_cache_mode("auto", cuda, 250) == "device"  # a quarter of the free memory at most
    assert resolve_cache_mode("auto", cuda, 251) == "stream"
    assert resolve_cache_mode(True, cuda, 900) == "device"
    assert resolve_cache_mode(False, cuda, 1) == "stream"
    with pytest.raises(DeviceCacheError, match="cache_on_device is true .* set cache_on_device: auto"):
        resolve_cache_mode(True, cuda, 2000)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cache_on_device": "yes"}, "cache_on_device is 'yes'; use auto, true or false"),
        ({"compile": "true"}, "compile must be true or false"),
        ({"compile_mode": "fast"}, "compile_mode is 'fast'; use one of"),
        ({"activation_checkpointing": None}, "activation_checkpointing must be true or false"),
        ({"tf32": 1}, "tf32 must be true or false"),
        ({"log_every_steps": 0}, "log_every_steps must be a positive integer"),
    ],
)
def test_bad_fast_path_values_are_named(params, match):
    with pytest.raises(TrainingConfigError, match=f"siglip.training.{match}"):
        TrainConfig.from_params(params, where="siglip.training")


def test_speed_settings_do_not_block_a_resume():
    split = Split(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4))
    config = _config()
    faster = dataclasses.replace(config, cache_on_device=False, compile=True, compile_mode="max-autotune", activation_checkpointing=True, tf32=False, log_every_steps=7)
    assert run_fingerprint(config, 0, split, "fine_tune") == run_fingerprint(faster, 0, split, "fine_tune")
    assert run_fingerprint(config, 0, split, "fine_tune") != run_fingerprint(dataclasses.replace(config, lr=1.0), 0, split, "fine_tune")


# --------------------------------------------------------------------------- on a GPU


def _synchronising_calls(source: str, images: int, cache: bool | str) -> int:
    config = _config(device="cuda", epochs=1, effective_batch_size=8, cache_on_device=cache)
    seed_everything(0)
    model = training_classifier(load_backbone(source), HAR_CLASSES, PROMPTS, config, torch.device("cuda"), 32)
    train, val = separable_split(images, 1), separable_split(15, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit(model, train, val, config, torch.device("cuda"), seed=0)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("cache", [True, False])
def test_the_hot_loop_does_not_wait_on_the_gpu(tiny_backbones, cache):
    """Host-device synchronisations per epoch do not grow with the number of steps (they are all at the epoch's end)."""
    _synchronising_calls(tiny_backbones["clip"], 8, cache)  # one-time set-up (cuBLAS, pinned pool) is not per step
    few, many = (_synchronising_calls(tiny_backbones["clip"], n, cache) for n in (8 * 3, 8 * 12))
    assert many == few
