"""Pixels: one RGB image of an action class from a :class:`~har_kedro.demo.scene.Scene`.

Figures are drawn at :data:`_SUPERSAMPLE` times the final size and box-downsampled, which
gives anti-aliased strokes without needing anything beyond PIL's ImageDraw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.demo.poses import POSES
from har_kedro.demo.scene import Scene, Vec, rot

_SUPERSAMPLE = 2

#: Drawing styles: stroke width as a multiple of the plain one, and how a stroke is drawn. The HAR-like
#: demo set is drawn ``plain``; the captioned pretraining corpus uses every style, and the ``shifted``
#: evaluation set uses styles the fine-tuning set never shows (see demo/corpus.py).
STYLES: dict[str, tuple[float, str]] = {
    "plain": (1.0, "solid"),
    "bold": (2.4, "solid"),
    "thin": (0.45, "solid"),
    "sketch": (0.6, "sketch"),
    "dotted": (1.3, "dotted"),
}


@dataclass(frozen=True)
class Look:
    """What a caption can say about a picture besides the action: the figure's and the background's colour
    and the drawing style. A colour left ``None`` is drawn at random as in the HAR-like set."""

    figure: tuple[int, int, int] | None = None
    background: tuple[int, int, int] | None = None
    style: str = "plain"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown drawing style {self.style!r}; expected one of {sorted(STYLES)}")


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _contrasting(rng: np.random.Generator, ref: np.ndarray, min_diff: float = 80.0) -> tuple[int, int, int]:
    """Random colour whose luminance differs from ``ref`` enough for the figure to be visible."""
    for _ in range(30):
        c = rng.integers(0, 256, size=3)
        if abs(_luma(c) - _luma(ref)) >= min_diff:
            return (int(c[0]), int(c[1]), int(c[2]))
    return (0, 0, 0) if _luma(ref) > 127 else (255, 255, 255)


def _background(w: int, h: int, rng: np.random.Generator, base_colour: tuple[int, int, int] | None = None) -> tuple[Image.Image, np.ndarray]:
    """Gradient or soft blobs around a random (or the given) base colour (same distribution for all classes)."""
    base = (rng.integers(0, 256, size=3) if base_colour is None else np.asarray(base_colour)).astype(np.float32)
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


@dataclass(frozen=True)
class _Placement:
    """Figure units to supersampled pixels: mirror, rotate, then scale and shift into the frame."""

    flip: float
    theta: float
    scale: float = 1.0
    ox: float = 0.0
    oy: float = 0.0

    def turned(self, p: Vec) -> Vec:
        """``p`` mirrored (``flip``) and rotated by ``theta`` degrees, still in figure units."""
        return rot((self.flip * p[0], p[1]), self.theta)

    def px(self, p: Vec) -> tuple[float, float]:
        q = self.turned(p)
        return (self.ox + self.scale * q[0], self.oy + self.scale * q[1])


def _centre(size_px: float, frame: int, placement: float, rng: np.random.Generator) -> float:
    """Random centre along one axis; at most ~10 % of the figure leaves the frame."""
    lo, hi = 0.4 * size_px, frame - 0.4 * size_px
    if hi <= lo:
        return frame / 2
    half = (hi - lo) / 2 * placement
    return float(rng.uniform(frame / 2 - half, frame / 2 + half)) if half > 0 else frame / 2


def _place(
    scene: Scene,
    width: int,
    height: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float],
    placement: float,
) -> _Placement:
    """Mirror, rotate, then fit the scene's bounding box into a ``width`` x ``height`` frame."""
    turn = _Placement(flip=-1.0 if rng.random() < 0.5 else 1.0, theta=float(rng.uniform(-15.0, 15.0)))
    pts = np.array([turn.turned(p) for p in scene.extent_points()])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    frac = float(rng.uniform(*scale_range))
    # height drives the scale; very wide scenes (sleeping, two figures) count 60 % of their width
    scale = frac * height / max(bh, 0.6 * bw)
    scale = min(scale, 0.95 * width / bw, 0.95 * height / bh)
    cx, cy = _centre(bw * scale, width, placement, rng), _centre(bh * scale, height, placement, rng)
    return replace(turn, scale=scale, ox=cx - scale * (x0 + x1) / 2, oy=cy - scale * (y0 + y1) / 2)


