"""Offline, HAR-like demo image set in the Kaggle layout.

Why this exists: the real Kaggle "Human Action Recognition" set cannot be downloaded in
tests, CI or air-gapped demos, yet the ingestion pipeline and the model comparison need
*something* that looks like it. This module draws stick figures whose pose depends on the
action class, so that

* a model can actually learn something (the class is carried by the shape), while
  colours, backgrounds, position, scale, rotation and noise are drawn from the same
  distributions for every class, so nothing but the pose gives the label away;
* the files follow the Kaggle layout exactly (``Training_set.csv`` with
  ``filename,label`` and ``train/Image_<n>.jpg``), so the same ingestion code runs on the
  demo and on the real data;
* a handful of deliberately broken entries (truncated / empty / non-image files, missing
  and unlisted files, unknown labels, duplicate rows and duplicate images) and unusual but
  valid images (grayscale, CMYK, palette, RGBA, 16-bit, EXIF-rotated) exercise every
  rejection and conversion path of the ingestion step.

Everything is seeded from :class:`DemoSpec` ``seed`` only, so the same spec always yields
byte-identical files, which keeps downstream caches and tests reproducible.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from har_kedro.data.classes import HAR_CLASSES

__all__ = [
    "CSV_NAME",
    "IMAGE_DIR",
    "DemoSpec",
    "DemoSummary",
    "generate_demo_dataset",
    "render_action",
]

CSV_NAME = "Training_set.csv"
IMAGE_DIR = "train"
UNKNOWN_LABEL = "juggling"

Vec = tuple[float, float]

# Figures are drawn at this multiple of the final size and box-downsampled, which gives
# anti-aliased strokes without needing anything beyond PIL's ImageDraw.
_SUPERSAMPLE = 2


# --------------------------------------------------------------------------------------
# Public data classes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSpec:
    """What to generate.

    The defaults give 720 good images of at most 160 px: big enough for a model to reach
    clearly-above-chance accuracy, small enough to generate in a couple of seconds.
    """

    images_per_class: int = 48
    #: each image gets a random width and height in ``[min_size, max_size]`` so that the
    #: pipeline's resizing is exercised with non-square, varying inputs.
    min_size: int = 96
    max_size: int = 160
    seed: int = 0
    #: add the broken / problematic entries that an ingestion step must reject.
    include_broken: bool = True
    jpeg_quality: int = 90
    #: figure height as a fraction of the image height, and how far from the centre the
    #: figure may sit (0: centred, 1: anywhere); see :func:`render_action`.
    min_scale: float = 0.4
    max_scale: float = 0.9
    placement: float = 1.0

    def __post_init__(self) -> None:
        if self.images_per_class < 1:
            raise ValueError("images_per_class must be >= 1")
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError("need 16 <= min_size <= max_size")
        if self.seed < 0:
            raise ValueError("seed must be >= 0 (it seeds numpy's SeedSequence)")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in [1, 100]")
        if not 0.05 <= self.min_scale <= self.max_scale <= 1.0:
            raise ValueError("need 0.05 <= min_scale <= max_scale <= 1")
        if not 0.0 <= self.placement <= 1.0:
            raise ValueError("placement must be in [0, 1]")


@dataclass(frozen=True)
class DemoSummary:
    """What was written, so tests and demos can check the ingestion step against it.

    ``broken`` is keyed by filename (relative to ``train/``); problems that live only in
    the CSV are keyed ``"Training_set.csv row <k>"`` where ``k`` is the 0-based data-row
    index (the pandas index after ``read_csv``). ``convertible`` lists good images that are
    valid but not plain RGB JPEGs: they are counted in ``n_good`` because a pipeline should
    convert them, not reject them.
    """

    root: Path
    n_listed: int  # rows in Training_set.csv (header excluded)
    n_good: int  # valid, correctly labelled, unique images
    broken: dict[str, str] = field(default_factory=dict)
    convertible: dict[str, str] = field(default_factory=dict)

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    @property
    def image_dir(self) -> Path:
        return self.root / IMAGE_DIR


# --------------------------------------------------------------------------------------
# Scene description in "figure units" (a standing figure is about 0.9 units tall,
# y grows downwards like image coordinates)
# --------------------------------------------------------------------------------------


def _add(a: Vec, b: Vec, k: float = 1.0) -> Vec:
    return (a[0] + k * b[0], a[1] + k * b[1])


def _rot(v: Vec, deg: float) -> Vec:
    """Rotate ``v`` by ``deg``; positive is clockwise on screen (y points down)."""
    r = math.radians(deg)
    c, s = math.cos(r), math.sin(r)
    return (v[0] * c - v[1] * s, v[0] * s + v[1] * c)


@dataclass
class _Body:
    """Joints of one drawn figure plus its head frame, used to place hands and props."""

    hip: Vec
    shoulder: Vec
    head: Vec
    r: float
    up: Vec  # unit vector from neck towards the top of the head
    fwd: Vec  # unit vector the face points to (perpendicular to ``up``)
    facing: int

    def at_head(self, f: float, u: float) -> Vec:
        """Point at ``f`` head radii forward and ``u`` head radii up from the head centre."""
        p = _add(self.head, self.fwd, f * self.r)
        return _add(p, self.up, u * self.r)

    def ahead(self, origin: Vec, f: float, down: float) -> Vec:
        """Point ``f`` units in the facing direction and ``down`` units below ``origin``."""
        return (origin[0] + self.facing * f, origin[1] + down)


class _Scene:
    """Collects drawing primitives for one image; geometry only, no pixels yet.

    Body proportions and angle jitter are drawn here from the same distributions for every
    class, so that limb lengths or jitter cannot leak the label.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        # (points, width factor, role) ; role is "fig" or "prop" (drawn in different colours)
        self.lines: list[tuple[list[Vec], float, str]] = []
        # (centre, radius, filled, width factor, role)
        self.circles: list[tuple[Vec, float, bool, float, str]] = []
        # (points, role) filled polygons
        self.polys: list[tuple[list[Vec], str]] = []

        def j() -> float:
            return float(rng.uniform(0.9, 1.1))

        self.head_r = 0.075 * j()
        self.neck = 0.035 * j()
        self.torso = 0.30 * j()
        self.upper = 0.15 * j()
        self.fore = 0.14 * j()
        self.thigh = 0.19 * j()
        self.shin = 0.19 * j()

    # -- jitter -------------------------------------------------------------------------
    def ang(self, deg: float, sd: float = 7.0) -> float:
        return deg + float(self.rng.normal(0.0, sd))

    def pt(self, p: Vec, sd: float = 0.015) -> Vec:
        return (p[0] + float(self.rng.normal(0.0, sd)), p[1] + float(self.rng.normal(0.0, sd)))

    # -- primitives ---------------------------------------------------------------------
    def line(self, pts: list[Vec], w: float = 1.0, role: str = "fig") -> None:
        self.lines.append((list(pts), w, role))

    def circle(self, c: Vec, r: float, filled: bool = False, w: float = 1.0, role: str = "fig") -> None:
        self.circles.append((c, r, filled, w, role))

    def poly(self, pts: list[Vec], role: str = "prop") -> None:
        self.polys.append((list(pts), role))

    def rect(self, centre: Vec, w: float, h: float, angle: float, role: str = "prop") -> None:
        """Filled rectangle ``w`` x ``h`` centred at ``centre`` rotated by ``angle`` degrees."""
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        self.poly([_add(centre, _rot(c, angle)) for c in corners], role)

    def arc(self, c: Vec, r: float, a0: float, a1: float, w: float = 1.0, role: str = "fig", n: int = 12) -> None:
        """Polyline arc; angles in degrees, 0 = +x, positive = clockwise on screen."""
        pts = []
        for t in np.linspace(a0, a1, n):
            rad = math.radians(float(t))
            pts.append((c[0] + r * math.cos(rad), c[1] + r * math.sin(rad)))
        self.line(pts, w, role)

    # -- body parts ---------------------------------------------------------------------
    @staticmethod
    def direction(deg: float, facing: int) -> Vec:
        """Unit vector at ``deg`` from straight down, positive towards where the body faces."""
        r = math.radians(deg)
        return (facing * math.sin(r), math.cos(r))

    def figure(self, hip: Vec, lean: float, tilt: float = 0.0, facing: int = 1) -> _Body:
        """Torso, neck and head; ``lean``/``tilt`` in degrees, positive = forward."""
        up = (facing * math.sin(math.radians(lean)), -math.cos(math.radians(lean)))
        shoulder = _add(hip, up, self.torso)
        a = math.radians(lean + tilt)
        up_h = (facing * math.sin(a), -math.cos(a))
        fwd_h = (facing * math.cos(a), math.sin(a))
        neck_end = _add(shoulder, up_h, self.neck)
        head = _add(neck_end, up_h, self.head_r)
        self.line([hip, shoulder, neck_end])
        self.circle(head, self.head_r)
        return _Body(hip, shoulder, head, self.head_r, up_h, fwd_h, facing)

    def limb(self, start: Vec, a1: float, a2: float, l1: float, l2: float, facing: int) -> Vec:
        """Two-segment limb from absolute angles (see :meth:`direction`); returns its end."""
        mid = _add(start, self.direction(a1, facing), l1)
        end = _add(mid, self.direction(a2, facing), l2)
        self.line([start, mid, end])
        return end

    def reach(self, start: Vec, target: Vec, l1: float, l2: float, bend: int, facing: int) -> Vec:
        """Two-segment limb whose end reaches ``target`` (2-link inverse kinematics).

        ``bend=+1`` puts the middle joint below a forward-pointing limb (elbow down);
        ``-1`` puts it above (knee forward for a downward-pointing leg).
        """
        dx, dy = target[0] - start[0], target[1] - start[1]
        d = math.hypot(dx, dy)
        lo, hi = abs(l1 - l2) + 1e-3, (l1 + l2) * 0.999
        if d < 1e-9:
            dx, dy, d = 0.0, 1.0, 1.0
        ux, uy = dx / d, dy / d
        d = min(max(d, lo), hi)
        target = (start[0] + ux * d, start[1] + uy * d)
        cos_a = (l1 * l1 + d * d - l2 * l2) / (2 * l1 * d)
        alpha = math.degrees(math.acos(max(-1.0, min(1.0, cos_a))))
        mid = _add(start, _rot((ux, uy), bend * facing * alpha), l1)
        self.line([start, mid, target])
        return target

    def arm(self, b: _Body, a1: float, a2: float) -> Vec:
        return self.limb(b.shoulder, self.ang(a1), self.ang(a2), self.upper, self.fore, b.facing)

    def arm_to(self, b: _Body, target: Vec, bend: int = 1) -> Vec:
        return self.reach(b.shoulder, self.pt(target, 0.008), self.upper, self.fore, bend, b.facing)

    def leg(self, b: _Body, a1: float, a2: float) -> Vec:
        return self.limb(b.hip, self.ang(a1), self.ang(a2), self.thigh, self.shin, b.facing)

    def leg_to(self, b: _Body, target: Vec, bend: int = -1) -> Vec:
        return self.reach(b.hip, self.pt(target, 0.008), self.thigh, self.shin, bend, b.facing)

    def stand(self, b: _Body) -> None:
        self.leg(b, 9, 4)
        self.leg(b, -9, -4)

    # -- all points, for framing ----------------------------------------------------------
    def extent_points(self) -> list[Vec]:
        pts: list[Vec] = []
        for line_pts, _, _ in self.lines:
            pts.extend(line_pts)
        for poly_pts, _ in self.polys:
            pts.extend(poly_pts)
        for c, r, _, _, _ in self.circles:
            pts.extend([(c[0] - r, c[1] - r), (c[0] + r, c[1] + r), (c[0] - r, c[1] + r), (c[0] + r, c[1] - r)])
        return pts


