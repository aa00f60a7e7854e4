"""Decode+resize throughput: har_kedro's cache builder against the naive PIL loop, in one run.

    python benchmarks/preprocessing_throughput.py            # real HAR sample + ~400x300 and 1600x1200 JPEGs
    python benchmarks/preprocessing_throughput.py --source-dir data/01_raw/har/train

Without --source-dir it times the real HAR sample photographs (Kaggle layout, ``train/*.jpg``)
from ``$HAR_REAL_SAMPLE`` (default ``../shared/data/har_real_sample`` next to the repository;
skipped with a message when absent), then JPEG crops of the two real photographs that
scikit-learn ships (no download) written to a temporary folder. Files are read once before
timing so every contender starts from the page cache.

Columns: the naive loop and ``decode_into`` into an in-memory array, then the whole cache
write as preprocessing does it (``ContentAddressedArrayDataset.save`` of one split, flushed
to disk): through one memory map of the whole split (the previous write path, whose resident
memory grows with the split) and in blocks of 256 images appended to the file (the current one),
the two taking turns (first one, then the other, then the other way round).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from har_kedro.data.decoding import decode_chunks, decode_into
from har_kedro.data.parallel import resolve_workers
from har_kedro.datasets import ArrayBundle, ContentAddressedArrayDataset, LazyArray

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = REPO.parent / "shared" / "data" / "har_real_sample"


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


def cache_write(paths: list[str], size: int, workers: int | str, store: Path, chunked: bool) -> float:
    """Seconds to save one split's images the way preprocessing does, to a fresh store."""
    shape = (len(paths), size, size, 3)
    if chunked:
        lazy = LazyArray(shape, "uint8", blocks=lambda: decode_chunks(paths, size, "bilinear", workers, progress=False))
    else:
        lazy = LazyArray(shape, "uint8", fill=lambda out: decode_into(paths, out, size, "bilinear", workers, progress=False))
    dataset = ContentAddressedArrayDataset(str(store / "cache.json"), str(store / "store"))
    start = time.perf_counter()
    dataset.save(ArrayBundle("images", {"x": lazy}))
    seconds = time.perf_counter() - start
    shutil.rmtree(store)
    return seconds


def best_cache_writes(paths: list[str], size: int, workers: int | str, repeats: int) -> tuple[float, float]:
    """Best seconds of the memory-map and the chunked write paths, timed alternately (ABBA...)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for chunked in (False, True) if repeat % 2 == 0 else (True, False):
                times[chunked].append(cache_write(paths, size, workers, Path(tmp) / "store", chunked))
    return min(times[False]), min(times[True])


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
    t_memmap, t_chunks = best_cache_writes(paths, size, workers, repeats)
    n = len(paths)
    print(f"{label:<22} {n:>6} {n / t_naive:>14.0f} {n / t_ours:>14.0f} {t_naive / t_ours:>8.2f}x"
          f" {n / t_memmap:>13.0f} {n / t_chunks:>13.0f}", flush=True)


def real_sample_paths() -> list[str] | None:
    """The real HAR sample's JPEGs, or None (with a message) when the folder is absent."""
    folder = Path(os.environ.get("HAR_REAL_SAMPLE", DEFAULT_SAMPLE)) / "train"
    if not folder.is_dir():
        print(f"real HAR sample: skipped, no folder {folder} (set HAR_REAL_SAMPLE to a Kaggle-layout folder)")
        return None
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})


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
    print(f"{'':<22} {'':>6} {'decode to memory, img/s':>30} {'':>9} {'cache to .npy, img/s':>27}")
    print(f"{'images':<22} {'count':>6} {'naive':>14} {'har_kedro':>14} {'speed-up':>9} {'memmap':>13} {'chunks':>13}")
    if args.source_dir:
        paths = sorted(str(p) for p in args.source_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
        run(str(args.source_dir), paths, args.size, workers, args.repeats)
        return
    sample = real_sample_paths()
    if sample:
        run("real HAR sample", sample, args.size, workers, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((400, 300), (1600, 1200)):
            folder = Path(tmp) / f"{width}x{height}"
            folder.mkdir()
            paths = make_jpegs(folder, args.images, width, height)
            run(f"JPEG {width}x{height}", paths, args.size, workers, args.repeats)


if __name__ == "__main__":
    main()
