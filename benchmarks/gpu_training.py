"""Training speed at real model shapes: img/s, epoch time, model FLOP utilisation and peak memory, in one run.

    python benchmarks/gpu_training.py --device cuda                    # H100: CLIP B/16, B/32, SigLIP B/16, 224 px, batch 256
    python benchmarks/gpu_training.py --device cuda --compile          # the same with torch.compile
    python benchmarks/gpu_training.py --tiny                           # CPU smoke run at toy sizes
    python benchmarks/gpu_training.py --device cuda --json rows.json   # also write the rows as JSON

Models are built from ``CLIPConfig`` / ``SiglipConfig`` at the published sizes of
openai/clip-vit-base-patch16, openai/clip-vit-base-patch32 and google/siglip-base-patch16-224
(random weights, SDPA attention, no download: speed does not depend on the weights), with a
word-level tokenizer over the class prompts padded to the real text lengths (77 and 64 tokens).

Rows, per model:

* ``full``, ``lora`` (rank 16, alpha 32, dropout 0.1 on q/k/v/out of every vision layer, as in
  ``conf/base/parameters_training.yml``) and, for CLIP, ``aclip@<keep>`` (A-CLIP with ``keep_ratio``
  <keep>; ``aclip@<keep>/ema@<scale>`` with the EMA tower scoring a view downscaled to
  ``ema_image_scale`` <scale> of the side): the project's own ``training_classifier`` + ``fit`` over a random uint8 cache of ``--images``
  images, batch ``--batch-size``, AdamW, bf16 autocast on CUDA, the fast-path settings given here.
  img/s is ``fit``'s own figure (images / seconds of the epoch's training steps, evaluation excluded),
  from the last epoch; the first one pays for warm-up (and compilation).
* ``naive``: what public HAR scripts do per step: open ``--batch-size`` JPEGs with PIL, run the Hugging
  Face image processor, tokenize the class prompts, run the whole two-tower model in fp32 and take
  cross-entropy on ``logits_per_image``; every parameter trained, AdamW. ``--naive-steps`` timed steps
  after one warm-up step.
* ``trainer``: the peer a user would pick instead. The same model is saved with ``save_pretrained``
  (with its image processor), then ``transformers.Trainer`` fine-tunes
  ``AutoModelForImageClassification.from_pretrained`` of it (``CLIPForImageClassification`` /
  ``SiglipForImageClassification``: the vision tower, mean-pooled tokens, a new linear classifier;
  every weight trained) on a ``torch.utils.data.Dataset`` that opens each JPEG (the naive loop's
  files, cycled to ``--images`` items per epoch) with PIL and runs ``AutoImageProcessor`` on it, through
  the Trainer's DataLoader with ``--trainer-workers`` persistent workers (default min(8, cores)).
  Batch ``--batch-size``, fused AdamW, bf16 and TF32 on CUDA, ``torch_compile`` with ``--compile``; no
  evaluation, saving or reporting, output in a temporary folder. img/s is the last of ``--epochs``
  epochs, timed by a callback that waits for the device at epoch ends only (an epoch boundary empties
  the loader's prefetch queue, so no backlog from warm-up flatters the timed epoch); the Trainer's
  own ``train_samples_per_second`` (all epochs, warm-up and worker start included) is in the note.

After the table: each method's img/s over the same model's ``full``, then ours (``full``) over the
Trainer and over the naive loop.

FLOPs are counted from the shapes, not measured (``train_flops_per_image``). Per vision layer with
``T`` tokens, width ``D`` and MLP width ``F``, forward multiply-accumulates are ``4·T·D²`` (q, k, v,
out) ``+ 2·T·D·F`` (fc1, fc2) ``+ 2·T²·D`` (scores and attention-weighted values); the patch
embedding adds ``N·3·P²·D`` for ``N`` patches of ``P``×``P`` pixels; CLIP's projection ``D·E`` on one
token; SigLIP's pooling head ``2·T·D²`` (its keys and values) ``+ 2·D² + 2·T·D + 2·D·F``. A FLOP is
2 per multiply-accumulate. Backward costs two forwards for a weight that is trained (input and
weight gradients), one for a frozen weight whose input needs a gradient (LoRA's frozen linears),
none for the frozen patch embedding, and two for the attention products. So full fine-tuning is
~3× forward and LoRA ~2× forward plus its adapters (``2·T·D·r`` per adapted linear). A-CLIP adds
the EMA tower's forward on every token of its view (all of them, or the ``ema@<scale>`` view's) plus
its [CLS]-attention scores (``T·D`` per layer), and
trains the online tower on ``1 + keep·N`` tokens (the patch embedding still runs on all ``N``),
plus the distillation predictor. The naive loop adds the text tower (forward and backward) on the
15 prompts, spread over the batch. The Trainer's model costs what ``full`` does without CLIP's
projection; SigLIP's pooling head still runs forward there (its output is unused: no backward). Losses and the class head (< 0.1 %) are left out. Activation
checkpointing's recomputation is not counted (model FLOPs, not hardware FLOPs). MFU is achieved
FLOP/s over the device's dense bf16 peak (``PEAK_BF16_TFLOPS`` by GPU name, or ``--peak-tflops``),
for the fp32 naive loop too, so that every row is measured against the same yardstick.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.prompts import build_class_prompts
from har_kedro.models.aclip import ema_image_size
from har_kedro.models.backbones import (
    DEFAULT_NORMALISATION,
    Backbone,
    quiet_default_config_warnings,
)
from har_kedro.models.device import (
    autocast_dtype,
    peak_memory_mb,
    reset_peak_memory,
    select_device,
)
from har_kedro.models.methods import count_parameters
from har_kedro.models.tiny import build_word_tokenizer
from har_kedro.training.fast_path import nbytes, resolve_cache_mode, training_classifier
from har_kedro.training.loop import Split, fit
from har_kedro.training.seeding import seed_everything

EPOCH_IMAGES = 10_080  # the HAR training split: 80 % of 12,600 labelled images
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, in TFLOP/s; first match wins.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
)
LORA = {"rank": 16, "alpha": 32, "dropout": 0.1, "targets": ["q_proj", "k_proj", "v_proj", "out_proj"]}
LOSS = {"clip": "cross_entropy", "siglip": "sigmoid"}
METHODS = ("full", "lora", "aclip", "naive", "trainer")


@dataclass(frozen=True)
class Shape:
    """The sizes that decide a model's cost; ``embed`` is CLIP's projection width (SigLIP has none)."""

    name: str
    family: str
    image_size: int
    patch: int
    width: int
    depth: int
    heads: int
    mlp: int
    embed: int
    text_width: int
    text_depth: int
    text_heads: int
    text_mlp: int
    text_len: int
    vocab: int

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def tokens(self) -> int:
        """Tokens through the encoder: SigLIP has no [CLS]."""
        return self.patches + (1 if self.family == "clip" else 0)


_B16 = dict(image_size=224, width=768, depth=12, heads=12, mlp=3072)
SHAPES = {
    "clip-b16": Shape("clip-b16", "clip", patch=16, embed=512, text_width=512, text_depth=12, text_heads=8, text_mlp=2048, text_len=77, vocab=49408, **_B16),
    "clip-b32": Shape("clip-b32", "clip", patch=32, embed=512, text_width=512, text_depth=12, text_heads=8, text_mlp=2048, text_len=77, vocab=49408, **_B16),
    "siglip-b16": Shape("siglip-b16", "siglip", patch=16, embed=768, text_width=768, text_depth=12, text_heads=12, text_mlp=3072, text_len=64, vocab=32000, **_B16),
}


def tiny_shape(shape: Shape, image_size: int) -> Shape:
    """The same model at toy size for a CPU run: 2 layers of width 64; B/32 keeps a patch twice B/16's."""
    return replace(
        shape, image_size=image_size, patch=shape.patch // 2, width=64, depth=2, heads=4, mlp=256, embed=64,
        text_width=64, text_depth=2, text_heads=4, text_mlp=256, text_len=16, vocab=0,
    )