# --------------------------------------------------------------------------------------
# Class poses. Angles: degrees from straight down, positive towards the facing direction.
# --------------------------------------------------------------------------------------


def _pose_calling(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 4), s.ang(5, 5))
    phone = b.at_head(0.85, 0.05)
    s.arm_to(b, phone, bend=1)
    lean = math.degrees(math.atan2(b.up[0], -b.up[1]))
    s.rect(_add(phone, b.up, 0.015), 0.045, 0.10, lean + s.ang(0, 8))
    s.arm(b, -15, -8)
    s.stand(b)


def _pose_clapping(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 4), s.ang(0, 5))
    hands = b.ahead(b.shoulder, 0.12, 0.07)
    s.arm_to(b, (hands[0], hands[1] - 0.012), bend=1)
    s.arm_to(b, (hands[0], hands[1] + 0.012), bend=-1)
    # short "clap" strokes radiating from the hands
    for a in (120.0, 150.0, 180.0):
        d = s.direction(s.ang(a, 6), b.facing)
        s.line([_add(hands, d, 0.045), _add(hands, d, 0.09)], 0.6, "prop")
    s.stand(b)


def _pose_cycling(s: _Scene) -> None:
    hip = (0.0, 0.0)
    rw = s.head_r * 1.8 * float(s.rng.uniform(0.95, 1.1))
    rear, front = s.pt((-0.23, 0.30), 0.01), s.pt((0.31, 0.30), 0.01)
    crank = s.pt((0.04, 0.29), 0.01)
    bar = s.pt((0.24, -0.10), 0.012)
    seat = (hip[0], hip[1] + 0.03)
    s.circle(rear, rw, w=0.8, role="prop")
    s.circle(front, rw, w=0.8, role="prop")
    s.line([rear, crank, (0.22, 0.02), seat, rear], 0.8, "prop")
    s.line([front, bar, (bar[0] - 0.05, bar[1])], 0.8, "prop")
    s.line([(seat[0] - 0.05, seat[1]), (seat[0] + 0.05, seat[1])], 0.8, "prop")
    b = s.figure(hip, s.ang(35, 5), s.ang(-15, 5))
    s.arm_to(b, bar, bend=1)
    phase = float(s.rng.uniform(0, 2 * math.pi))
    pedal = (0.075 * math.cos(phase), 0.075 * math.sin(phase))
    s.leg_to(b, _add(crank, pedal), bend=-1)
    s.leg_to(b, _add(crank, pedal, -1.0), bend=-1)
    s.line([_add(crank, pedal), _add(crank, pedal, -1.0)], 0.6, "prop")


