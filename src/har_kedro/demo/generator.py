"""Writes the demo set to disk in the Kaggle layout (``Training_set.csv`` and ``train/Image_<n>.<ext>``).

Two random streams, both derived from ``DemoSpec.seed`` only: the *layout* stream decides
which entry gets which number, format and breakage (and which CSV row is repeated); each
image gets its own stream keyed by its number, so one image's pixels never depend on the
others. The order of the draws below is part of the output: changing it changes the files.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.demo.formats import CONVERTIBLE_KINDS, convert, jpeg_bytes
from har_kedro.demo.render import render_action
from har_kedro.demo.spec import (
    CSV_NAME,
    IMAGE_DIR,
    UNKNOWN_LABEL,
    DemoSpec,
    DemoSummary,
)

# Extra files beyond the good images; each consumes one Image_<n> number.
_BROKEN_FILE_KINDS = ("truncated", "empty", "text", "missing", "unlisted", "unknown_label", "duplicate_image")


@dataclass
class _Plan:
    """Which entry becomes which file; entry ``i`` is written as ``Image_<i + 1>``."""

    entries: list[tuple[str, str]]  # (kind, label); kind is "good" or one of _BROKEN_FILE_KINDS
    convertible: dict[int, str]  # entry index -> one of CONVERTIBLE_KINDS
    plain_good: list[int]  # good entries written as plain RGB JPEGs
    dup_source: int  # the good entry that the "duplicate_image" entry copies


@dataclass
class _Written:
    """What the two writing passes produced, filled in as they go."""

    names: dict[int, str] = field(default_factory=dict)  # entry index -> file name in train/
    broken: dict[str, str] = field(default_factory=dict)
    convertible: dict[str, str] = field(default_factory=dict)
    dup_bytes: bytes = b""


def _prepare_root(root: Path) -> None:
    """Create ``root``/``train`` and remove only what a previous run of ours wrote."""
    root.mkdir(parents=True, exist_ok=True)
    stale = root / IMAGE_DIR
    if stale.is_dir() and not stale.is_symlink():
        shutil.rmtree(stale)
    elif stale.exists() or stale.is_symlink():
        stale.unlink()
    csv_path = root / CSV_NAME
    if csv_path.exists() or csv_path.is_symlink():
        csv_path.unlink()
    stale.mkdir()


def _shuffled_entries(spec: DemoSpec, layout_rng: np.random.Generator) -> list[tuple[str, str]]:
    """``("good", label)`` and broken ``(kind, label)`` entries, shuffled together into file order."""
    entries: list[tuple[str, str]] = [("good", c) for c in HAR_CLASSES for _ in range(spec.images_per_class)]
    if spec.include_broken:
        for kind in _BROKEN_FILE_KINDS:
            entries.append((kind, HAR_CLASSES[int(layout_rng.integers(len(HAR_CLASSES)))]))
    order = layout_rng.permutation(len(entries))
    return [entries[i] for i in order]


def _pick_convertible(
    entries: list[tuple[str, str]], good_idx: list[int], layout_rng: np.random.Generator
) -> dict[int, str]:
    """Unusual-but-valid formats go to good images of distinct classes."""
    conv_for: dict[int, str] = {}
    used_classes: set[str] = set()
    for i in (good_idx[k] for k in layout_rng.permutation(len(good_idx))):
        if len(conv_for) == len(CONVERTIBLE_KINDS):
            break
        if entries[i][1] in used_classes and len(used_classes) < len(HAR_CLASSES):
            continue
        conv_for[i] = CONVERTIBLE_KINDS[len(conv_for)]
        used_classes.add(entries[i][1])
    return conv_for


def _plan(spec: DemoSpec, layout_rng: np.random.Generator) -> _Plan:
    entries = _shuffled_entries(spec, layout_rng)
    good_idx = [i for i, (kind, _) in enumerate(entries) if kind == "good"]
    conv_for = _pick_convertible(entries, good_idx, layout_rng)
    plain_good = [i for i in good_idx if i not in conv_for]
    dup_source = plain_good[int(layout_rng.integers(len(plain_good)))] if plain_good else good_idx[0]
    return _Plan(entries, conv_for, plain_good, dup_source)


def _render(spec: DemoSpec, number: int, label: str) -> Image.Image:
    """The RGB image of ``Image_<number>``, from its own random stream."""
    rng = np.random.default_rng([spec.seed, 1, number])
    w, h = (int(v) for v in rng.integers(spec.min_size, spec.max_size + 1, size=2))
    return render_action(label, w, h, rng, (spec.min_scale, spec.max_scale), spec.placement)


def _write_good(plan: _Plan, spec: DemoSpec, image_dir: Path, written: _Written) -> None:
    """Pass 1: the good images, plain or converted (the duplicate needs its source's bytes)."""
    for i, (kind, label) in enumerate(plan.entries):
        if kind != "good":
            continue
        img = _render(spec, i + 1, label)
        if i in plan.convertible:
            ext, data, desc = convert(plan.convertible[i], img, spec.jpeg_quality)
            written.names[i] = f"Image_{i + 1}.{ext}"
            written.convertible[written.names[i]] = desc
        else:
            data = jpeg_bytes(img, spec.jpeg_quality)
            written.names[i] = f"Image_{i + 1}.jpg"
        (image_dir / written.names[i]).write_bytes(data)
        if i == plan.dup_source:
            written.dup_bytes = data


def _write_problem(
    kind: str, path: Path, spec: DemoSpec, number: int, label: str, dup_bytes: bytes, dup_name: str
) -> str:
    """Write (or, for ``missing``, don't write) one broken entry; returns how it is broken."""
    if kind == "truncated":
        data = jpeg_bytes(_render(spec, number, label), spec.jpeg_quality)
        path.write_bytes(data[: int(len(data) * 0.6)])
        return "truncated JPEG (cut to 60% of its bytes)"
    if kind == "empty":
        path.write_bytes(b"")
        return "empty file (0 bytes)"
    if kind == "text":
        path.write_text("this is not an image, just text with a .jpg name\n", encoding="utf-8")
        return "not an image (text file with a .jpg name)"
    if kind == "missing":
        return "listed in Training_set.csv but missing from train/"
    if kind == "unlisted":
        path.write_bytes(jpeg_bytes(_render(spec, number, label), spec.jpeg_quality))
        return "valid image in train/ that is not listed in Training_set.csv"
    if kind == "unknown_label":
        path.write_bytes(jpeg_bytes(_render(spec, number, label), spec.jpeg_quality))
        return f"label {UNKNOWN_LABEL!r} is not one of the HAR classes"
    if kind == "duplicate_image":
        path.write_bytes(dup_bytes)
        return f"byte-identical copy of {dup_name} (same label)"
    raise ValueError(kind)


def _write_broken(plan: _Plan, spec: DemoSpec, image_dir: Path, written: _Written) -> None:
    """Pass 2: the problematic entries; the duplicate image takes over its source's label."""
    dup_name = written.names[plan.dup_source]
    for i, (kind, label) in enumerate(plan.entries):
        if kind == "good":
            continue
        name = written.names[i] = f"Image_{i + 1}.jpg"
        written.broken[name] = _write_problem(kind, image_dir / name, spec, i + 1, label, written.dup_bytes, dup_name)
        if kind == "duplicate_image":
            plan.entries[i] = (kind, plan.entries[plan.dup_source][1])


def _csv_rows(plan: _Plan, names: dict[int, str]) -> list[tuple[str, str]]:
    """CSV rows in file order; unlisted files get none, the unknown-label entry gets ``UNKNOWN_LABEL``."""
    return [
        (names[i], UNKNOWN_LABEL if kind == "unknown_label" else label)
        for i, (kind, label) in enumerate(plan.entries)
        if kind != "unlisted"
    ]


def _repeat_a_row(
    rows: list[tuple[str, str]], plain_names: set[str], layout_rng: np.random.Generator, broken: dict[str, str]
) -> None:
    """Insert an exact repeat of a good, plain row somewhere after the original."""
    src_row = int(layout_rng.integers(len(rows)))
    while rows[src_row][0] not in plain_names:
        src_row = (src_row + 1) % len(rows)
    pos = int(layout_rng.integers(src_row + 1, len(rows) + 1))
    rows.insert(pos, rows[src_row])
    broken[f"{CSV_NAME} row {pos}"] = f"exact repeat of row {src_row} ({rows[src_row][0]},{rows[src_row][1]})"


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["filename", "label"])
        writer.writerows(rows)


def generate_demo_dataset(root: str | Path, spec: DemoSpec = DemoSpec()) -> DemoSummary:
    """Write the demo set under ``root`` in the Kaggle layout and describe what was written.

    ``root/train`` and ``root/Training_set.csv`` are replaced (nothing else in ``root`` is
    touched), so re-running with the same ``spec`` gives byte-identical files.
    """
    root = Path(root)
    _prepare_root(root)
    layout_rng = np.random.default_rng([spec.seed, 0])
    plan = _plan(spec, layout_rng)
    written = _Written()
    _write_good(plan, spec, root / IMAGE_DIR, written)
    _write_broken(plan, spec, root / IMAGE_DIR, written)
    rows = _csv_rows(plan, written.names)
    if spec.include_broken:
        _repeat_a_row(rows, {written.names[i] for i in plan.plain_good}, layout_rng, written.broken)
    _write_csv(root / CSV_NAME, rows)
    return DemoSummary(
        root=root,
        n_listed=len(rows),
        n_good=spec.images_per_class * len(HAR_CLASSES),
        broken=written.broken,
        convertible=written.convertible,
    )