# --------------------------------------------------------------------------- FLOPs


def _layer_macs(shape: Shape, tokens: int) -> tuple[float, float]:
    """Forward multiply-accumulates of one vision layer: (weight matmuls, attention products)."""
    d, f = shape.width, shape.mlp
    return tokens * (4 * d * d + 2 * d * f), 2 * tokens * tokens * d


def _head_macs(shape: Shape, tokens: int) -> float:
    d = shape.width
    if shape.family == "clip":
        return d * shape.embed
    return 2 * tokens * d * d + 2 * d * d + 2 * tokens * d + 2 * d * shape.mlp


def vision_forward_macs(shape: Shape, tokens: int | None = None) -> float:
    """One image through the vision tower (every token unless ``tokens`` is given)."""
    t = shape.tokens if tokens is None else tokens
    linear, attention = _layer_macs(shape, t)
    return shape.patches * 3 * shape.patch**2 * shape.width + shape.depth * (linear + attention) + _head_macs(shape, t)


def text_forward_macs(shape: Shape) -> float:
    """One prompt (padded to ``text_len``) through the text tower and its projection."""
    t, d, f = shape.text_len, shape.text_width, shape.text_mlp
    projection = d * (shape.embed if shape.family == "clip" else d)
    return shape.text_depth * (t * (4 * d * d + 2 * d * f) + 2 * t * t * d) + projection