def _pose_dancing(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 10), s.ang(0, 10))
    s.arm(b, 145, 170)
    s.arm(b, -145, -170)
    if s.rng.random() < 0.5:  # knee raised to the front
        s.leg(b, 80, 10)
    else:  # leg kicked out to the side
        s.leg(b, 65, 75)
    s.leg(b, -10, -5)


def _pose_drinking(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(-5, 4), s.ang(-20, 5))
    mouth = b.at_head(1.0, -0.35)
    cup = _add(mouth, b.fwd, 0.04)
    s.arm_to(b, cup, bend=1)
    lean = math.degrees(math.atan2(b.up[0], -b.up[1]))
    s.rect(cup, 0.055, 0.075, lean - b.facing * s.ang(35, 8))
    s.arm(b, -12, -6)
    s.stand(b)


def _pose_eating(s: _Scene) -> None:
    hip = (0.0, 0.0)
    # stool and table with a plate
    s.line([(-0.08, 0.03), (0.08, 0.03)], 0.9, "prop")
    s.line([(0.0, 0.03), (0.0, 0.22)], 0.9, "prop")
    top = -0.04 + float(s.rng.normal(0, 0.01))
    s.line([(0.17, top), (0.58, top)], 1.0, "prop")
    s.line([(0.22, top), (0.22, 0.22)], 0.8, "prop")
    s.line([(0.53, top), (0.53, 0.22)], 0.8, "prop")
    plate = (0.36 + float(s.rng.normal(0, 0.02)), top - 0.02)
    s.poly([(plate[0] + 0.09 * math.cos(t), plate[1] + 0.022 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 14)])
    s.circle((plate[0], plate[1] - 0.025), 0.022, filled=True, role="prop")
    b = s.figure(hip, s.ang(5, 4), s.ang(10, 5))
    s.leg(b, 90, 0)
    s.leg(b, 85, -5)
    mouth = b.at_head(0.95, -0.35)
    hand = s.arm_to(b, _add(mouth, b.fwd, 0.035), bend=1)
    s.line([hand, _add(hand, (b.fwd[0] * 0.7 - b.up[0], b.fwd[1] * 0.7 - b.up[1]), 0.05)], 0.6, "prop")
    s.arm_to(b, (plate[0] - 0.07, plate[1] - 0.01), bend=1)


