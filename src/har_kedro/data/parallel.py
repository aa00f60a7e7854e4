"""A thread pool with a progress bar, for work that spends its time inside C code.

PIL releases the GIL while it decodes and resamples and hashlib while it hashes, so
threads use every core without pickling images between processes.
:class:`ProgressPool` keeps one pool and one bar across several batches of work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def _advanced(bar: tqdm, result: R) -> R:
    bar.update()
    return result


class ProgressPool:
    """A thread pool and one progress bar that several :meth:`map`/:meth:`start` calls share.

    Work that arrives in chunks (decode 256 images, write them out, decode the next 256)
    keeps one set of threads and one bar for the whole job instead of one per chunk. Use it
    as a context manager; ``total`` is the number of items all the calls will process.
    """

    def __init__(
        self,
        total: int,
        num_workers: int | str | None = "auto",
        desc: str | None = None,
        progress: bool = True,
    ) -> None:
        self.workers = resolve_workers(num_workers)
        self._bar = tqdm(total=total, desc=desc, unit="img", disable=None if progress else True, dynamic_ncols=True)
        self._pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]`` on the pool, in order, advancing the shared bar."""
        return self.start(fn, items)()

    def start(self, fn: Callable[[T], R], items: Sequence[T]) -> Callable[[], list[R]]:
        """Queue ``fn`` over ``items`` now; the returned function waits for the results, in order.

        Lets the caller do something else (write the previous batch out) while the threads
        work. With one worker nothing runs until the returned function is called.
        """
        pool, bar = self._pool, self._bar
        if pool is None:
            return lambda: [_advanced(bar, fn(item)) for item in items]
        futures = [pool.submit(fn, item) for item in items]
        return lambda: [_advanced(bar, future.result()) for future in futures]

    def close(self) -> None:
        """Stop the threads (dropping work not yet started) and close the bar."""
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._bar.close()

    def __enter__(self) -> ProgressPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    num_workers: int | str | None = "auto",
    desc: str | None = None,
    progress: bool = True,
) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool, in order, with a progress bar."""
    # Deliberately not tqdm.contrib.concurrent.thread_map: it always starts a pool, so with one
    # worker ``fn`` would run on a pool thread instead of in the caller's thread, and it cannot
    # share one pool and one bar across chunks the way ProgressPool (needed anyway) does.
    with ProgressPool(len(items), num_workers, desc, progress) as pool:
        return pool.map(fn, items)
