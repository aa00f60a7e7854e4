"""Listing the images of each supported input layout, before any pixel is read.

Every collector returns the same two things: candidates (an image id, where its bytes
are, its label if it has one, and a split if the layout fixes one) and the problems it
could already see from file names and CSV rows. Nothing is dropped without a row in the
rejected table.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import pyarrow.parquet as pq

from har_kedro.data.errors import DataInputError
from har_kedro.data.image_io import parquet_source

UNLABELLED = "unlabelled"
FOLDER_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class Candidate:
    """An image the layout lists; ``split`` is set only when the layout itself fixes it."""

    image_id: str
    source: str
    label: str | None
    split: str | None = None


@dataclass(frozen=True)
class Rejection:
    """One row of the rejected table: a stable ``category`` to count by and a sentence to read."""

    image_id: str
    source: str
    category: str
    reason: str


@dataclass
class Collected:
    candidates: list[Candidate]
    rejections: list[Rejection]
    class_names: list[str] | None = None  # when the layout itself declares them


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that puts ``Image_2`` before ``Image_10``: manifests read the way people count."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _files_under(directory: Path) -> list[Path]:
    return sorted((p for p in directory.rglob("*") if p.is_file()), key=lambda p: natural_key(p.as_posix()))


def _read_listing(csv_path: Path, need_label: bool) -> list[tuple[int, str, str | None]]:
    """``(line number, filename, label)`` for each data row of a Kaggle CSV."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataInputError(f"{csv_path} is empty; it must have a 'filename,label' header and one row per image.")
            columns = [c.strip().lower() for c in header]
            wanted = ["filename", "label"] if need_label else ["filename"]
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise DataInputError(
                    f"{csv_path} has columns {header} but needs {wanted}; fix its header row "
                    "(the Kaggle HAR file starts with 'filename,label')."
                )
            i_file = columns.index("filename")
            i_label = columns.index("label") if "label" in columns else None
            rows = []
            for line_no, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                name = row[i_file].strip() if len(row) > i_file else ""
                label = row[i_label].strip() if i_label is not None and len(row) > i_label else None
                rows.append((line_no, name, label))
            return rows
    except UnicodeDecodeError as exc:
        raise DataInputError(f"{csv_path} is not UTF-8 text ({exc}); re-save it as UTF-8 CSV.") from None


def collect_kaggle(
    root: str | Path,
    labelled_csv: str = "Training_set.csv",
    labelled_dir: str = "train",
    unlabelled_csv: str | None = "Testing_set.csv",
    unlabelled_dir: str = "test",
) -> Collected:
    """The Kaggle HAR layout: ``Training_set.csv`` + ``train/`` and optionally ``Testing_set.csv`` + ``test/``."""
    root = Path(root)
    csv_path = root / labelled_csv
    if not csv_path.is_file():
        raise DataInputError(
            f"{csv_path} does not exist; download the Kaggle HAR data set into {root} "
            "(see README, 'Getting the real data') or point ingestion.source.root at it."
        )
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    plan = [(csv_path, root / labelled_dir, True)]
    if unlabelled_csv and (root / unlabelled_csv).is_file():
        plan.append((root / unlabelled_csv, root / unlabelled_dir, False))
    for listing, image_dir, labelled in plan:
        c, r = _collect_listed(root, listing, image_dir, labelled)
        candidates += c
        rejections += r
    return Collected(candidates, rejections)


def _collect_listed(
    root: Path, listing: Path, image_dir: Path, labelled: bool
) -> tuple[list[Candidate], list[Rejection]]:
    rows = _read_listing(listing, need_label=labelled)
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    by_name: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
    for line_no, name, label in rows:
        by_name[name].append((line_no, label))

    def image_id(name: str) -> str:
        return f"{image_dir.name}/{name}"

    for name in sorted(by_name, key=natural_key):
        entries = by_name[name]
        path = image_dir / name
        where = f"{listing.name} line {entries[0][0]}"
        if not name:
            for line_no, _ in entries:
                rejections.append(Rejection(f"{listing.name}:{line_no}", listing.as_posix(), "bad_row", f"{listing.name} line {line_no} has an empty filename"))
            continue
        labels = {label for _, label in entries}
        if labelled and len(labels) > 1:
            detail = ", ".join(f"line {ln}: {lab!r}" for ln, lab in entries)
            for line_no, _ in entries:
                rejections.append(Rejection(image_id(name), path.as_posix(), "conflicting_labels", f"conflicting labels for one file in {listing.name} ({detail})"))
            continue
        for line_no, _ in entries[1:]:
            rejections.append(
                Rejection(image_id(name), path.as_posix(), "duplicate_row", f"duplicate row: {listing.name} line {line_no} repeats line {entries[0][0]} (kept once)")
            )
        if not path.is_file():
            rejections.append(Rejection(image_id(name), path.as_posix(), "missing_file", f"listed in {where} but {path} does not exist"))
            continue
        label = entries[0][1] if labelled else None
        if labelled and not label:
            rejections.append(Rejection(image_id(name), path.as_posix(), "no_label", f"{where} has an empty label"))
            continue
        candidates.append(Candidate(image_id(name), path.as_posix(), label, None if labelled else UNLABELLED))

    if image_dir.is_dir():
        listed = {(image_dir / name).resolve() for name in by_name if name}
        for path in _files_under(image_dir):
            if path.resolve() not in listed:
                rel = path.relative_to(image_dir).as_posix()
                rejections.append(
                    Rejection(f"{image_dir.name}/{rel}", path.as_posix(), "unlisted_file", f"file in {image_dir.name}/ is not listed in {listing.name}")
                )
    elif rows:
        raise DataInputError(
            f"{listing} lists {len(rows)} images but the folder {image_dir} does not exist; "
            "unpack the images next to the CSV or set ingestion.source's image folder."
        )
    return candidates, rejections


