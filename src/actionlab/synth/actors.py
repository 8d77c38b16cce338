"""What moves in an ``actions101`` clip: per-frame poses from a class's motions, and OpenCV drawing of them.

:func:`signals` turns each :class:`~actionlab.synth.primitives.Motion` into a per-frame signal (a progress
0 -> 1 for ``once``, 0..1 for ``sine``/``saw``, an unbounded angle for ``loop``), reversed in time for a
reversed class; :func:`pose` maps the signals to the actor's pose (arrays over frames); :func:`draw_actor`
paints frame ``k`` through the camera. Coordinates are frame pixels of the still camera (x right, y down);
``cam = (zoom, cx, cy)`` maps a point ``p`` to ``zoom * (p - (cx, cy)) + (W / 2, H / 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from actionlab.synth.primitives import DIRECTIONAL, ClassSpec, Motion

SUB = 4  # cv2's fractional bits: points are drawn with 1/16-pixel precision
_ONE = 1 << SUB


def _outline(kind: str, k: int = 48) -> np.ndarray:
    """(k, 2) points around a unit shape (within [-1, 1]^2), evenly spaced along its boundary."""
    if kind in ("disk", "ellipse"):
        t = np.linspace(0, 2 * math.pi, k, endpoint=False)
        return np.stack([np.cos(t), np.sin(t) * (0.6 if kind == "ellipse" else 1.0)], 1)
    corners = {
        "square": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
        "triangle": [(0, -1), (0.95, 0.75), (-0.95, 0.75)],
        "hexagon": [(math.cos(a), math.sin(a)) for a in np.arange(6) * math.pi / 3],
        "star": [((1.0 if i % 2 == 0 else 0.45) * math.cos(a), (1.0 if i % 2 == 0 else 0.45) * math.sin(a))
                 for i, a in enumerate(np.arange(10) * math.pi / 5 - math.pi / 2)],
        "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
                  (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
        "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.25), (-1, 0.25)],
    }[kind]
    pts = np.asarray(corners, np.float64)
    seg = np.roll(pts, -1, 0) - pts
    length = np.hypot(seg[:, 0], seg[:, 1])
    s = np.linspace(0, length.sum(), k, endpoint=False)
    i = np.searchsorted(np.cumsum(length), s, side="right")
    f = (s - np.concatenate([[0], np.cumsum(length)])[i]) / length[i]
    return pts[i] + seg[i] * f[:, None]


OUTLINES = {k: _outline(k) for k in ("disk", "ellipse", "square", "triangle", "star", "cross", "hexagon", "arrow")}


@dataclass
class Look:
    """How the actor of one group looks (drawn once per group, jittered a little per clip)."""

    color: tuple[float, float, float]
    accent: tuple[float, float, float]
    size: float
    """Radius in pixels (figure: height / 4; object: half the body's width)."""
    x: float
    y: float
    side: int = 1
    """Where an object's part sits (+1: right)."""
    texture: np.ndarray | None = None
    """``(T, T, 3)`` uint8, tileable (patches)."""
    thickness: float = 6.0


@dataclass
class Pose:
    """The actor's pose over ``n`` frames (arrays of length ``n``)."""

    x: np.ndarray
    y: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    squash: np.ndarray
    """Log of the x stretch in the actor's own frame (y gets the inverse)."""
    alpha: np.ndarray
    reveal: np.ndarray
    wobble: np.ndarray | None = None
    scroll: np.ndarray | None = None
    """(n, 2) texture offset in texture periods."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Actor-specific arrays: figure joints, the object's part, the second shape of a duo."""
    heading: float = 0.0


def signals(spec: ClassSpec, rng: np.random.Generator, n: int, fps: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Per motion a ``(n,)`` signal, and ``tn`` (n,): time 0 -> 1 over the clip; both reversed for a reversed
    class. ``sine``/``saw`` give 0..1 (``saw``: a quick rise over a quarter of the cycle, a slow fall),
    ``loop`` an angle growing 2 pi per cycle, ``once`` a progress 0 -> 1 (over ``1 / speed`` of the clip)."""
    t = np.arange(n) / fps
    tn = np.arange(n) / max(n - 1, 1)
    out = []
    for m in spec.motions:
        f = m.freq * spec.speed * rng.uniform(0.85, 1.15)
        phase = rng.uniform(0, 2 * math.pi)
        if m.wave == "once":
            a, b = rng.uniform(0, 0.15, 2)
            span = (1 - a - b) / spec.speed
            start = a + rng.uniform(0, (1 - a - b) - span)
            s = np.clip((tn - start) / span, 0, 1)
            s = s * s * (3 - 2 * s)  # ease in and out
        elif m.wave == "sine":
            s = 0.5 - 0.5 * np.cos(phase + 2 * math.pi * f * t)
        elif m.wave == "saw":
            frac = (phase / (2 * math.pi) + f * t) % 1.0
            s = np.where(frac < 0.25, frac / 0.25, (1 - frac) / 0.75)
        else:
            s = phase + 2 * math.pi * f * t
        out.append(s[::-1].copy() if spec.reverse else s)
    return out, (tn[::-1].copy() if spec.reverse else tn)


def _bounce(p: np.ndarray, bounces: int) -> np.ndarray:
    """Height 0..1 of a ball dropped at ``p = 0`` that bounces ever lower and shorter until ``p = 1`` (played
    backwards, the bounces grow: time-asymmetric)."""
    p = np.clip(p, 0, 1)
    return (1 - p) ** 1.5 * np.abs(np.cos(math.pi * bounces * p**1.4))


def pose(spec: ClassSpec, look: Look, rng: np.random.Generator, n: int, fps: float, h: int, w: int) -> Pose:
    """The actor's pose in every frame of one clip (the clip's own phase, speed and position jitter)."""
    sig, tn = signals(spec, rng, n, fps)
    u = min(h, w) / 240.0
    x0 = look.x + rng.uniform(-8, 8) * u
    y0 = look.y + rng.uniform(-6, 6) * u
    ps = Pose(x=np.full(n, x0), y=np.full(n, y0), angle=np.full(n, rng.uniform(0, 2 * math.pi)),
              scale=np.full(n, rng.uniform(0.9, 1.1)), squash=np.zeros(n), alpha=np.ones(n), reveal=np.ones(n),
              heading=spec.motions[0].heading)
    for m, s in zip(spec.motions, sig):
        sign = -1.0 if spec.mirror and m.kind in DIRECTIONAL else 1.0
        _apply(spec.actor, m, s, tn, sign, ps, look, u, w)
    return ps


def _apply(actor: str, m: Motion, s: np.ndarray, tn: np.ndarray, sign: float, ps: Pose, look: Look, u: float,
           w: int) -> None:
    """Add motion ``m`` (its signal ``s``; ``sign`` -1 when mirrored) to the pose ``ps`` in place."""
    d = np.array([math.cos(m.heading), math.sin(m.heading)]) * sign
    k, a = m.kind, m.amount
    if actor == "figure":
        ps.extra.update(_figure(m, s, sign))
        if k == "walk":
            ps.x = ps.x + sign * (tn - 0.5) * 0.35 * w * a
    elif actor == "object":
        ps.extra["part"] = sign * s if m.wave == "loop" else s
    elif actor == "duo":
        ps.extra.update(_duo(m, s, sign, look, u, w))
    elif k == "translate":
        amp = (0.35 if m.wave != "sine" else 0.25) * w * a
        ps.x = ps.x + (s - 0.5) * amp * d[0]
        ps.y = ps.y + (s - 0.5) * amp * d[1] * 0.6
    elif k == "orbit":
        r = 45 * u * a
        ps.x, ps.y = ps.x + r * np.cos(sign * s), ps.y + r * np.sin(sign * s)
    elif k == "spin":
        ps.angle = ps.angle + sign * s
    elif k == "turn":
        ps.angle = ps.angle + sign * s * 1.6 * a
    elif k == "scale":
        ps.scale = ps.scale * np.exp(0.8 * min(a, 1.2) * (s - 0.5))
    elif k == "squash":
        ps.squash = ps.squash + 0.45 * min(a, 1.2) * (2 * s - 1)
    elif k == "wobble":
        ps.wobble = sign * s
    elif k == "fade":
        ps.alpha = ps.alpha * s
    elif k == "wipe":
        ps.reveal = s
    elif k == "bounce":
        p = s
        ps.y = ps.y + 40 * u - _bounce(p, 4) * 90 * u * min(a, 1.1)
        ps.x = ps.x + sign * (p - 0.5) * 0.2 * w * a * math.copysign(1, math.cos(m.heading))
    elif k == "scroll":
        ps.scroll = (sign * s / (2 * math.pi))[:, None] * np.array([math.cos(m.heading), math.sin(m.heading)])


# ----------------------------------------------------------------------------------- figures


def _figure(m: Motion, s: np.ndarray, sign: float) -> dict[str, np.ndarray]:
    """Joint angles over frames: shoulder/elbow of each arm (0: hanging, pi/2: out sideways, pi: up), foot
    offsets (x outwards, y up) in units of the leg, the hips' drop and the torso's tilt."""
    n = len(s)
    z = np.zeros(n)
    arm = {"sl": np.full(n, 0.15), "el": z.copy(), "sr": np.full(n, 0.15), "er": z.copy()}
    legs = {"fxl": z.copy(), "fyl": z.copy(), "fxr": z.copy(), "fyr": z.copy(), "kick": z.copy()}
    drop, tilt = z.copy(), z.copy()
    a, side = m.amount, "r" if m.side > 0 else "l"
    if m.kind == "raise":
        arm["sl"] = arm["sr"] = 0.15 + s * 2.6 * min(a, 1.1)
    elif m.kind == "wave":
        arm["s" + side] = np.full(n, 2.4)
        arm["e" + side] = (s - 0.5) * 1.5 * a
    elif m.kind == "jack":
        arm["sl"] = arm["sr"] = 0.2 + s * 2.5
        legs["fxl"] = legs["fxr"] = s * 0.45 * min(a, 1.2)
    elif m.kind == "squat":
        drop = s * 0.45 * min(a, 1.2)
        arm["sl"] = arm["sr"] = 0.15 + s * 1.3
    elif m.kind == "kick":
        legs["kick"] = s * 1.25 * min(a, 1.2) * (1 if side == "r" else -1)
    elif m.kind == "bow":
        tilt = m.side * s * 0.8 * min(a, 1.2)
    elif m.kind == "clap":
        arm["sl"] = arm["sr"] = np.full(n, 1.35)
        arm["el"] = arm["er"] = -s * 1.6
    elif m.kind == "swim":
        arm["sl"] = arm["sr"] = sign * s
    elif m.kind == "walk":
        step = np.sin(sign * s)
        legs["fxl"], legs["fxr"] = 0.35 * step * sign, -0.35 * step * sign
        legs["fyl"] = 0.15 * np.clip(np.cos(sign * s), 0, None)
        legs["fyr"] = 0.15 * np.clip(-np.cos(sign * s), 0, None)
        arm["sl"], arm["sr"] = 0.15 + 0.35 * np.clip(step, 0, None), 0.15 + 0.35 * np.clip(-step, 0, None)
    elif m.kind == "reach":
        arm["s" + side] = 0.15 + s * 1.5 * min(a, 1.1)
    elif m.kind == "punch":
        arm["s" + side] = np.full(n, 1.45)
        arm["e" + side] = -(1 - s) * 2.0
    return {**arm, **legs, "drop": drop, "tilt": tilt}


def _ik(hip: np.ndarray, foot: np.ndarray, l1: float, l2: float, side: int) -> np.ndarray:
    """The knee of a two-segment leg from ``hip`` to ``foot``, bent outwards (``side`` +1: to the right)."""
    v = foot - hip
    d = min(max(float(np.hypot(*v)), 1e-3), l1 + l2 - 1e-3)
    c = (l1 * l1 + d * d - l2 * l2) / (2 * l1 * d)
    th = -side * math.acos(max(-1.0, min(1.0, c)))
    e = v / max(float(np.hypot(*v)), 1e-3)
    return hip + l1 * np.array([e[0] * math.cos(th) - e[1] * math.sin(th), e[0] * math.sin(th) + e[1] * math.cos(th)])


def _draw_figure(img: np.ndarray, ps: Pose, k: int, look: Look, view: View) -> None:
    j = {key: float(v[k]) for key, v in ps.extra.items()}
    hgt = look.size * 4
    leg, torso, upper, fore = 0.46 * hgt, 0.32 * hgt, 0.17 * hgt, 0.16 * hgt
    ground = ps.y[k] + 0.5 * hgt
    hip = np.array([ps.x[k], ground - leg + j["drop"] * leg])
    up = np.array([math.sin(j["tilt"]), -math.cos(j["tilt"])])
    neck = hip + torso * up
    shoulder = hip + 0.88 * torso * up
    lines = [(hip, neck)]
    for side, key in ((-1, "l"), (1, "r")):
        sa, ea = j["s" + key], j["e" + key]
        elbow = shoulder + upper * np.array([side * math.sin(sa), math.cos(sa)])
        hand = elbow + fore * np.array([side * math.sin(sa + ea), math.cos(sa + ea)])
        lines += [(shoulder, elbow), (elbow, hand)]
        h_side = hip + np.array([side * 0.05 * hgt, 0.0])
        if j["kick"] * side > 0:  # the kicking leg swings out straight
            foot = h_side + 0.98 * leg * np.array([side * math.sin(abs(j["kick"])), math.cos(j["kick"])])
        else:
            foot = np.array([ps.x[k] + side * (0.08 * hgt + j["fx" + key] * leg), ground - j["fy" + key] * leg])
        knee = _ik(h_side, foot, 0.52 * leg, 0.5 * leg, side)
        lines += [(h_side, knee), (knee, foot)]
    width = max(1, int(round(look.thickness * view.zoom)))
    for p, q in lines:
        pq = view.pts(np.stack([p, q]))
        cv2.line(img, tuple(pq[0]), tuple(pq[1]), look.color, width, cv2.LINE_AA, SUB)
    head = view.pts((neck + 0.11 * hgt * up)[None])
    cv2.circle(img, tuple(head[0]), view.radius(0.085 * hgt), look.accent, -1, cv2.LINE_AA, SUB)


# ----------------------------------------------------------------------------------- objects with a small part

def _draw_object(img: np.ndarray, ps: Pose, k: int, look: Look, spec: ClassSpec, view: View) -> None:
    r, side = look.size, look.side
    cx, cy = ps.x[k], ps.y[k]
    bw, bh = {"box": (r, 0.7 * r), "tall": (0.6 * r, 1.1 * r), "disk": (r, r)}[spec.shape]
    if spec.shape == "disk":
        body = np.stack([cx + r * OUTLINES["disk"][:, 0], cy + r * OUTLINES["disk"][:, 1]], 1)
    else:
        body = np.array([[cx - bw, cy - bh], [cx + bw, cy - bh], [cx + bw, cy + bh], [cx - bw, cy + bh]])
    cv2.fillPoly(img, [view.pts(body)], look.color, cv2.LINE_AA, SUB)
    kind, v = spec.motions[0].kind, float(ps.extra["part"][k])
    thick = max(1, int(round(0.12 * r * view.zoom)))
    if kind in ("hand", "needle"):  # a clock hand going round, a gauge's needle sweeping 140 degrees
        ang = v - math.pi / 2 if kind == "hand" else -1.2 + 2.4 * v - math.pi / 2
        reach = 0.75 * min(bw, bh)
        q = view.pts(np.array([[cx, cy], [cx + reach * math.cos(ang), cy + reach * math.sin(ang)]]))
        cv2.line(img, tuple(q[0]), tuple(q[1]), look.accent, thick, cv2.LINE_AA, SUB)
        cv2.circle(img, tuple(q[0]), view.radius(0.1 * r), look.accent, -1, cv2.LINE_AA, SUB)
    elif kind == "pendulum":
        ang = (v - 0.5) * 1.3
        pivot = np.array([cx, cy + bh])
        q = view.pts(np.stack([pivot, pivot + 0.8 * r * np.array([math.sin(ang), math.cos(ang)])]))
        cv2.line(img, tuple(q[0]), tuple(q[1]), look.accent, max(1, thick // 2), cv2.LINE_AA, SUB)
        cv2.circle(img, tuple(q[1]), view.radius(0.18 * r), look.accent, -1, cv2.LINE_AA, SUB)
    elif kind == "blink":
        lamp = view.pts(np.array([[cx + side * 0.55 * bw, cy - 0.55 * bh]]))
        col = tuple(float(c * (0.25 + 0.75 * v)) for c in look.accent)
        cv2.circle(img, tuple(lamp[0]), view.radius(0.2 * r), col, -1, cv2.LINE_AA, SUB)
    elif kind == "slide":  # a drawer slides out of one side
        edge, out = cx + side * bw, 0.8 * r * v
        drawer = np.array([[edge - side * 0.3 * r, cy - 0.2 * r], [edge + side * out, cy - 0.2 * r],
                           [edge + side * out, cy + 0.2 * r], [edge - side * 0.3 * r, cy + 0.2 * r]])
        cv2.fillPoly(img, [view.pts(drawer)], look.accent, cv2.LINE_AA, SUB)
    else:  # lid: a flap hinged at one top corner opens upwards
        hinge = np.array([cx - side * bw, cy - bh])
        end = hinge + 2 * bw * np.array([side * math.cos(v * 1.8), -math.sin(v * 1.8)])
        q = view.pts(np.stack([hinge, end]))
        cv2.line(img, tuple(q[0]), tuple(q[1]), look.accent, thick, cv2.LINE_AA, SUB)


# ----------------------------------------------------------------------------------- duos


def _duo(m: Motion, s: np.ndarray, sign: float, look: Look, u: float, w: int) -> dict[str, np.ndarray]:
    """Offsets of shape A and B from the actor's position, (n,) each, and B's scale."""
    n, r = len(s), look.size
    ra, rb = r, 0.6 * r
    d = np.array([math.cos(m.heading), math.sin(m.heading) * 0.5])
    d /= np.hypot(*d)
    ax, ay, bx, by, bscale = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n)
    if m.kind == "push":
        gap = 0.22 * w * m.amount
        go = np.clip(s / 0.5, 0, 1)
        both = np.clip((s - 0.5) / 0.5, 0, 1) * 0.2 * w * m.amount
        a_off = -(ra + rb + gap) * (1 - go) - (ra + rb) * go + both - 0.1 * w
        ax, ay, bx, by = a_off * d[0], a_off * d[1], (both - 0.1 * w) * d[0], (both - 0.1 * w) * d[1]
    elif m.kind == "merge":
        start = (ra + rb + 0.2 * w * m.amount) * (1 - s)
        bx, by = start * d[0], start * d[1]
        bscale = np.clip((1 - s) / 0.25, 0, 1)
    elif m.kind in ("orbit", "chase"):
        rad = (ra + rb + 12 * u) * max(m.amount, 0.9)
        if m.kind == "orbit":
            bx, by = rad * np.cos(sign * s), rad * np.sin(sign * s)
        else:
            bx, by = rad * np.cos(sign * s), rad * np.sin(sign * s)
            ax, ay = rad * np.cos(sign * (s - 1.2)), rad * np.sin(sign * (s - 1.2))
    elif m.kind == "carry":
        off = (s - 0.5) * 0.4 * w * m.amount * sign * np.sign(math.cos(m.heading) or 1.0)
        ax = bx = off
        by = np.full(n, -(ra + 0.9 * rb))
    elif m.kind == "drop":
        by = -(ra + rb) - _bounce(s, 3) * 80 * u * min(m.amount, 1.1)
    else:  # bump: approach and part, back and forth
        gap = 4 * u + (1 - s) * 0.18 * w * m.amount
        a_off, b_off = -(ra + gap / 2), rb + gap / 2
        ax, ay, bx, by = a_off * d[0], a_off * d[1], b_off * d[0], b_off * d[1]
    return {"ax": ax, "ay": ay, "bx": bx, "by": by, "bscale": bscale}


# ----------------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class View:
    """The camera of one frame: ``zoom`` about the scene point ``(cx, cy)``, which lands at the centre of a
    ``width`` x ``height`` frame; drawing into a region of the frame subtracts its corner ``(ox, oy)``."""

    zoom: float
    cx: float
    cy: float
    width: int
    height: int
    ox: float = 0.0
    oy: float = 0.0

    def screen(self, p: np.ndarray) -> np.ndarray:
        """(k, 2) scene points -> (k, 2) float pixel positions in the image being drawn."""
        return self.zoom * (p - (self.cx, self.cy)) + (self.width / 2 - self.ox, self.height / 2 - self.oy)

    def pts(self, p: np.ndarray) -> np.ndarray:
        """(k, 2) scene points -> int32 points in 1/16 pixel, for cv2's ``shift=SUB``."""
        return np.round(self.screen(p) * _ONE).astype(np.int32)

    def radius(self, r: float) -> int:
        return max(1, int(round(r * self.zoom * _ONE)))

    def at(self, ox: float, oy: float) -> View:
        return View(self.zoom, self.cx, self.cy, self.width, self.height, ox, oy)


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float, squash: float,
                  wobble: float | None) -> np.ndarray:
    pts = OUTLINES[shape]
    if wobble is not None:  # a wave running round the outline
        theta = np.arctan2(pts[:, 1], pts[:, 0])
        pts = pts * (1 + 0.18 * np.sin(4 * theta + wobble))[:, None]
    sx = math.exp(squash)
    pts = pts * np.array([sx, 1 / sx])
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + r * (c * pts[:, 0] - s * pts[:, 1]), cy + r * (s * pts[:, 0] + c * pts[:, 1])], 1)


