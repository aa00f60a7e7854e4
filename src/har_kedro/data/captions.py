"""Reading (image, caption) pairs for contrastive image-text pretraining.

A corpus is either a CSV of ``image,caption`` rows whose image paths are relative to an
``image_root`` folder, or a HuggingFace parquet export with an image column and a caption
column. Every row becomes a pair or a row of the rejected table with a reason; one image
may carry several captions. A CSV path that leads outside ``image_root`` is never read.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from glob import glob
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from har_kedro.data.errors import DataInputError
from har_kedro.data.image_io import parquet_source, read_source_bytes
from har_kedro.data.inspection import ImageRejected, inspect_image
from har_kedro.data.parallel import parallel_map
from har_kedro.data.sources import natural_key

CAPTION_KINDS = ("csv", "parquet")
CAPTION_COLUMNS = ["pair_id", "image_id", "source", "sha256", "caption"]
REJECTED_CAPTION_COLUMNS = ["row", "image", "category", "reason"]


@dataclass(frozen=True)
class CaptionSource:
    """Where the caption corpus is and how its columns are named."""

    kind: str  # "csv" | "parquet"
    path: str  # csv: the captions CSV; parquet: a file, a folder (every *.parquet under it) or a glob
    image_root: str | None = None  # csv only: folder the image paths are relative to; None = the CSV's folder
    image_column: str = "image"
    caption_column: str = "caption"  # HuggingFace exports usually call it "text"
    follow_symlinks: bool = False  # allow image paths that resolve, through symlinks, outside image_root

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "pretraining.corpus") -> CaptionSource:
        """Typed settings; an unknown key, a wrong kind or a missing path fails naming ``<where>.<key>``."""
        if not isinstance(params, Mapping):
            raise DataInputError(f"{where} must be a mapping with at least 'kind' and 'path', got {type(params).__name__}.")
        allowed = [f.name for f in fields(cls)]
        for key in sorted(params, key=str):
            if key not in allowed:
                raise DataInputError(f"{where}.{key} is not a setting; remove it or use one of {allowed}.")
        if params.get("kind") not in CAPTION_KINDS:
            raise DataInputError(f"{where}.kind is {params.get('kind')!r}; set it to one of {list(CAPTION_KINDS)}.")
        for key in ("path", "image_column", "caption_column"):
            value = params.get(key, "" if key == "path" else getattr(cls, key))
            if not isinstance(value, str) or not value.strip():
                raise DataInputError(f"{where}.{key} is {value!r}; set it to a non-empty string.")
        root = params.get("image_root")
        if root is not None and (not isinstance(root, str) or not root.strip()):
            raise DataInputError(f"{where}.image_root is {root!r}; set it to a folder path or leave it out.")
        if root is not None and params["kind"] != "csv":
            raise DataInputError(f"{where}.image_root applies only to kind 'csv'; remove it (parquet images are inside the files).")
        if not isinstance(params.get("follow_symlinks", False), bool):
            raise DataInputError(f"{where}.follow_symlinks is {params['follow_symlinks']!r}; set it to true or false.")
        return cls(**params)


@dataclass
class _Row:
    """One data row of the corpus on its way to the pairs or the rejected table."""

    row: int  # CSV: 1-based line number (header = 1); parquet: 0-based row index
    image: str  # as written in the CSV; for parquet the image id
    image_id: str = ""
    source: str = ""
    caption: str = ""
    category: str | None = None
    reason: str = ""

    def reject(self, category: str, reason: str) -> None:
        self.category, self.reason = category, reason


class _Root(NamedTuple):
    given: Path  # as configured (may be relative), used in ``source``
    absolute: Path  # made absolute, symlinks kept
    real: Path  # every symlink resolved


def clean_caption(text: str | None) -> str:
    """A caption stripped, its whitespace runs collapsed to one space, in Unicode NFC ("" for a missing cell)."""
    return unicodedata.normalize("NFC", " ".join((text or "").split()))


def _read_csv_rows(path: Path, source: CaptionSource) -> list[tuple[int, str, str | None]]:
    """``(first line number, image, raw caption)`` of each non-blank data row."""
    wanted = [source.image_column, source.caption_column]
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataInputError(f"{path} is empty; it needs a '{wanted[0]},{wanted[1]}' header and one row per pair.")
            columns = [c.strip().lower() for c in header]
            if any(c.strip().lower() not in columns for c in wanted):
                raise DataInputError(
                    f"{path} has columns {header} but needs '{wanted[0]}' and '{wanted[1]}'; "
                    "rename its header row or set the corpus image_column/caption_column."
                )
            i_image, i_caption = (columns.index(c.strip().lower()) for c in wanted)
            rows, line = [], reader.line_num
            for record in reader:  # line_num counts physical lines, so a quoted multi-line caption keeps the count right
                start, line = line + 1, reader.line_num
                if any(cell.strip() for cell in record):
                    image = record[i_image].strip() if len(record) > i_image else ""
                    rows.append((start, image, record[i_caption] if len(record) > i_caption else None))
    except FileNotFoundError:
        raise DataInputError(f"{path} does not exist; create the captions CSV or fix the corpus path.") from None
    except UnicodeDecodeError as exc:
        raise DataInputError(f"{path} is not UTF-8 text ({exc}); re-save it as UTF-8 CSV.") from None
    except csv.Error as exc:
        raise DataInputError(f"{path} is not valid CSV ({exc}); quote captions that contain commas or quotes.") from None
    if not rows:
        raise DataInputError(f"{path} has a header but no data rows; add one '{wanted[0]},{wanted[1]}' row per pair.")
    return rows


def _locate(root: _Root, written: str, follow_symlinks: bool) -> tuple[str, Path] | None:
    """``(image_id, path)`` of a CSV image path, or ``None`` when it leads outside the root (decided without opening it)."""
    lexical = Path(os.path.normpath(os.path.join(root.absolute, written.replace("\\", "/"))))
    for base in (root.absolute, root.real):
        if lexical != base and lexical.is_relative_to(base):
            relative = lexical.relative_to(base)
            break
    else:
        return None
    if not follow_symlinks:
        try:
            if not lexical.resolve().is_relative_to(root.real):
                return None
        except (OSError, RuntimeError):  # a symlink loop
            return None
    return relative.as_posix(), root.given / relative


def _collect_csv(source: CaptionSource) -> tuple[list[_Row], _Root]:
    path = Path(source.path)
    lines = _read_csv_rows(path, source)
    given = Path(source.image_root) if source.image_root is not None else path.parent
    if not given.is_dir():
        raise DataInputError(f"image_root {given} is not a folder; set it to the folder the image paths of {path} are relative to.")
    root = _Root(given, Path(os.path.abspath(given)), given.resolve())
    rows = []
    for line, image, raw in lines:
        row = _Row(line, image, caption=clean_caption(raw))
        rows.append(row)
        if not image:
            row.reject("bad_row", f"{path.name} line {line} has an empty '{source.image_column}' cell")
        elif not row.caption:
            row.reject("empty_caption", f"{path.name} line {line} has an empty caption")
        elif (located := _locate(root, image, source.follow_symlinks)) is None:
            row.reject("outside_root", f"{path.name} line {line} points outside image_root {given} (through '..', an absolute path or a symlink); it was not read")
        else:
            row.image_id, file = located
            row.source = file.as_posix()
            if not file.is_file():
                row.reject("missing_file", f"listed on {path.name} line {line} but {row.source} does not exist")
    return rows, root


def _parquet_files(pattern: str) -> list[str]:
    path = Path(pattern)
    if path.is_dir():
        found = [str(p) for p in path.rglob("*.parquet") if p.is_file()]
    else:
        found = [pattern] if path.is_file() else glob(pattern, recursive=True)
    files = sorted({Path(f).as_posix() for f in found}, key=natural_key)
    if not files:
        raise DataInputError(f"no parquet files at {pattern!r}; download the export or fix the corpus path (a file, a folder or a glob).")
    return files


def _collect_parquet(source: CaptionSource) -> list[_Row]:
    rows = []
    for file in _parquet_files(source.path):
        try:
            schema = pq.read_schema(file)
        except (OSError, pa.ArrowException) as exc:
            raise DataInputError(f"{file} is not a readable parquet file ({exc}); re-download it or remove it from the corpus path.") from None
        missing = [c for c in (source.image_column, source.caption_column) if c not in schema.names]
        if missing:
            raise DataInputError(f"{file} has columns {schema.names} but not {missing}; set the corpus image_column/caption_column (HuggingFace exports usually call the caption 'text').")
        kind = schema.field(source.caption_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataInputError(f"column '{source.caption_column}' of {file} holds {kind}, not text; set caption_column to the caption column.")
        stem = Path(file).stem
        for index, raw in enumerate(pq.read_table(file, columns=[source.caption_column]).column(0).to_pylist()):
            image_id = f"{stem}/{index}"
            row = _Row(index, image_id, image_id, parquet_source(file, index), clean_caption(raw))
            rows.append(row)
            if not row.caption:
                row.reject("empty_caption", f"row {index} of {file} has an empty caption")
    if not rows:
        raise DataInputError(f"the parquet files at {source.path!r} have no rows; fix the corpus path.")
    return rows


def _inspect(read: Callable[[str], bytes], source: str) -> str | ImageRejected:
    """The image's sha256, or why it cannot be used."""
    try:
        data = read(source)
    except OSError as exc:
        return ImageRejected("missing_file", f"cannot read {source}: {exc}")
    try:
        return inspect_image(data).sha256
    except ImageRejected as rejected:
        return rejected


