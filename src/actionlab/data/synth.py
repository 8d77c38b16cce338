"""A generated action dataset written in the public layouts of UCF-101, HMDB-51, Kinetics or plain folders.

The classes come in two kinds:

- **time-order pairs** that only the order of frames tells apart (``GrowCircle``/``ShrinkCircle``,
  ``FadeIn``/``FadeOut``, ``TurnClockwise``/``TurnCounterClockwise``, ``MoveRight``/``MoveLeft``).
  Clip ``(g, c)`` of the second class of a pair is clip ``(g, c)`` of the first class played backwards,
  so the multiset of single frames is the same in both classes and a single-frame classifier is at chance
  on every pair;
- **appearance classes** that one frame already separates (``BlinkChecker``, ``BounceBall``, ``Stripes``).

Scenes vary (background colour/texture, object colour, size, speed, position, camera shake, sensor noise);
the clips of one group share a scene with small per-clip variation, as UCF-101 groups share an actor and a
background. Everything is a pure function of ``seed``: :func:`render_clip` gives the exact frames that
:func:`make_synthetic_dataset` encodes, which makes pixel-exact decode tests possible with ``codec="ffv1"``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

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

LAYOUTS = ("ucf101", "hmdb51", "kinetics", "folders")
CODECS = ("xvid", "mpeg4", "h264", "ffv1")

_REVERSED = {b: a for a, b in TIME_PAIRS}  # backward class -> forward class it is rendered from


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


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _draw_scene(rng: np.random.Generator) -> _Scene:
    bg0 = rng.uniform(0, 255, 3)
    bg1 = np.clip(bg0 + rng.uniform(-90, 90, 3), 0, 255)
    mean_bg = (_luma(bg0) + _luma(bg1)) / 2
    # The object must stand out from the background: its luma differs by at least 80 grey levels.
    for _ in range(100):
        obj = rng.uniform(0, 255, 3)
        if abs(_luma(obj) - mean_bg) >= 80:
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


def _progress(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) motion progress 0 -> 1 with random start/end plateaus (symmetric under time reversal)."""
    a = rng.uniform(0.0, 0.15)
    b = 1.0 - rng.uniform(0.0, 0.15)
    t = np.arange(n) / max(n - 1, 1)
    return np.clip((t - a) / (b - a), 0.0, 1.0)


class _Canvas:
    """Paints anti-aliased shapes onto a float32 frame with a per-frame camera offset."""

    def __init__(self, frame: np.ndarray, dx: float, dy: float) -> None:
        self.frame = frame
        self.h, self.w = frame.shape[:2]
        self.dx, self.dy = dx, dy

    def grid(self, x0: float, y0: float, x1: float, y1: float):
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
    p = _progress(rng, n)
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
        cv = _Canvas(frame, ix, iy)
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


def _class_key(name: str) -> int:
    """Stable rng key of a class: both classes of a time-order pair share their forward class's key."""
    return SYNTH_CLASSES.index(_REVERSED.get(name, name))


def render_clip(name: str, group: int, clip: int, num_frames: int, size: tuple[int, int] = (240, 320),
                seed: int = 0) -> np.ndarray:
    """The exact frames of one generated video: ``(num_frames, H, W, 3)`` uint8 RGB.

    ``group`` and ``clip`` are 1-based as in UCF-101 names (``v_X_g01_c01``). Backward classes of a
    time-order pair return the forward class's clip reversed in time.
    """
    if name not in SYNTH_CLASSES:
        raise ValueError(f"unknown synthetic class {name!r}; choose from {SYNTH_CLASSES}")
    h, w = size
    key = _class_key(name)
    scene_rng = np.random.default_rng([seed, key, group])
    scene = _draw_scene(scene_rng)
    bg = _background(scene, h, w, scene_rng)
    clip_rng = np.random.default_rng([seed, key, group, clip])
    frames = _render_forward(_REVERSED.get(name, name), scene, clip_rng, num_frames, h, w, bg)
    return frames[::-1].copy() if name in _REVERSED else frames


# ----------------------------------------------------------------------------------- encoding