def _pose_fighting(s: _Scene) -> None:
    for hip_x, facing in ((-0.30, 1), (0.30, -1)):
        b = s.figure((hip_x + float(s.rng.normal(0, 0.02)), 0.0), s.ang(15, 5), s.ang(0, 5), facing)
        s.arm(b, 90, 90)  # punch
        s.arm(b, 40, 160)  # guard
        s.leg(b, 30, 12)
        s.leg(b, -30, -12)


def _pose_hugging(s: _Scene) -> None:
    hips = ((-0.14, 0.0), (0.14, 0.0))
    bodies = [s.figure(hips[0], s.ang(9, 3), s.ang(10, 5), 1), s.figure(hips[1], s.ang(9, 3), s.ang(10, 5), -1)]
    for me, other in ((bodies[0], bodies[1]), (bodies[1], bodies[0])):
        back = other.ahead(other.shoulder, -0.06, 0.0)  # behind the other's back
        s.arm_to(me, (back[0], back[1] + 0.03), bend=-1)
        s.arm_to(me, (back[0], back[1] + 0.11), bend=1)
        s.leg(me, 6, 2)
        s.leg(me, -10, -4)


def _pose_laughing(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(-10, 5), s.ang(-15, 6))
    # open mouth: filled half-disc, plus closed "^ ^" eyes
    m = b.at_head(0.0, -0.3)
    rr = 0.45 * b.r
    mouth = []
    for t in np.linspace(0, math.pi, 10):
        side = (b.fwd[0] * math.cos(t), b.fwd[1] * math.cos(t))
        mouth.append(_add(m, _add(side, b.up, -math.sin(t)), rr))
    s.poly(mouth, "fig")
    for side in (-0.4, 0.4):
        e = b.at_head(side, 0.3)
        s.line([_add(e, b.fwd, -0.15 * b.r), _add(e, b.up, 0.12 * b.r), _add(e, b.fwd, 0.15 * b.r)], 0.5)
    belly = b.ahead(b.hip, 0.06, -0.11)
    s.arm_to(b, belly, bend=-1)
    s.arm_to(b, (belly[0], belly[1] + 0.03), bend=1)
    s.leg(b, 12, 0)
    s.leg(b, -9, -4)


