"""The 15 action classes of the Kaggle HAR set and the words used to describe them.

The class names are the labels as they appear in ``Training_set.csv``; the phrases are
what a person would write in a caption, so that text towers see natural language
("listening to music") rather than identifiers ("listening_to_music").
"""

from __future__ import annotations

HAR_CLASSES: tuple[str, ...] = (
    "calling",
    "clapping",
    "cycling",
    "dancing",
    "drinking",
    "eating",
    "fighting",
    "hugging",
    "laughing",
    "listening_to_music",
    "running",
    "sitting",
    "sleeping",
    "texting",
    "using_laptop",
)

DEFAULT_CLASS_PHRASES: dict[str, str] = {
    "calling": "making a phone call",
    "clapping": "clapping",
    "cycling": "riding a bicycle",
    "dancing": "dancing",
    "drinking": "drinking",
    "eating": "eating",
    "fighting": "fighting",
    "hugging": "hugging",
    "laughing": "laughing",
    "listening_to_music": "listening to music",
    "running": "running",
    "sitting": "sitting",
    "sleeping": "sleeping",
    "texting": "texting on a phone",
    "using_laptop": "using a laptop",
}


def class_phrase(name: str, phrases: dict[str, str] | None = None) -> str:
    """Readable phrase for a class, falling back to the label with underscores as spaces."""
    table = DEFAULT_CLASS_PHRASES if phrases is None else phrases
    return table.get(name, name.replace("_", " "))
