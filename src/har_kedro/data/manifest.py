"""From a listing of candidate images to the manifest and the rejected table.

The manifest is the contract every later step reads: one row per usable image, with the
content hash that makes caches addressable and duplicates detectable. Every candidate
ends up in exactly one of the two tables.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from har_kedro.data.errors import DataInputError
from har_kedro.data.image_io import read_source_bytes
from har_kedro.data.inspection import DEFAULT_MAX_PIXELS, ImageInfo, ImageRejected, inspect_image
from har_kedro.data.near_duplicates import DEFAULT_MAX_DISTANCE, components, hamming, hash_words, near_pairs
from har_kedro.data.parallel import parallel_map
from har_kedro.data.sources import UNLABELLED, Candidate, Collected, Rejection, natural_key
from har_kedro.data.splitting import ClassTooSmallError, stratified_split

MANIFEST_COLUMNS = [
    "image_id", "source", "label", "label_id", "split",
    "sha256", "width", "height", "format", "mode", "n_bytes", "dhash", "group_id",
]
REJECTED_COLUMNS = ["image_id", "source", "category", "reason"]


@dataclass(frozen=True)
class SplitSpec:
    fractions: Mapping[str, float]
    seed: int
    near_duplicate_distance: int | None = DEFAULT_MAX_DISTANCE  # None: no near-duplicate grouping


def _inspect(candidate: Candidate, max_pixels: int) -> ImageInfo | Rejection:
    try:
        data = read_source_bytes(candidate.source)
    except FileNotFoundError:
        return Rejection(candidate.image_id, candidate.source, "missing_file", "file disappeared before it could be read")
    except OSError as exc:
        return Rejection(candidate.image_id, candidate.source, "unreadable_file", f"cannot read file: {exc.strerror or exc}")
    try:
        return inspect_image(data, max_pixels)
    except ImageRejected as exc:
        return Rejection(candidate.image_id, candidate.source, exc.category, exc.reason)


def build_manifest(
    collected: Collected,
    class_names: Sequence[str],
    split: SplitSpec,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_workers: int | str | None = "auto",
    source_description: str = "the configured source",
    progress: bool = True,
    require_train: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inspect, validate, de-duplicate and split; returns ``(manifest, rejected)``. ``require_train`` false:
    a layout whose every image has a split of its own (an evaluation set) needs no training images.

    Raises:
        DataInputError: no usable labelled image at all, or a class too small to split.
    """
    candidates, rejections = _known_labels(collected, class_names)
    if not collected.candidates:
        raise DataInputError(
            f"no images found in {source_description}; put the images there (README, 'Getting the real data') "
            "or point ingestion.source at the folder that holds them."
        )

    candidates.sort(key=lambda c: natural_key(c.image_id))
    infos = parallel_map(lambda c: _inspect(c, max_pixels), candidates, num_workers, "inspecting images", progress)
    kept: list[tuple[Candidate, ImageInfo]] = []
    for candidate, info in zip(candidates, infos, strict=True):
        if isinstance(info, Rejection):
            rejections.append(info)
        else:
            kept.append((candidate, info))

    kept, duplicate_rejections = _drop_duplicates(kept)
    rejections += duplicate_rejections
    kept, groups, near_rejections = _group_near_duplicates(kept, split.near_duplicate_distance)
    rejections += near_rejections

    labelled = [(c, i) for c, i in kept if c.label is not None]
    if not labelled:
        raise DataInputError(
            f"none of the {len(collected.candidates)} images listed in {source_description} is usable "
            f"({len(rejections)} rejected: see the rejected table); fix the files or the source settings."
        )
    try:
        manifest = _to_frame(kept, class_names, split, groups, require_train)
    except ClassTooSmallError as exc:
        raise DataInputError(f"{exc} {_rejected_of_class(exc.class_name, collected, rejections)}") from None
    rejected = pd.DataFrame(
        sorted(((r.image_id, r.source, r.category, r.reason) for r in rejections), key=lambda r: (natural_key(r[0]), r[3])),
        columns=REJECTED_COLUMNS,
    ).astype("string")
    return manifest, rejected


def _known_labels(collected: Collected, class_names: Sequence[str]) -> tuple[list[Candidate], list[Rejection]]:
    """The candidates whose label (if any) is a class, and the layout's rejections plus the others."""
    rejections: list[Rejection] = list(collected.rejections)
    known = set(class_names)
    candidates: list[Candidate] = []
    for candidate in collected.candidates:
        if candidate.label is not None and candidate.label not in known:
            reason = f"label '{candidate.label}' is not one of the {len(class_names)} classes in ingestion.class_names"
            rejections.append(Rejection(candidate.image_id, candidate.source, "unknown_label", reason))
        else:
            candidates.append(candidate)
    return candidates, rejections


def _drop_duplicates(
    kept: list[tuple[Candidate, ImageInfo]],
) -> tuple[list[tuple[Candidate, ImageInfo]], list[Rejection]]:
    """Keep one image per content hash; the same picture twice would leak across splits."""
    groups: dict[str, list[tuple[Candidate, ImageInfo]]] = defaultdict(list)
    for pair in kept:
        groups[pair[1].sha256].append(pair)
    survivors: list[tuple[Candidate, ImageInfo]] = []
    rejections: list[Rejection] = []
    for pair in kept:
        group = groups[pair[1].sha256]
        if len(group) == 1:
            survivors.append(pair)
            continue
        if pair is not group[0]:
            continue
        labels = {c.label for c, _ in group if c.label is not None}
        ids = ", ".join(c.image_id for c, _ in group)
        if len(labels) > 1:
            for c, info in group:
                rejections.append(Rejection(c.image_id, c.source, "conflicting_labels", f"same image (sha256 {info.sha256[:12]}) appears as {ids} with different labels {sorted(labels)}"))
            continue
        # Prefer the labelled copy; the candidates are already in natural id order.
        ordered = sorted(group, key=lambda p: p[0].label is None)
        survivors.append(ordered[0])
        for c, info in ordered[1:]:
            rejections.append(Rejection(c.image_id, c.source, "duplicate_image", f"duplicate image: same content (sha256 {info.sha256[:12]}) as {ordered[0][0].image_id}, which is kept"))
    survivors.sort(key=lambda p: natural_key(p[0].image_id))
    return survivors, rejections