def _pose_listening_to_music(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 5), s.ang(0, 8))
    # headphones: band over the head and a cup at each side
    band = [b.at_head(1.2 * math.cos(t), 1.25 * math.sin(t)) for t in np.linspace(0, math.pi, 12)]
    s.line(band, 1.0, "prop")
    for side in (-1.05, 1.05):
        s.circle(b.at_head(side, 0.0), 0.42 * b.r, filled=True, role="prop")
    s.arm_to(b, b.at_head(1.2, -0.3), bend=1)
    s.arm(b, -15, -8)
    s.stand(b)
    # a floating note
    n = b.at_head(3.2, 1.6)
    s.circle(n, 0.025, filled=True, role="prop")
    s.line([(n[0] + 0.022, n[1]), (n[0] + 0.022, n[1] - 0.09), (n[0] + 0.05, n[1] - 0.06)], 0.6, "prop")


def _pose_running(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(25, 5), s.ang(-15, 5))
    s.arm(b, 55, 145)
    s.arm(b, -55, 30)
    s.leg(b, 70, 15)
    s.leg(b, -35, -100)
    # speed lines behind the runner
    for k in range(3):
        y = -0.2 + 0.12 * k + float(s.rng.normal(0, 0.01))
        x0 = -b.facing * (0.22 + 0.03 * k)
        s.line([(x0, y), (x0 - b.facing * 0.14, y)], 0.6, "prop")


def _pose_sitting(s: _Scene) -> None:
    hip = (0.0, 0.0)
    seat_y = 0.03
    back_x = -0.13
    s.line([(back_x, seat_y), (0.14, seat_y)], 1.0, "prop")
    s.line([(back_x, seat_y), (back_x - 0.03, seat_y - 0.32)], 1.0, "prop")
    s.line([(back_x + 0.01, seat_y), (back_x + 0.01, 0.22)], 0.9, "prop")
    s.line([(0.13, seat_y), (0.13, 0.22)], 0.9, "prop")
    b = s.figure(hip, s.ang(-5, 4), s.ang(0, 5))
    s.leg(b, 90, 0)
    s.leg(b, 88, -3)
    s.arm(b, 15, 85)
    s.arm(b, 5, 80)


def _pose_sleeping(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(90, 3), s.ang(0, 5))
    s.arm(b, -80, -95)
    s.arm(b, -95, -90)
    s.leg(b, -85, -95)
    s.leg(b, -95, -92)
    f = b.facing
    low = 0.08
    # bed: mattress line, legs, head board and a pillow under the head
    s.line([(-f * 0.52, low), (f * 0.55, low)], 1.0, "prop")
    s.line([(-f * 0.52, low), (-f * 0.52, low + 0.1)], 0.9, "prop")
    s.line([(f * 0.55, low - 0.2), (f * 0.55, low + 0.1)], 0.9, "prop")
    pillow = (b.head[0], low - 0.02)
    s.poly([(pillow[0] + 0.09 * math.cos(t), pillow[1] + 0.025 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 14)])
    # "z z z"
    for k, size in enumerate((0.03, 0.045, 0.06)):
        o = (b.head[0] + f * (0.06 + 0.07 * k), b.head[1] - 0.13 - 0.07 * k)
        s.line([o, (o[0] + size, o[1]), (o[0], o[1] + size), (o[0] + size, o[1] + size)], 0.6, "prop")


def _pose_texting(s: _Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(5, 4), s.ang(35, 6))
    hands = b.ahead(b.shoulder, 0.12, 0.10)
    s.arm_to(b, (hands[0] - b.facing * 0.015, hands[1]), bend=1)
    s.arm_to(b, (hands[0] + b.facing * 0.015, hands[1] + 0.01), bend=1)
    s.rect((hands[0], hands[1] - 0.01), 0.05, 0.085, b.facing * s.ang(55, 8))
    s.stand(b)


def _pose_using_laptop(s: _Scene) -> None:
    hip = (0.0, 0.0)
    # a box to sit on
    s.line([(-0.12, 0.03), (0.08, 0.03), (0.08, 0.22), (-0.12, 0.22), (-0.12, 0.03)], 0.8, "prop")
    b = s.figure(hip, s.ang(5, 4), s.ang(25, 5))
    s.leg(b, 90, 0)
    s.leg(b, 86, -4)
    base_y = -0.025
    back = (0.22, base_y)
    screen_top = _add(back, s.direction(s.ang(165, 5), 1), 0.17)
    s.rect(((0.05 + back[0]) / 2, base_y), 0.18, 0.022, 0.0)
    s.poly([back, screen_top, _add(screen_top, (-0.03, 0.0)), _add(back, (-0.03, 0.0))])
    s.arm_to(b, (0.10, base_y - 0.015), bend=1)
    s.arm_to(b, (0.13, base_y - 0.02), bend=1)


