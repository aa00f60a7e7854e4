"""Ingestion at the real data set's size, near-duplicate detection included.

    python benchmarks/ingestion_near_duplicates.py                 # 12,600 images built from the HAR sample
    python benchmarks/ingestion_near_duplicates.py --root data/01_raw/har   # the real data set, where the README puts it

Without ``--root`` it writes a Kaggle layout of 12,600 JPEGs (the size of the real labelled set) into a
temporary folder: each of the 600 sample photographs (``$HAR_REAL_SAMPLE``, default
``../shared/data/har_real_sample``) as 21 different pictures (crops of 60-85 % of the frame at
different places, every other one mirrored), plus ``--copies`` planted near-duplicates (a re-encode,
a half-size copy and a 1 % crop of sample photographs). It then times ``ingest`` (listing,
decoding, hashing, near-duplicate search, split) and, on its own, the pair search over the
12,600 hashes, and prints the groups found; then ``ingest`` again with grouping off.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from har_kedro.data.ingestion import ingest, summarise
from har_kedro.data.near_duplicates import DEFAULT_MAX_DISTANCE, hash_words, near_pairs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = REPO.parent / "shared" / "data" / "har_real_sample"
VARIANTS = 21  # 600 x 21 = 12,600


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _variant(photo: Image.Image, k: int, rng: np.random.Generator) -> Image.Image:
    scale = float(rng.uniform(0.6, 0.85))
    w, h = max(8, int(photo.width * scale)), max(8, int(photo.height * scale))
    x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
    crop = photo.crop((x, y, x + w, y + h))
    return ImageOps.mirror(crop) if k % 2 else crop


def _planted(photo: Image.Image, kind: int) -> bytes:
    if kind == 0:
        return _jpeg(photo, quality=40)
    if kind == 1:
        return _jpeg(photo.resize((photo.width // 2, photo.height // 2)))
    dx, dy = max(1, photo.width // 100), max(1, photo.height // 100)
    return _jpeg(photo.crop((dx, dy, photo.width - dx, photo.height - dy)))


def build_layout(sample: Path, out: Path, copies: int) -> int:
    """The Kaggle layout described above; returns the number of planted near-duplicate pairs."""
    rows = [line.split(",") for line in (sample / "Training_set.csv").read_text().splitlines()[1:] if line]
    (out / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines, n = ["filename,label"], 0
    for i, (name, label) in enumerate(rows):
        photo = Image.open(sample / "train" / name).convert("RGB")
        for k in range(VARIANTS):
            n += 1
            data = (sample / "train" / name).read_bytes() if k == 0 else _jpeg(_variant(photo, k, rng))
            (out / "train" / f"Image_{n}.jpg").write_bytes(data)
            lines.append(f"Image_{n}.jpg,{label}")
        if i < copies:  # a near-duplicate of the original (k == 0), with the same label
            n += 1
            (out / "train" / f"Image_{n}.jpg").write_bytes(_planted(photo, i % 3))
            lines.append(f"Image_{n}.jpg,{label}")
    (out / "Training_set.csv").write_text("\n".join(lines) + "\n")
    return copies


def run(root: Path) -> None:
    params = {"split": {"fractions": {"train": 0.8, "val": 0.1, "test": 0.1}, "seed": 42}, "progress": False}
    start = time.perf_counter()
    manifest, rejected = ingest({"kind": "kaggle", "root": str(root)}, params)
    seconds = time.perf_counter() - start
    summary = summarise(manifest, rejected)
    words = hash_words(manifest["dhash"].tolist())
    start = time.perf_counter()
    pairs = near_pairs(words, DEFAULT_MAX_DISTANCE)
    search = time.perf_counter() - start
    split_per_group = manifest.groupby("group_id")["split"].nunique()
    print(f"ingest: {len(manifest):,} kept, {len(rejected):,} rejected in {seconds:.1f} s")
    print(f"  near-duplicate groups {summary['near_duplicate_groups']}, images in them {summary['near_duplicate_images']}, "
          f"groups across splits {int((split_per_group > 1).sum())}")
    print(f"pair search alone: {len(words):,} hashes, {len(words) * (len(words) - 1) // 2:,} pairs, "
          f"{len(pairs)} within {DEFAULT_MAX_DISTANCE} bits, {search:.2f} s")
    start = time.perf_counter()
    ingest({"kind": "kaggle", "root": str(root)}, {**params, "near_duplicates": {"max_distance": None}})
    print(f"ingest with near_duplicates.max_distance: null (no grouping; hashes still computed): {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="a Kaggle layout to ingest instead of the built one")
    parser.add_argument("--copies", type=int, default=30, help="planted near-duplicate pairs (built layout)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if args.root:
        run(args.root)
        return
    sample = Path(os.environ.get("HAR_REAL_SAMPLE") or DEFAULT_SAMPLE)
    if not (sample / "Training_set.csv").is_file():
        raise SystemExit(f"the HAR sample is not at {sample}: set HAR_REAL_SAMPLE or pass --root.")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        planted = build_layout(sample, Path(tmp) / "har", args.copies)
        print(f"built 12,600 + {planted} JPEGs from the sample in {time.perf_counter() - start:.0f} s")
        run(Path(tmp) / "har")


if __name__ == "__main__":
    main()