def train_flops_per_image(
    shape: Shape, method: str, keep_ratio: float = 0.5, lora_rank: int = 16, lora_targets: int = 4, batch_size: int = 256, prompts: int = 15, ema_scale: float = 1.0
) -> float:
    """Model FLOPs of one training image (forward + backward) for ``method``; see the module docstring."""
    t = shape.tokens
    embed = shape.patches * 3 * shape.patch**2 * shape.width
    linear, attention = _layer_macs(shape, t)
    head = _head_macs(shape, t)
    if method in ("full", "naive"):
        macs = embed * 2 + shape.depth * (linear + attention) * 3 + head * 3
        if method == "naive":
            macs += 3 * text_forward_macs(shape) * prompts / batch_size
    elif method == "lora":
        adapter = 2 * t * shape.width * lora_rank  # A (D -> r) then B (r -> D), one adapted linear
        adapters = shape.depth * lora_targets * adapter * 3
        # The first layer's input needs no gradient, so its q/k/v (and their adapters' A) skip the input gradient.
        first_qkv = min(lora_targets, 3) * (t * shape.width**2 + adapter / 2)
        macs = embed + shape.depth * (linear * 2 + attention * 3) - first_qkv + head * 3 + adapters
    elif method == "aclip":
        kept = 1 + max(1, int(np.floor(keep_ratio * shape.patches + 0.5)))
        k_linear, k_attention = _layer_macs(shape, kept)
        ema_shape = replace(shape, image_size=ema_image_size(shape.image_size, shape.patch, ema_scale))
        ema = vision_forward_macs(ema_shape) + shape.depth * ema_shape.tokens * shape.width
        online = embed * 2 + shape.depth * (k_linear + k_attention) * 3 + _head_macs(shape, kept) * 3
        predictor = 3 * 4 * shape.embed * shape.embed
        macs = ema + online + predictor
    elif method == "trainer":
        # *ForImageClassification: every vision weight trained, mean-pooled tokens into a linear classifier. CLIP's
        # projection does not run; SigLIP's pooling head runs forward only (its output is unused, so no backward).
        macs = embed * 2 + shape.depth * (linear + attention) * 3 + (head if shape.family == "siglip" else 0)
    else:
        raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
    return 2.0 * macs


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


# --------------------------------------------------------------------------- models


def prompt_texts() -> dict[str, list[str]]:
    return {name: list(texts) for name, texts in build_class_prompts(HAR_CLASSES).items()}