def _codec_settings(codec: str) -> tuple[str, dict[str, str]]:
    if codec in ("xvid", "mpeg4"):
        return "mpeg4", {}
    if codec == "h264":
        return "libx264", {"preset": "veryfast", "crf": "20", "bf": "2"}
    return "ffv1", {}


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "xvid") -> None:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB to ``path`` with PyAV.

    ``xvid``/``mpeg4``: MPEG-4 Part 2 with the ``XVID`` tag and B-frames (like UCF-101/HMDB-51 .avi);
    ``h264``: libx264 with B-frames (like Kinetics .mp4; falls back to mpeg4 when libx264 is missing);
    ``ffv1``: lossless RGB, so decoded frames equal ``frames`` exactly.
    """
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if codec == "h264" and "libx264" not in av.codecs_available:
        logger.warning("PyAV has no libx264 encoder; writing %s with mpeg4 instead", path)
        codec = "mpeg4"
    if codec != "ffv1" and (h % 2 or w % 2):
        raise ValueError(f"{path}: {codec} needs an even frame size, got {h}x{w}")
    encoder, options = _codec_settings(codec)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(encoder, rate=fps, options=options)
        stream.width, stream.height = w, h
        if encoder == "ffv1":
            stream.pix_fmt = "bgr0"
        else:
            stream.pix_fmt = "yuv420p"
        if encoder == "mpeg4":
            stream.codec_tag = "XVID"
            stream.codec_context.max_b_frames = 2
            stream.codec_context.gop_size = 12
            stream.bit_rate = int(0.6 * w * h * fps)  # generous: the noise and textures stay visible
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            if encoder == "ffv1":
                frame = frame.reformat(format="bgr0")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ----------------------------------------------------------------------------------- layouts


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def hmdb_name(name: str) -> str:
    """``TurnClockwise`` -> ``turn_clockwise`` (HMDB-51 spells classes in lower snake case)."""
    return _snake(name)


def kinetics_name(name: str) -> str:
    """``TurnClockwise`` -> ``turn clockwise`` (Kinetics labels are lower case with spaces)."""
    return _snake(name).replace("_", " ")


def ucf_test_groups(groups: int, split: int) -> list[int]:
    """1-based groups in the test set of ``split`` (1..3), UCF-101's rule scaled to ``groups`` groups.

    UCF-101 has 25 groups: split 1 tests groups 1-7, split 2 groups 8-14, split 3 groups 15-21, and 22-25
    are always training. With ``groups`` groups the boundaries are ``round(k * 7 * groups / 25)``; fewer
    than 4 groups test one group per split (cycling).
    """
    if groups < 2:
        raise ValueError(f"the UCF-101 layout needs at least 2 groups per class, got {groups}")
    if groups < 4:
        return [(split - 1) % groups + 1]
    bounds = [0]
    for k in range(1, 4):
        b = max(bounds[-1] + 1, round(k * 7 * groups / 25))
        bounds.append(min(b, groups - (3 - k) - 1) if k < 3 else min(b, groups - 1))
    return list(range(bounds[split - 1] + 1, bounds[split] + 1))


@dataclass(frozen=True)
class SynthVideo:
    """One generated video (what ``synth_info.json`` lists)."""

    path: str
    """Relative to the dataset root returned by :func:`make_synthetic_dataset`."""
    label: str
    """Class name as the layout spells it."""
    synth_class: str
    """Name in :data:`SYNTH_CLASSES`."""
    group: int
    clip: int
    num_frames: int
    split: str
    """``train``/``val``/``test`` for kinetics, ``-`` for layouts with split files."""


def _youtube_id(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 11))


def _plan(layout: str, classes: list[str], groups: int, clips_per_group: int,
          frames_range: tuple[int, int], seed: int, ext: str) -> list[SynthVideo]:
    videos = []
    for name in classes:
        key = _class_key(name)
        kin_split_rng = np.random.default_rng([seed, key, 7919])
        val_groups = set()
        if layout == "kinetics":
            n_val = max(1, round(0.2 * groups))
            val_groups = {int(g) + 1 for g in kin_split_rng.permutation(groups)[:n_val]}
        for g in range(1, groups + 1):
            yt = _youtube_id(np.random.default_rng([seed, SYNTH_CLASSES.index(name), g, 104729]))
            for c in range(1, clips_per_group + 1):
                # Both classes of a pair draw the same length, so reversed clips are exact mirrors.
                n = int(np.random.default_rng([seed, key, g, c, 31]).integers(frames_range[0], frames_range[1] + 1))
                split = "-"
                if layout == "ucf101":
                    rel = f"UCF-101/{name}/v_{name}_g{g:02d}_c{c:02d}.{ext}"
                    label = name
                elif layout == "hmdb51":
                    label = hmdb_name(name)
                    rel = f"{label}/Synth{name}Scene{g:02d}_{label}_f_nm_np1_fr_goo_{c - 1}.{ext}"
                elif layout == "kinetics":
                    label = kinetics_name(name)
                    split = "val" if g in val_groups else "train"
                    start = 10 * (c - 1) + int(np.random.default_rng([seed, key, g, c, 17]).integers(0, 5))
                    rel = f"{split}/{label}/{yt}_{start:06d}_{start + 10:06d}.{ext}"
                else:
                    label = name
                    rel = f"{name}/{name}_g{g:02d}_c{c:02d}.{ext}"
                videos.append(SynthVideo(rel, label, name, g, c, n, split))
    return videos


def _write_ucf_splits(root: Path, classes: list[str], videos: list[SynthVideo], groups: int) -> None:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {name}{crlf}" for i, name in enumerate(classes, 1)).encode())
    index = {name: i for i, name in enumerate(classes, 1)}
    for split in (1, 2, 3):
        test = set(ucf_test_groups(groups, split))
        train_lines, test_lines = [], []
        for v in videos:
            rel = v.path.split("/", 1)[1]  # relative to UCF-101/
            if v.group in test:
                test_lines.append(f"{rel}{crlf}")
            else:
                train_lines.append(f"{rel} {index[v.synth_class]}{crlf}")
        (lists / f"trainlist{split:02d}.txt").write_bytes("".join(train_lines).encode())
        (lists / f"testlist{split:02d}.txt").write_bytes("".join(test_lines).encode())


def hmdb_split_of_group(seed: int, name: str, groups: int, split: int) -> dict[int, int]:
    """HMDB-51 split codes per group for one class: 1 train, 2 test, 0 unused (about 70/30)."""
    rng = np.random.default_rng([seed, SYNTH_CLASSES.index(name), split, 15485863])
    order = [int(g) + 1 for g in rng.permutation(groups)]
    n_test = max(1, round(0.3 * groups))
    n_unused = 1 if groups >= 10 else 0
    codes = {}
    for i, g in enumerate(order):
        codes[g] = 2 if i < n_test else (0 if i < n_test + n_unused else 1)
    return codes


def _write_hmdb_splits(root: Path, classes: list[str], videos: list[SynthVideo], groups: int, seed: int) -> None:
    d = root / "testTrainMulti_7030_splits"
    d.mkdir(parents=True, exist_ok=True)
    for name in classes:
        label = hmdb_name(name)
        mine = [v for v in videos if v.synth_class == name]
        for split in (1, 2, 3):
            codes = hmdb_split_of_group(seed, name, groups, split)
            text = "".join(f"{Path(v.path).name} {codes[v.group]} \n" for v in mine)
            (d / f"{label}_test_split{split}.txt").write_text(text)


def _write_kinetics_csv(root: Path, videos: list[SynthVideo]) -> None:
    d = root / "annotations"
    d.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        rows = ["label,youtube_id,time_start,time_end,split\n"]
        for v in videos:
            if v.split != split:
                continue
            stem = Path(v.path).stem
            yt, start, end = stem[:11], int(stem[12:18]), int(stem[19:25])
            label = f'"{v.label}"' if "," in v.label else v.label
            rows.append(f"{label},{yt},{start},{end},{split}\n")
        (d / f"{split}.csv").write_text("".join(rows))


def _readme(layout: str, classes: list[str], params: dict) -> str:
    lines = [
        "actionlab synthetic action dataset",
        "==================================",
        "",
        f"Layout: {layout}. Generated by actionlab.data.synth.make_synthetic_dataset with:",
        "  " + json.dumps(params, sort_keys=True),
        "",
        "Time-order pairs: the second class of each pair is the first one played backwards, clip for clip,",
        "so single frames are identically distributed and only the order of frames tells them apart.",
        "Appearance classes: one frame is enough.",
        "MoveLeft/MoveRight is the hardest pair for models over globally pooled per-frame CNN features",
        "(average pooling discards most of the position); clip models that keep space see it easily.",
        "",
        "Classes:",
    ]
    for name in classes:
        kind = "time-order" if name not in APPEARANCE_CLASSES else "appearance"
        lines.append(f"  {name:22s} [{kind}] {CLASS_DESCRIPTIONS[name]}")
    lines += ["", "Groups share a scene (background, colours, size, position, shake, noise); clips of a",
              "group vary a little. Splits never separate a group.", ""]
    return "\n".join(lines)


def _encode_job(job: tuple) -> None:
    path, name, group, clip, n, size, seed, fps, codec = job
    write_video(path, render_clip(name, group, clip, n, size, seed), fps=fps, codec=codec)


def make_synthetic_dataset(
    out: str | Path,
    layout: str = "ucf101",
    classes: Sequence[str] | int | None = None,
    groups: int = 16,
    clips_per_group: int = 2,
    num_frames: int | tuple[int, int] = (40, 72),
    size: tuple[int, int] = (240, 320),
    fps: int = 25,
    seed: int = 0,
    codec: str | None = None,
    lossless: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate encoded videos and the split files of ``layout`` under ``out``; returns ``out``.

    Layouts (paths relative to ``out``):

    - ``ucf101``: ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` and ``ucfTrainTestlist/{classInd,trainlist0S,
      testlist0S}.txt`` (CRLF lines; train lines carry the 1-based class index, test lines none; split S
      tests the groups of :func:`ucf_test_groups`).
    - ``hmdb51``: ``<class>/<name>.avi`` and ``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``
      with ``name.avi C `` lines (C: 1 train, 2 test, 0 unused).
    - ``kinetics``: ``annotations/{train,val}.csv`` (``label,youtube_id,time_start,time_end,split``) and
      ``{train,val}/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``; a group is one youtube id.
    - ``folders``: ``<Class>/<Class>_gNN_cNN.avi``.

    Also writes ``README.txt`` (the classes) and ``synth_info.json`` (parameters and every video).

    Args:
        classes: names from :data:`SYNTH_CLASSES` (default all), or an int for the first N.
        groups, clips_per_group: videos per class = ``groups * clips_per_group``. Many groups of few clips
            give more distinct scenes for the same cost, which is what temporal models need to generalise
            (an LSTM over MobileNetV2 features: ~91% on the grow/fade/turn pairs with 8 x 3, ~96% with 16 x 2).
        num_frames: frames per video, or an inclusive ``(lo, hi)`` range drawn per video.
        size: ``(H, W)``, even for the lossy codecs.
        codec: ``xvid``/``mpeg4`` (default for .avi layouts), ``h264`` (default for kinetics), ``ffv1``.
        lossless: shorthand for ``codec="ffv1"`` (pixel-exact frames, equal to :func:`render_clip`).
        workers: encoding processes; ``None`` picks up to ``os.cpu_count()`` for larger datasets.
        overwrite: replace an existing non-empty ``out``.
    """
    out = Path(out)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if classes is None:
        classes = list(SYNTH_CLASSES)
    elif isinstance(classes, int):
        if not 1 <= classes <= len(SYNTH_CLASSES):
            raise ValueError(f"classes must be in 1..{len(SYNTH_CLASSES)}, got {classes}")
        classes = SYNTH_CLASSES[:classes]
    classes = list(classes)
    unknown = [c for c in classes if c not in SYNTH_CLASSES]
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {SYNTH_CLASSES}, got {classes}")
    if groups < 1 or clips_per_group < 1:
        raise ValueError("groups and clips_per_group must be >= 1")
    frames_range = (num_frames, num_frames) if isinstance(num_frames, int) else tuple(num_frames)
    if len(frames_range) != 2 or not 1 <= frames_range[0] <= frames_range[1]:
        raise ValueError(f"num_frames must be >= 1 or a (lo, hi) range with 1 <= lo <= hi, got {num_frames}")
    if lossless:
        codec = "ffv1"
    if codec is None:
        codec = "h264" if layout == "kinetics" else "xvid"
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    h, w = size
    if codec != "ffv1" and (h % 2 or w % 2 or h < 16 or w < 16):
        raise ValueError(f"size {size} must be even and >= 16 for codec {codec!r} (or use codec='ffv1')")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True or choose another path")
        shutil.rmtree(out)

    ext = "mp4" if layout == "kinetics" else "avi"
    videos = _plan(layout, classes, groups, clips_per_group, frames_range, seed, ext)  # type: ignore[arg-type]
    params = dict(layout=layout, classes=classes, groups=groups, clips_per_group=clips_per_group,
                  num_frames=list(frames_range), size=list(size), fps=fps, seed=seed, codec=codec)

    # Build next to ``out`` and rename at the end: an interrupted run never leaves half a dataset.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        jobs = []
        for v in videos:
            (tmp / v.path).parent.mkdir(parents=True, exist_ok=True)
            jobs.append((tmp / v.path, v.synth_class, v.group, v.clip, v.num_frames, (h, w), seed, fps, codec))
        total_frames = sum(v.num_frames for v in videos)
        if workers is None:
            workers = min(os.cpu_count() or 1, 8) if total_frames > 3000 else 0
        if workers > 1:
            import multiprocessing as mp

            # fork: rendering needs only numpy and PyAV, and spawn would need a __main__ guard in scripts.
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
                list(pool.map(_encode_job, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
        else:
            for job in jobs:
                _encode_job(job)
        if layout == "ucf101":
            _write_ucf_splits(tmp, classes, videos, groups)
        elif layout == "hmdb51":
            _write_hmdb_splits(tmp, classes, videos, groups, seed)
        elif layout == "kinetics":
            _write_kinetics_csv(tmp, videos)
        (tmp / "README.txt").write_text(_readme(layout, classes, params))
        info = {"params": params, "videos": [asdict(v) for v in videos]}
        (tmp / "synth_info.json").write_text(json.dumps(info, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d %s videos (%d frames, %s) to %s", len(videos), layout, total_frames, codec, out)
    return out


def read_synth_info(root: str | Path) -> dict:
    """The ``synth_info.json`` of a generated dataset: ``{"params": {...}, "videos": [{...}, ...]}``."""
    path = Path(root) / "synth_info.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {root} was not made by make_synthetic_dataset")
    return json.loads(path.read_text())
