"""The ``seeds`` parameter: every model is trained once per seed (docs/training.md, "Seeds")."""

from __future__ import annotations

from har_kedro.config.errors import TrainingConfigError


def parse_seeds(seeds: object, where: str = "seeds") -> tuple[int, ...]:
    """The ``seeds`` parameter: a non-empty list of distinct whole numbers (one training run per seed)."""
    if isinstance(seeds, bool) or isinstance(seeds, int):
        raise TrainingConfigError(f"{where} is {seeds!r}; give a list, e.g. seeds: [{seeds}] (one training run per seed).")
    if not isinstance(seeds, list | tuple) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise TrainingConfigError(f"{where} is {seeds!r}; give a non-empty list of whole numbers >= 0, e.g. seeds: [0, 1, 2].")
    if len(set(seeds)) != len(seeds):
        raise TrainingConfigError(f"{where} lists a seed twice ({list(seeds)}); two runs with one seed are the same run.")
    return tuple(seeds)
