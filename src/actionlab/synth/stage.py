"""Where an ``actions101`` clip happens: each group's scene, camera set-up, light, noise and actor's look, and the
frame loop that films a clip (:func:`render_video`).

A group (UCF-101's ``gNN``) is one set-up: its background (the class's preferred kind in 60% of the groups,
any kind otherwise), static clutter, camera style and strength, light level and changes, sensor noise, and the
actor's colours, size, place and texture. A clip draws its own motion phase and speed (:mod:`actors`), position
jitter, camera path (which way the pan or zoom goes, the hand-held shake) and moving distractors. Drawing is
OpenCV on uint8 frames: a background rendered once per clip with a margin for the camera, then per frame a
crop (still camera) or one affine warp, the distractors and the actor, a lighting look-up table and noise from
a small bank of precomputed fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from actionlab.synth.actors import OUTLINES, SUB, Look, View, draw_actor, pose
from actionlab.synth.draw import contrasting, luma, pattern
from actionlab.synth.primitives import BACKGROUNDS, CAMERAS, SHAPES, ClassSpec

MARGIN = 40
"""Pixels of background around the frame on each side, for the camera to pan and shake into."""
STREAM = 101
"""Random-stream key of the benchmark (the families use their own)."""


@dataclass
class Scene:
    """One group's set-up."""

    background: np.ndarray
    """(H + 2 MARGIN, W + 2 MARGIN, 3) uint8, static clutter included."""
    kind: str
    camera: str
    camera_amount: float
    """Shake or pan in pixels, or the zoom factor."""
    camera_axis: float
    lighting: str
    light: float
    light_amount: float
    light_period: float
    noise: float
    look: Look


