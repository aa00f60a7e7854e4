"""The one error type of bad training settings; every message names the key at fault."""

from __future__ import annotations


class TrainingConfigError(ValueError):
    """A training parameter is missing, unknown, out of range or does not fit the rest; the message names it."""
