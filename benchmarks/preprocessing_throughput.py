"""Decode+resize throughput: har_kedro's cache builder against the naive PIL loop, in one run.

    python benchmarks/preprocessing_throughput.py            # ~400x300 and 1600x1200 JPEGs
    python benchmarks/preprocessing_throughput.py --source-dir data/01_raw/har/train

Without --source-dir it writes JPEG crops of the two real photographs that scikit-learn
ships (no download) to a temporary folder. Files are read once before timing so both
loops start from the page cache.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from har_kedro.data.decoding import decode_into
from har_kedro.data.parallel import resolve_workers


def make_jpegs(folder: Path, count: int, width: int, height: int, seed: int = 0) -> list[str]:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = max(width / photo.width, height / photo.height) * float(rng.uniform(1.0, 1.5))
        big = photo.resize((int(photo.width * scale) + 1, int(photo.height * scale) + 1), Image.Resampling.BILINEAR)
        x = int(rng.integers(0, big.width - width + 1))
        y = int(rng.integers(0, big.height - height + 1))
        path = folder / f"Image_{i}.jpg"
        big.crop((x, y, x + width, y + height)).save(path, "JPEG", quality=90)
        paths.append(str(path))
    return paths


def naive(paths: list[str], size: int) -> np.ndarray:
    """What public HAR projects do: open, convert, resize, one image at a time."""
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths])


def ours(paths: list[str], size: int, workers: int | str) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), np.uint8)
    decode_into(paths, out, size, "bilinear", workers, progress=False)
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(label: str, paths: list[str], size: int, workers: int | str, repeats: int) -> None:
    for p in paths:
        Path(p).read_bytes()  # warm the page cache for both contenders
    t_naive = best_of(lambda: naive(paths, size), repeats)
    t_ours = best_of(lambda: ours(paths, size, workers), repeats)
    n = len(paths)
    print(f"{label:<22} {n:>6} {n / t_naive:>14.0f} {n / t_ours:>14.0f} {t_naive / t_ours:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="images per generated set")
    parser.add_argument("--size", type=int, default=224, help="output side in pixels")
    parser.add_argument("--workers", default="auto", help="threads for har_kedro ('auto' = all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    parser.add_argument("--source-dir", type=Path, help="benchmark the JPEGs in this folder instead")
    args = parser.parse_args()
    workers = args.workers if args.workers == "auto" else int(args.workers)

    print(f"python {platform.python_version()}, Pillow {Image.__version__}, {resolve_workers(workers)} worker threads, "
          f"{os.cpu_count()} CPUs visible, output {args.size}x{args.size}")
    print(f"{'images':<22} {'count':>6} {'naive img/s':>14} {'har_kedro img/s':>14} {'speed-up':>9}")
    if args.source_dir:
        paths = sorted(str(p) for p in args.source_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
        run(str(args.source_dir), paths, args.size, workers, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((400, 300), (1600, 1200)):
            folder = Path(tmp) / f"{width}x{height}"
            folder.mkdir()
            paths = make_jpegs(folder, args.images, width, height)
            run(f"JPEG {width}x{height}", paths, args.size, workers, args.repeats)


if __name__ == "__main__":
    main()