def _rgb(rng: np.random.Generator, lo: float = 0.0, hi: float = 255.0) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _value_noise(rng: np.random.Generator, cells: tuple[int, int], h: int, w: int) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1] from a ``cells`` grid of random values."""
    return cv2.resize(rng.random(cells).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _background(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 background of ``kind`` (one of :data:`BACKGROUNDS`)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = _rgb(rng, 20, 235), _rgb(rng, 20, 235)
    if kind in ("gradient", "stripes", "checker"):
        a = rng.uniform(0, math.pi)
        u, v = xx * math.cos(a) + yy * math.sin(a), -xx * math.sin(a) + yy * math.cos(a)
        if kind == "gradient":
            t = (u - u.min()) / (np.ptp(u) + 1e-6)
        else:
            t = pattern(kind, u, v, rng.uniform(14, 48)) * rng.uniform(0.25, 0.7)
        bg = c1 + t[..., None] * (c2 - c1)
        return bg + (_value_noise(rng, (5, 7), h, w)[..., None] - 0.5) * 30
    if kind == "blobs":
        t = _value_noise(rng, (int(rng.integers(3, 7)), int(rng.integers(4, 9))), h, w)
        c3 = _rgb(rng, 20, 235)
        low, high = c1 + (2 * t)[..., None] * (c2 - c1), c2 + (2 * t - 1)[..., None] * (c3 - c2)
        return np.where((t < 0.5)[..., None], low, high)
    if kind == "grain":
        g = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(0.8, 2.0))
        return c1 + (g / (g.std() + 1e-6))[..., None] * rng.uniform(12, 35) * np.array([1.0, 0.9, 0.8], np.float32)
    horizon = int(h * rng.uniform(0.42, 0.6))
    bg = np.empty((h, w, 3), np.float32)
    if kind == "room":
        bg[:horizon] = c1 * (0.85 + 0.15 * _value_noise(rng, (3, 4), horizon, w)[..., None])
        floor = c2 * 0.8
        board = rng.uniform(14, 30)
        depth = (yy[horizon:] - horizon + 8) / (h - horizon)
        bg[horizon:] = floor * (0.85 + 0.15 * (np.sin(xx[horizon:] / board / depth) > 0))[..., None]
        for _ in range(int(rng.integers(1, 4))):  # windows, doors, pictures on the wall
            x0, bw = rng.uniform(0, w), rng.uniform(25, 80)
            y0, bh = rng.uniform(0.1, 0.6) * horizon, rng.uniform(0.2, 0.7) * horizon
            cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + bw), int(min(y0 + bh, horizon))),
                          tuple(map(float, _rgb(rng, 30, 240))), -1)
        return bg
    # outdoor: sky, ground, trees on the horizon
    sky_top, sky_low = _rgb(rng, 60, 200) * np.array([0.6, 0.8, 1.1], np.float32), _rgb(rng, 150, 240)
    t = (yy[:horizon] / max(horizon, 1))[..., None]
    bg[:horizon] = np.clip(sky_top + t * (sky_low - sky_top), 0, 255)
    ground = _rgb(rng, 40, 160) * np.array([0.8, 1.1, 0.6], np.float32)
    bg[horizon:] = ground * (0.75 + 0.5 * _value_noise(rng, (6, 12), h - horizon, w)[..., None])
    leaf = tuple(map(float, _rgb(rng, 10, 90) * np.array([0.6, 1.3, 0.6], np.float32)))
    for _ in range(int(rng.integers(2, 7))):
        x, s = rng.uniform(0, w), rng.uniform(10, 26)
        cv2.rectangle(bg, (int(x - s * 0.15), int(horizon - s)), (int(x + s * 0.15), horizon + 2), (70, 50, 30), -1)
        cv2.circle(bg, (int(x), int(horizon - s * 1.4)), int(s), leaf, -1, cv2.LINE_AA)
    return bg


def _clutter(bg: np.ndarray, rng: np.random.Generator, count: int, u: float) -> None:
    """Static shapes drawn into the background: things lying about that never move."""
    h, w = bg.shape[:2]
    for _ in range(count):
        pts = OUTLINES[SHAPES[int(rng.integers(len(SHAPES)))]] * rng.uniform(5, 18) * u
        a = rng.uniform(0, 2 * math.pi)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = pts @ rot.T + (rng.uniform(0, w), rng.uniform(0, h))
        color = tuple(map(float, _rgb(rng)))
        cv2.fillPoly(bg, [np.round(pts * (1 << SUB)).astype(np.int32)], color, cv2.LINE_AA, SUB)


def _texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 tileable texture: stripes, checks, dots, plaid or smooth periodic noise."""
    c1, c2 = _rgb(rng), _rgb(rng)
    kind = ["stripes", "checker", "dots", "plaid", "noise"][int(rng.integers(5))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "noise":  # low-passed in the Fourier domain, so it wraps round
        f = np.fft.fft2(rng.normal(0, 1, (size, size)))
        k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
        t = np.real(np.fft.ifft2(f * np.exp(-(k / 0.06) ** 2)))
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    else:
        period = float(size // int(rng.choice([2, 4, 8])))
        t = pattern(kind, xx, yy, period)
    return np.clip(c1 + t[..., None] * (c2 - c1), 0, 255).astype(np.uint8)


def _look(spec: ClassSpec, rng: np.random.Generator, bg_luma: float, h: int, w: int) -> Look:
    u = min(h, w) / 240.0
    color = contrasting(rng, bg_luma, 55)
    accent = contrasting(rng, luma(color), 60)
    size = {"shape": (22, 38), "patch": (28, 42), "figure": (24, 34), "object": (30, 46),
            "duo": (17, 27)}[spec.actor]
    y_range = (-0.05, 0.08) if spec.actor == "figure" else (-0.12, 0.12)
    return Look(color=tuple(map(float, color)), accent=tuple(map(float, accent)),
                size=float(rng.uniform(*size)) * u, x=w / 2 + float(rng.uniform(-0.16, 0.16)) * w,
                y=h / 2 + float(rng.uniform(*y_range)) * h, side=int(rng.choice([-1, 1])),
                texture=_texture(rng) if spec.actor == "patch" else None, thickness=float(rng.uniform(4, 8)) * u)


def draw_scene(spec: ClassSpec, rng: np.random.Generator, h: int, w: int) -> Scene:
    """The set-up of one group of ``spec`` (``rng``: the group's generator)."""
    u = min(h, w) / 240.0
    kind = spec.background if rng.random() < 0.6 else BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg = _background(kind, rng, h + 2 * MARGIN, w + 2 * MARGIN)
    np.clip(bg, 0, 255, out=bg)
    bg = bg.astype(np.uint8)
    _clutter(bg, rng, 3 * spec.clutter, u)
    camera = spec.camera if rng.random() < 0.6 else CAMERAS[int(rng.integers(len(CAMERAS)))]
    amount = {"still": 0.0, "handheld": rng.uniform(1.5, 6) * u, "pan": rng.uniform(20, 2 * MARGIN - 16) * u,
              "zoom": rng.uniform(1.1, 1.3)}[camera]
    lighting = spec.lighting if rng.random() < 0.7 else "steady"
    light_amount = {"steady": 0.0, "drift": rng.uniform(0.06, 0.18), "flicker": rng.uniform(0.02, 0.05)}[lighting]
    mean_luma = float(luma(bg.reshape(-1, 3).mean(0)))
    return Scene(background=bg, kind=kind, camera=camera, camera_amount=float(amount),
                 camera_axis=float(rng.uniform(-0.4, 0.4) + (math.pi / 2 if rng.random() < 0.25 else 0.0)),
                 lighting=lighting, light=float(rng.uniform(0.75, 1.15)), light_amount=float(light_amount),
                 light_period=float(rng.uniform(2, 6)), noise=float(spec.noise * rng.uniform(0.7, 1.3)),
                 look=_look(spec, rng, mean_luma, h, w))


def _camera(scene: Scene, rng: np.random.Generator, n: int, h: int,
            w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame ``(zoom, cx, cy)``: the scene point at the frame's centre and the zoom about it."""
    tn = np.arange(n) / max(n - 1, 1)
    zoom, cx, cy = np.ones(n), np.full(n, w / 2), np.full(n, h / 2)
    if scene.camera == "handheld":  # a low-passed random walk
        walk = np.cumsum(rng.normal(0, 1, (n + 12, 2)), 0)
        walk = np.stack([np.convolve(walk[:, i], np.ones(13) / 13, mode="valid")[:n] for i in (0, 1)], 1)
        walk -= walk.mean(0)
        walk *= scene.camera_amount / (np.abs(walk).max() + 1e-6)
        cx, cy = cx + walk[:, 0], cy + walk[:, 1]
    elif scene.camera == "pan":  # which way it pans is the clip's, never the class's
        way = rng.choice([-1.0, 1.0]) * scene.camera_amount * (tn - 0.5)
        cx, cy = cx + way * math.cos(scene.camera_axis), cy + way * math.sin(scene.camera_axis)
    elif scene.camera == "zoom":
        z = 1 + (scene.camera_amount - 1) * (tn if rng.random() < 0.5 else 1 - tn)
        zoom = z
    return zoom, cx, cy


def _noise_bank(rng: np.random.Generator, std: float, h: int, w: int,
                count: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` noise fields as (positive part, negative part) uint8 pairs, for saturating add/subtract."""
    if std < 0.5:
        return []
    bank = []
    for _ in range(count):
        z = rng.normal(0, std, (h, w, 3)).astype(np.float32)
        bank.append((np.clip(z, 0, 255).astype(np.uint8), np.clip(-z, 0, 255).astype(np.uint8)))
    return bank


def _distractors(spec: ClassSpec, rng: np.random.Generator, n: int, h: int, w: int) -> list[tuple]:
    """Moving clutter (from clutter level 2): small shapes drifting in straight lines, ``(k, 2)`` outlines
    and a velocity."""
    items = []
    u = min(h, w) / 240.0
    for _ in range(max(0, spec.clutter - 1)):
        pts = OUTLINES[SHAPES[int(rng.integers(len(SHAPES)))]] * rng.uniform(5, 13) * u
        start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        a, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.2) * u
        items.append((pts + start, speed * np.array([math.cos(a), math.sin(a)]), tuple(map(float, _rgb(rng)))))
    return items


def render_video(spec: ClassSpec, seed: int, group: int, clip: int, n: int, h: int = 240, w: int = 320,
                 fps: float = 25.0, scene: Scene | None = None) -> np.ndarray:
    """The exact frames of one clip: ``(n, h, w, 3)`` uint8 RGB, a pure function of its arguments.

    ``group`` and ``clip`` are 1-based as in ``v_X_g01_c01``; ``scene`` (from :func:`draw_scene` with the
    group's generator) may be passed to reuse one group's set-up across its clips."""
    if scene is None:
        scene = draw_scene(spec, np.random.default_rng([seed, STREAM, spec.index, group]), h, w)
    rng = np.random.default_rng([seed, STREAM, spec.index, group, clip])
    jitter = rng.uniform(0.9, 1.1, 3)
    look = replace(scene.look, color=tuple(float(min(255.0, c * j)) for c, j in zip(scene.look.color, jitter)))
    ps = pose(spec, look, rng, n, fps, h, w)
    zoom, cx, cy = _camera(scene, rng, n, h, w)
    bank = _noise_bank(rng, scene.noise, h, w)
    movers = _distractors(spec, rng, n, h, w)
    t = np.arange(n) / fps
    if scene.lighting == "drift":
        wave = np.sin(2 * math.pi * t / scene.light_period + rng.uniform(0, 6.3))  # a random phase
        gain = scene.light * (1 + scene.light_amount * wave)
    elif scene.lighting == "flicker":
        gain = scene.light * (1 + rng.normal(0, scene.light_amount, n))
    else:
        gain = np.full(n, scene.light)
    ramp = np.arange(256, dtype=np.float32)
    picks = rng.integers(0, max(len(bank), 1), (n, 2))
    bg, m = scene.background, MARGIN
    out = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        z = float(zoom[k])
        if scene.camera == "still":
            frame = bg[m:m + h, m:m + w].copy()
        else:
            mat = np.array([[z, 0, w / 2 - z * (m + cx[k])], [0, z, h / 2 - z * (m + cy[k])]])
            frame = cv2.warpAffine(bg, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        view = View(z, float(cx[k]), float(cy[k]), w, h)
        for pts, vel, color in movers:
            cv2.fillPoly(frame, [view.pts(pts + vel * k)], color, cv2.LINE_AA, SUB)
        draw_actor(frame, spec, look, ps, k, view)
        if abs(gain[k] - 1.0) > 1e-3:
            cv2.LUT(frame, np.clip(ramp * gain[k], 0, 255).astype(np.uint8), dst=frame)
        if bank:
            cv2.add(frame, bank[picks[k, 0]][0], dst=frame)
            cv2.subtract(frame, bank[picks[k, 1]][1], dst=frame)
        out[k] = frame
    return out
