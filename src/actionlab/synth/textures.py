"""The ``textures`` family: 8 classes of textured surfaces, 30-90 frames at 15 fps, 240x320.

Unlike the demo's flat shapes on smooth scenes, everything here is textured and the scenes are harder:
striped, checkered, plaid or value-noise backgrounds, dim light with a lighting gradient (mean frame luma
about 55-115, the demo's 25-220), strong sensor noise (std 3-12 grey levels), white camera shake of up to
2% of the frame, and 2-5 distractor shapes drifting across every clip.

- **time-order pairs** (the second class is the first played backwards, clip for clip; what changes over
  time is texture scale, covered area or texture type, all visible to globally pooled CNN features):

  - ``ZoomIn``/``ZoomOut``: the camera zooms 1.8-2.4x into a framed plaid panel (background, panel and
    distractors all scale);
  - ``FillTank``/``DrainTank``: a glass tank fills with a bubbly, noise-textured liquid under a moving wavy
    surface, from 8% to 71-92% full;
  - ``ChecksToStripes``/``StripesToChecks``: a square patch dissolves cell by cell from a checkerboard into
    diagonal stripes.
- **appearance classes** that one frame separates: ``PolkaDisc`` (a turning, pulsing polka-dot disc) and
  ``ZigzagBand`` (a band of zigzag line scrolling sideways).
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
    bilinear,
    camera_path,
    contrasting,
    film,
    luma,
    pattern,
    progress,
)

TIME_PAIRS: tuple[tuple[str, str], ...] = (
    ("ZoomIn", "ZoomOut"),
    ("FillTank", "DrainTank"),
    ("ChecksToStripes", "StripesToChecks"),
)
APPEARANCE_CLASSES: tuple[str, ...] = ("PolkaDisc", "ZigzagBand")

CLASS_DESCRIPTIONS: dict[str, str] = {
    "ZoomIn": "the camera zooms 1.8-2.4x into a framed plaid panel on a textured wall",
    "ZoomOut": "the camera zooms out from the plaid panel (ZoomIn played backwards)",
    "FillTank": "a glass tank fills with a bubbly liquid under a moving wavy surface",
    "DrainTank": "the tank drains (FillTank played backwards)",
    "ChecksToStripes": "a square patch dissolves cell by cell from a checkerboard into diagonal stripes",
    "StripesToChecks": "the patch dissolves from stripes into a checkerboard (ChecksToStripes played backwards)",
    "PolkaDisc": "a polka-dot disc turning slowly and pulsing a little",
    "ZigzagBand": "a band of thick zigzag line scrolling sideways",
}

_BACKGROUNDS = ("stripes", "checker", "plaid", "noise")


@dataclass(frozen=True)
class _Scene:
    """What the clips of one group share."""

    bg_kind: str
    bg_period: float  # texture period, fraction of min(H, W)
    bg_angle: float
    bg0: tuple[float, float, float]
    bg1: tuple[float, float, float]
    obj0: tuple[float, float, float]  # the object's two texture colours
    obj1: tuple[float, float, float]
    light: float  # lighting gradient strength (fraction of brightness lost across the frame)
    light_angle: float
    shake: float  # max camera shake per frame, fraction of min(H, W)
    noise: float  # sensor noise std, grey levels
    distractors: int
    cx: float  # object position (fractions of W/H)
    cy: float
    scale: float
    speed: float  # how much of the motion range a clip covers


def _draw_scene(rng: np.random.Generator) -> _Scene:
    bg0 = rng.uniform(10, 150, 3)
    bg1 = np.clip(bg0 + rng.uniform(-50, 50, 3), 0, 200)
    mean_bg = (luma(bg0) + luma(bg1)) / 2
    obj0 = contrasting(rng, mean_bg, 60, 0, 255)
    obj1 = np.clip(obj0 + rng.choice([-1.0, 1.0]) * rng.uniform(70, 120, 3), 0, 255)
    return _Scene(
        bg_kind=str(rng.choice(_BACKGROUNDS)), bg_period=float(rng.uniform(0.04, 0.12)),
        bg_angle=float(rng.uniform(0, math.pi)), bg0=tuple(map(float, bg0)), bg1=tuple(map(float, bg1)),
        obj0=tuple(map(float, obj0)), obj1=tuple(map(float, obj1)), light=float(rng.uniform(0.0, 0.35)),
        light_angle=float(rng.uniform(0, 2 * math.pi)), shake=float(rng.uniform(0.0, 0.02)),
        noise=float(rng.uniform(3.0, 12.0)), distractors=int(rng.integers(2, 6)),
        cx=float(rng.uniform(0.4, 0.6)), cy=float(rng.uniform(0.4, 0.6)), scale=float(rng.uniform(0.85, 1.15)),
        speed=float(rng.uniform(0.75, 1.0)))


class _Wall:
    """The group's textured background, which can be rendered at any zoom about a point."""

    def __init__(self, scene: _Scene, h: int, w: int, rng: np.random.Generator) -> None:
        self.scene, self.h, self.w = scene, h, w
        self.s = float(min(h, w))
        self.grid = rng.uniform(0, 1, (int(w / (scene.bg_period * self.s)) + 3,) * 2).astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx / w - 0.5) * math.cos(scene.light_angle) + (yy / h - 0.5) * math.sin(scene.light_angle)) + 0.5
        self.light = (1.0 - scene.light * np.clip(t, 0, 1))[..., None]  # (h, w, 1)

    def render(self, zoom: float = 1.0, cx: float = 0.0, cy: float = 0.0, dx: int = 0, dy: int = 0) -> np.ndarray:
        """(h, w, 3) float32 seen through a camera zoomed by ``zoom`` about pixel ``(cx, cy)`` and shaken by
        ``(dx, dy)`` pixels."""
        sc = self.scene
        # a zoom about a point maps columns to columns and rows to rows: (1, w) and (h, 1) coordinates
        x = ((np.arange(self.w, dtype=np.float32) - (dx + cx)) / zoom + cx)[None, :]
        y = ((np.arange(self.h, dtype=np.float32) - (dy + cy)) / zoom + cy)[:, None]
        period = sc.bg_period * self.s
        if sc.bg_kind == "noise":
            m = _separable_bilinear(self.grid, x[0] / period, y[:, 0] / period)
        else:
            ca, sa = math.cos(sc.bg_angle), math.sin(sc.bg_angle)
            m = pattern(sc.bg_kind, x * ca + y * sa, -x * sa + y * ca, period)
        c0, c1 = np.asarray(sc.bg0, np.float32), np.asarray(sc.bg1, np.float32)
        return (c0 + m[..., None] * (c1 - c0)) * self.light


