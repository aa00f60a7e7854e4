"""Stratified, seeded train/val/test assignment that does not depend on input order.

Rows are sorted by id inside each class before shuffling with a generator seeded by
``(seed, class index)``, so the same images and seed give the same split whatever order
the file system or CSV listed them in, and adding images to one class does not reshuffle
the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from har_kedro.data.errors import DataInputError
from har_kedro.data.sources import natural_key


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """How many of ``n`` items each split gets: largest remainder, at least one per non-empty split."""
    names = [name for name, frac in fractions.items() if frac > 0]
    total = sum(fractions[name] for name in names)
    exact = {name: n * fractions[name] / total for name in names}
    counts = {name: int(np.floor(exact[name])) for name in names}
    by_remainder = sorted(names, key=lambda name: (-(exact[name] - counts[name]), names.index(name)))
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    for name in names:
        while counts[name] == 0 and n >= len(names):
            donor = max(names, key=lambda other: (counts[other], -names.index(other)))
            counts[donor] -= 1
            counts[name] += 1
    return {name: counts.get(name, 0) for name in fractions}


def validate_fractions(fractions: Mapping[str, float]) -> None:
    """Fractions must be non-negative, include a positive ``train`` and sum to 1."""
    if not fractions or any(not isinstance(v, int | float) or v < 0 for v in fractions.values()):
        raise DataInputError(f"split fractions {dict(fractions)} must be non-negative numbers; fix ingestion.split.fractions.")
    if fractions.get("train", 0) <= 0:
        raise DataInputError("ingestion.split.fractions needs a positive 'train' fraction.")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataInputError(f"split fractions {dict(fractions)} sum to {sum(fractions.values()):.4f}, not 1; fix ingestion.split.fractions.")


class ClassTooSmallError(DataInputError):
    """A class has fewer images (or near-duplicate groups) than there are splits to fill."""

    def __init__(self, message: str, class_name: str) -> None:
        super().__init__(message)
        self.class_name = class_name


def stratified_split(
    image_ids: Sequence[str],
    labels: Sequence[str],
    class_names: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
    groups: Sequence[str] | None = None,
) -> list[str]:
    """The split name of each row, stratified by label; rows that share a ``groups`` key (near-duplicates,
    all of one class) land in one split together. Without groups, or with every group a single image,
    the split is the one earlier versions gave.

    Raises:
        ClassTooSmallError: a class has fewer images (groups) than there are non-empty splits.
    """
    validate_fractions(fractions)
    n_splits = sum(1 for frac in fractions.values() if frac > 0)
    keys = list(groups) if groups is not None else list(image_ids)
    by_class: dict[str, dict[str, list[int]]] = {name: {} for name in class_names}
    for row, label in enumerate(labels):
        by_class[label].setdefault(keys[row], []).append(row)
    assignment = [""] * len(image_ids)
    for class_index, name in enumerate(class_names):
        units = [sorted(rows, key=lambda r: natural_key(image_ids[r])) for rows in by_class[name].values()]
        units.sort(key=lambda rows: natural_key(image_ids[rows[0]]))
        _check_class_size(name, units, n_splits, fractions)
        rng = np.random.default_rng([seed, class_index])
        order = [units[i] for i in rng.permutation(len(units))]
        _fill(order, split_counts(sum(len(u) for u in units), fractions), assignment)
    return assignment


def _check_class_size(name: str, units: Sequence[Sequence[int]], n_splits: int, fractions: Mapping[str, float]) -> None:
    images = sum(len(u) for u in units)
    if len(units) >= n_splits:
        return
    grouped = f" in {len(units)} group(s) of near-duplicates" if len(units) < images else ""
    raise ClassTooSmallError(
        f"class '{name}' has {images} usable image(s){grouped} but the {n_splits} splits "
        f"{[k for k, v in fractions.items() if v > 0]} need at least one each; add images of "
        "that class, remove it from ingestion.class_names, or set its split fraction to 0.",
        name,
    )


def _fill(order: Sequence[Sequence[int]], counts: Mapping[str, int], assignment: list[str]) -> None:
    """Give the units, in ``order``, to the splits in turn: a split takes units until it holds its count
    of images (a group may take it past the count), and moves on early when the units left are only
    just enough to give every later split one."""
    targets = [(split, count) for split, count in counts.items() if count > 0]
    current, filled = 0, 0
    for index, unit in enumerate(order):
        must_move = filled > 0 and len(order) - index <= len(targets) - 1 - current
        while current < len(targets) - 1 and (filled >= targets[current][1] or must_move):
            current, filled, must_move = current + 1, 0, False
        for row in unit:
            assignment[row] = targets[current][0]
        filled += len(unit)