def _dotted(draw: ImageDraw.ImageDraw, xy: list[tuple[float, float]], colour: tuple[int, int, int], lw: int) -> None:
    """A polyline as a row of dots spaced two widths apart."""
    for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / (2.0 * lw)))
        for t in np.linspace(0.0, 1.0, n + 1):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            draw.ellipse([x - lw / 2, y - lw / 2, x + lw / 2, y + lw / 2], fill=colour)


def _stroke(draw: ImageDraw.ImageDraw, xy: list[tuple[float, float]], colour: tuple[int, int, int], lw: int, how: str, rng: np.random.Generator | None) -> None:
    """One polyline: solid (round-capped when thick), dotted, or sketched as two jittered passes."""
    if how == "dotted":
        _dotted(draw, xy, colour, lw)
        return
    passes = [xy]
    if how == "sketch" and rng is not None:
        passes = [[(x + float(rng.normal(0, 1.2 * lw)), y + float(rng.normal(0, 1.2 * lw))) for x, y in xy] for _ in range(2)]
    for points in passes:
        draw.line(points, fill=colour, width=lw, joint="curve")
        if lw >= 3:  # round caps
            for x, y in (points[0], points[-1]):
                draw.ellipse([x - lw / 2, y - lw / 2, x + lw / 2, y + lw / 2], fill=colour)


def _draw_scene(
    img: Image.Image, scene: Scene, place: _Placement, colours: dict[str, tuple[int, int, int]], lw_unit: float,
    how: str = "solid", rng: np.random.Generator | None = None,
) -> None:
    """Polygons, then lines (in the drawing style), then circles, in the role colours."""
    draw = ImageDraw.Draw(img)
    for poly_pts, role in scene.polys:
        draw.polygon([place.px(p) for p in poly_pts], fill=colours[role])
    for line_pts, wf, role in scene.lines:
        _stroke(draw, [place.px(p) for p in line_pts], colours[role], max(1, round(lw_unit * wf)), how, rng)
    for c, r, filled, wf, role in scene.circles:
        x, y = place.px(c)
        rp = r * place.scale
        box = [x - rp, y - rp, x + rp, y + rp]
        if filled:
            draw.ellipse(box, fill=colours[role])
        else:
            draw.ellipse(box, outline=colours[role], width=max(1, round(lw_unit * wf)))


def _downsample_with_noise(img: Image.Image, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Box-downsample the supersampled drawing to ``width`` x ``height`` and add Gaussian pixel noise."""
    img = img.reduce(_SUPERSAMPLE)
    sigma = float(rng.uniform(2.0, 10.0))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, size=(height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def render_action(
    label: str,
    width: int,
    height: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.4, 0.9),
    placement: float = 1.0,
    look: Look | None = None,
) -> Image.Image:
    """Draw one RGB image of ``label`` (one of ``HAR_CLASSES``) at ``width`` x ``height``.

    The pose carries the class; background, colours, position, scale (40-90 % of the image
    height), mirroring, rotation (+-15 deg), limb jitter and pixel noise are random with
    the same distributions for every class. All randomness comes from ``rng`` so callers
    control determinism. ``scale_range`` is the figure's height as a fraction of the image
    height; ``placement`` is how much of the free room around the figure its centre may
    use (0: always centred, 1: anywhere with at most ~10 % cut off). ``look`` fixes the figure and
    background colours and the drawing style (None: random colours, plain style, the HAR-like set's
    draws exactly).
    """
    if label not in POSES:
        raise ValueError(f"unknown action {label!r}; expected one of {HAR_CLASSES}")
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    W, H = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    look = look or Look()
    img, base = _background(W, H, rng, look.background)
    figure = _contrasting(rng, base) if look.figure is None else look.figure
    colours = {"fig": figure, "prop": _contrasting(rng, base, 60.0)}
    scene = Scene(rng)
    POSES[label](scene)
    place = _place(scene, W, H, rng, scale_range, placement)
    width_factor, how = STYLES[look.style]
    lw_unit = place.scale * float(rng.uniform(0.022, 0.042)) * width_factor
    _draw_scene(img, scene, place, colours, lw_unit, how, rng)
    return _downsample_with_noise(img, width, height, rng)
