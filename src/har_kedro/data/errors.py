"""The one exception type that stops a run because of the input data.

Everything recoverable (one bad image, one bad CSV row) is quarantined in the rejected
table instead; this is raised only when the input as a whole cannot be used, and its
message is a single sentence naming the file and the fix.
"""

from __future__ import annotations


class DataInputError(ValueError):
    """The input data cannot be used as configured; the message says where and how to fix it."""
