"""One pose per HAR class. Angles: degrees from straight down, positive towards the facing direction.

The pose (and its props) is the only thing that tells the classes apart; see
:class:`har_kedro.demo.scene.Scene` for the primitives and the shared jitter.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from har_kedro.data.classes import HAR_CLASSES
from har_kedro.demo.scene import Scene, add


def _pose_calling(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 4), s.ang(5, 5))
    phone = b.at_head(0.85, 0.05)
    s.arm_to(b, phone, bend=1)
    lean = math.degrees(math.atan2(b.up[0], -b.up[1]))
    s.rect(add(phone, b.up, 0.015), 0.045, 0.10, lean + s.ang(0, 8))
    s.arm(b, -15, -8)
    s.stand(b)


def _pose_clapping(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 4), s.ang(0, 5))
    hands = b.ahead(b.shoulder, 0.12, 0.07)
    s.arm_to(b, (hands[0], hands[1] - 0.012), bend=1)
    s.arm_to(b, (hands[0], hands[1] + 0.012), bend=-1)
    # short "clap" strokes radiating from the hands
    for a in (120.0, 150.0, 180.0):
        d = s.direction(s.ang(a, 6), b.facing)
        s.line([add(hands, d, 0.045), add(hands, d, 0.09)], 0.6, "prop")
    s.stand(b)


def _pose_cycling(s: Scene) -> None:
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
    s.leg_to(b, add(crank, pedal), bend=-1)
    s.leg_to(b, add(crank, pedal, -1.0), bend=-1)
    s.line([add(crank, pedal), add(crank, pedal, -1.0)], 0.6, "prop")


def _pose_dancing(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(0, 10), s.ang(0, 10))
    s.arm(b, 145, 170)
    s.arm(b, -145, -170)
    if s.rng.random() < 0.5:  # knee raised to the front
        s.leg(b, 80, 10)
    else:  # leg kicked out to the side
        s.leg(b, 65, 75)
    s.leg(b, -10, -5)


def _pose_drinking(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(-5, 4), s.ang(-20, 5))
    mouth = b.at_head(1.0, -0.35)
    cup = add(mouth, b.fwd, 0.04)
    s.arm_to(b, cup, bend=1)
    lean = math.degrees(math.atan2(b.up[0], -b.up[1]))
    s.rect(cup, 0.055, 0.075, lean - b.facing * s.ang(35, 8))
    s.arm(b, -12, -6)
    s.stand(b)


def _pose_eating(s: Scene) -> None:
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
    hand = s.arm_to(b, add(mouth, b.fwd, 0.035), bend=1)
    s.line([hand, add(hand, (b.fwd[0] * 0.7 - b.up[0], b.fwd[1] * 0.7 - b.up[1]), 0.05)], 0.6, "prop")
    s.arm_to(b, (plate[0] - 0.07, plate[1] - 0.01), bend=1)


def _pose_fighting(s: Scene) -> None:
    for hip_x, facing in ((-0.30, 1), (0.30, -1)):
        b = s.figure((hip_x + float(s.rng.normal(0, 0.02)), 0.0), s.ang(15, 5), s.ang(0, 5), facing)
        s.arm(b, 90, 90)  # punch
        s.arm(b, 40, 160)  # guard
        s.leg(b, 30, 12)
        s.leg(b, -30, -12)


def _pose_hugging(s: Scene) -> None:
    hips = ((-0.14, 0.0), (0.14, 0.0))
    bodies = [s.figure(hips[0], s.ang(9, 3), s.ang(10, 5), 1), s.figure(hips[1], s.ang(9, 3), s.ang(10, 5), -1)]
    for me, other in ((bodies[0], bodies[1]), (bodies[1], bodies[0])):
        back = other.ahead(other.shoulder, -0.06, 0.0)  # behind the other's back
        s.arm_to(me, (back[0], back[1] + 0.03), bend=-1)
        s.arm_to(me, (back[0], back[1] + 0.11), bend=1)
        s.leg(me, 6, 2)
        s.leg(me, -10, -4)


def _pose_laughing(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(-10, 5), s.ang(-15, 6))
    # open mouth: filled half-disc, plus closed "^ ^" eyes
    m = b.at_head(0.0, -0.3)
    rr = 0.45 * b.r
    mouth = []
    for t in np.linspace(0, math.pi, 10):
        side = (b.fwd[0] * math.cos(t), b.fwd[1] * math.cos(t))
        mouth.append(add(m, add(side, b.up, -math.sin(t)), rr))
    s.poly(mouth, "fig")
    for side in (-0.4, 0.4):
        e = b.at_head(side, 0.3)
        s.line([add(e, b.fwd, -0.15 * b.r), add(e, b.up, 0.12 * b.r), add(e, b.fwd, 0.15 * b.r)], 0.5)
    belly = b.ahead(b.hip, 0.06, -0.11)
    s.arm_to(b, belly, bend=-1)
    s.arm_to(b, (belly[0], belly[1] + 0.03), bend=1)
    s.leg(b, 12, 0)
    s.leg(b, -9, -4)


def _pose_listening_to_music(s: Scene) -> None:
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


def _pose_running(s: Scene) -> None:
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


def _pose_sitting(s: Scene) -> None:
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


def _pose_sleeping(s: Scene) -> None:
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


def _pose_texting(s: Scene) -> None:
    b = s.figure((0.0, 0.0), s.ang(5, 4), s.ang(35, 6))
    hands = b.ahead(b.shoulder, 0.12, 0.10)
    s.arm_to(b, (hands[0] - b.facing * 0.015, hands[1]), bend=1)
    s.arm_to(b, (hands[0] + b.facing * 0.015, hands[1] + 0.01), bend=1)
    s.rect((hands[0], hands[1] - 0.01), 0.05, 0.085, b.facing * s.ang(55, 8))
    s.stand(b)


def _pose_using_laptop(s: Scene) -> None:
    hip = (0.0, 0.0)
    # a box to sit on
    s.line([(-0.12, 0.03), (0.08, 0.03), (0.08, 0.22), (-0.12, 0.22), (-0.12, 0.03)], 0.8, "prop")
    b = s.figure(hip, s.ang(5, 4), s.ang(25, 5))
    s.leg(b, 90, 0)
    s.leg(b, 86, -4)
    base_y = -0.025
    back = (0.22, base_y)
    screen_top = add(back, s.direction(s.ang(165, 5), 1), 0.17)
    s.rect(((0.05 + back[0]) / 2, base_y), 0.18, 0.022, 0.0)
    s.poly([back, screen_top, add(screen_top, (-0.03, 0.0)), add(back, (-0.03, 0.0))])
    s.arm_to(b, (0.10, base_y - 0.015), bend=1)
    s.arm_to(b, (0.13, base_y - 0.02), bend=1)


POSES: dict[str, Callable[[Scene], None]] = {
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
assert set(POSES) == set(HAR_CLASSES), "every HAR class needs a pose"
