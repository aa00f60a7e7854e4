"""Training throughput per method, against the Hugging Face Trainer and a naive loop on the same images, in one run.

    python benchmarks/training_throughput.py                       # tiny CLIP + SigLIP on CPU
    python benchmarks/training_throughput.py --images 960 --epochs 3 --batch-size 64
    python benchmarks/training_throughput.py --device cuda --clip /models/clip-vit-base-patch16 \\
        --siglip /models/siglip-base-patch16-224 --image-size 224

Data: the demo generator writes JPEGs (Kaggle layout) to a temporary folder. The three loops
train on exactly those files, with the same backbone, batch size and optimizer (AdamW).

* ours: the files are decoded once into the uint8 cache (timed, reported apart); each method
  then trains through ``har_kedro.training.loop.fit`` (augmentation on tensors, head from the
  class prompts, AMP where the device has it). A linear probe runs the backbone once to cache
  features; its feature pass is reported apart from its epochs.
* trainer: the peer a user would pick instead, ``transformers.Trainer`` fine-tuning
  ``AutoModelForImageClassification.from_pretrained(backbone)`` (``CLIPForImageClassification`` /
  ``SiglipForImageClassification``: the backbone's vision weights, mean-pooled tokens into a new
  linear classifier, every weight trained) on a ``torch.utils.data.Dataset`` that opens each JPEG
  with PIL and runs ``AutoImageProcessor.from_pretrained(backbone)`` on it, through the Trainer's
  DataLoader with ``--trainer-workers`` persistent worker processes (default min(8, cores));
  AdamW (fused on CUDA), bf16 and TF32 on CUDA only, no evaluation, saving or reporting. Its
  epochs are timed by a callback (see ``gpu_training.train_with_hf_trainer``); the Trainer's own
  ``train_samples_per_second``, which includes the first epoch and the workers' start, is printed
  beside it.
* naive: what public HAR fine-tuning scripts do every step: open the JPEGs with PIL, run the
  HuggingFace image processor, tokenize the class prompts, run the whole two-tower model in
  fp32 and take cross-entropy on ``logits_per_image`` (full fine-tune).

Figures are training images per second, median over the epochs after the first (warm-up);
evaluation is excluded everywhere. The ratios printed are ours (full) / Trainer and ours (full) /
naive (full).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.decoding import decode_into
from har_kedro.data.prompts import build_class_prompts
from har_kedro.demo import DemoSpec, generate_demo_dataset
from har_kedro.models.backbones import load_backbone
from har_kedro.models.classifier import FeatureClassifier
from har_kedro.models.device import select_device
from har_kedro.models.methods import count_parameters, set_trainable
from har_kedro.models.tiny import build_tiny_backbone
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.loop import Split, fit
from har_kedro.training.runner import cache_features
from har_kedro.training.seeding import seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_training import default_loader_workers, train_with_hf_trainer  # noqa: E402  (the peer, shared with the GPU script)

LOSS = {"clip": "cross_entropy", "siglip": "sigmoid"}
METHODS = ("linear_probe", "lora", "full")


def make_images(folder: Path, count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``count`` demo JPEGs (about 96-160 px) and their label ids, read back from the CSV."""
    per_class = math.ceil(count / len(HAR_CLASSES))
    generate_demo_dataset(folder, DemoSpec(images_per_class=per_class, include_broken=False, seed=seed))
    with open(folder / "Training_set.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:count]
    paths = [str(folder / "train" / row["filename"]) for row in rows]
    labels = np.array([HAR_CLASSES.index(row["label"]) for row in rows], dtype=np.int64)
    return paths, labels


def steady_rate(history: list[dict]) -> float:
    """Median img/s over the epochs after the first, which pays for warm-up and allocation."""
    rates = [row["images_per_second"] for row in history]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def run_ours(method: str, family: str, source: str, cache: np.ndarray, labels: np.ndarray, args: argparse.Namespace, device: torch.device) -> dict:
    config = TrainConfig.from_params(dict(
        method=method, loss=LOSS[family], epochs=args.epochs, batch_size=args.batch_size,
        effective_batch_size=args.batch_size, eval_batch_size=256, lr=1e-4, probe_lr=1e-3,
        early_stopping_patience=0, device=str(device), progress=False,
        lora={"rank": 8, "alpha": 16, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj", "out_proj"]},
        augment={"random_resized_crop": True, "horizontal_flip": True},
    ))
    seed_everything(0)
    backbone = load_backbone(source)
    prompts = build_class_prompts(HAR_CLASSES)
    model = training_classifier(backbone, HAR_CLASSES, prompts, config, device, args.image_size)
    val = slice(0, min(32, len(labels)))
    feature_seconds = 0.0
    if method == "linear_probe":
        start = time.perf_counter()
        features = cache_features(model, cache, config.eval_batch_size, device)
        feature_seconds = time.perf_counter() - start
        model = FeatureClassifier(model.head)
        set_trainable(model, "linear_probe")
        train, valid = Split(features, labels), Split(features[val], labels[val])
        config = dataclasses.replace(config, lr=config.probe_lr)
    else:
        train, valid = Split(cache, labels), Split(cache[val], labels[val])
    result = fit(model, train, valid, config, device, seed=0)
    trainable, total = count_parameters(model)
    return {
        "loop": "ours", "family": family, "method": method, "images_per_second": steady_rate(result.history),
        "epoch_seconds": statistics.median(r["seconds"] for r in result.history), "feature_pass_seconds": feature_seconds,
        "trainable_parameters": trainable, "peak_memory_mb": result.peak_memory_mb,
    }


def run_naive(family: str, source: str, paths: list[str], labels: np.ndarray, args: argparse.Namespace, device: torch.device) -> dict:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(source).to(device).train()
    processor = AutoImageProcessor.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    prompts = [texts[0] for texts in build_class_prompts(HAR_CLASSES).values()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(args.epochs):
        order = rng.permutation(len(paths))
        start = time.perf_counter()
        for i in range(0, len(order), args.batch_size):
            index = order[i : i + args.batch_size]
            images = [Image.open(paths[j]).convert("RGB") for j in index]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
            text = tokenizer(prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length if tokenizer.model_max_length < 10_000 else 64, return_tensors="pt").to(device)
            out = model(input_ids=text["input_ids"], attention_mask=text.get("attention_mask"), pixel_values=pixels)
            loss = torch.nn.functional.cross_entropy(out.logits_per_image, torch.from_numpy(labels[index]).to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates.append(len(paths) / (time.perf_counter() - start))
    rate = statistics.median(rates[1:] if len(rates) > 1 else rates)
    trainable = sum(p.numel() for p in model.parameters())
    return {"loop": "naive", "family": family, "method": "full", "images_per_second": rate, "epoch_seconds": len(paths) / rate, "feature_pass_seconds": 0.0, "trainable_parameters": trainable, "peak_memory_mb": float("nan")}


def run_trainer(family: str, source: str, paths: list[str], labels: np.ndarray, args: argparse.Namespace, device: torch.device, workdir: Path) -> dict:
    """The peer: ``transformers.Trainer`` fine-tuning ``AutoModelForImageClassification`` on the JPEGs (full)."""
    torch.manual_seed(0)
    run = train_with_hf_trainer(source, paths, labels.tolist(), device, workdir / f"trainer_{family}", args.batch_size, args.epochs, workers=args.trainer_workers)
    rates = [len(paths) / seconds for seconds in run.epoch_seconds]
    rate = statistics.median(rates[1:] if len(rates) > 1 else rates)
    return {
        "loop": "trainer", "family": family, "method": "full", "images_per_second": rate, "epoch_seconds": len(paths) / rate,
        "feature_pass_seconds": 0.0, "trainable_parameters": run.trainable_parameters, "peak_memory_mb": run.peak_memory_mb,
        "trainer_samples_per_second": run.trainer_samples_per_second, "processor": run.processor, "workers": run.workers,
    }


def main() -> None:
    """Decode once, then time ours per method, the Trainer and the naive loop per family; print rows and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=480, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop; the first is warm-up")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64, help="model input size (tiny models are built for it)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps")
    parser.add_argument("--clip", help="local CLIP directory or Hub id (default: a tiny CLIP built here)")
    parser.add_argument("--siglip", help="local SigLIP directory or Hub id (default: a tiny SigLIP built here)")
    parser.add_argument("--families", nargs="+", default=["clip", "siglip"], choices=["clip", "siglip"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: one per core; 1 on a busy shared machine)")
    parser.add_argument("--trainer-workers", type=int, default=default_loader_workers(), help="DataLoader workers of the Trainer row (default: cores, at most 8)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up and is not counted")
    device = select_device(args.device)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), device {device}, torch {torch.__version__}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = make_images(Path(tmp) / "har", args.images, seed=0)
        start = time.perf_counter()
        cache = np.empty((len(paths), args.image_size, args.image_size, 3), np.uint8)
        decode_into(paths, cache, args.image_size, progress=False)
        print(f"{len(paths)} JPEGs, decoded once into the uint8 cache in {time.perf_counter() - start:.2f} s (not counted below)")
        vocabulary = [t for texts in build_class_prompts(HAR_CLASSES).values() for t in texts]
        for family in args.families:
            source = getattr(args, family) or str(build_tiny_backbone(family, Path(tmp) / f"tiny_{family}", vocabulary, image_size=args.image_size))
            for method in args.methods:
                rows.append(run_ours(method, family, source, cache, labels, args, device))
                print(_format(rows[-1]))
            rows.append(run_trainer(family, source, paths, labels, args, device, Path(tmp)))
            print(_format(rows[-1]))
            rows.append(run_naive(family, source, paths, labels, args, device))
            print(_format(rows[-1]))
            line = ratio_line(rows, family)
            if line:
                print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


def ratio_line(rows: list[dict], family: str) -> str:
    """Ours (full) over the Trainer and over the naive loop, for ``family``; empty without an ours-full row."""
    rate = {r["loop"]: r["images_per_second"] for r in rows if r["family"] == family and r["method"] == "full"}
    if "ours" not in rate:
        return ""
    parts = [f"ours full / {name} full = {rate['ours'] / rate[loop]:.2f}x" for loop, name in (("trainer", "Trainer"), ("naive", "naive")) if rate.get(loop)]
    return f"  {family}: " + ", ".join(parts)


def _format(row: dict) -> str:
    extra = f", feature pass {row['feature_pass_seconds']:.2f} s once" if row["feature_pass_seconds"] else ""
    if row["loop"] == "trainer":
        extra = f", {row['processor']} in {row['workers']} workers; Trainer's own {row['trainer_samples_per_second']:.1f} img/s incl. warm-up"
    return (
        f"  {row['family']:<6} {row['loop']:<7} {row['method']:<12} {row['images_per_second']:9.1f} img/s"
        f"  {row['epoch_seconds']:7.2f} s/epoch  {row['trainable_parameters']:>11,} trainable{extra}"
    )


if __name__ == "__main__":
    main()
