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


def stratified_split(
    image_ids: Sequence[str],
    labels: Sequence[str],
    class_names: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
) -> list[str]:
    """The split name of each row, stratified by label.

    Raises:
        DataInputError: a class has fewer images than there are non-empty splits.
    """
    validate_fractions(fractions)
    n_splits = sum(1 for frac in fractions.values() if frac > 0)
    by_class: dict[str, list[int]] = {name: [] for name in class_names}
    for row, label in enumerate(labels):
        by_class[label].append(row)
    assignment = [""] * len(image_ids)
    for class_index, name in enumerate(class_names):
        rows = sorted(by_class[name], key=lambda r: natural_key(image_ids[r]))
        if len(rows) < n_splits:
            raise DataInputError(
                f"class '{name}' has {len(rows)} usable image(s) but the {n_splits} splits "
                f"{[k for k, v in fractions.items() if v > 0]} need at least one each; add images of "
                "that class, remove it from ingestion.class_names, or set its split fraction to 0."
            )
        rng = np.random.default_rng([seed, class_index])
        order = [rows[i] for i in rng.permutation(len(rows))]
        start = 0
        for split, count in split_counts(len(rows), fractions).items():
            for row in order[start : start + count]:
                assignment[row] = split
            start += count
    return assignment
