"""Peak memory and throughput of ``kedro run --pipeline=preprocessing`` on real photographs.

    python benchmarks/preprocessing_memory.py                    # sample as is + 21 variants per photo
    python benchmarks/preprocessing_memory.py --variants 21 --workdir /tmp/har_mem --keep

It reads the real HAR sample (Kaggle layout: ``Training_set.csv`` + ``train/Image_N.jpg``) from
``$HAR_REAL_SAMPLE`` (default ``../shared/data/har_real_sample`` next to the repository) and
never copies it into the repository. Two data sets are measured:

* ``sample``: the sample folder as it is;
* ``variants``: every sample photo re-encoded ``--variants`` times under new names (JPEG quality
  95, 94, ... and, should two encodings still be byte-identical, a 1-pixel shift), so each file
  has its own content hash and ingestion keeps all of them.

For each, a throw-away copy of the project's configuration (as tests/pipelines/conftest.py makes
it) gets ``conf/local`` overrides pointing ``data_root`` and ``ingestion.source.root`` at the
temporary folder; then ``kedro run --pipeline=ingestion`` runs once and
``kedro run --pipeline=preprocessing`` twice, each under ``/usr/bin/time -v``. The first
preprocessing run ("build") decodes and writes the cache; the second ("reuse") finds the same
fingerprint in the store and decodes nothing, so it shows Kedro's fixed cost (start-up,
imports, catalog). Printed per data set: images cached; peak RSS ("Maximum resident set
size") and wall time of both runs; the seconds of the ``build_image_cache`` node (from
"Running node" to "Completed" in Kedro's log, which includes decoding and writing the cache,
flushed to disk) and images per second over them; CPU milliseconds per image (user + system
time of the build run minus the reuse run, less sensitive than wall time to other load on the
machine); and a digest of the stored ``.npy`` files, so two code versions can be checked to
write the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = REPO.parent / "shared" / "data" / "har_real_sample"


@dataclass(frozen=True)
class RunResult:
    """What ``/usr/bin/time -v`` and Kedro's log reported for one ``kedro run``."""

    peak_rss_mb: float
    wall_s: float
    cpu_s: float
    cache_node_s: float


# Kedro's log with millisecond timestamps, to time the cache node (decoding happens when its
# output is saved, before Kedro logs the task as completed).
LOGGING = """version: 1
disable_existing_loggers: false
formatters:
  timed: {format: "%(asctime)s.%(msecs)03d %(name)s %(message)s", datefmt: "%Y-%m-%d %H:%M:%S"}
handlers:
  console: {class: logging.StreamHandler, formatter: timed, stream: ext://sys.stdout}
root: {level: INFO, handlers: [console]}
"""

def sample_dir() -> Path | None:
    """The real sample folder, or None when it is not there."""
    path = Path(os.environ.get("HAR_REAL_SAMPLE", DEFAULT_SAMPLE))
    return path if (path / "Training_set.csv").is_file() else None


def read_listing(folder: Path) -> list[tuple[str, str]]:
    """``(filename, label)`` rows of a Kaggle-layout ``Training_set.csv``."""
    with (folder / "Training_set.csv").open(newline="", encoding="utf-8") as handle:
        return [(row["filename"], row["label"]) for row in csv.DictReader(handle)]


def _encode_variant(photo: Image.Image, variant: int, shift: int) -> bytes:
    """JPEG bytes of ``photo`` at quality ``95 - variant``, shifted ``shift`` pixels to the left."""
    if shift:
        photo = photo.crop((shift, 0, photo.width, photo.height))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=95 - variant)
    return buffer.getvalue()


def _variants_of(path: Path, variants: int) -> list[bytes]:
    """``variants`` byte-distinct re-encodings of one photograph."""
    photo = Image.open(path).convert("RGB")
    seen: set[bytes] = set()
    out = []
    for variant in range(variants):
        shift = 0
        data = _encode_variant(photo, variant, shift)
        while hashlib.sha256(data).digest() in seen:
            shift += 1
            data = _encode_variant(photo, variant, shift)
        seen.add(hashlib.sha256(data).digest())
        out.append(data)
    return out