def collect_image_folder(root: str | Path) -> Collected:
    """``<root>/<class>/<image>`` or ``<root>/<split>/<class>/<image>`` (split in train/val/test)."""
    root = Path(root)
    if not root.is_dir():
        raise DataInputError(f"{root} is not a folder; point ingestion.source.root at an ImageFolder-style directory.")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    split_layout = bool(subdirs) and all(p.name.lower() in FOLDER_SPLIT_NAMES for p in subdirs)
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    for path in _files_under(root):
        rel = path.relative_to(root)
        parts = rel.parts
        depth = 3 if split_layout else 2
        if len(parts) != depth:
            expected = "<split>/<class>/<image>" if split_layout else "<class>/<image>"
            rejections.append(Rejection(rel.as_posix(), path.as_posix(), "bad_layout", f"not at {expected} under {root}"))
            continue
        split = FOLDER_SPLIT_NAMES[parts[0].lower()] if split_layout else None
        candidates.append(Candidate(rel.as_posix(), path.as_posix(), parts[-2], split))
    return Collected(candidates, rejections)


def read_class_names_file(path: str | Path, label_column: str = "labels") -> list[str]:
    """Class names from a HuggingFace ``dataset_info.json`` (``features.<label>.names``) or a JSON list."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataInputError(f"class names file {path} does not exist; fix ingestion.source.class_names_file or list ingestion.class_names.") from None
    except json.JSONDecodeError as exc:
        raise DataInputError(f"class names file {path} is not valid JSON ({exc}); fix the file.") from None
    if isinstance(info, list) and all(isinstance(x, str) for x in info):
        return list(info)
    features = info.get("features") if isinstance(info, dict) else None
    if isinstance(features, dict) and isinstance(features.get(label_column), dict):
        names = features[label_column].get("names")
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    raise DataInputError(
        f"{path} has no class names at features.{label_column}.names; give a HuggingFace "
        "dataset_info.json, a JSON list of names, or set ingestion.class_names."
    )


def collect_parquet(
    paths: Sequence[str] | str,
    unlabelled_paths: Sequence[str] | str = (),
    image_column: str = "image",
    label_column: str = "labels",
    class_names: Sequence[str] | None = None,
) -> Collected:
    """A HuggingFace parquet export: an ``image`` column of ``{bytes, path}`` and an int or str label column."""
    labelled_files = _expand(paths)
    if not labelled_files:
        raise DataInputError(f"no parquet files match {paths!r}; download the export (README) or fix ingestion.source.paths.")
    candidates: list[Candidate] = []
    rejections: list[Rejection] = []
    for files, labelled in ((labelled_files, True), (_expand(unlabelled_paths), False)):
        for file in files:
            schema = pq.read_schema(file)
            needed = [image_column] + ([label_column] if labelled else [])
            missing = [c for c in needed if c not in schema.names]
            if missing:
                raise DataInputError(
                    f"{file} has columns {schema.names} but not {missing}; set ingestion.source.image_column/label_column."
                )
            labels = pq.read_table(file, columns=[label_column]).column(0).to_pylist() if labelled else None
            n_rows = pq.ParquetFile(file).metadata.num_rows
            stem = Path(file).stem
            for row in range(n_rows):
                image_id = f"{stem}/{row}"
                source = parquet_source(file, row)
                label: str | None = None
                if labels is not None:
                    raw = labels[row]
                    if raw is None:
                        rejections.append(Rejection(image_id, source, "no_label", f"row {row} of {file} has no label"))
                        continue
                    if isinstance(raw, int) and not isinstance(raw, bool):
                        if class_names is None or not 0 <= raw < len(class_names):
                            known = len(class_names) if class_names else 0
                            rejections.append(Rejection(image_id, source, "unknown_label", f"row {row} of {file} has label id {raw}, outside the {known} known class names"))
                            continue
                        label = class_names[raw]
                    else:
                        label = str(raw)
                candidates.append(Candidate(image_id, source, label, None if labelled else UNLABELLED))
    return Collected(candidates, rejections, list(class_names) if class_names else None)


def _expand(patterns: Sequence[str] | str) -> list[str]:
    if isinstance(patterns, str):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        files += sorted(glob(pattern, recursive=True)) if any(ch in pattern for ch in "*?[") else ([pattern] if Path(pattern).is_file() else [])
    return sorted(dict.fromkeys(Path(f).as_posix() for f in files), key=natural_key)

