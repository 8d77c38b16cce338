"""The demo's family: 11 classes of simple shapes on random scenes, 40-72 frames at 25 fps, 240x320.

The classes come in two kinds:

- **time-order pairs** that only the order of frames tells apart (``GrowCircle``/``ShrinkCircle``,
  ``FadeIn``/``FadeOut``, ``TurnClockwise``/``TurnCounterClockwise``, ``MoveRight``/``MoveLeft``).
  Clip ``(g, c)`` of the second class of a pair is clip ``(g, c)`` of the first class played backwards,
  so the multiset of single frames is the same in both classes and a single-frame classifier is at chance
  on every pair;
- **appearance classes** that one frame already separates (``BlinkChecker``, ``BounceBall``, ``Stripes``).

Scenes vary (background colour/texture, object colour, size, speed, position, camera shake, sensor noise);
the clips of one group share a scene with small per-clip variation, as UCF-101 groups share an actor and a
background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actionlab.synth.draw import Canvas, Family, luma, progress

# (forward class, backward class): the backward class is the forward one played in reverse.
TIME_PAIRS: tuple[tuple[str, str], ...] = (
    ("GrowCircle", "ShrinkCircle"),
    ("FadeIn", "FadeOut"),
    ("TurnClockwise", "TurnCounterClockwise"),
    ("MoveRight", "MoveLeft"),
)
APPEARANCE_CLASSES: tuple[str, ...] = ("BlinkChecker", "BounceBall", "Stripes")

SYNTH_CLASSES: list[str] = [name for pair in TIME_PAIRS for name in pair] + list(APPEARANCE_CLASSES)
"""All generated classes in UCF-101 CamelCase, time-order pairs first."""

CLASS_DESCRIPTIONS: dict[str, str] = {
    "GrowCircle": "a filled disc grows from small to large",
    "ShrinkCircle": "a filled disc shrinks from large to small (GrowCircle played backwards)",
    "FadeIn": "the scene (background and a large rectangle) fades in from black",
    "FadeOut": "the scene fades out to black (FadeIn played backwards)",
    "TurnClockwise": "a clock hand with an arrow head turns clockwise about its pivot, from near 3 or 9 o'clock "
                     "by 75-150 degrees",
    "TurnCounterClockwise": "the clock hand turns counter-clockwise (TurnClockwise played backwards)",
    "MoveRight": "a diamond slides from the left of the frame to the right",
    "MoveLeft": "the diamond slides from right to left (MoveRight played backwards)",
    "BlinkChecker": "a checkerboard patch whose squares swap colour every few frames",
    "BounceBall": "a ball with a highlight bouncing on a two-tone floor band while drifting sideways",
    "Stripes": "a patch of slowly drifting diagonal stripes",
}


# ----------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Scene:
    """What the clips of one group share."""

    bg_kind: int  # 0 gradient, 1 blocky texture, 2 gradient + texture
    bg_color0: tuple[float, float, float]
    bg_color1: tuple[float, float, float]
    obj_color: tuple[float, float, float]
    shake: float  # max camera translation per frame, in units of min(H, W)
    noise: float  # std of additive Gaussian noise, grey levels
    cx: float  # object position (fractions of W/H)
    cy: float
    scale: float  # object size multiplier
    speed: float  # how much of the motion range a clip covers


def _draw_scene(rng: np.random.Generator) -> _Scene:
    bg0 = rng.uniform(0, 255, 3)
    bg1 = np.clip(bg0 + rng.uniform(-90, 90, 3), 0, 255)
    mean_bg = (luma(bg0) + luma(bg1)) / 2
    # The object must stand out from the background: its luma differs by at least 80 grey levels.
    for _ in range(100):
        obj = rng.uniform(0, 255, 3)
        if abs(luma(obj) - mean_bg) >= 80:
            break
    else:
        obj = np.full(3, 255.0 if mean_bg < 128 else 0.0)
    return _Scene(
        bg_kind=int(rng.integers(0, 3)),
        bg_color0=tuple(float(v) for v in bg0),
        bg_color1=tuple(float(v) for v in bg1),
        obj_color=tuple(float(v) for v in obj),
        shake=float(rng.uniform(0.0, 0.012)),
        noise=float(rng.uniform(0.0, 6.0)),
        cx=float(rng.uniform(0.4, 0.6)),
        cy=float(rng.uniform(0.4, 0.6)),
        scale=float(rng.uniform(0.85, 1.15)),
        speed=float(rng.uniform(0.7, 1.0)),
    )


def _background(scene: _Scene, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float32 background of a scene."""
    c0 = np.asarray(scene.bg_color0, np.float32)
    c1 = np.asarray(scene.bg_color1, np.float32)
    if scene.bg_kind in (0, 2):
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle) + 0.5
        bg = c0 + np.clip(t, 0, 1)[..., None] * (c1 - c0)
    else:
        bg = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    if scene.bg_kind in (1, 2):
        cell = max(4, min(h, w) // 12)
        coarse = rng.uniform(-1, 1, ((h + cell - 1) // cell, (w + cell - 1) // cell, 1)).astype(np.float32)
        tex = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w]
        bg = bg + tex * (0.35 * (c1 - c0) + 12.0)
    return np.ascontiguousarray(bg, dtype=np.float32)


def _render_forward(name: str, scene: _Scene, rng: np.random.Generator, n: int, h: int, w: int,
                    bg: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of ``name`` (a forward or appearance class) in forward time."""
    s = float(min(h, w))
    margin = int(math.ceil(scene.shake * s)) + 1
    # Per-clip variation of the group's scene.
    obj = np.clip(np.asarray(scene.obj_color) + rng.uniform(-20, 20, 3), 0, 255).astype(np.float32)
    bg_shift = rng.uniform(-12, 12, 3).astype(np.float32)
    cx = (scene.cx + rng.uniform(-0.04, 0.04)) * w
    cy = (scene.cy + rng.uniform(-0.04, 0.04)) * h
    scale = scene.scale * rng.uniform(0.93, 1.07)
    p = progress(rng, n)
    shake = rng.uniform(-scene.shake * s, scene.shake * s, (n, 2))
    noise_std = scene.noise * rng.uniform(0.8, 1.2)
    # Noise: one padded field, sliced at a random offset per frame (cheap and i.i.d. enough).
    noise_field = None
    if noise_std > 0.5:
        noise_field = rng.normal(0.0, noise_std, (h + 16, w + 16, 3)).astype(np.float32)
    noise_off = rng.integers(0, 17, (n, 2))

    base = bg + bg_shift
    if name == "FadeIn":
        rw, rh = 0.55 * scale * w, 0.55 * scale * h
        lo = rng.uniform(0.0, 0.08)
    elif name == "TurnClockwise":
        # The hand starts near 3 or 9 o'clock and turns 90-130 degrees, so clockwise goes from horizontal
        # through the "\\" diagonal towards vertical: orientation is what pooled CNN features see well,
        # whereas the sense of a full random rotation is nearly invisible to them.
        theta0 = math.radians(rng.choice([90.0, 270.0]) + rng.uniform(-20, 20))
        sweep = math.radians(rng.uniform(90, 130)) * scene.speed / 0.85
        length = 0.42 * scale * s
        thick = 0.09 * s
    elif name == "GrowCircle":
        r0 = rng.uniform(0.05, 0.09) * s
        r1 = rng.uniform(0.36, 0.46) * s * min(scale, 1.05)
    elif name == "MoveRight":
        half = 0.14 * scale * s
        span = 0.72 * scene.speed * w
        x_start = rng.uniform(half, max(half, w - half - span))
    elif name == "BlinkChecker":
        period = int(rng.integers(2, 6))
        side = 0.55 * scale * s
        cells = int(rng.integers(3, 6))
        phase0 = int(rng.integers(0, 2))
        obj2 = 255.0 - obj
    elif name == "BounceBall":
        r = 0.1 * scale * s
        floor = 0.72 * h
        bounce_h = rng.uniform(0.35, 0.55) * h
        bounce_period = rng.uniform(12, 24)
        bounce_phase = rng.uniform(0, 1)
        drift = rng.uniform(-0.3, 0.3) * w / max(n, 1)
    elif name == "Stripes":
        side = 0.6 * scale * s
        angle = rng.uniform(0, math.pi)
        wavelength = rng.uniform(0.08, 0.14) * s
        drift = rng.uniform(-0.6, 0.6)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"no renderer for class {name!r}")

    out = np.empty((n, h, w, 3), np.uint8)
    pad_base = np.pad(base, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    for t in range(n):
        dx, dy = float(shake[t, 0]), float(shake[t, 1])
        ix, iy = int(round(dx)), int(round(dy))
        frame = pad_base[margin - iy: margin - iy + h, margin - ix: margin - ix + w].copy()
        cv = Canvas(frame, ix, iy)
        if name == "GrowCircle":
            cv.disk(cx, cy, r0 + (r1 - r0) * p[t], obj)
        elif name == "FadeIn":
            cv.polygon(np.array([[cx - rw / 2, cy - rh / 2], [cx + rw / 2, cy - rh / 2],
                                 [cx + rw / 2, cy + rh / 2], [cx - rw / 2, cy + rh / 2]]), obj)
            frame *= lo + (1.0 - lo) * p[t]
        elif name == "TurnClockwise":
            # Image y points down, so increasing the angle from "up" turns the hand clockwise on screen.
            th = theta0 + sweep * p[t]
            ux, uy = math.sin(th), -math.cos(th)  # along the hand
            vx, vy = -uy, ux  # across the hand
            shaft = length * 0.72
            pts = np.array([[cx + vx * thick / 2, cy + vy * thick / 2],
                            [cx + ux * shaft + vx * thick / 2, cy + uy * shaft + vy * thick / 2],
                            [cx + ux * shaft - vx * thick / 2, cy + uy * shaft - vy * thick / 2],
                            [cx - vx * thick / 2, cy - vy * thick / 2]])
            cv.polygon(pts, obj)
            head = np.array([[cx + ux * length, cy + uy * length],
                             [cx + ux * shaft + vx * thick * 1.5, cy + uy * shaft + vy * thick * 1.5],
                             [cx + ux * shaft - vx * thick * 1.5, cy + uy * shaft - vy * thick * 1.5]])
            cv.polygon(head, obj)
            cv.disk(cx, cy, thick * 1.1, obj)
        elif name == "MoveRight":
            x = x_start + span * p[t]
            cv.polygon(np.array([[x, cy - half], [x + half, cy], [x, cy + half], [x - half, cy]]), obj)
        elif name == "BlinkChecker":
            g = cv.grid(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            if g is not None:
                region, xs, ys = g
                inside = (np.abs(xs - cx) <= side / 2) & (np.abs(ys - cy) <= side / 2)
                cell = np.floor((xs - cx + side / 2) / (side / cells)) + np.floor((ys - cy + side / 2) / (side / cells))
                parity = (cell.astype(np.int64) + phase0 + t // period) % 2
                cv.blend(region, inside * (parity == 0), obj)
                cv.blend(region, inside * (parity == 1), obj2)
        elif name == "BounceBall":
            # a thick two-tone floor band and a ball with a bright highlight: unlike any disc of GrowCircle
            band = 0.1 * s
            cv.polygon(np.array([[0, floor + r], [w, floor + r], [w, floor + r + band], [0, floor + r + band]]),
                       255.0 - obj)
            cv.polygon(np.array([[0, floor + r + band / 2], [w, floor + r + band / 2], [w, floor + r + band],
                                 [0, floor + r + band]]), obj * 0.4)
            ph = (t / bounce_period + bounce_phase) % 1.0
            y = floor - bounce_h * 4 * ph * (1 - ph)
            bx = cx + drift * (t - n / 2)
            cv.disk(bx, y, r, obj)
            cv.disk(bx - 0.35 * r, y - 0.35 * r, 0.35 * r, np.minimum(obj + 120.0, 255.0))
        elif name == "Stripes":
            g = cv.grid(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            if g is not None:
                region, xs, ys = g
                inside = (np.abs(xs - cx) <= side / 2) & (np.abs(ys - cy) <= side / 2)
                u = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
                wave = 0.5 + 0.5 * np.sin(2 * math.pi * (u / wavelength + drift * t / 25.0))
                cv.blend(region, inside * wave, obj)
        if noise_field is not None:
            oy, ox = noise_off[t]
            frame += noise_field[oy: oy + h, ox: ox + w]
        np.clip(frame, 0, 255, out=frame)
        out[t] = frame  # float -> uint8 truncation after clipping
    return out


def render(name: str, scene_rng: np.random.Generator, clip_rng: np.random.Generator, n: int, h: int,
           w: int) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a forward or appearance class: the group's scene, then the clip."""
    scene = _draw_scene(scene_rng)
    bg = _background(scene, h, w, scene_rng)
    return _render_forward(name, scene, clip_rng, n, h, w, bg)


FAMILY = Family(
    name="demo", pairs=TIME_PAIRS, appearance=APPEARANCE_CLASSES, descriptions=CLASS_DESCRIPTIONS,
    num_frames=(40, 72), fps=25, size=(240, 320), key_base=0, render=render,
    notes=("MoveLeft/MoveRight is the hardest pair for models over globally pooled per-frame CNN features",
           "(average pooling discards most of the position); clip models that keep space see it easily."))