def build_backbone(shape: Shape, device: torch.device) -> Backbone:
    """A randomly initialised CLIP or SigLIP of ``shape`` on ``device`` (SDPA attention), as a har_kedro Backbone."""
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    prompts = prompt_texts()
    tokenizer = build_word_tokenizer([t for texts in prompts.values() for t in texts], max_length=shape.text_len)
    text = dict(
        vocab_size=max(shape.vocab, len(tokenizer)), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, hidden_size=shape.text_width, intermediate_size=shape.text_mlp,
        num_hidden_layers=shape.text_depth, num_attention_heads=shape.text_heads, max_position_embeddings=shape.text_len,
    )
    vision = dict(
        image_size=shape.image_size, patch_size=shape.patch, hidden_size=shape.width, intermediate_size=shape.mlp,
        num_hidden_layers=shape.depth, num_attention_heads=shape.heads,
    )
    with quiet_default_config_warnings():
        if shape.family == "clip":
            config, model_class = CLIPConfig(text_config=text, vision_config=vision, projection_dim=shape.embed), CLIPModel
        else:
            config, model_class = SiglipConfig(text_config=dict(text, projection_size=shape.text_width), vision_config=vision), SiglipModel
        with torch.device(device):
            model = model_class._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    mean, std = DEFAULT_NORMALISATION[shape.family]
    return Backbone(
        family=shape.family, model=model, tokenizer=tokenizer, image_mean=mean, image_std=std, image_size=shape.image_size,
        patch_size=shape.patch, embed_dim=shape.embed if shape.family == "clip" else shape.width, source=f"random {shape.name}",
        text_padding="max_length" if shape.family == "siglip" else "longest", max_text_length=shape.text_len,
    )


# --------------------------------------------------------------------------- the two loops


@dataclass
class Row:
    model: str
    method: str
    tokens: int
    images_per_second: float | None
    epoch_seconds: float | None
    gflops_per_image: float
    tflops: float | None
    mfu: float | None
    peak_memory_gib: float | None
    trainable_parameters: int | None
    note: str = ""


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _row(shape: Shape, method: str, label: str, tokens: int, rate: float | None, peak_mib: float | None, trainable: int | None, flops: float, peak: float | None, note: str = "") -> Row:
    tflops = flops * rate / 1e12 if rate else None
    return Row(
        model=shape.name, method=label, tokens=tokens, images_per_second=rate, epoch_seconds=EPOCH_IMAGES / rate if rate else None,
        gflops_per_image=flops / 1e9, tflops=tflops, mfu=tflops / peak if tflops is not None and peak else None,
        peak_memory_gib=peak_mib / 1024 if peak_mib is not None else None, trainable_parameters=trainable, note=note,
    )


def aclip_label(keep: float, ema_scale: float) -> str:
    return f"aclip@{keep:.2f}" + ("" if ema_scale == 1 else f"/ema@{ema_scale:.2f}")


def run_ours(
    shape: Shape, method: str, keep: float, data: dict[str, Split], args: argparse.Namespace, device: torch.device, peak: float | None, ema_scale: float = 1.0
) -> Row:
    """``training_classifier`` + ``fit`` exactly as a training run does; img/s from the last epoch."""
    aclip = {"keep_ratio": keep, "ema_image_scale": ema_scale, "measure_speedup": False} if method == "aclip" else None
    config = TrainConfig.from_params(dict(
        method="lora" if method == "lora" else "full", loss="contrastive" if aclip else LOSS[shape.family], epochs=args.epochs,
        batch_size=args.batch_size, effective_batch_size=args.batch_size, eval_batch_size=args.batch_size, lr=1e-5,
        warmup_ratio=0.0, early_stopping_patience=0, device=str(device), progress=False, lora=dict(LORA, rank=args.lora_rank),
        aclip=aclip, cache_on_device=args.cache_on_device, compile=args.compile, compile_mode=args.compile_mode,
        activation_checkpointing=args.activation_checkpointing, tf32=True,
    ), where="benchmark")
    seed_everything(0)
    label = aclip_label(keep, ema_scale) if aclip else method
    flops = train_flops_per_image(shape, method, keep, args.lora_rank, len(LORA["targets"]), args.batch_size, ema_scale=ema_scale)
    tokens = (1 + max(1, int(np.floor(keep * shape.patches + 0.5)))) if aclip else shape.tokens
    try:
        model = training_classifier(build_backbone(shape, device), HAR_CLASSES, prompt_texts(), config, device, shape.image_size)
        trainable, _ = count_parameters(model)
        result = fit(model, data["train"], data["val"], config, device, seed=0)
    except torch.OutOfMemoryError:
        _free(device)
        return _row(shape, method, label, tokens, None, None, None, flops, peak, "out of memory")
    rate = float(result.history[-1]["images_per_second"])
    row = _row(shape, method, label, tokens, rate, result.peak_memory_mb, trainable, flops, peak)
    del model, result
    _free(device)
    return row


