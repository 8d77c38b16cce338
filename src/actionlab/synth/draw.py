"""What every generated family builds on: the :class:`Family` record, a canvas, motion progress, noise.

A family module (``synth_demo``, ``synth_textures``, ``synth_gestures``, ``synth_outdoor``) defines ``FAMILY = Family(...)``
whose ``render`` paints the *forward* clip of one class from two generators: ``scene_rng`` (seeded by
``(seed, class key, group)``: what the clips of a group share) and ``clip_rng`` (seeded by ``(seed, class
key, group, clip)``). The backward class of a time-order pair is the forward clip reversed in time, drawn
from the same generators, so its single frames are exactly the forward class's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RenderFn = Callable[[str, np.random.Generator, np.random.Generator, int, int, int], np.ndarray]
"""``render(name, scene_rng, clip_rng, num_frames, H, W) -> (num_frames, H, W, 3) uint8`` in forward time."""


@dataclass(frozen=True)
class Family:
    """A set of generated classes rendered one way, with its default clip length, frame rate and size."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    """``(forward, backward)`` classes: the backward class is the forward one played in reverse."""
    appearance: tuple[str, ...]
    """Classes one frame already separates."""
    descriptions: dict[str, str]
    num_frames: tuple[int, int]
    """Default inclusive range of frames per video."""
    fps: int
    size: tuple[int, int]
    """Default ``(H, W)``."""
    key_base: int
    """Random-stream keys of the classes are ``key_base + position``: families never share a stream."""
    render: RenderFn
    notes: tuple[str, ...] = ()
    """README lines about this family."""
    groups: int = 16
    """Default groups per class (a group: one scene, as a UCF-101 ``gNN`` is one actor and background)."""
    clips_per_group: int = 2
    """Default clips per group."""

    @property
    def classes(self) -> list[str]:
        """Time-order pairs first, then the appearance classes."""
        return [name for pair in self.pairs for name in pair] + list(self.appearance)

    def forward_of(self, name: str) -> str:
        """The class whose clips ``name``'s are reversed from (``name`` itself for forward/appearance classes)."""
        return next((fwd for fwd, bwd in self.pairs if bwd == name), name)

    def key(self, name: str) -> int:
        """Random-stream key shared by both classes of a pair."""
        return self.key_base + self.classes.index(self.forward_of(name))

    def index(self, name: str) -> int:
        """Random-stream key of this class alone."""
        return self.key_base + self.classes.index(name)


# ----------------------------------------------------------------------------------- drawing


def luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def progress(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) motion progress 0 -> 1 with random start/end plateaus (symmetric under time reversal)."""
    a = rng.uniform(0.0, 0.15)
    b = 1.0 - rng.uniform(0.0, 0.15)
    t = np.arange(n) / max(n - 1, 1)
    return np.clip((t - a) / (b - a), 0.0, 1.0)


class Canvas:
    """Paints anti-aliased shapes onto a float32 frame with a per-frame camera offset."""

    def __init__(self, frame: np.ndarray, dx: float, dy: float) -> None:
        self.frame = frame
        self.h, self.w = frame.shape[:2]
        self.dx, self.dy = dx, dy

    def grid(self, x0: float, y0: float, x1: float, y1: float):
        """``(region, xs (1, w'), ys (h', 1))``: the frame slice around a box and its pixel centres in scene
        coordinates, or None when the box is off the frame."""
        xa, xb = max(0, int(math.floor(x0 + self.dx)) - 1), min(self.w, int(math.ceil(x1 + self.dx)) + 2)
        ya, yb = max(0, int(math.floor(y0 + self.dy)) - 1), min(self.h, int(math.ceil(y1 + self.dy)) + 2)
        if xa >= xb or ya >= yb:
            return None
        xs = np.arange(xa, xb, dtype=np.float32)[None, :] + 0.5 - self.dx
        ys = np.arange(ya, yb, dtype=np.float32)[:, None] + 0.5 - self.dy
        return (slice(ya, yb), slice(xa, xb)), xs, ys

    def blend(self, region, alpha: np.ndarray, color: np.ndarray | Sequence[float]) -> None:
        view = self.frame[region]
        view += alpha[..., None] * (np.asarray(color, np.float32) - view)

    def disk(self, cx: float, cy: float, r: float, color) -> None:
        g = self.grid(cx - r, cy - r, cx + r, cy + r)
        if g is None:
            return
        region, xs, ys = g
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        self.blend(region, np.clip(r - d + 0.5, 0.0, 1.0), color)

    def polygon(self, pts: np.ndarray, color) -> None:
        """Convex polygon (k, 2) of (x, y) points in any winding order."""
        g = self.grid(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        if g is None:
            return
        region, xs, ys = g
        area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
        sign = 1.0 if area > 0 else -1.0
        inside = None
        for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0)):
            ex, ey = x1 - x0, y1 - y0
            norm = math.hypot(ex, ey) or 1.0
            # signed distance to the edge, positive inside
            dist = -sign * ((xs - x0) * ey - (ys - y0) * ex) / norm
            inside = dist if inside is None else np.minimum(inside, dist)
        self.blend(region, np.clip(inside + 0.5, 0.0, 1.0), color)

    def capsule(self, x0: float, y0: float, x1: float, y1: float, width: float, color) -> None:
        """A thick segment with round ends (a limb, a finger, a stroke)."""
        r = width / 2
        g = self.grid(min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r)
        if g is None:
            return
        region, xs, ys = g
        ex, ey = x1 - x0, y1 - y0
        length2 = ex * ex + ey * ey or 1.0
        u = np.clip(((xs - x0) * ex + (ys - y0) * ey) / length2, 0.0, 1.0)
        d = np.sqrt((xs - x0 - u * ex) ** 2 + (ys - y0 - u * ey) ** 2)
        self.blend(region, np.clip(r - d + 0.5, 0.0, 1.0), color)

    def box(self, x0: float, y0: float, x1: float, y1: float, color) -> None:
        """An axis-aligned rectangle."""
        self.polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32), color)


# ----------------------------------------------------------------------------------- textures and camera


def pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """A texture in [0, 1] over pixel coordinates ``u`` (across) and ``v`` (along), ``period`` pixels a cycle.

    ``stripes`` (soft bars), ``checker``, ``dots`` (polka dots), ``zigzag`` (a thick triangle-wave line),
    ``plaid`` (two crossed soft bars).
    """
    a, b = u / period, v / period
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(2 * math.pi * a)
    if kind == "checker":
        return ((np.floor(a) + np.floor(b)) % 2).astype(np.float32)
    if kind == "dots":
        d = np.hypot(a - np.floor(a) - 0.5, b - np.floor(b) - 0.5) * period
        return np.clip(0.3 * period - d + 0.5, 0.0, 1.0)
    if kind == "zigzag":
        tri = np.abs((a % 1.0) - 0.5) * 2.0  # 0..1 triangle wave along u
        d = np.abs((b % 1.0) - tri * 0.6 - 0.2) * period
        return np.clip(0.12 * period - d + 0.5, 0.0, 1.0)
    if kind == "plaid":
        return np.maximum(0.5 + 0.5 * np.sin(2 * math.pi * a), 0.5 + 0.5 * np.sin(2 * math.pi * b)) ** 2
    raise ValueError(f"unknown pattern {kind!r}")


def bilinear(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``grid`` (gh, gw) sampled at fractional cell coordinates (clamped at the edges): smooth value noise."""
    gh, gw = grid.shape
    x = np.clip(xs, 0, gw - 1.001)
    y = np.clip(ys, 0, gh - 1.001)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def contrasting(rng: np.random.Generator, luma_of_bg: float, min_diff: float, lo: float = 0.0,
                hi: float = 255.0) -> np.ndarray:
    """(3,) colour whose luma differs from ``luma_of_bg`` by at least ``min_diff`` (black or white if none)."""
    for _ in range(100):
        c = rng.uniform(lo, hi, 3)
        if abs(luma(c) - luma_of_bg) >= min_diff:
            return c
    return np.full(3, 255.0 if luma_of_bg < 128 else 0.0)


