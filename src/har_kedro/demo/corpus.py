"""The demo's captioned pretraining corpus and its distribution-shifted evaluation set.

Real CLIP learns from captions that describe a whole picture, not from class labels, and its zero-shot
head works because class prompts reuse the captions' words. The corpus imitates that: each picture is
drawn with a :class:`~har_kedro.demo.render.Look` (named figure and background colours, one of several
drawing styles) and its caption composes the action with those (several phrasings of each action, several
sentence forms), and some captions do not name the action at all. The HAR-like fine-tuning set keeps the
``plain`` style with random colours; the ``shifted`` evaluation set (ImageFolder layout, the same 15
classes) is drawn in styles that only the corpus shows, so fine-tuning can forget what pretraining knew.

Every image has its own random stream keyed by ``(seed, stream, number)``, disjoint from the HAR-like
set's streams, so the three sets never share a picture.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har_kedro.config.errors import known_keys
from har_kedro.data.classes import HAR_CLASSES
from har_kedro.data.errors import DataInputError
from har_kedro.demo.formats import jpeg_bytes
from har_kedro.demo.render import STYLES, Look, render_action

CORPUS_CSV = "captions.csv"
CORPUS_IMAGES = "images"
_CORPUS_STREAM, _SHIFTED_STREAM = 2, 3

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35), "green": (40, 165, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40),
    "orange": (240, 135, 25), "purple": (135, 55, 180), "pink": (240, 135, 185), "brown": (120, 75, 35),
    "black": (20, 20, 20), "white": (245, 245, 245), "grey": (128, 128, 128),
}

# Several ways to say each action; the class prompts' phrases (data/classes.py) are among them.
ACTION_PHRASES: dict[str, tuple[str, ...]] = {
    "calling": ("making a phone call", "talking on the phone", "on a phone call", "calling someone"),
    "clapping": ("clapping", "clapping hands", "applauding"),
    "cycling": ("riding a bicycle", "cycling", "riding a bike", "on a bike"),
    "dancing": ("dancing", "dancing with arms up", "doing a dance"),
    "drinking": ("drinking", "drinking from a cup", "having a drink"),
    "eating": ("eating", "eating food", "having a meal"),
    "fighting": ("fighting", "in a fight", "fighting another person"),
    "hugging": ("hugging", "hugging a friend", "embracing someone"),
    "laughing": ("laughing", "laughing out loud", "laughing hard"),
    "listening_to_music": ("listening to music", "wearing headphones", "listening to songs"),
    "running": ("running", "running fast", "jogging"),
    "sitting": ("sitting", "sitting on a chair", "seated on a chair"),
    "sleeping": ("sleeping", "asleep in bed", "lying asleep"),
    "texting": ("texting on a phone", "typing a text message", "texting"),
    "using_laptop": ("using a laptop", "working on a laptop", "typing on a laptop"),
}
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("a drawing", "a stick figure drawing", "a simple drawing"),
    "bold": ("a bold drawing", "a thick line drawing", "a heavy marker drawing"),
    "thin": ("a thin line drawing", "a fine pen drawing", "a faint drawing"),
    "sketch": ("a rough sketch", "a messy sketch", "a pencil sketch"),
    "dotted": ("a dotted drawing", "a drawing made of dots", "a dot pattern drawing"),
}
SUBJECTS = ("a person", "someone", "a stick figure")
# Sentence forms; {style} {subject} {colour} {action} {background} are filled in. About half name the action
# alone (as most web captions of a photo of an action would); the others add what else is in the picture,
# and the last form names no action at all.
FORMS = (
    "a photo of {subject} {action}.",
    "{subject} {action}.",
    "an image of {subject} who is {action}.",
    "{subject} {action} in the picture.",
    "{style} of {subject} {action}.",
    "{subject} in {colour} {action}.",
    "{subject} {action} on a {background} background.",
    "{style} of {subject} in {colour} {action} on a {background} background.",
    "{style} of {subject} in {colour} on a {background} background.",
)
NO_ACTION_FORM = len(FORMS) - 1


@dataclass(frozen=True)
class CorpusSpec:
    """What the corpus generator writes (``pretraining.corpus.demo``); :data:`FORMS` says how captions read."""

    images_per_class: int = 200
    seed: int = 0
    min_size: int = 96
    max_size: int = 160
    styles: tuple[str, ...] = tuple(STYLES)
    no_action_fraction: float = 0.1   # captions that name colours, background and style but not the action
    second_caption_fraction: float = 0.1  # images listed twice, with two different captions
    min_scale: float = 0.6
    max_scale: float = 0.9
    placement: float = 0.5
    jpeg_quality: int = 90

    @classmethod
    def from_params(cls, settings: Mapping[str, Any], where: str = "pretraining.corpus.demo") -> CorpusSpec:
        values = known_keys(cls, settings, where, DataInputError)
        if "styles" in values:
            values["styles"] = tuple(values["styles"])
        try:
            return cls(**values)
        except ValueError as exc:
            raise DataInputError(f"{where}: {exc}") from None

    def __post_init__(self) -> None:
        if self.images_per_class < 1:
            raise ValueError("images_per_class must be >= 1")
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError("need 16 <= min_size <= max_size")
        unknown = sorted(set(self.styles) - set(STYLES))
        if unknown or not self.styles:
            raise ValueError(f"styles must be a non-empty list of {sorted(STYLES)}, got {list(self.styles)}")
        for name in ("no_action_fraction", "second_caption_fraction", "placement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _look(rng: np.random.Generator, styles: Sequence[str]) -> tuple[Look, str, str]:
    """A random look with named figure and background colours far enough apart to see the figure."""
    names = list(COLOURS)
    figure = _pick(rng, names)
    far = [n for n in names if sum(abs(a - b) for a, b in zip(COLOURS[n], COLOURS[figure])) >= 200]
    background = _pick(rng, far)
    return Look(COLOURS[figure], COLOURS[background], _pick(rng, styles)), figure, background


def caption_for(label: str, look: Look, figure: str, background: str, rng: np.random.Generator, no_action: bool) -> str:
    """One caption of a picture of ``label`` drawn with ``look``; ``no_action`` leaves the action out."""
    form = FORMS[NO_ACTION_FORM] if no_action else _pick(rng, FORMS[:NO_ACTION_FORM])
    return form.format(
        style=_pick(rng, STYLE_PHRASES[look.style]), subject=_pick(rng, SUBJECTS), colour=figure,
        action=_pick(rng, ACTION_PHRASES[label]), background=background,
    )


def _fresh_dir(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _draw(spec: CorpusSpec, stream: int, number: int, label: str, styles: Sequence[str]) -> tuple[bytes, np.random.Generator, tuple[Look, str, str]]:
    rng = np.random.default_rng([spec.seed, stream, number])
    look = _look(rng, styles)
    w, h = (int(v) for v in rng.integers(spec.min_size, spec.max_size + 1, size=2))
    image = render_action(label, w, h, rng, (spec.min_scale, spec.max_scale), spec.placement, look[0])
    return jpeg_bytes(image, spec.jpeg_quality), rng, look


def generate_caption_corpus(root: str | Path, spec: CorpusSpec = CorpusSpec()) -> int:
    """Write ``root/images/*.jpg`` and ``root/captions.csv`` (``image,caption``); return the number of rows.

    Re-running with the same ``spec`` gives byte-identical files; ``root/images`` and the CSV are replaced.
    """
    root = Path(root)
    image_dir = root / CORPUS_IMAGES
    _fresh_dir(image_dir)
    rows: list[tuple[str, str]] = []
    labels = [label for label in HAR_CLASSES for _ in range(spec.images_per_class)]
    order = np.random.default_rng([spec.seed, _CORPUS_STREAM]).permutation(len(labels))
    for number, index in enumerate(order, start=1):
        data, rng, (look, figure, background) = _draw(spec, _CORPUS_STREAM, number, labels[index], spec.styles)
        name = f"{CORPUS_IMAGES}/img_{number:05d}.jpg"
        (root / name).write_bytes(data)
        n_captions = 2 if rng.random() < spec.second_caption_fraction else 1
        for _ in range(n_captions):
            no_action = bool(rng.random() < spec.no_action_fraction)
            rows.append((name, caption_for(labels[index], look, figure, background, rng, no_action)))
    with (root / CORPUS_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return len(rows)


def generate_shifted_set(root: str | Path, spec: CorpusSpec, styles: Sequence[str], images_per_class: int) -> int:
    """A labelled evaluation set in ImageFolder layout (``root/<class>/*.jpg``) drawn in ``styles``; returns its size."""
    unknown = sorted(set(styles) - set(STYLES))
    if unknown or not styles:
        raise DataInputError(f"the shifted set's styles must be a non-empty list of {sorted(STYLES)}, got {list(styles)}.")
    root = Path(root)
    _fresh_dir(root)
    number = 0
    for label in HAR_CLASSES:
        (root / label).mkdir()
        for k in range(images_per_class):
            number += 1
            data, _, _ = _draw(spec, _SHIFTED_STREAM, number, label, styles)
            (root / label / f"{label}_{k + 1:04d}.jpg").write_bytes(data)
    return number
