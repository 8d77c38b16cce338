"""The ``gestures`` family: 14 classes of a stick figure's gestures, 48-120 frames at 30 fps, 180x320 (16:9).

Unlike the demo's single shape on an empty scene, a person (legs, torso, head, two jointed arms) stands
in a bright, cluttered room (wall and floor, 3-6 posters and shelves, 0-2 shapes drifting past; mean frame
luma about 120-190) filmed by a hand-held camera (a smooth drift of up to 2.5% of the frame) with mild
sensor noise (std 0-5). Props (a
whiteboard, a table, a window) appear in the classes that use them.

- **time-order pairs** (the second class is the first played backwards, clip for clip; what changes over
  time is a pose, a covered area or a count, not where something is):

  - ``RaiseArm``/``LowerArm``: one arm swings from hanging by the body out to the side, level with the shoulder;
  - ``OpenHand``/``CloseHand``: a close-up hand opens from a fist, fingers growing and spreading;
  - ``DrawCircle``/``EraseCircle``: the hand draws a circle of thick marker on a whiteboard;
  - ``StackBlocks``/``UnstackBlocks``: the hand puts 3-5 blocks on a table one on another;
  - ``CloseBlinds``/``OpenBlinds``: pulling a cord turns the slats of a window's blinds until it is dark;
  - ``Crouch``/``StandUp``: the person bends the knees, hips dropping by 45% of the leg.
- **appearance classes** that one frame separates: ``Juggle`` (three balls in a cascade) and ``Pinwheel``
  (a four-bladed pinwheel spinning on a stick held up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actionlab.synth.draw import (
    Canvas,
    Distractors,
    Family,
    SensorNoise,
    camera_path,
    film,
    progress,
)

TIME_PAIRS: tuple[tuple[str, str], ...] = (
    ("RaiseArm", "LowerArm"),
    ("OpenHand", "CloseHand"),
    ("DrawCircle", "EraseCircle"),
    ("StackBlocks", "UnstackBlocks"),
    ("CloseBlinds", "OpenBlinds"),
    ("Crouch", "StandUp"),
)
APPEARANCE_CLASSES: tuple[str, ...] = ("Juggle", "Pinwheel")

CLASS_DESCRIPTIONS: dict[str, str] = {
    "RaiseArm": "a person raises one arm from hanging by the body out to the side, level with the shoulder",
    "LowerArm": "the arm comes down from level with the shoulder to hang by the body (RaiseArm played backwards)",
    "OpenHand": "a close-up hand opens from a fist, its fingers growing and spreading",
    "CloseHand": "the hand closes into a fist (OpenHand played backwards)",
    "DrawCircle": "the person draws a circle of thick marker on a whiteboard",
    "EraseCircle": "the circle is taken back stroke by stroke (DrawCircle played backwards)",
    "StackBlocks": "the person stacks 3-5 coloured blocks on a table, one on another",
    "UnstackBlocks": "the blocks are lifted off the stack one by one (StackBlocks played backwards)",
    "CloseBlinds": "pulling a cord turns the slats of a window's blinds until the window is dark",
    "OpenBlinds": "the blinds open and let the sky in (CloseBlinds played backwards)",
    "Crouch": "the person bends the knees, the hips dropping by 45% of the leg",
    "StandUp": "the person stands up from a crouch (Crouch played backwards)",
    "Juggle": "the person juggles three balls in a cascade",
    "Pinwheel": "a four-bladed pinwheel spins on a stick the person holds up",
}

_SKIN = ((236, 188, 160), (198, 140, 105), (141, 85, 54), (255, 219, 172), (224, 172, 105))
Point = tuple[float, float]


@dataclass(frozen=True)
class _Scene:
    """What the clips of one group share: the room, the person and the camera."""

    wall: tuple[float, float, float]
    floor: tuple[float, float, float]
    horizon: float  # the floor line, fraction of H
    light: float  # wall brightness gradient top to bottom (+/-)
    clutter: tuple[tuple[float, float, float, float, tuple[float, float, float]], ...]  # boxes, fractions
    skin: tuple[float, float, float]
    shirt: tuple[float, float, float]
    pants: tuple[float, float, float]
    px: float  # where the person stands (fraction of W)
    side: int  # +1: the right arm (screen right) gestures, -1: the left
    scale: float
    drift: float  # hand-held camera drift, fraction of min(H, W)
    noise: float
    distractors: int
    brightness: float


def _draw_scene(rng: np.random.Generator) -> _Scene:
    wall = rng.uniform(140, 240, 3)
    floor = np.clip(wall * rng.uniform(0.45, 0.8) + rng.uniform(-25, 25, 3), 0, 255)
    clutter = []
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.uniform(0.0, 0.9), rng.uniform(0.05, 0.7)
        clutter.append((float(x0), float(y0), float(x0 + rng.uniform(0.05, 0.2)), float(y0 + rng.uniform(0.05, 0.25)),
                        tuple(float(c) for c in rng.uniform(30, 255, 3))))
    return _Scene(
        wall=tuple(map(float, wall)), floor=tuple(map(float, floor)), horizon=float(rng.uniform(0.68, 0.8)),
        light=float(rng.uniform(-0.2, 0.2)), clutter=tuple(clutter),
        skin=tuple(float(c) for c in _SKIN[int(rng.integers(0, len(_SKIN)))]),
        shirt=tuple(float(c) for c in rng.uniform(0, 255, 3)), pants=tuple(float(c) for c in rng.uniform(0, 160, 3)),
        px=float(rng.uniform(0.3, 0.7)), side=int(rng.choice([-1, 1])), scale=float(rng.uniform(0.85, 1.05)),
        drift=float(rng.uniform(0.005, 0.025)), noise=float(rng.uniform(0.0, 5.0)),
        distractors=int(rng.integers(0, 3)), brightness=float(rng.uniform(0.85, 1.1)))


def _room(scene: _Scene, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32: lit wall, floor, skirting and clutter."""
    y = (np.arange(h, dtype=np.float32) / h)[:, None, None]
    bg = np.asarray(scene.wall, np.float32) * (1 + scene.light * (y - 0.5)) * np.ones((1, w, 1), np.float32)
    horizon = int(scene.horizon * h)
    bg[horizon:] = np.asarray(scene.floor, np.float32)
    cv = Canvas(bg, 0, 0)
    for x0, y0, x1, y1, color in scene.clutter:
        cv.box(x0 * w, y0 * horizon, x1 * w, min(y1 * horizon, horizon), color)
    cv.box(0, horizon - 2, w, horizon + 1, np.asarray(scene.floor) * 0.6)
    return np.ascontiguousarray(bg * scene.brightness, dtype=np.float32)