def write_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """``count`` smooth random photos-to-be as JPEGs (quality 90) of ``size`` (width, height), like the HAR files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        path = folder / f"Image_{i + 1}.jpg"
        Image.fromarray(noisy).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def _image_processor(shape: Shape) -> Any:
    mean, std = DEFAULT_NORMALISATION[shape.family]
    if shape.family == "clip":
        return transformers.CLIPImageProcessor(
            size={"shortest_edge": shape.image_size}, crop_size={"height": shape.image_size, "width": shape.image_size},
            do_center_crop=True, image_mean=list(mean), image_std=list(std),
        )
    return transformers.SiglipImageProcessor(size={"height": shape.image_size, "width": shape.image_size}, image_mean=list(mean), image_std=list(std))


def run_naive(shape: Shape, paths: Sequence[Path], args: argparse.Namespace, device: torch.device, peak: float | None) -> Row:
    """PIL + image processor + tokenizer every step, the whole two-tower model in fp32, every weight trained."""
    flops = train_flops_per_image(shape, "naive", batch_size=args.batch_size)
    seed_everything(0)
    backbone = build_backbone(shape, device)
    model = backbone.model.train()
    processor = _image_processor(shape)
    prompts = [texts[0] for texts in prompt_texts().values()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    labels_all = np.arange(len(paths)) % len(HAR_CLASSES)
    times = []
    _free(device)
    reset_peak_memory(device)
    try:
        for step in range(args.naive_steps + 1):  # step 0 is warm-up
            start = time.perf_counter()
            index = [(step * args.batch_size + i) % len(paths) for i in range(args.batch_size)]
            images = [Image.open(paths[i]).convert("RGB") for i in index]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
            text = backbone.tokenizer(prompts, padding="max_length", truncation=True, max_length=shape.text_len, return_tensors="pt").to(device)
            out = model(input_ids=text["input_ids"], attention_mask=text.get("attention_mask") if shape.family == "clip" else None, pixel_values=pixels)
            loss = torch.nn.functional.cross_entropy(out.logits_per_image, torch.as_tensor(labels_all[index], device=device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step:
                times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError:
        del model, optimizer, backbone
        _free(device)
        return _row(shape, "naive", "naive", shape.tokens, None, None, None, flops, peak, "out of memory")
    rate = args.batch_size / statistics.median(times)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = _row(shape, "naive", "naive", shape.tokens, rate, peak_memory_mb(device), trainable, flops, peak, "fp32, PIL + processor per step")
    del model, optimizer, backbone
    _free(device)
    return row


# --------------------------------------------------------------------------- the peer: transformers.Trainer


def default_loader_workers() -> int:
    """DataLoader worker processes for the Trainer row: one per core, at most 8."""
    return min(8, os.cpu_count() or 1)


class JpegFolderDataset(torch.utils.data.Dataset):
    """``length`` items cycling over ``paths``: each opens its JPEG with PIL and runs the model's image processor on it."""

    def __init__(self, paths: Sequence[Path | str], labels: Sequence[int], processor: Any, length: int | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.labels = [int(label) for label in labels]
        self.processor = processor
        self.length = length or len(self.paths)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = index % len(self.paths)
        with Image.open(self.paths[i]) as image:
            pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": self.labels[i]}


class StepClock(transformers.TrainerCallback):
    """Wall-clock time at the end of chosen optimizer steps (0: the start of training).

    It waits for the device only at those steps, so the Trainer's own pipelining is left alone.
    """

    def __init__(self, marks: Sequence[int], device: torch.device) -> None:
        self.marks = set(marks)
        self.device = device
        self.times: dict[int, float] = {}

    def _mark(self, step: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times[step] = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Mark step 0 (before the first batch is fetched) when it was asked for."""
        if 0 in self.marks:
            self._mark(0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Mark the optimizer step just finished when it is one of the chosen ones."""
        if state.global_step in self.marks:
            self._mark(state.global_step)


@dataclass
class PeerRun:
    """What one ``transformers.Trainer`` run measured; ``epoch_seconds`` are wall times between epoch ends."""

    epoch_seconds: list[float]
    trainer_samples_per_second: float
    peak_memory_mb: float
    trainable_parameters: int
    processor: str
    workers: int


def save_as_pretrained(backbone: Backbone, processor: Any, directory: Path) -> Path:
    """Write an in-memory backbone and its image processor where ``from_pretrained`` finds them, as a user's checkpoint."""
    backbone.model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def peer_training_arguments(output_dir: Path, device: torch.device, batch_size: int, epochs: int, workers: int, compile_model: bool = False) -> transformers.TrainingArguments:
    """The settings a user of ``transformers.Trainer`` would pick for this job: no evaluation, saving or reporting."""
    cuda = device.type == "cuda"
    return transformers.TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size, num_train_epochs=epochs, learning_rate=1e-5,
        optim="adamw_torch_fused" if cuda else "adamw_torch", bf16=cuda, tf32=True if cuda else None, use_cpu=not cuda,
        dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0, torch_compile=compile_model,
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True, log_level="error", seed=0,
    )


def train_with_hf_trainer(
    model_dir: str | Path, paths: Sequence[Path | str], labels: Sequence[int], device: torch.device, output_dir: Path,
    batch_size: int, epochs: int, length: int | None = None, workers: int | None = None, compile_model: bool = False,
) -> PeerRun:
    """Fine-tune ``AutoModelForImageClassification.from_pretrained(model_dir)`` with ``transformers.Trainer``.

    Each epoch is ``length`` items (default: one per file) of :class:`JpegFolderDataset` through the Trainer's
    DataLoader with ``workers`` processes (persistent across epochs). Epoch ``k``'s time runs from the end of
    epoch ``k - 1`` (the start of training for the first) to the end of its last step.
    """
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageClassification,
        Trainer,
    )

    workers = default_loader_workers() if workers is None else workers
    processor = AutoImageProcessor.from_pretrained(str(model_dir))
    names = list(HAR_CLASSES)
    with quiet_default_config_warnings():
        model = AutoModelForImageClassification.from_pretrained(
            str(model_dir), num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            attn_implementation="sdpa", dtype=torch.float32,
        )
    dataset = JpegFolderDataset(paths, labels, processor, length)
    steps = -(-len(dataset) // batch_size)
    clock = StepClock([k * steps for k in range(epochs + 1)], device)
    args = peer_training_arguments(output_dir, device, batch_size, epochs, workers, compile_model)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[clock])
    trainer.remove_callback(transformers.PrinterCallback)  # it prints the closing metrics dict; the row reports them
    _free(device)
    reset_peak_memory(device)
    metrics = trainer.train().metrics
    marks = [clock.times[k * steps] for k in range(epochs + 1)]
    run = PeerRun(
        epoch_seconds=[b - a for a, b in zip(marks, marks[1:])], trainer_samples_per_second=float(metrics["train_samples_per_second"]),
        peak_memory_mb=peak_memory_mb(device), trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        processor=type(processor).__name__, workers=workers,
    )
    del trainer, model
    _free(device)
    return run