def _separable_bilinear(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) value noise: ``grid`` interpolated along rows at ``xs``, then along columns at ``ys``
    (fractional cell coordinates, clamped). No BLAS: small matmuls thrash threads in worker processes."""
    def weights(c: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = np.clip(c, 0, n - 1.001)
        i0 = np.floor(c).astype(np.int64)
        return i0, (c - i0).astype(np.float32)

    ix, fx = weights(xs, grid.shape[1])
    iy, fy = weights(ys, grid.shape[0])
    rows = grid[:, ix] * (1 - fx) + grid[:, ix + 1] * fx  # (gh, w)
    return rows[iy] * (1 - fy)[:, None] + rows[iy + 1] * fy[:, None]


def _textured(cv: Canvas, region_box: tuple[float, float, float, float], mask_fn, tex_fn, c0, c1) -> None:
    """Paint ``c0``/``c1`` mixed by ``tex_fn(xs, ys)`` where ``mask_fn(xs, ys)`` (alpha in [0, 1]) is set."""
    g = cv.grid(*region_box)
    if g is None:
        return
    region, xs, ys = g
    alpha = mask_fn(xs, ys)
    tex = tex_fn(xs, ys)
    c0, c1 = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
    color = c0 + tex[..., None] * (c1 - c0)
    view = cv.frame[region]
    view += alpha[..., None] * (color - view)


def _square(cx: float, cy: float, half: float):
    return lambda xs, ys: np.clip(half - np.maximum(np.abs(xs - cx), np.abs(ys - cy)) + 0.5, 0.0, 1.0)


def render(name: str, scene_rng: np.random.Generator, clip_rng: np.random.Generator, n: int, h: int,
           w: int) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a forward or appearance class of the family, in forward time."""
    scene = _draw_scene(scene_rng)
    wall = _Wall(scene, h, w, scene_rng)
    rng = clip_rng
    s = float(min(h, w))
    # per-clip variation of the group's scene
    cx = (scene.cx + rng.uniform(-0.04, 0.04)) * w
    cy = (scene.cy + rng.uniform(-0.04, 0.04)) * h
    scale = scene.scale * rng.uniform(0.93, 1.07)
    o0 = np.clip(np.asarray(scene.obj0) + rng.uniform(-15, 15, 3), 0, 255).astype(np.float32)
    o1 = np.clip(np.asarray(scene.obj1) + rng.uniform(-15, 15, 3), 0, 255).astype(np.float32)
    p = progress(rng, n)
    shake = camera_path(rng, n, scene.shake * s, smooth=False)
    noise = SensorNoise(rng, n, h, w, scene.noise * rng.uniform(0.8, 1.2))
    distract = Distractors(rng, scene.distractors, n, h, w, 0.035 * s)
    background = wall.render()

    if name == "ZoomIn":
        z1 = rng.uniform(1.8, 2.4)
        half = 0.17 * scale * s
        period = 0.05 * s

        def draw(cv: Canvas, t: int) -> None:
            z = z1 ** p[t]  # geometric: the zoom looks uniform in speed
            cv.frame[:] = wall.render(z, cx, cy, int(cv.dx), int(cv.dy))
            distract.draw(cv, t, z, cx, cy)
            hz = half * z
            cv.box(cx - hz * 1.12, cy - hz * 1.12, cx + hz * 1.12, cy + hz * 1.12, o1 * 0.5)  # the frame
            _textured(cv, (cx - hz, cy - hz, cx + hz, cy + hz), _square(cx, cy, hz),
                      lambda xs, ys: pattern("plaid", xs - cx, ys - cy, period * z), o0, o1)
    elif name == "FillTank":
        tw, th = 0.24 * scale * s, 0.36 * scale * s
        lo, hi = 0.08, 0.08 + 0.84 * scene.speed
        wave_len, wave_amp = rng.uniform(0.15, 0.3) * s, rng.uniform(0.01, 0.025) * s
        wave_speed = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) * 2 * math.pi / 15  # radians per frame
        liquid = rng.uniform(0, 1, (12, 12)).astype(np.float32)
        bubbles = rng.uniform(0.035, 0.05) * s  # fine bubbles: the liquid is busy texture, the glass is flat
        glass = np.clip((np.asarray(scene.bg0) + np.asarray(scene.bg1)) / 2 + 40, 0, 255)

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            cv.box(cx - tw - 4, cy - th - 4, cx + tw + 4, cy + th + 4, o1 * 0.6)  # walls of the tank
            cv.box(cx - tw, cy - th, cx + tw, cy + th, glass)
            level = cy + th - 2 * th * (lo + (hi - lo) * p[t])

            def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
                surface = level + wave_amp * np.sin(2 * math.pi * (xs - cx) / wave_len + wave_speed * t)
                return np.clip(ys - surface + 0.5, 0.0, 1.0) * (np.abs(xs - cx) <= tw)

            _textured(cv, (cx - tw, level - wave_amp - 1, cx + tw, cy + th), inside,
                      lambda xs, ys: 0.55 * bilinear(liquid, (xs - cx + tw) / (2 * tw) * 11, (ys - cy + th) / (2 * th) * 11)
                      + 0.45 * pattern("dots", xs - cx, ys - cy - 0.3 * t, bubbles), o0, o1)
    elif name == "ChecksToStripes":
        half = 0.3 * scale * s
        period = rng.uniform(0.07, 0.1) * s
        # diagonal stripes: their edges run across the checkerboard's, which pooled features tell apart
        angle = rng.choice([1.0, -1.0]) * rng.uniform(math.pi / 6, math.pi / 3)
        cell = max(3, int(s / 40))
        cells = int(2 * half / cell) + 3
        threshold = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
        ca, sa = math.cos(angle), math.sin(angle)

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)

            def tex(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
                u, v = xs - cx, ys - cy
                ci = np.clip(((u + half) // cell).astype(np.int64), 0, cells - 1)
                cj = np.clip(((v + half) // cell).astype(np.int64), 0, cells - 1)
                stripes = threshold[cj, ci] < p[t]
                return np.where(stripes, pattern("stripes", u * ca + v * sa, v, period) > 0.5,
                                pattern("checker", u, v, period)).astype(np.float32)

            _textured(cv, (cx - half, cy - half, cx + half, cy + half), _square(cx, cy, half), tex, o0, o1)
    elif name == "PolkaDisc":
        r0 = 0.27 * scale * s
        period = rng.uniform(0.06, 0.09) * s
        spin = rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.04)  # radians per frame
        pulse = rng.uniform(8, 20)  # frames per pulse

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            r = r0 * (1 + 0.05 * math.sin(2 * math.pi * t / pulse))
            ca, sa = math.cos(spin * t), math.sin(spin * t)
            _textured(cv, (cx - r, cy - r, cx + r, cy + r),
                      lambda xs, ys: np.clip(r - np.hypot(xs - cx, ys - cy) + 0.5, 0.0, 1.0),
                      lambda xs, ys: pattern("dots", (xs - cx) * ca + (ys - cy) * sa,
                                             -(xs - cx) * sa + (ys - cy) * ca, period), o0, o1)
    elif name == "ZigzagBand":
        half_h = 0.13 * scale * s
        period = rng.uniform(0.12, 0.2) * s
        drift = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)  # pixels per frame

        def draw(cv: Canvas, t: int) -> None:
            distract.draw(cv, t)
            _textured(cv, (0, cy - half_h, w, cy + half_h),
                      lambda xs, ys: np.clip(half_h - np.abs(ys - cy) + 0.5, 0.0, 1.0) * np.ones_like(xs),
                      lambda xs, ys: pattern("zigzag", xs - drift * t, (ys - cy + half_h) * period / (2 * half_h),
                                             period), o0, o1)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"no renderer for class {name!r}")
    return film(n, background, shake, noise, draw)


FAMILY = Family(
    name="textures", pairs=TIME_PAIRS, appearance=APPEARANCE_CLASSES, descriptions=CLASS_DESCRIPTIONS,
    num_frames=(30, 90), fps=15, size=(240, 320), key_base=1000, render=render,
    notes=("Scenes are dim, textured and noisy, with camera shake and distractors drifting through every clip;",
           "what changes over time (texture scale, covered area, texture type) survives global pooling."))
