"""Device placement without a GPU: every model family and method built and stepped on the ``meta`` device.

A tensor on ``meta`` has a shape and a dtype but no data, and PyTorch refuses to mix it with a
CPU tensor of one or more dimensions in one operation — the same rule CUDA enforces (both allow a
0-dim CPU scalar). So a classifier built, fed and stepped with ``device=meta`` fails here exactly
where a ``device: cuda`` run would fail on a GPU: a tensor made on the CPU and used with a module
on the device, or a module left behind by ``.to(device)``. Some meta kernels do not check their
arguments' devices (an embedding lookup of meta token ids in a CPU table returns a meta tensor), so
:class:`StrictDevices` applies CUDA's rule to every ATen op the tests run. What meta cannot do is read values
(``.item()``, ``.cpu()``), so the tests stop before the host reads a metric; those reads are
device-neutral (``float()`` of a device scalar, ``.cpu()`` copies) and are exercised on CPU elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.models.aclip import AclipClassifier
from har_kedro.models.backbones import load_backbone
from har_kedro.models.classifier import FeatureClassifier, ImageClassifier
from har_kedro.models.factory import build_classifier, rebuild_classifier, trained_model
from har_kedro.models.losses import class_logits
from har_kedro.models.methods import optimizer_groups, set_trainable
from har_kedro.training.fast_path import BatchFeed
from har_kedro.training.step import TrainStep
from tests.models.conftest import PROMPTS

META = torch.device("meta")
aten = torch.ops.aten
# Ops CUDA lets cross devices: copies between devices, and indexing with host index tensors.
_CROSS_DEVICE_OK = {aten._to_copy, aten.copy_, aten.index, aten.index_put_, aten.index_put, aten._index_put_impl_, aten.lift_fresh}


class StrictDevices(TorchDispatchMode):
    """Raise when one ATen op gets tensors on two devices, 0-dim host scalars excepted (CUDA's rule)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func.overloadpacket not in _CROSS_DEVICE_OK:
            devices = {
                t.device for t in tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor) and not (t.device.type == "cpu" and t.dim() == 0)
            }
            if len(devices) > 1:
                raise RuntimeError(f"{func} got tensors on {sorted(map(str, devices))}: a tensor was made on one device and used on another")
        return func(*args, **kwargs)


@pytest.fixture(autouse=True)
def _masks_without_reading_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers reads the attention mask's values to skip building it (CLIP's text tower): not possible
    on meta. Always building the mask is the path it takes under tracing; it changes no device placement."""
    import transformers.masking_utils as masking

    monkeypatch.setattr(masking, "_ignore_causal_mask_sdpa", lambda *args, **kwargs: False)


def test_strict_devices_catches_what_meta_kernels_let_through() -> None:
    table = nn.Embedding(10, 4)
    ids = torch.tensor([1, 2], device=META)
    assert table(ids).device.type == "cpu"  # no error: the host kernel takes meta ids (and returns garbage)
    with StrictDevices(), pytest.raises(RuntimeError, match="made on one device and used on another"):
        table(ids)
    with StrictDevices():  # what CUDA allows stays allowed: host scalars, host index tensors, copies
        x = torch.ones(3, device=META) * torch.tensor(2.0)
        assert x.device == META
        assert x[torch.tensor([0, 2])].shape == (2,)
        assert torch.ones(2).to(META).device == META


SIZE = 32  # the tiny backbones' input size (tests/models/conftest.py)
ACLIP = {"selection": "attentive", "keep_ratio": 0.5, "weights": {"contrastive": 1.0, "cross_entropy": 1.0, "distill": 1.0, "simclr": 1.0}, "num_views": 2}

# (family, settings): every method, every loss, the trainable text tower, LoRA on both families, A-CLIP, FLYP.
CASES = {
    "clip-zero_shot": ("clip", {"method": "zero_shot"}),
    "clip-linear_probe": ("clip", {"method": "linear_probe"}),
    "clip-lora-ce": ("clip", {"method": "lora", "loss": "cross_entropy", "lora": {"rank": 4, "alpha": 8}}),
    "clip-full-contrastive": ("clip", {"method": "full", "loss": "contrastive"}),
    "clip-full-text": ("clip", {"method": "full", "loss": "cross_entropy", "train_text": True}),
    "clip-lp_ft": ("clip", {"method": "lp_ft", "loss": "cross_entropy"}),
    "siglip-full-sigmoid": ("siglip", {"method": "full", "loss": "sigmoid"}),
    "siglip-lora-sigmoid": ("siglip", {"method": "lora", "loss": "sigmoid", "lora": {"rank": 4, "alpha": 8}}),
    "siglip-full-text": ("siglip", {"method": "full", "loss": "sigmoid", "train_text": True}),
    "clip-flyp": ("clip", {"method": "flyp", "loss": "contrastive"}),
    "siglip-flyp": ("siglip", {"method": "flyp", "loss": "contrastive"}),
    "aclip-attentive": ("clip", {"method": "full", "loss": "contrastive", "aclip": ACLIP}),
    "aclip-downscaled-ema": ("clip", {"method": "full", "loss": "contrastive", "aclip": {**ACLIP, "ema_image_scale": 0.5, "num_views": 1, "weights": {**ACLIP["weights"], "simclr": 0.0}}}),
}
TRAINED = [name for name, (_, settings) in CASES.items() if settings["method"] not in ("zero_shot", "linear_probe")]


def _config(settings: dict) -> TrainConfig:
    return TrainConfig.from_params({"device": "cpu", "amp": "off", "batch_size": 4, "effective_batch_size": 4, **settings})


def _build(tiny_backbones: dict[str, str], case: str, device: torch.device = META) -> tuple[ImageClassifier, TrainConfig]:
    family, settings = CASES[case]
    config = _config(settings)
    backbone = load_backbone(tiny_backbones[family])
    with StrictDevices():
        model = build_classifier(backbone, HAR_CLASSES, PROMPTS, config, device, SIZE)
    return model, config


def _tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    yield from module.named_buffers()
    if isinstance(module, AclipClassifier):  # the EMA tower is a registered child; check its copy too
        yield from (("ema." + n, t) for n, t in module.ema.named_buffers())


def _assert_all_on(module: nn.Module, device: torch.device) -> None:
    elsewhere = sorted(f"{name} ({t.device})" for name, t in _tensors(module) if t.device != device)
    assert not elsewhere, f"{len(elsewhere)} tensor(s) not on {device}: {elsewhere[:5]}"


def _feed(inputs: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One micro-batch as the training loop gets it: through BatchFeed (host mode) onto ``device``."""
    labels = np.arange(len(inputs)) % len(HAR_CLASSES)
    feed = BatchFeed(inputs, labels, device, "host")
    return next(feed.epoch([[np.arange(len(inputs))]]))


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)