def run_trainer(shape: Shape, paths: Sequence[Path], args: argparse.Namespace, device: torch.device, peak: float | None, workdir: Path) -> Row:
    """The peer: ``transformers.Trainer`` on ``--images`` items per epoch cycling over the JPEGs; img/s from the last epoch."""
    flops = train_flops_per_image(shape, "trainer")
    seed_everything(0)
    model_dir = save_as_pretrained(build_backbone(shape, device), _image_processor(shape), workdir / f"{shape.name}-checkpoint")
    _free(device)
    labels = np.arange(len(paths)) % len(HAR_CLASSES)
    try:
        run = train_with_hf_trainer(
            model_dir, paths, labels, device, workdir / f"{shape.name}-trainer", args.batch_size, args.epochs,
            length=args.images, workers=args.trainer_workers, compile_model=args.compile,
        )
    except torch.OutOfMemoryError:
        _free(device)
        return _row(shape, "trainer", "trainer", shape.tokens, None, None, None, flops, peak, "out of memory")
    except Exception as error:  # noqa: BLE001 - a broken peer (e.g. loader workers without shared memory) must not lose the other rows
        traceback.print_exc()
        _free(device)
        return _row(shape, "trainer", "trainer", shape.tokens, None, None, None, flops, peak, f"failed: {type(error).__name__}: {error}"[:200])
    rate = args.images / run.epoch_seconds[-1]
    note = f"HF Trainer, {run.processor} in {run.workers} workers{', bf16' if device.type == 'cuda' else ''}; Trainer's own {run.trainer_samples_per_second:.1f} img/s incl. warm-up"
    return _row(shape, "trainer", "trainer", shape.tokens, rate, run.peak_memory_mb, run.trainable_parameters, flops, peak, note)


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(rows: Sequence[Row], memory_label: str) -> str:
    header = f"{'model':<11} {'method':<19} {'tokens':>6} {'img/s':>9} {'s/epoch':>8} {'GFLOP/img':>10} {'TFLOP/s':>8} {'MFU':>6} {memory_label:>10} {'trainable':>12}  note"
    lines = [header]
    for r in rows:
        lines.append(
            f"{r.model:<11} {r.method:<19} {r.tokens:>6} {_fmt(r.images_per_second, '9.1f'):>9} {_fmt(r.epoch_seconds, '8.2f'):>8} "
            f"{r.gflops_per_image:>10.3f} {_fmt(r.tflops, '8.3f'):>8} {'-' if r.mfu is None else format(100 * r.mfu, '5.1f') + '%':>6} "
            f"{_fmt(r.peak_memory_gib, '10.2f'):>10} {_fmt(r.trainable_parameters, ',d'):>12}  {r.note}".rstrip()
        )
    return "\n".join(lines)