def _all_rejected(rows: list[_Row], source: CaptionSource, root: _Root | None) -> DataInputError:
    category, count = Counter(r.category for r in rows).most_common(1)[0]
    first = next(r for r in rows if r.category == category)
    fix = {
        "missing_file": f"check that the image paths are relative to image_root {root.given if root else ''} (or set image_root)",
        "outside_root": "write image paths relative to image_root, or set follow_symlinks: true for symlinked images",
        "empty_caption": f"check that caption_column '{source.caption_column}' is the caption column",
        "bad_row": f"check that image_column '{source.image_column}' is the image column",
    }.get(str(category), "replace the broken images or point the corpus path at the right data")
    return DataInputError(
        f"all {len(rows)} rows of {source.path} were rejected ({count} {category}: the first is {first.image!r}: {first.reason}); {fix}."
    )


def read_captions(source: CaptionSource, num_workers: int | str | None = "auto", progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pairs, rejected)`` of the corpus, both in file order (columns ``CAPTION_COLUMNS`` / ``REJECTED_CAPTION_COLUMNS``).

    Raises:
        DataInputError: the corpus cannot be read at all, or every row of it was rejected.
    """
    root: _Root | None = None
    if source.kind == "csv":
        rows, root = _collect_csv(source)
        read: Callable[[str], bytes] = lambda path: Path(path).read_bytes()  # noqa: E731
    elif source.kind == "parquet":
        rows = _collect_parquet(source)
        read = lambda src: read_source_bytes(src, source.image_column)  # noqa: E731
    else:
        raise DataInputError(f"the corpus kind is {source.kind!r}; set it to one of {list(CAPTION_KINDS)}.")
    first_seen: dict[tuple[str, str], int] = {}
    for row in (r for r in rows if r.category is None):
        earlier = first_seen.setdefault((row.image_id, row.caption), row.row)
        if earlier != row.row:
            row.reject("duplicate_row", f"duplicate row: line {row.row} repeats the image and caption of line {earlier} (kept once)")
    distinct = list(dict.fromkeys(r.source for r in rows if r.category is None))
    found = parallel_map(lambda s: _inspect(read, s), distinct, num_workers, desc="inspecting caption images", progress=progress)
    results = dict(zip(distinct, found, strict=True))
    for row in (r for r in rows if r.category is None):
        if isinstance(result := results[row.source], ImageRejected):
            row.reject(result.category, result.reason)
    kept = [r for r in rows if r.category is None]
    if not kept:
        raise _all_rejected(rows, source, root)
    pairs = pd.DataFrame([(i, r.image_id, r.source, results[r.source], r.caption) for i, r in enumerate(kept)], columns=CAPTION_COLUMNS)
    rejected = pd.DataFrame([(r.row, r.image, r.category, r.reason) for r in rows if r.category], columns=REJECTED_CAPTION_COLUMNS)
    return pairs, rejected.astype({"row": "int64"})