def _draw_patch(img: np.ndarray, ps: Pose, k: int, look: Look, shape: str, view: View) -> None:
    """A tileable texture clipped to the shape, rotated, scaled, squashed and scrolled."""
    assert look.texture is not None
    hh, ww = img.shape[:2]
    r = look.size * float(ps.scale[k])
    screen = view.screen(_shape_points(shape, ps.x[k], ps.y[k], r, ps.angle[k], ps.squash[k], None))
    x0, y0 = np.maximum(np.floor(screen.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(screen.max(0)).astype(int) + 2, (ww, hh))
    if x0 >= x1 or y0 >= y1:
        return
    tsize = look.texture.shape[0]
    sx, c, s = math.exp(ps.squash[k]), math.cos(ps.angle[k]), math.sin(ps.angle[k])
    # texture pixel t -> unit square (t - T/2 - scroll) / (T/2) -> squash, rotate, scale by r -> screen
    lin = view.zoom * r / (tsize / 2) * np.array([[c * sx, -s / sx], [s * sx, c / sx]])
    off = ps.scroll[k] * tsize if ps.scroll is not None else np.zeros(2)
    centre = view.screen(np.array([[ps.x[k], ps.y[k]]]))[0] - (x0, y0)
    mat = np.hstack([lin, (centre - lin @ (tsize / 2 + off))[:, None]])
    roi = img[y0:y1, x0:x1]
    warped = cv2.warpAffine(look.texture, mat, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_WRAP)
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((screen - (x0, y0)) * _ONE).astype(np.int32)], 255, cv2.LINE_AA, SUB)
    a = mask[..., None].astype(np.float32) / 255.0
    roi[:] = (roi + a * (warped.astype(np.float32) - roi) + 0.5).astype(np.uint8)