def peer_ratios(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Per model, ours (the full fine-tune) over each baseline that was measured: ``{"trainer": x, "naive": y}``."""
    by_key = {(r.model, r.method): r for r in rows}
    out: dict[str, dict[str, float]] = {}
    for model in dict.fromkeys(r.model for r in rows):
        full = by_key.get((model, "full"))
        if full is None or not full.images_per_second:
            continue
        for peer in ("trainer", "naive"):
            other = by_key.get((model, peer))
            if other is not None and other.images_per_second:
                out.setdefault(model, {})[peer] = full.images_per_second / other.images_per_second
    return out


def ratios(rows: Sequence[Row]) -> list[str]:
    """Each method against the same model's full fine-tune, then ours (full) against the Trainer and the naive loop."""
    out = []
    by_key = {(r.model, r.method): r for r in rows}
    for model in dict.fromkeys(r.model for r in rows):
        full = by_key.get((model, "full"))
        if full is None or not full.images_per_second:
            continue
        for r in rows:
            if r.model == model and r.images_per_second and (r.method.startswith("aclip") or r.method in ("lora", "naive", "trainer")):
                out.append(f"{model}: {r.method} / full = {r.images_per_second / full.images_per_second:.2f}x img/s")
    for model, peers in peer_ratios(rows).items():
        parts = [f"ours full / {'Trainer' if peer == 'trainer' else 'naive'} = {value:.2f}x" for peer, value in peers.items()]
        out.append(f"{model}: " + ", ".join(parts) + " img/s")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto | cuda | cuda:1 | cpu")
    parser.add_argument("--tiny", action="store_true", help="toy model sizes, 64 px, batch 32: proves the script on a CPU")
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--batch-size", type=int, help="default 256 (32 with --tiny)")
    parser.add_argument("--image-size", type=int, help="tiny models only; the real ones are 224 px")
    parser.add_argument("--images", type=int, help=f"training images per epoch (default {EPOCH_IMAGES:,}; 256 with --tiny)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per row; img/s is the last one's (the first warms up)")
    parser.add_argument("--naive-steps", type=int, help="timed steps of the naive loop (default 10; 3 with --tiny)")
    parser.add_argument("--trainer-workers", type=int, default=default_loader_workers(), help="DataLoader workers of the Trainer row (default: cores, at most 8)")
    parser.add_argument("--aclip-keep", type=float, nargs="+", default=[0.5, 0.25], help="A-CLIP keep ratios, one row each")
    parser.add_argument("--aclip-ema-scales", type=float, nargs="+", default=[1.0, 0.5], help="A-CLIP ema_image_scale values, one row per keep ratio each")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--cache-on-device", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile each vision layer (first epoch compiles)")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, when its name is not in the table")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default torch's own; 1 on a busy shared machine)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    args.cache_on_device = {"auto": "auto", "true": True, "false": False}[args.cache_on_device]
    args.batch_size = args.batch_size or (32 if args.tiny else 256)
    args.images = args.images or (256 if args.tiny else EPOCH_IMAGES)
    args.naive_steps = args.naive_steps or (3 if args.tiny else 10)
    if args.image_size and not args.tiny:
        parser.error("--image-size applies to --tiny models only; the real shapes are 224 px")
    args.image_size = args.image_size or (64 if args.tiny else 224)
    if args.epochs < 1 or args.images < args.batch_size:
        parser.error("--epochs must be >= 1 and --images at least one batch (--batch-size)")
    if not all(0 < k <= 1 for k in args.aclip_keep):
        parser.error("--aclip-keep values must be in (0, 1]")
    if not all(0 < e <= 1 for e in args.aclip_ema_scales):
        parser.error("--aclip-ema-scales values must be in (0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run every row, print the table and the ratios, write ``--json``; returns the rows."""
    args = parse_args(argv)
    device = select_device(args.device)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [tiny_shape(SHAPES[name], args.image_size) if args.tiny else SHAPES[name] for name in args.models]
    peak = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    amp = autocast_dtype("auto", device)
    rng = np.random.default_rng(0)
    size = shapes[0].image_size
    train = Split(rng.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8), np.arange(args.images) % len(HAR_CLASSES))
    val_n = min(args.batch_size, 256)
    val = Split(rng.integers(0, 256, (val_n, size, size, 3), dtype=np.uint8), np.arange(val_n) % len(HAR_CLASSES))
    cache_mode = resolve_cache_mode(args.cache_on_device, device, nbytes(train.inputs) + nbytes(val.inputs))
    print(
        f"{name}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), device {device}, torch {torch.__version__}, transformers {transformers.__version__}\n"
        f"{'tiny models, ' if args.tiny else ''}{size} px, batch {args.batch_size}, {args.images:,} images x {args.epochs} epochs per row, "
        f"autocast {amp or 'off (fp32)'}, SDPA attention, fused AdamW {'on' if device.type == 'cuda' else 'off'}, "
        f"images {cache_mode} (cache_on_device {args.cache_on_device}), compile {args.compile}, "
        f"activation checkpointing {args.activation_checkpointing}, TF32 {'on' if device.type == 'cuda' else 'n/a'}\n"
        f"MFU against {f'{peak:g} TFLOP/s dense bf16' if peak else 'no known peak for this device (give --peak-tflops)'}; "
        f"s/epoch is for {EPOCH_IMAGES:,} images at the measured rate"
    )
    rows: list[Row] = []
    memory_label = "peak GiB" if device.type == "cuda" else "RSS GiB"
    print(format_table([], memory_label), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths: list[Path] = []
        if "naive" in args.methods or "trainer" in args.methods:
            jpeg = (320, 240) if not args.tiny else (96, 72)
            paths = write_jpegs(Path(tmp) / "jpegs", min(args.images, 512), jpeg)
        for shape in shapes:
            for method in args.methods:
                if method == "aclip" and shape.family != "clip":
                    continue  # A-CLIP scores patches by [CLS] attention; SigLIP has no [CLS]
                variants = [(k, e) for k in args.aclip_keep for e in args.aclip_ema_scales] if method == "aclip" else [(0.5, 1.0)]
                for keep, ema_scale in variants:
                    if method == "naive":
                        rows.append(run_naive(shape, paths, args, device, peak))
                    elif method == "trainer":
                        rows.append(run_trainer(shape, paths, args, device, peak, Path(tmp)))
                    else:
                        rows.append(run_ours(shape, method, keep, {"train": train, "val": val}, args, device, peak, ema_scale))
                    print(format_table(rows[-1:], memory_label).splitlines()[-1], flush=True)
    for line in ratios(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