def camera_path(rng: np.random.Generator, n: int, amplitude: float, smooth: bool) -> np.ndarray:
    """(n, 2) integer camera offsets in pixels: white shake, or a smooth hand-held drift (a low-passed random
    walk), at most ``amplitude`` pixels either way."""
    if amplitude < 0.5 or n == 0:
        return np.zeros((n, 2), np.int64)
    if not smooth:
        return np.rint(rng.uniform(-amplitude, amplitude, (n, 2))).astype(np.int64)
    walk = np.cumsum(rng.normal(0.0, 1.0, (n + 8, 2)), axis=0)
    kernel = np.ones(9) / 9.0
    path = np.stack([np.convolve(walk[:, k], kernel, mode="valid") for k in (0, 1)], axis=1)[:n]
    path -= path.mean(0)
    peak = np.abs(path).max() or 1.0
    return np.rint(path * (amplitude / peak)).astype(np.int64)


class SensorNoise:
    """Additive Gaussian noise: one padded field sliced at a random offset per frame (cheap, i.i.d. enough)."""

    def __init__(self, rng: np.random.Generator, n: int, h: int, w: int, std: float) -> None:
        self.h, self.w = h, w
        self.field = rng.normal(0.0, std, (h + 16, w + 16, 3)).astype(np.float32) if std > 0.5 else None
        self.offsets = rng.integers(0, 17, (n, 2))

    def add(self, frame: np.ndarray, t: int) -> None:
        if self.field is not None:
            oy, ox = self.offsets[t]
            frame += self.field[oy: oy + self.h, ox: ox + self.w]


class Distractors:
    """Small shapes drifting in straight lines across the frame, unrelated to the action (clutter that moves)."""

    def __init__(self, rng: np.random.Generator, count: int, n: int, h: int, w: int, size: float) -> None:
        self.items = []
        for _ in range(count):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            angle = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(0.15, 0.5) * w / max(n, 1)
            r = size * rng.uniform(0.6, 1.4)
            color = rng.uniform(0, 255, 3).astype(np.float32)
            self.items.append((x, y, speed * math.cos(angle), speed * math.sin(angle), r, bool(rng.integers(0, 2)),
                               color))
        self.n = n

    def draw(self, cv: Canvas, t: int, zoom: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> None:
        """Paint every distractor at frame ``t`` (seen through a camera zoomed by ``zoom`` about ``(cx, cy)``)."""
        for x, y, vx, vy, r, square, color in self.items:
            px = cx + zoom * (x + vx * (t - self.n / 2) - cx)
            py = cy + zoom * (y + vy * (t - self.n / 2) - cy)
            if square:
                cv.box(px - zoom * r, py - zoom * r, px + zoom * r, py + zoom * r, color)
            else:
                cv.disk(px, py, zoom * r, color)


def film(n: int, background: np.ndarray, shake: np.ndarray, noise: SensorNoise,
         draw: Callable[[Canvas, int], None]) -> np.ndarray:
    """(n, H, W, 3) uint8: per frame, the background seen through the camera offset ``shake[t]``, what
    ``draw(canvas, t)`` paints, then sensor noise."""
    h, w = background.shape[:2]
    margin = int(np.abs(shake).max(initial=0)) + 1
    pad = np.pad(background, ((margin, margin), (margin, margin), (0, 0)), mode="edge")
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        ix, iy = int(shake[t, 0]), int(shake[t, 1])
        frame = pad[margin - iy: margin - iy + h, margin - ix: margin - ix + w].copy()
        draw(Canvas(frame, ix, iy), t)
        noise.add(frame, t)
        np.clip(frame, 0, 255, out=frame)
        out[t] = frame  # float -> uint8 truncation after clipping
    return out