def draw_actor(img: np.ndarray, spec: ClassSpec, look: Look, ps: Pose, k: int, view: View) -> None:
    """Paint frame ``k`` of the actor onto ``img`` (H, W, 3) uint8 in place."""
    alpha, reveal = float(ps.alpha[k]), float(ps.reveal[k])
    if alpha < 0.02 or reveal < 0.01:
        return
    if alpha > 0.98 and reveal > 0.99:
        _draw(img, spec, look, ps, k, view)
        return
    # fading or wiping: paint into a copy of the region around the actor, then blend it back
    h, w = img.shape[:2]
    ext = look.size * float(ps.scale[k]) * math.exp(abs(float(ps.squash[k]))) * 1.3 * view.zoom
    sx, sy = view.screen(np.array([[ps.x[k], ps.y[k]]]))[0]
    x0, y0 = max(int(sx - ext), 0), max(int(sy - ext), 0)
    x1, y1 = min(int(sx + ext) + 1, w), min(int(sy + ext) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    roi = img[y0:y1, x0:x1]
    tmp = roi.copy()
    _draw(tmp, spec, look, ps, k, view.at(x0, y0))
    if reveal <= 0.99:  # uncover the actor along its heading
        yy, xx = np.mgrid[y0:y1, x0:x1]
        along = (xx - sx) * math.cos(ps.heading) + (yy - sy) * math.sin(ps.heading)
        tmp = np.where((along <= (2 * reveal - 1) * ext)[..., None], tmp, roi)
    cv2.addWeighted(tmp, alpha, roi, 1 - alpha, 0, dst=roi)


def _draw(img: np.ndarray, spec: ClassSpec, look: Look, ps: Pose, k: int, view: View) -> None:
    if spec.actor == "figure":
        _draw_figure(img, ps, k, look, view)
    elif spec.actor == "object":
        _draw_object(img, ps, k, look, spec, view)
    elif spec.actor == "patch":
        _draw_patch(img, ps, k, look, spec.shape, view)
    elif spec.actor == "duo":
        e = ps.extra
        for who, col, r in (("a", look.color, look.size), ("b", look.accent, 0.6 * look.size)):
            scale = float(e["bscale"][k]) if who == "b" else 1.0
            if scale < 0.03:
                continue
            pts = _shape_points(spec.shape, ps.x[k] + e[who + "x"][k], ps.y[k] + e[who + "y"][k], r * scale,
                                ps.angle[k] if who == "a" else -ps.angle[k], 0.0, None)
            cv2.fillPoly(img, [view.pts(pts)], col, cv2.LINE_AA, SUB)
    else:
        r = look.size * float(ps.scale[k])
        wob = float(ps.wobble[k]) if ps.wobble is not None else None
        pts = _shape_points(spec.shape, ps.x[k], ps.y[k], r, ps.angle[k], ps.squash[k], wob)
        cv2.fillPoly(img, [view.pts(pts)], look.color, cv2.LINE_AA, SUB)
        # an off-centre mark, so turning shows even on a disk
        c, s = math.cos(ps.angle[k]), math.sin(ps.angle[k])
        mark = view.pts(np.array([[ps.x[k] + 0.5 * r * c, ps.y[k] + 0.5 * r * s]]))
        cv2.circle(img, tuple(mark[0]), view.radius(0.22 * r), look.accent, -1, cv2.LINE_AA, SUB)
