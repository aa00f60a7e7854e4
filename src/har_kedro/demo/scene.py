"""Stick-figure geometry in "figure units", before any pixels exist.

A standing figure is about 0.9 units tall and y grows downwards like image coordinates.
:class:`Scene` collects lines, circles and polygons; :mod:`har_kedro.demo.poses` fills one
per action class and :mod:`har_kedro.demo.render` turns it into pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Vec = tuple[float, float]


def add(a: Vec, b: Vec, k: float = 1.0) -> Vec:
    return (a[0] + k * b[0], a[1] + k * b[1])


def rot(v: Vec, deg: float) -> Vec:
    """Rotate ``v`` by ``deg``; positive is clockwise on screen (y points down)."""
    r = math.radians(deg)
    c, s = math.cos(r), math.sin(r)
    return (v[0] * c - v[1] * s, v[0] * s + v[1] * c)


@dataclass
class Body:
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
        p = add(self.head, self.fwd, f * self.r)
        return add(p, self.up, u * self.r)

    def ahead(self, origin: Vec, f: float, down: float) -> Vec:
        """Point ``f`` units in the facing direction and ``down`` units below ``origin``."""
        return (origin[0] + self.facing * f, origin[1] + down)


class Scene:
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
        self.poly([add(centre, rot(c, angle)) for c in corners], role)

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

    def figure(self, hip: Vec, lean: float, tilt: float = 0.0, facing: int = 1) -> Body:
        """Torso, neck and head; ``lean``/``tilt`` in degrees, positive = forward."""
        up = (facing * math.sin(math.radians(lean)), -math.cos(math.radians(lean)))
        shoulder = add(hip, up, self.torso)
        a = math.radians(lean + tilt)
        up_h = (facing * math.sin(a), -math.cos(a))
        fwd_h = (facing * math.cos(a), math.sin(a))
        neck_end = add(shoulder, up_h, self.neck)
        head = add(neck_end, up_h, self.head_r)
        self.line([hip, shoulder, neck_end])
        self.circle(head, self.head_r)
        return Body(hip, shoulder, head, self.head_r, up_h, fwd_h, facing)

    def limb(self, start: Vec, a1: float, a2: float, l1: float, l2: float, facing: int) -> Vec:
        """Two-segment limb from absolute angles (see :meth:`direction`); returns its end."""
        mid = add(start, self.direction(a1, facing), l1)
        end = add(mid, self.direction(a2, facing), l2)
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
        mid = add(start, rot((ux, uy), bend * facing * alpha), l1)
        self.line([start, mid, target])
        return target

    def arm(self, b: Body, a1: float, a2: float) -> Vec:
        return self.limb(b.shoulder, self.ang(a1), self.ang(a2), self.upper, self.fore, b.facing)

    def arm_to(self, b: Body, target: Vec, bend: int = 1) -> Vec:
        return self.reach(b.shoulder, self.pt(target, 0.008), self.upper, self.fore, bend, b.facing)

    def leg(self, b: Body, a1: float, a2: float) -> Vec:
        return self.limb(b.hip, self.ang(a1), self.ang(a2), self.thigh, self.shin, b.facing)

    def leg_to(self, b: Body, target: Vec, bend: int = -1) -> Vec:
        return self.reach(b.hip, self.pt(target, 0.008), self.thigh, self.shin, bend, b.facing)

    def stand(self, b: Body) -> None:
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
