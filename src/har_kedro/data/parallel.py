"""A thread pool with a progress bar, for work that spends its time inside C code.

PIL releases the GIL while it decodes and resamples and hashlib while it hashes, so
threads use every core without pickling images between processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(num_workers: int | str | None) -> int:
    """``"auto"``/``None``/``0`` means one worker per available core."""
    if num_workers in (None, "auto", 0):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - macOS/Windows
            return max(1, os.cpu_count() or 1)
    workers = int(num_workers)  # type: ignore[arg-type]
    if workers < 1:
        raise ValueError(f"num_workers must be 'auto' or a positive integer, got {num_workers!r}")
    return workers


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    num_workers: int | str | None = "auto",
    desc: str | None = None,
    progress: bool = True,
) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool, in order, with a progress bar."""
    workers = resolve_workers(num_workers)
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None if progress else True, dynamic_ncols=True)
    try:
        if workers == 1:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results_iter: Iterable[R] = pool.map(fn, items, chunksize=1)
            results = []
            for result in results_iter:
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()
