"""The one error type of bad training settings (every message names the key at fault), and the key check every block shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


class TrainingConfigError(ValueError):
    """A training parameter is missing, unknown, out of range or does not fit the rest; the message names it."""


def known_keys(cls: type, params: Mapping[str, Any] | None, where: str, error: type[ValueError] = TrainingConfigError) -> dict[str, Any]:
    """``params`` as a dict after checking it is a mapping (``None`` = empty) of ``cls``'s dataclass fields only."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise error(f"{where} must be a mapping of settings, got {type(params).__name__}.")
    allowed = sorted(f.name for f in fields(cls))
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise error(f"{where} has unknown keys {unknown}; allowed keys are {allowed}.")
    return dict(params)