_POSES: dict[str, Callable[[_Scene], None]] = {
    "calling": _pose_calling,
    "clapping": _pose_clapping,
    "cycling": _pose_cycling,
    "dancing": _pose_dancing,
    "drinking": _pose_drinking,
    "eating": _pose_eating,
    "fighting": _pose_fighting,
    "hugging": _pose_hugging,
    "laughing": _pose_laughing,
    "listening_to_music": _pose_listening_to_music,
    "running": _pose_running,
    "sitting": _pose_sitting,
    "sleeping": _pose_sleeping,
    "texting": _pose_texting,
    "using_laptop": _pose_using_laptop,
}
assert set(_POSES) == set(HAR_CLASSES), "every HAR class needs a pose"


# --------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _contrasting(rng: np.random.Generator, ref: np.ndarray, min_diff: float = 80.0) -> tuple[int, int, int]:
    """Random colour whose luminance differs from ``ref`` enough for the figure to be visible."""
    for _ in range(30):
        c = rng.integers(0, 256, size=3)
        if abs(_luma(c) - _luma(ref)) >= min_diff:
            return (int(c[0]), int(c[1]), int(c[2]))
    return (0, 0, 0) if _luma(ref) > 127 else (255, 255, 255)


def _background(w: int, h: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Gradient or soft blobs around a random base colour (same distribution for all classes)."""
    base = rng.integers(0, 256, size=3).astype(np.float32)
    if rng.random() < 0.5:
        other = np.clip(base + rng.normal(0, 45, size=3), 0, 255).astype(np.float32)
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * math.cos(theta) + yy * math.sin(theta)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = base[None, None, :] * (1 - t[..., None]) + other[None, None, :] * t[..., None]
        img = Image.fromarray(arr.astype(np.uint8), "RGB")
    else:
        img = Image.new("RGB", (w, h), tuple(int(v) for v in base))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 8))):
            col = np.clip(base + rng.normal(0, 35, size=3), 0, 255).astype(int)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            rx, ry = rng.uniform(0.1, 0.45) * w, rng.uniform(0.1, 0.45) * h
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(v) for v in col))
    return img, base


def render_action(
    label: str,
    width: int,
    height: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.4, 0.9),
    placement: float = 1.0,
) -> Image.Image:
    """Draw one RGB image of ``label`` (one of ``HAR_CLASSES``) at ``width`` x ``height``.

    The pose carries the class; background, colours, position, scale (40-90 % of the image
    height), mirroring, rotation (+-15 deg), limb jitter and pixel noise are random with
    the same distributions for every class. All randomness comes from ``rng`` so callers
    control determinism. ``scale_range`` is the figure's height as a fraction of the image
    height; ``placement`` is how much of the free room around the figure its centre may
    use (0: always centred, 1: anywhere with at most ~10 % cut off).
    """
    if label not in _POSES:
        raise ValueError(f"unknown action {label!r}; expected one of {HAR_CLASSES}")
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    W, H = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    img, base = _background(W, H, rng)
    colours = {"fig": _contrasting(rng, base), "prop": _contrasting(rng, base, 60.0)}

    scene = _Scene(rng)
    _POSES[label](scene)

    # mirror, rotate, then fit the bounding box into the frame
    flip = -1.0 if rng.random() < 0.5 else 1.0
    theta = float(rng.uniform(-15.0, 15.0))

    def tf(p: Vec) -> Vec:
        return _rot((flip * p[0], p[1]), theta)

    pts = np.array([tf(p) for p in scene.extent_points()])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    frac = float(rng.uniform(*scale_range))
    # height drives the scale; very wide scenes (sleeping, two figures) count 60 % of their width
    scale = frac * H / max(bh, 0.6 * bw)
    scale = min(scale, 0.95 * W / bw, 0.95 * H / bh)
    pw, ph = bw * scale, bh * scale

    def centre_range(size_px: float, frame: int) -> float:
        lo, hi = 0.4 * size_px, frame - 0.4 * size_px  # at most ~10 % of the figure leaves the frame
        if hi <= lo:
            return frame / 2
        half = (hi - lo) / 2 * placement
        return float(rng.uniform(frame / 2 - half, frame / 2 + half)) if half > 0 else frame / 2

    cx, cy = centre_range(pw, W), centre_range(ph, H)
    ox, oy = cx - scale * (x0 + x1) / 2, cy - scale * (y0 + y1) / 2

    def px(p: Vec) -> tuple[float, float]:
        q = tf(p)
        return (ox + scale * q[0], oy + scale * q[1])

    lw_unit = scale * float(rng.uniform(0.022, 0.042))
    draw = ImageDraw.Draw(img)
    for poly_pts, role in scene.polys:
        draw.polygon([px(p) for p in poly_pts], fill=colours[role])
    for line_pts, wf, role in scene.lines:
        lw = max(1, round(lw_unit * wf))
        xy = [px(p) for p in line_pts]
        draw.line(xy, fill=colours[role], width=lw, joint="curve")
        if lw >= 3:  # round caps
            for x, y in (xy[0], xy[-1]):
                draw.ellipse([x - lw / 2, y - lw / 2, x + lw / 2, y + lw / 2], fill=colours[role])
    for c, r, filled, wf, role in scene.circles:
        x, y = px(c)
        rp = r * scale
        box = [x - rp, y - rp, x + rp, y + rp]
        if filled:
            draw.ellipse(box, fill=colours[role])
        else:
            draw.ellipse(box, outline=colours[role], width=max(1, round(lw_unit * wf)))

    img = img.reduce(_SUPERSAMPLE)
    sigma = float(rng.uniform(2.0, 10.0))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------------------
# Dataset writer
# --------------------------------------------------------------------------------------


def _jpeg_bytes(img: Image.Image, quality: int, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _convert(kind: str, img: Image.Image, quality: int) -> tuple[str, bytes, str]:
    """Re-encode an RGB render as one of the unusual-but-valid formats; returns (ext, bytes, description)."""
    if kind == "gray":
        return "jpg", _jpeg_bytes(img.convert("L"), quality), "grayscale JPEG (mode L)"
    if kind == "cmyk":
        return "jpg", _jpeg_bytes(img.convert("CMYK"), quality), "CMYK JPEG (mode CMYK)"
    if kind == "palette":
        pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        return "png", _png_bytes(pal), "palette PNG (mode P)"
    if kind == "rgba":
        rgba = img.convert("RGBA")
        alpha = np.full((img.height, img.width), 255, dtype=np.uint8)
        m = max(2, min(img.width, img.height) // 12)
        alpha[:m, :] = 0
        alpha[-m:, :] = 0
        alpha[:, :m] = 0
        alpha[:, -m:] = 0
        rgba.putalpha(Image.fromarray(alpha, "L"))
        return "png", _png_bytes(rgba), "RGBA PNG with a transparent border (mode RGBA)"
    if kind == "gray16":
        arr = np.asarray(img.convert("L"), dtype=np.uint16) * np.uint16(257)
        return "png", _png_bytes(Image.fromarray(arr)), "16-bit grayscale PNG (mode I;16)"
    if kind == "exif_rot":
        stored = img.transpose(Image.Transpose.ROTATE_90)  # pixels stored rotated 90 deg CCW
        exif = stored.getexif()
        exif[0x0112] = 6  # Orientation: rotate 90 deg CW to display upright
        return "jpg", _jpeg_bytes(stored, quality, exif=exif), "JPEG stored rotated with EXIF Orientation=6"
    raise ValueError(kind)


_CONVERTIBLE_KINDS = ("gray", "cmyk", "palette", "rgba", "gray16", "exif_rot")
# Extra files beyond the good images; each consumes one Image_<n> number.
_BROKEN_FILE_KINDS = ("truncated", "empty", "text", "missing", "unlisted", "unknown_label", "duplicate_image")


def _prepare_root(root: Path) -> None:
    """Create ``root``/``train`` and remove only what a previous run of ours wrote."""
    root.mkdir(parents=True, exist_ok=True)
    stale = root / IMAGE_DIR
    if stale.is_dir() and not stale.is_symlink():
        shutil.rmtree(stale)
    elif stale.exists() or stale.is_symlink():
        stale.unlink()
    csv_path = root / CSV_NAME
    if csv_path.exists() or csv_path.is_symlink():
        csv_path.unlink()
    stale.mkdir()


def generate_demo_dataset(root: str | Path, spec: DemoSpec = DemoSpec()) -> DemoSummary:
    """Write the demo set under ``root`` in the Kaggle layout and describe what was written.

    ``root/train`` and ``root/Training_set.csv`` are replaced (nothing else in ``root`` is
    touched), so re-running with the same ``spec`` gives byte-identical files.
    """
    root = Path(root)
    _prepare_root(root)
    image_dir = root / IMAGE_DIR

    layout_rng = np.random.default_rng([spec.seed, 0])
    n_classes = len(HAR_CLASSES)
    n_good = spec.images_per_class * n_classes

    # entries: ("good", label) or (broken kind, label); shuffled together and numbered 1..N
    entries: list[tuple[str, str]] = [("good", c) for c in HAR_CLASSES for _ in range(spec.images_per_class)]
    if spec.include_broken:
        for kind in _BROKEN_FILE_KINDS:
            entries.append((kind, HAR_CLASSES[int(layout_rng.integers(n_classes))]))
    order = layout_rng.permutation(len(entries))
    entries = [entries[i] for i in order]
    numbers = list(range(1, len(entries) + 1))

    good_idx = [i for i, (kind, _) in enumerate(entries) if kind == "good"]
    # unusual-but-valid formats go to good images of distinct classes
    conv_for: dict[int, str] = {}
    used_classes: set[str] = set()
    for i in (good_idx[k] for k in layout_rng.permutation(len(good_idx))):
        if len(conv_for) == len(_CONVERTIBLE_KINDS):
            break
        if entries[i][1] in used_classes and len(used_classes) < n_classes:
            continue
        conv_for[i] = _CONVERTIBLE_KINDS[len(conv_for)]
        used_classes.add(entries[i][1])

    plain_good = [i for i in good_idx if i not in conv_for]
    dup_source = plain_good[int(layout_rng.integers(len(plain_good)))] if plain_good else good_idx[0]

    rows: list[tuple[str, str]] = []  # CSV rows in file order
    broken: dict[str, str] = {}
    convertible: dict[str, str] = {}
    dup_bytes = b""

    def render(i: int, label: str) -> Image.Image:
        rng = np.random.default_rng([spec.seed, 1, numbers[i]])
        w, h = (int(v) for v in rng.integers(spec.min_size, spec.max_size + 1, size=2))
        return render_action(label, w, h, rng, (spec.min_scale, spec.max_scale), spec.placement)

    # pass 1: good images (the duplicate needs its source's bytes)
    names: dict[int, str] = {}
    for i, (kind, label) in enumerate(entries):
        if kind != "good":
            continue
        img = render(i, label)
        if i in conv_for:
            ext, data, desc = _convert(conv_for[i], img, spec.jpeg_quality)
            names[i] = f"Image_{numbers[i]}.{ext}"
            convertible[names[i]] = desc
        else:
            data = _jpeg_bytes(img, spec.jpeg_quality)
            names[i] = f"Image_{numbers[i]}.jpg"
        (image_dir / names[i]).write_bytes(data)
        if i == dup_source:
            dup_bytes = data

    # pass 2: problematic entries
    for i, (kind, label) in enumerate(entries):
        if kind == "good":
            continue
        name = f"Image_{numbers[i]}.jpg"
        names[i] = name
        path = image_dir / name
        if kind == "truncated":
            data = _jpeg_bytes(render(i, label), spec.jpeg_quality)
            path.write_bytes(data[: int(len(data) * 0.6)])
            broken[name] = "truncated JPEG (cut to 60% of its bytes)"
        elif kind == "empty":
            path.write_bytes(b"")
            broken[name] = "empty file (0 bytes)"
        elif kind == "text":
            path.write_text("this is not an image, just text with a .jpg name\n", encoding="utf-8")
            broken[name] = "not an image (text file with a .jpg name)"
        elif kind == "missing":
            broken[name] = "listed in Training_set.csv but missing from train/"
        elif kind == "unlisted":
            path.write_bytes(_jpeg_bytes(render(i, label), spec.jpeg_quality))
            broken[name] = "valid image in train/ that is not listed in Training_set.csv"
        elif kind == "unknown_label":
            path.write_bytes(_jpeg_bytes(render(i, label), spec.jpeg_quality))
            broken[name] = f"label {UNKNOWN_LABEL!r} is not one of the HAR classes"
        elif kind == "duplicate_image":
            path.write_bytes(dup_bytes)
            label = entries[dup_source][1]
            entries[i] = (kind, label)
            broken[name] = f"byte-identical copy of {names[dup_source]} (same label)"

    for i, (kind, label) in enumerate(entries):
        if kind == "unlisted":
            continue
        rows.append((names[i], UNKNOWN_LABEL if kind == "unknown_label" else label))

    if spec.include_broken:
        # an exact repeat of a good, plain row, inserted somewhere after the original
        plain_names = {names[i] for i in plain_good}
        src_row = int(layout_rng.integers(len(rows)))
        while rows[src_row][0] not in plain_names:
            src_row = (src_row + 1) % len(rows)
        pos = int(layout_rng.integers(src_row + 1, len(rows) + 1))
        rows.insert(pos, rows[src_row])
        broken[f"{CSV_NAME} row {pos}"] = f"exact repeat of row {src_row} ({rows[src_row][0]},{rows[src_row][1]})"

    with (root / CSV_NAME).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["filename", "label"])
        writer.writerows(rows)

    return DemoSummary(root=root, n_listed=len(rows), n_good=n_good, broken=broken, convertible=convertible)