def build_variants(sample: Path, target: Path, variants: int) -> int:
    """Write a Kaggle-layout folder of ``len(sample) * variants`` distinct JPEGs; returns the count."""
    listing = read_listing(sample)
    (target / "train").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        encoded = list(pool.map(lambda row: _variants_of(sample / "train" / row[0], variants), listing))
    rows = []
    for (_, label), datas in zip(listing, encoded, strict=True):
        for data in datas:
            name = f"Image_{len(rows) + 1}.jpg"
            (target / "train" / name).write_bytes(data)
            rows.append((name, label))
    with (target / "Training_set.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return len(rows)


def make_project(root: Path, source: Path, image_size: int) -> Path:
    """A configuration-only copy of the project whose data live under ``root``."""
    root.mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    local = root / "conf" / "local"
    local.mkdir()
    (root / "src").mkdir()  # Kedro checks it exists; the package is the installed one
    (local / "globals.yml").write_text(f"data_root: {json.dumps(str(root / 'data'))}\n", encoding="utf-8")
    (local / "parameters_ingestion.yml").write_text(
        f"ingestion:\n  source:\n    kind: kaggle\n    root: {json.dumps(str(source))}\n", encoding="utf-8"
    )
    (root / "logging.yml").write_text(LOGGING, encoding="utf-8")
    (local / "parameters_preprocessing.yml").write_text(
        f"preprocessing:\n  image_size: {image_size}\n", encoding="utf-8"
    )
    return root


def _wall_seconds(text: str) -> float:
    """``h:mm:ss`` or ``m:ss.ss`` as printed by ``/usr/bin/time -v``."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _time_v(field: str, stderr: str) -> str:
    match = re.search(rf"{re.escape(field)}: (\S+)", stderr)
    if not match:
        raise RuntimeError(f"no '{field}' in /usr/bin/time -v output:\n{stderr[-2000:]}")
    return match.group(1)


def _cache_node_seconds(log: str) -> float:
    """Seconds from Kedro's "Running node: build_image_cache" to its next "Completed" line."""
    pattern = r"^(\S+ \S+) .*?(Running node: build_image_cache|Completed \d+ out of)"
    events = [(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f"), what) for stamp, what in re.findall(pattern, log, re.M)]
    for (start, what), (end, _) in zip(events, events[1:]):
        if what.startswith("Running node"):
            return (end - start).total_seconds()
    raise RuntimeError(f"no build_image_cache timing in Kedro's log:\n{log[-2000:]}")


def kedro_run(project: Path, pipeline: str) -> RunResult:
    """``kedro run --pipeline=<pipeline>`` under ``/usr/bin/time -v``; raises if it fails."""
    command = ["/usr/bin/time", "-v", "kedro", "run", f"--pipeline={pipeline}"]
    env = {**os.environ, "KEDRO_LOGGING_CONFIG": str(project / "logging.yml")}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    rss_kb = int(_time_v("Maximum resident set size (kbytes)", done.stderr))
    wall = _wall_seconds(_time_v("Elapsed (wall clock) time (h:mm:ss or m:ss)", done.stderr))
    cpu = float(_time_v("User time (seconds)", done.stderr)) + float(_time_v("System time (seconds)", done.stderr))
    node = _cache_node_seconds(done.stdout + done.stderr) if pipeline == "preprocessing" else float("nan")
    return RunResult(rss_kb / 1024, wall, cpu, node)


def store_summary(project: Path) -> tuple[int, str]:
    """Images in the (single) stored cache and a sha256 over its ``.npy`` files, in name order."""
    (blob,) = [p for p in (project / "data" / "05_model_input" / "image_cache_store").iterdir() if not p.name.startswith(".")]
    index = json.loads((blob / "index.json").read_text(encoding="utf-8"))
    images = sum(int(split["count"]) for split in index["metadata"]["splits"].values())
    digest = hashlib.sha256()
    for name in sorted(index["arrays"]):
        digest.update(name.encode())
        with (blob / f"{name}.npy").open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return images, f"{blob.name} npy-sha256 {digest.hexdigest()[:16]}"


def measure(label: str, source: Path, workdir: Path, image_size: int) -> None:
    """Ingest ``source`` once, preprocess it twice, print one line of results."""
    shutil.rmtree(workdir / f"project_{label}", ignore_errors=True)
    project = make_project(workdir / f"project_{label}", source, image_size)
    kedro_run(project, "ingestion")
    first = kedro_run(project, "preprocessing")
    second = kedro_run(project, "preprocessing")
    images, digest = store_summary(project)
    print(
        f"{label:<9} {images:>7} {first.peak_rss_mb:>9.0f} {second.peak_rss_mb:>9.0f} {first.wall_s:>8.1f} "
        f"{second.wall_s:>8.1f} {first.cache_node_s:>8.1f} {images / first.cache_node_s:>7.0f} "
        f"{1000 * (first.cpu_s - second.cpu_s) / images:>8.2f}   {digest}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=21, help="re-encodings per sample photo (21 x 600 = 12,600)")
    parser.add_argument("--size", type=int, default=224, help="preprocessing.image_size")
    parser.add_argument("--workdir", type=Path, help="keep data and projects here (default: a temp dir, removed)")
    parser.add_argument("--keep", action="store_true", help="do not delete --workdir's projects afterwards")
    args = parser.parse_args()
    sample = sample_dir()
    if sample is None:
        print(f"skipped: no real sample at {os.environ.get('HAR_REAL_SAMPLE', DEFAULT_SAMPLE)} "
              "(set HAR_REAL_SAMPLE to a Kaggle-layout folder with Training_set.csv and train/)")
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="har_preprocessing_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        variants_dir = workdir / f"variants_{args.variants}"
        if not (variants_dir / "Training_set.csv").is_file():
            build_variants(sample, variants_dir, args.variants)
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, output {args.size}x{args.size}, "
              f"sample {sample}")
        print(f"{'':<17} {'peak RSS MB':>19} {'kedro run wall s':>17} {'cache node':>16}")
        print(f"{'data set':<9} {'images':>7} {'build':>9} {'reuse':>9} {'build':>8} {'reuse':>8} "
              f"{'s':>8} {'img/s':>7} {'CPU ms/img':>10}   store")
        measure("sample", sample, workdir, args.size)
        measure("variants", variants_dir, workdir, args.size)
    finally:
        for project in workdir.glob("project_*"):
            if not args.keep:
                shutil.rmtree(project, ignore_errors=True)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
