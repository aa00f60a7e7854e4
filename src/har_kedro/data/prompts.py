"""Class prompts for the text towers: every template filled with every class phrase.

Zero-shot heads average the embeddings of several phrasings per class (prompt
ensembling), which is steadier than any one template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from har_kedro.data.classes import class_phrase
from har_kedro.data.errors import DataInputError

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a person {}.",
    "a photo of someone {}.",
    "someone {} in the picture.",
    "an image of a person who is {}.",
    "a cropped photo of a person {}.",
    "a low resolution photo of a person {}.",
)


def build_class_prompts(
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    phrases: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """``{class name: [template.format(phrase) for template in templates]}`` in class order."""
    if not templates:
        raise DataInputError("prompts.templates is empty; give at least one template such as 'a photo of a person {}.'")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise DataInputError(f"prompt templates {bad} must contain exactly one '{{}}' where the class phrase goes.")
    table = dict(phrases) if phrases is not None else None
    return {name: [t.format(class_phrase(name, table)) for t in templates] for name in class_names}