def _step(model: nn.Module, config: TrainConfig, inputs: np.ndarray) -> torch.Tensor:
    """One optimizer step the way ``fit`` takes it; returns the loss (on the model's device)."""
    with StrictDevices():
        return _strict_step(model, config, inputs)


def _strict_step(model: nn.Module, config: TrainConfig, inputs: np.ndarray) -> torch.Tensor:
    model.train()
    batch, labels = _feed(inputs, META)
    assert batch.device == META and labels.device == META
    groups = optimizer_groups(model, config.lr, config.weight_decay, config.lr_multipliers)
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    loss, embeddings, (classes, scale, bias) = TrainStep(model, config.loss)(batch, labels, torch.Generator().manual_seed(0))
    loss.backward()
    correct = (class_logits(embeddings.detach(), classes.detach(), scale.detach(), None if bias is None else bias.detach()).argmax(1) == labels).sum()
    assert correct.device == META
    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after_step = getattr(model, "after_optimizer_step", None)
    if after_step is not None:
        after_step(1, 10)  # A-CLIP: the EMA update reads the online weights on the device
    return loss


def _eval_logits(model: nn.Module, inputs: np.ndarray) -> torch.Tensor:
    """What ``predict_logits`` computes per batch, before its copy to the host."""
    model.eval()
    with torch.no_grad(), StrictDevices():
        classes, scale, bias = model.class_side()
        batch, _ = _feed(inputs, META)
        return class_logits(model.embed(batch), classes, scale, bias)


@pytest.mark.parametrize("case", sorted(CASES))
def test_build_classifier_puts_every_tensor_on_the_device(tiny_backbones: dict[str, str], case: str) -> None:
    model, _ = _build(tiny_backbones, case)
    _assert_all_on(model, META)


@pytest.mark.parametrize("case", TRAINED)
def test_a_training_step_stays_on_the_device(tiny_backbones: dict[str, str], case: str) -> None:
    model, config = _build(tiny_backbones, case)
    loss = _step(model, config, _images())
    assert loss.device == META and loss.shape == ()
    _assert_all_on(model, META)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(g.device == META for g in grads)
    assert _eval_logits(model, _images(3)).shape == (3, len(HAR_CLASSES))


def test_the_linear_probe_trains_on_the_device(tiny_backbones: dict[str, str]) -> None:
    model, config = _build(tiny_backbones, "clip-linear_probe")
    probe = FeatureClassifier(model.head).to(META)
    set_trainable(probe, "linear_probe")
    features = np.random.default_rng(0).standard_normal((4, model.head.weight.shape[1])).astype(np.float32)
    loss = _step(probe, config, features)  # features from the host, as cache_features hands them over
    assert loss.device == META


def test_the_aclip_ema_classifier_evaluates_on_the_device(tiny_backbones: dict[str, str]) -> None:
    model, _ = _build(tiny_backbones, "aclip-attentive")
    assert isinstance(model, AclipClassifier)
    assert _eval_logits(model.ema_classifier(), _images(3)).device == META


@pytest.mark.parametrize("case", ["clip-lora-ce", "siglip-full-text", "aclip-attentive", "clip-flyp"])
def test_a_trained_model_is_rebuilt_on_the_device(tiny_backbones: dict[str, str], case: str) -> None:
    """Inference rebuilds a classifier from saved weights onto its own device (a GPU-trained model's are on the host)."""
    model, config = _build(tiny_backbones, case, device=torch.device("cpu"))
    family, _ = CASES[case]
    trained = trained_model(model, tiny_backbones[family], config, HAR_CLASSES, PROMPTS, SIZE)
    assert all(t.device.type == "cpu" for t in trained.state.values())
    with StrictDevices():
        rebuilt = rebuild_classifier(trained, META)
    _assert_all_on(rebuilt, META)
    assert _eval_logits(rebuilt, _images(2)).shape == (2, len(HAR_CLASSES))
