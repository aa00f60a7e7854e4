"""A-CLIP's training step against a full-token fine-tuning step of the same backbone, in one run.

    python benchmarks/aclip_step.py                                   # tiny CLIP (8x8 grid) on CPU
    python benchmarks/aclip_step.py --device cuda --clip /models/clip-vit-base-patch16 --image-size 224

Both steps run forward + backward on the same uint8 batch in training mode (augmentation
included, no optimizer step), timed by ``har_kedro.models.aclip.measure_step_speedup``:

* A-CLIP: the EMA tower scores the whole image (no gradients; at ``--ema-scales`` of the side,
  1.0 = full size), the online tower trains on [CLS] + the kept patch tokens, losses contrastive
  + cross-entropy + distillation;
* full-token: the online tower on every token, contrastive + cross-entropy.

Medians over ``--repeats`` after one warm-up pair; bf16 autocast on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch
import transformers

from har_kedro.config.training import TrainConfig
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.prompts import build_class_prompts
from har_kedro.models.aclip import measure_step_speedup
from har_kedro.models.backbones import load_backbone
from har_kedro.models.device import autocast, autocast_dtype, select_device
from har_kedro.models.tiny import build_tiny_backbone
from har_kedro.training.fast_path import training_classifier
from har_kedro.training.seeding import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", help="local CLIP directory or Hub id (default: the demo's tiny CLIP, built here)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--keep-ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--ema-scales", type=float, nargs="+", default=[1.0, 0.5], help="aclip.ema_image_scale values, one row each")
    parser.add_argument("--selections", nargs="+", default=["attentive", "random"], choices=["attentive", "random"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not all(0 < s <= 1 for s in args.ema_scales):
        parser.error("--ema-scales values must be in (0, 1]")
    device = select_device(args.device)
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {device}, torch {torch.__version__}")
    prompts = build_class_prompts(HAR_CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        vocabulary = [t for texts in prompts.values() for t in texts]
        source = args.clip or str(build_tiny_backbone("clip", Path(tmp) / "tiny_clip", vocabulary, image_size=args.image_size))
        print(f"backbone {args.clip or 'tiny CLIP (2 layers, width 64, patch 8)'}, {args.image_size} px")
        print(f"{'selection':<10} {'keep':>5} {'tokens':>9} {'EMA view':>9} {'batch':>6} {'A-CLIP ms':>10} {'full ms':>9} {'speed-up':>9}")
        for selection in args.selections:
            for keep, ema_scale in [(k, e) for k in args.keep_ratios for e in args.ema_scales]:
                aclip = {"selection": selection, "keep_ratio": keep, "ema_image_scale": ema_scale}
                config = TrainConfig.from_params(dict(method="full", loss="contrastive", device=str(device), progress=False, aclip=aclip))
                seed_everything(0)
                model = training_classifier(load_backbone(source), HAR_CLASSES, prompts, config, device, args.image_size)
                view = f"{model.ema_image_size}px"
                for batch in args.batch_sizes:
                    images = torch.randint(0, 256, (batch, args.image_size, args.image_size, 3), dtype=torch.uint8)
                    labels = torch.arange(batch) % len(HAR_CLASSES)
                    with autocast(device, autocast_dtype("auto", device)):
                        r = measure_step_speedup(model, images, labels, args.repeats)
                    print(
                        f"{selection:<10} {keep:>5.2f} {1 + model.keep:>4}/{1 + model.num_patches:<4} {view:>9} {batch:>6} "
                        f"{1e3 * r['masked_step_seconds']:>10.1f} {1e3 * r['full_step_seconds']:>9.1f} {r['masked_step_speedup']:>8.2f}x"
                    )


if __name__ == "__main__":
    main()