def _joint(a: Point, b: Point, l1: float, l2: float, bend: float) -> tuple[Point, Point]:
    """Two-segment limb from ``a`` reaching for ``b``: ``(joint, end)``; ``bend`` (+/-1) picks the side the
    joint bulges to. Out of reach, the limb points straight at ``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    d = math.hypot(dx, dy) or 1e-6
    ux, uy = dx / d, dy / d
    if d >= l1 + l2:
        return (a[0] + ux * l1, a[1] + uy * l1), (a[0] + ux * (l1 + l2), a[1] + uy * (l1 + l2))
    along = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    across = math.sqrt(max(l1 * l1 - along * along, 0.0))
    return (a[0] + ux * along - bend * uy * across, a[1] + uy * along + bend * ux * across), b


class _Person:
    """A front-facing figure standing at ``x`` with its feet near the bottom of the frame."""

    def __init__(self, scene: _Scene, h: int, w: int, s: float) -> None:
        k = scene.scale * s
        self.scene, self.side = scene, scene.side
        self.x, self.feet = scene.px * w, 0.94 * h
        self.leg, self.torso, self.head = 0.15 * k, 0.25 * k, 0.055 * k
        self.upper, self.fore, self.limb = 0.13 * k, 0.12 * k, 0.045 * k
        self.half_width = 0.05 * k

    def shoulder(self, drop: float, side: int) -> Point:
        """Where the arm on ``side`` (-1 screen left, +1 right, 0 the middle) starts, hips ``drop`` lower."""
        return self.x + side * self.half_width, self.feet - 2 * self.leg + drop - self.torso

    def draw_body(self, cv: Canvas, drop: float = 0.0) -> None:
        """Legs (knees bending outward as the hips ``drop``), torso and head."""
        sc = self.scene
        hip_y = self.feet - 2 * self.leg + drop
        for side in (-1, 1):
            hip, foot = (self.x + side * 0.2 * self.leg, hip_y), (self.x + side * 0.35 * self.leg, self.feet)
            knee, _ = _joint(hip, foot, self.leg, self.leg, -side)
            cv.capsule(*hip, *knee, self.limb * 1.2, sc.pants)
            cv.capsule(*knee, *foot, self.limb * 1.1, sc.pants)
            cv.capsule(foot[0], foot[1], foot[0] + side * 0.25 * self.leg, foot[1], self.limb * 0.8, (40, 40, 40))
        top = hip_y - self.torso
        cv.capsule(self.x, hip_y - 0.1 * self.torso, self.x, top + 0.1 * self.torso, 0.42 * self.torso, sc.shirt)
        cv.disk(self.x, top - 1.3 * self.head, self.head, sc.skin)

    def draw_arm(self, cv: Canvas, side: int, target: Point, drop: float = 0.0, bend: float = 1.0) -> Point:
        """One arm reaching for ``target``; returns where the hand is."""
        sh = self.shoulder(drop, side)
        elbow, hand = _joint(sh, target, self.upper, self.fore, bend * side)
        cv.capsule(*sh, *elbow, self.limb, self.scene.shirt)
        cv.capsule(*elbow, *hand, self.limb * 0.9, self.scene.skin)
        cv.disk(*hand, self.limb * 0.75, self.scene.skin)
        return hand

    def hang(self, cv: Canvas, side: int, drop: float = 0.0) -> None:
        sh = self.shoulder(drop, side)
        reach = self.upper + self.fore
        self.draw_arm(cv, side, (sh[0] + side * 0.2 * reach, sh[1] + 0.97 * reach), drop, bend=-1.0)


def _hand_closeup(cv: Canvas, cx: float, cy: float, s: float, openness: float, skin, fingers) -> None:
    """A big hand from the bottom edge: palm, four fingers and a thumb; ``openness`` 0 (fist) .. 1 (spread)."""
    skin = np.asarray(skin, np.float32)
    r = 0.17 * s
    cv.capsule(cx, cy + 0.3 * s, cx, cy + 2 * s, 1.3 * r, skin * 0.93)  # wrist and forearm
    for angle, length in fingers:
        a = math.radians(angle * (0.35 + 0.65 * openness))
        base = (cx + 0.8 * r * math.sin(a), cy - 0.8 * r * math.cos(a))
        ln = length * s * (0.25 + 0.75 * openness)
        cv.capsule(*base, base[0] + ln * math.sin(a), base[1] - ln * math.cos(a), 0.075 * s, skin * 0.97)
    thumb = math.radians(-(35 + 45 * openness))
    tb = (cx - 0.75 * r, cy + 0.2 * r)
    tl = 0.2 * s * (0.5 + 0.5 * openness)
    cv.capsule(*tb, tb[0] + tl * math.sin(thumb), tb[1] - tl * math.cos(thumb), 0.08 * s, skin * 0.97)
    cv.disk(cx, cy, r, skin)


def render(name: str, scene_rng: np.random.Generator, clip_rng: np.random.Generator, n: int, h: int,
           w: int) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a forward or appearance class of the family, in forward time."""
    scene = _draw_scene(scene_rng)
    background = _room(scene, h, w)
    rng = clip_rng
    s = float(min(h, w))
    person = _Person(scene, h, w, s)
    side = scene.side
    p = progress(rng, n)
    shake = camera_path(rng, n, scene.drift * s * rng.uniform(0.7, 1.0), smooth=True)
    noise = SensorNoise(rng, n, h, w, scene.noise * rng.uniform(0.8, 1.2))
    distract = Distractors(rng, scene.distractors, n, h, w, 0.03 * s)
    reach = person.upper + person.fore
    jitter = rng.uniform(-0.05, 0.05, 2) * reach  # per-clip variation of where the gesture goes

    if name == "RaiseArm":
        # from hanging by the body to straight out sideways: the arm's orientation turns from vertical to
        # horizontal (up above the head would come back to vertical, and position alone pools away)
        phi0, phi1 = math.radians(rng.uniform(5, 15)), math.radians(rng.uniform(85, 100))

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            person.draw_body(cv)
            person.hang(cv, -side)
            phi = phi0 + (phi1 - phi0) * p[t]
            sh = person.shoulder(0.0, side)
            person.draw_arm(cv, side, (sh[0] + side * 0.97 * reach * math.sin(phi),
                                       sh[1] + 0.97 * reach * math.cos(phi)), bend=-1.0)
    elif name == "OpenHand":
        cx, cy = (0.5 + rng.uniform(-0.1, 0.1)) * w, (0.55 + rng.uniform(-0.05, 0.05)) * h
        fingers = [(a + rng.uniform(-4, 4), ln * rng.uniform(0.92, 1.08))
                   for a, ln in ((-33, 0.26), (-11, 0.3), (11, 0.29), (33, 0.23))]

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            _hand_closeup(cv, cx, cy, s, float(p[t]), scene.skin, fingers)
    elif name == "DrawCircle":
        sh = person.shoulder(0.0, side)
        R = 0.1 * s * scene.scale
        ccx, ccy = sh[0] + side * (0.13 * s + jitter[0]), sh[1] - 0.02 * s + jitter[1]
        a0, turn = rng.uniform(0, 2 * math.pi), float(rng.choice([-1.0, 1.0]))
        sweep = math.radians(rng.uniform(300, 350))
        ink = rng.uniform(0, 120, 3)
        width = 0.035 * s

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            cv.box(ccx - 1.6 * R - 2, ccy - 1.5 * R - 2, ccx + 1.6 * R + 2, ccy + 1.5 * R + 2, (90, 90, 90))
            cv.box(ccx - 1.6 * R, ccy - 1.5 * R, ccx + 1.6 * R, ccy + 1.5 * R, (245, 245, 240))
            done = sweep * p[t]
            g = cv.grid(ccx - R - width, ccy - R - width, ccx + R + width, ccy + R + width)
            if g is not None and done > 0:
                region, xs, ys = g
                ring = np.clip(width / 2 - np.abs(np.hypot(xs - ccx, ys - ccy) - R) + 0.5, 0.0, 1.0)
                ang = np.mod(turn * (np.arctan2(ys - ccy, xs - ccx) - a0), 2 * math.pi)
                cv.blend(region, ring * (ang <= done), ink)
            person.draw_body(cv)
            person.hang(cv, -side)
            tip = (ccx + R * math.cos(a0 + turn * done), ccy + R * math.sin(a0 + turn * done))
            hand = person.draw_arm(cv, side, tip)
            cv.disk(*hand, width * 0.6, ink)
    elif name == "StackBlocks":
        k = int(rng.integers(3, 6))
        table_x, table_y = person.x + side * (0.24 * s + jitter[0]), person.feet - 1.6 * person.leg
        sizes = rng.uniform(0.085, 0.11, k) * s * scene.scale
        colors = rng.uniform(20, 255, (k, 3))
        offsets = rng.uniform(-0.015, 0.015, k) * s
        rest = table_y - np.cumsum(sizes) + sizes / 2  # centre heights when stacked
        sh = person.shoulder(0.0, side)
        pick = (sh[0] + side * 0.08 * s, sh[1] + 0.06 * s)  # each block appears in the hand, by the chest

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            cv.box(table_x - 0.11 * s, table_y, table_x + 0.11 * s, table_y + 0.03 * s, (110, 75, 45))
            for leg in (-0.09, 0.09):
                cv.box(table_x + leg * s - 2, table_y, table_x + leg * s + 2, person.feet, (90, 60, 35))
            person.draw_body(cv)
            person.hang(cv, -side)
            u_all = p[t] * k
            hand_at = pick
            for i in range(k):
                u = min(max(u_all - i, 0.0), 1.0)
                if u <= 0:
                    break
                bx = pick[0] + (table_x + offsets[i] - pick[0]) * u
                by = pick[1] + (rest[i] - pick[1]) * (1 - (1 - u) ** 2)
                half = sizes[i] / 2
                cv.box(bx - half, by - half, bx + half, by + half, colors[i])
                if u < 1:
                    hand_at = (bx, by - half)
            person.draw_arm(cv, side, hand_at)
    elif name == "CloseBlinds":
        sh = person.shoulder(0.0, side)
        ww, wh = 0.2 * s, 0.24 * s
        wx, wy = sh[0] + side * (0.32 * s + jitter[0]), sh[1] - 0.05 * s
        slats = int(rng.integers(6, 10))
        sky0, sky1 = rng.uniform([60, 120, 180], [140, 190, 255]), rng.uniform([150, 190, 220], [220, 235, 255])
        slat_color = rng.uniform(170, 240, 3)
        cord_x = wx - side * (ww + 0.02 * s)

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            cv.box(wx - ww - 3, wy - wh - 3, wx + ww + 3, wy + wh + 3, (235, 235, 230))
            g = cv.grid(wx - ww, wy - wh, wx + ww, wy + wh)
            if g is not None:
                region, xs, ys = g
                inside = (np.abs(xs - wx) <= ww) & (np.abs(ys - wy) <= wh)
                f = np.clip((ys - (wy - wh)) / (2 * wh), 0, 1)
                sky = sky0 + f[..., None] * (sky1 - sky0)
                view = cv.frame[region]
                view += inside[..., None] * (sky - view)
                pitch = 2 * wh / slats
                phase = np.mod(ys - (wy - wh), pitch)
                closed = 0.12 + 0.88 * p[t]
                slat = np.clip(closed * pitch - phase + 0.5, 0.0, 1.0) * inside
                shade = 1.0 - 0.25 * phase / pitch
                view += slat[..., None] * (slat_color * shade[..., None] - view)
            cv.capsule(cord_x, wy - wh, cord_x, wy - wh + (0.5 + 0.45 * p[t]) * 2 * wh, 2.0, (80, 80, 80))
            person.draw_body(cv)
            person.hang(cv, -side)
            person.draw_arm(cv, side, (cord_x, wy - wh + (0.5 + 0.45 * p[t]) * 2 * wh))
    elif name == "Crouch":
        depth = 0.45 * 2 * person.leg * rng.uniform(0.9, 1.1)

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            drop = depth * p[t]
            person.draw_body(cv, drop)
            for arm in (-1, 1):
                person.hang(cv, arm, drop)
    elif name == "Juggle":
        period = rng.uniform(20, 32)  # frames for one ball to go round
        height = rng.uniform(0.25, 0.35) * s
        colors = [(235, 40, 40), (250, 210, 30), (30, 160, 240)]
        phase0 = rng.uniform(0, 1)

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            person.draw_body(cv)
            sh = person.shoulder(0.0, 0)
            hands_y = sh[1] + 0.12 * s
            left, right = person.x - 0.09 * s, person.x + 0.09 * s
            for arm, hx in ((-1, left), (1, right)):
                person.draw_arm(cv, arm, (hx, hands_y + 0.01 * s * math.sin(2 * math.pi * t / period)), bend=-1.0)
            for i, color in enumerate(colors):
                u = (t / period + phase0 + i / 3) % 1.0
                if u < 0.5:  # thrown from the left hand over to the right
                    v = 2 * u
                    x, y = left + (right - left) * v, hands_y - height * 4 * v * (1 - v)
                else:  # carried low back to the left hand
                    v = 2 * u - 1
                    x, y = right + (left - right) * v, hands_y + 0.02 * s * math.sin(math.pi * v)
                cv.disk(x, y, 0.028 * s, color)
    elif name == "Pinwheel":
        spin = float(rng.choice([-1.0, 1.0])) * rng.uniform(0.2, 0.4)  # radians per frame
        theta0 = rng.uniform(0, 2 * math.pi)
        blade_colors = rng.uniform(0, 255, (2, 3))
        sh = person.shoulder(0.0, side)
        grip = (sh[0] + side * (0.1 * s + jitter[0]), sh[1] - 0.1 * s + jitter[1])
        blade = 0.09 * s

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            person.draw_body(cv)
            person.hang(cv, -side)
            hand = person.draw_arm(cv, side, grip)
            top = (hand[0], hand[1] - 0.13 * s)
            cv.capsule(*hand, *top, 3.0, (120, 90, 60))
            for b in range(4):
                a = theta0 + spin * t + b * math.pi / 2
                tip = (top[0] + blade * math.cos(a), top[1] + blade * math.sin(a))
                side_pt = (top[0] + blade * math.cos(a + 0.9), top[1] + blade * math.sin(a + 0.9))
                cv.polygon(np.array([top, tip, side_pt], np.float32), blade_colors[b % 2])
            cv.disk(*top, 2.5, (250, 250, 250))
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"no renderer for class {name!r}")
    return film(n, background, shake, noise, draw)


FAMILY = Family(
    name="gestures", pairs=TIME_PAIRS, appearance=APPEARANCE_CLASSES, descriptions=CLASS_DESCRIPTIONS,
    num_frames=(48, 120), fps=30, size=(180, 320), key_base=2000, render=render,
    notes=("A person in a cluttered room, a hand-held camera; the pairs change a pose, an area or a count over",
           "time (not a position), so globally pooled CNN features can follow them."))