def _group_near_duplicates(
    kept: list[tuple[Candidate, ImageInfo]], max_distance: int | None
) -> tuple[list[tuple[Candidate, ImageInfo]], dict[str, str], list[Rejection]]:
    """Group near-duplicate photographs; returns the survivors, the group id of each (the first image id of
    its group, its own for an image without near-duplicates) and the rejections: both images of every
    near-duplicate pair whose labels differ (a pair, not a whole transitive group, so that a chain of
    look-alikes does not take innocent images with it)."""
    if max_distance is None or not kept:
        return kept, {c.image_id: c.image_id for c, _ in kept}, []
    words = hash_words([info.dhash for _, info in kept])
    pairs = near_pairs(words, max_distance)
    conflicts = [(int(i), int(j)) for i, j in pairs if None not in (kept[i][0].label, kept[j][0].label) and kept[i][0].label != kept[j][0].label]
    rejections: dict[int, Rejection] = {}
    for i, j in conflicts:
        for own, other in ((i, j), (j, i)):
            c, o = kept[own][0], kept[other][0]
            rejections.setdefault(own, Rejection(
                c.image_id, c.source, "conflicting_labels",
                f"near-duplicate photographs {c.image_id} ('{c.label}') and {o.image_id} ('{o.label}') have different labels "
                f"(perceptual hashes {hamming(kept[own][1].dhash, kept[other][1].dhash)} bits apart, at most {max_distance} count)",
            ))
    alive = [i for i in range(len(kept)) if i not in rejections]
    position = {index: k for k, index in enumerate(alive)}
    remaining = np.array([(position[i], position[j]) for i, j in pairs if i in position and j in position], dtype=np.int64).reshape(-1, 2)
    labels = components(len(alive), remaining)
    first: dict[int, str] = {}
    for k, index in enumerate(alive):  # alive is in natural id order: a group's first member names it
        first.setdefault(int(labels[k]), kept[index][0].image_id)
    groups = {kept[index][0].image_id: first[int(labels[k])] for k, index in enumerate(alive)}
    return [kept[i] for i in alive], groups, list(rejections.values())


def _rejected_of_class(class_name: str, collected: Collected, rejections: Sequence[Rejection]) -> str:
    """One sentence on what ingestion rejected of a class: how many images, and for what."""
    ids = {c.image_id for c in collected.candidates if c.label == class_name}
    reasons = Counter(r.category for r in rejections if r.image_id in ids)
    if not reasons:
        return "None of its images was rejected."
    listed = ", ".join(f"{n} {category}" for category, n in sorted(reasons.items()))
    example = next(r for r in rejections if r.image_id in ids)
    return f"{sum(reasons.values())} of its images were rejected ({listed}), e.g. {example.image_id}: {example.reason}."


def _to_frame(
    kept: list[tuple[Candidate, ImageInfo]], class_names: Sequence[str], split: SplitSpec, groups: Mapping[str, str], require_train: bool = True,
) -> pd.DataFrame:
    index = {name: i for i, name in enumerate(class_names)}
    to_split = [(c, i) for c, i in kept if c.label is not None and c.split is None]
    if to_split:
        assigned = stratified_split(
            [c.image_id for c, _ in to_split], [c.label for c, _ in to_split], class_names,  # type: ignore[misc]
            split.fractions, split.seed, groups=[groups[c.image_id] for c, _ in to_split],
        )
    else:
        assigned = []
        if require_train:
            _check_layout_splits(kept, class_names)
    split_of = {c.image_id: s for (c, _), s in zip(to_split, assigned, strict=True)}
    rows = []
    for c, info in kept:
        rows.append({
            "image_id": c.image_id,
            "source": c.source,
            "label": c.label,
            "label_id": index[c.label] if c.label is not None else -1,
            "split": c.split or split_of.get(c.image_id, UNLABELLED),
            "sha256": info.sha256,
            "width": info.width,
            "height": info.height,
            "format": info.format,
            "mode": info.mode,
            "n_bytes": info.n_bytes,
            "dhash": info.dhash,
            "group_id": groups[c.image_id],
        })
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return frame.astype({
        "image_id": "string", "source": "string", "label": "string", "label_id": "int64",
        "split": "string", "sha256": "string", "width": "int64", "height": "int64",
        "format": "string", "mode": "string", "n_bytes": "int64", "dhash": "string", "group_id": "string",
    })


def _check_layout_splits(kept: list[tuple[Candidate, ImageInfo]], class_names: Sequence[str]) -> None:
    """A layout that fixes its own splits must still give every class training images."""
    train_counts = {name: 0 for name in class_names}
    for c, _ in kept:
        if c.label is not None and c.split == "train":
            train_counts[c.label] += 1
    empty = [name for name, n in train_counts.items() if n == 0]
    if empty:
        raise DataInputError(
            f"classes {empty} have no usable image in the train/ folder of the source; add training "
            "images for them or remove them from ingestion.class_names."
        )
