"""The exception reporting raises when a training output cannot be used as it is."""

from __future__ import annotations


class ReportingInputError(ValueError):
    """A model's saved outputs are malformed or inconsistent; the message names the dataset and the fix."""


class ReportingSettingsError(ValueError):
    """A ``reporting`` parameter that cannot be used; the message names the key and a valid value."""
