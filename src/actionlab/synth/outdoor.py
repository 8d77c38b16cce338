"""The ``outdoor`` family, held out: 10 classes of outdoor scenes, 36-150 frames at 24 fps, 160x240 (3:2).

This family is never used to choose a setting, only to check the defaults that the other three chose, the
way an outside reviewer checks them on data we do not see. It is sized like such a held-out set: 25 groups
x 4 clips per class (1000 videos; UCF-101 split 1 tests groups 1-7: 720 train / 280 test).

Unlike the other families (flat shapes, textures, a stick figure indoors), everything here is outdoors: a
sky with a vertical gradient and drifting value-noise clouds, a hazy treeline and trees on the horizon, and
ground seen in perspective (grass, a mown pitch, dirt, paving or a road) whose texture grows towards the
camera. The subjects are a shed door, a tipper truck, a traffic light and a car, a football, a flag and a
fountain. Scene statistics differ too: sunny, overcast or dusk light (mean frame luma about 20-180, median
120; dusk scenes dim and flat), a contrast curve (gamma 0.8-1.4), vignetting, lighting that flickers (slow
cloud shadows of up to 12% and, in some scenes, frame-to-frame flicker of up to 5%), sensor noise of std
1-6, a camera on a tripod that stays still, pans across 10-20% of the frame's width or zooms 1.1-1.35x (in or
out; a third of the scenes each), and occluders in front of the action: people walking past close to the camera
(in up to 60% of the clips of a group) and a leafy branch swaying into a top corner (30% of the scenes).

- **time-order pairs** (the second class is the first played backwards, clip for clip; the motions are
  neither translation nor rotation alone):

  - ``OpenDoor``/``CloseDoor``: the door of a shed swings open towards the camera on its hinges, 70-100
    degrees: a perspective change, the panel's free edge growing and the dark doorway appearing;
  - ``UnloadTruck``/``LoadTruck``: a tipper truck raises its bed 40-55 degrees and sand pours out of the
    back into a growing pile (rotation, a falling stream and a heap that grows);
  - ``LightTurnsGreen``/``LightTurnsRed``: a traffic light goes red, red and amber, green; the car waiting at
    the stop line turns off its brake lights and drives away down the road (a discrete colour change and a
    car that shrinks in perspective);
  - ``BallApproaches``/``BallRecedes``: a football kicked from the far goal bounces towards the camera, each
    bounce lower, and rolls in (bouncing dynamics, a spinning ball and its shadow, growing in perspective).
- **appearance classes** that one frame separates: ``FlagWaves`` (a flag on a pole rippling in gusts of
  wind: a travelling wave bends the cloth) and ``Fountain`` (water drops following parabolas out of a
  basin whose surface ripples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actionlab.synth.draw import Canvas, Family, SensorNoise, bilinear, progress
from actionlab.synth.outdoor_props import DRAWERS, GROUND, Stage

TIME_PAIRS: tuple[tuple[str, str], ...] = (
    ("OpenDoor", "CloseDoor"),
    ("UnloadTruck", "LoadTruck"),
    ("LightTurnsGreen", "LightTurnsRed"),
    ("BallApproaches", "BallRecedes"),
)
APPEARANCE_CLASSES: tuple[str, ...] = ("FlagWaves", "Fountain")

CLASS_DESCRIPTIONS: dict[str, str] = {
    "OpenDoor": "the door of a shed swings open 70-100 degrees towards the camera, uncovering the dark doorway",
    "CloseDoor": "the shed door swings shut (OpenDoor played backwards)",
    "UnloadTruck": "a tipper truck raises its bed and sand pours out of the back into a growing pile",
    "LoadTruck": "the pile flows up into the truck's bed as it comes down (UnloadTruck played backwards)",
    "LightTurnsGreen": "a traffic light goes red, red and amber, green, and the waiting car drives away",
    "LightTurnsRed": "a car backs up to the stop line as the light goes green, red and amber, red "
                     "(LightTurnsGreen played backwards)",
    "BallApproaches": "a football bounces from the far goal towards the camera, each bounce lower, and rolls in",
    "BallRecedes": "the football rolls away and bounces ever higher towards the far goal "
                   "(BallApproaches played backwards)",
    "FlagWaves": "a flag on a pole ripples in gusts of wind",
    "Fountain": "water drops arc out of a fountain into a basin whose surface ripples",
}

# zenith, horizon (RGB ranges) and exposure range of each light
_LIGHTS = {
    "sunny": (([40, 100, 190], [90, 150, 250]), ([170, 200, 225], [215, 230, 255]), (1.0, 1.15)),
    "overcast": (([125, 130, 140], [170, 175, 185]), ([175, 180, 185], [215, 215, 220]), (0.8, 1.0)),
    "dusk": (([30, 30, 70], [70, 60, 130]), ([220, 110, 60], [255, 170, 110]), (0.45, 0.7)),
}


@dataclass(frozen=True)
class _Scene:
    """What the clips of one group share: the place, the light and the camera operator's habits."""

    light: str  # sunny, overcast, dusk
    zenith: tuple[float, float, float]
    horizon_sky: tuple[float, float, float]
    exposure: float
    gamma: float  # contrast curve applied last
    horizon: float  # fraction of H
    clouds: float  # cloud cover 0..1
    hills: float  # treeline height, fraction of H
    trees: int
    camera: str  # still, pan, zoom
    slow_flicker: float  # cloud-shadow brightness swing (fraction)
    fast_flicker: float  # frame-to-frame brightness jitter (fraction)
    noise: float
    vignette: float
    passers: float  # chance that someone walks past in a clip
    branch: bool  # a leafy branch hangs into a top corner
    cx: float  # where the subject stands (fraction of W)
    scale: float


def _draw_scene(rng: np.random.Generator) -> _Scene:
    light = str(rng.choice(list(_LIGHTS), p=[0.5, 0.3, 0.2]))
    (z0, z1), (h0, h1), (e0, e1) = _LIGHTS[light]
    gamma = rng.uniform(0.8, 1.1) if light != "dusk" else rng.uniform(1.1, 1.4)
    return _Scene(
        light=light, zenith=tuple(map(float, rng.uniform(z0, z1))),
        horizon_sky=tuple(map(float, rng.uniform(h0, h1))),
        exposure=float(rng.uniform(e0, e1)), gamma=float(gamma), horizon=float(rng.uniform(0.33, 0.5)),
        clouds=float(rng.uniform(0.0, 0.5) if light != "overcast" else rng.uniform(0.5, 0.9)),
        hills=float(rng.uniform(0.02, 0.08)), trees=int(rng.integers(0, 6)),
        camera=str(rng.choice(["still", "pan", "zoom"], p=[0.35, 0.35, 0.3])),
        slow_flicker=float(rng.uniform(0.0, 0.12)), fast_flicker=float(rng.uniform(0.0, 0.05) * (rng.random() < 0.4)),
        noise=float(rng.uniform(1.0, 6.0)), vignette=float(rng.uniform(0.0, 0.35)),
        passers=float(rng.uniform(0.0, 0.6)), branch=bool(rng.random() < 0.3), cx=float(rng.uniform(0.38, 0.62)),
        scale=float(rng.uniform(0.85, 1.1)))


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """(H, W) smooth value noise in [0, 1] of two octaves over ``cells`` grid cells."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    out = np.zeros(shape, np.float32)
    for octave, weight in ((1, 0.65), (3, 0.35)):
        gh, gw = cells[0] * octave + 2, cells[1] * octave + 2
        out += weight * bilinear(rng.uniform(0, 1, (gh, gw)).astype(np.float32), xs / shape[1] * (gw - 2),
                                 ys / shape[0] * (gh - 2))
    return out


def _landscape(scene: _Scene, ground: str, rng: np.random.Generator, sh: int, sw: int, hz: float) -> tuple:
    """``(canvas, sky_only)``: sky, treeline, trees and textured ground seen in perspective, (sh, sw, 3)."""
    y = np.arange(sh, dtype=np.float32)[:, None, None]
    f = np.clip(y / hz, 0, 1) ** 0.6
    zen, hor = np.asarray(scene.zenith, np.float32), np.asarray(scene.horizon_sky, np.float32)
    bg = np.broadcast_to(zen + f * (hor - zen), (sh, sw, 3)).copy()
    sky = bg.copy()
    # ground: texture coordinates shrink towards the horizon (depth ~ 1 / rows below it)
    rows = np.maximum(y[:, :, 0] - hz, 0.0) + 2.0
    depth = (sh - hz) / rows  # 1 at the bottom, large near the horizon
    xs = (np.arange(sw, dtype=np.float32)[None, :] - sw / 2) / rows * 6
    grid = rng.uniform(0, 1, (40, 40)).astype(np.float32)
    tex = bilinear(grid, np.mod(xs * 1.5 + 20, 38), np.mod(depth * 3, 38))
    grain = rng.normal(0, 1, (sh, sw)).astype(np.float32)
    base = {"grass": ([50, 105, 30], [90, 150, 60]), "pitch": ([45, 120, 40], [70, 160, 60]),
            "dirt": ([120, 90, 60], [160, 120, 85]), "paving": ([140, 135, 125], [185, 175, 160])}[ground]
    c0 = rng.uniform(*base).astype(np.float32)
    c1 = c0 * rng.uniform(0.6, 0.8)
    g = tex[..., None]
    col = c0 + g * (c1 - c0) + (10 if ground in ("grass", "pitch") else 6) * grain[..., None]
    if ground == "pitch":  # mown bands across the pitch
        col *= np.where(np.floor(depth * 2.0) % 2 == 0, 1.0, 0.86)[..., None]
    if ground == "paving":  # slabs: dark joints in perspective
        joint = (np.abs(np.mod(xs * 0.7, 1.0) - 0.5) > 0.46) | (np.abs(np.mod(depth * 1.2, 1.0) - 0.5) > 0.45)
        col *= np.where(joint, 0.75, 1.0)[..., None]
    haze = np.exp(-(y - hz) / (0.1 * sh)) * 0.7
    col = col + haze * (hor - col)
    below = (y[:, 0, 0] >= hz)
    bg[below] = col[below]
    # treeline: a hazy band of smooth noise above the horizon
    top = hz - scene.hills * sh * (0.3 + _noise(rng, (1, sw), (1, 6))[0] * 1.4)
    tree_col = np.asarray([35, 70, 40], np.float32) * 0.5 + hor * 0.5
    band = (y[:, :, 0] >= top[None, :]) & (y[:, :, 0] < hz)
    bg[band] = tree_col
    cv = Canvas(bg, 0, 0)
    for _ in range(scene.trees):
        x, size = rng.uniform(0, sw), rng.uniform(0.04, 0.09) * sh
        green = rng.uniform([20, 50, 20], [60, 100, 50])
        cv.capsule(x, hz + 0.2 * size, x, hz - size, 0.18 * size, (70, 50, 35))
        for _ in range(4):
            cv.disk(x + rng.uniform(-0.4, 0.4) * size, hz - size * rng.uniform(1.0, 1.6), size * rng.uniform(0.4, 0.6),
                    green * rng.uniform(0.8, 1.2))
    return bg, sky


# ----------------------------------------------------------------------------------- camera and occluders


def _walker(cv: Canvas, x: float, feet: float, size: float, stride: float, color) -> None:
    """A person close to the camera, seen from the side mid-stride: legs, torso, arms, head."""
    hip, shoulder = feet - 0.47 * size, feet - 0.8 * size
    swing = 0.16 * size * math.sin(stride)
    for sgn in (-1, 1):
        cv.capsule(x, hip, x + sgn * swing, feet, 0.09 * size, color)
        cv.capsule(x, shoulder, x - sgn * 0.8 * swing, hip + 0.02 * size, 0.06 * size, color)
    cv.capsule(x, hip, x, shoulder, 0.17 * size, color)
    cv.disk(x, shoulder - 0.09 * size, 0.07 * size, np.asarray(color) * 1.3 + 10)


def render(name: str, scene_rng: np.random.Generator, clip_rng: np.random.Generator, n: int, h: int,
           w: int) -> np.ndarray:
    """(n, h, w, 3) uint8 frames of a forward or appearance class of the family, in forward time."""
    scene = _draw_scene(scene_rng)
    oy, ox = max(1, round(0.1 * h)), max(1, round(0.1 * w))
    sh, sw = h + 2 * oy, w + 2 * ox
    hz = oy + scene.horizon * h
    bg, sky = _landscape(scene, GROUND[name], scene_rng, sh, sw, hz)
    rng = clip_rng
    draw = DRAWERS[name](Stage(scene.cx, scene.scale, rng, scene_rng, bg, h, w, ox, oy, hz, progress(rng, n)))
    hzi = int(math.ceil(hz))
    # clouds drift over the sky, never over what stands in front of it
    clear = np.all(np.abs(bg[:hzi] - sky[:hzi]) < 1e-3, axis=-1)
    drift = rng.uniform(-0.3, 0.3)
    cloud_cover = _noise(scene_rng, (hzi, sw + int(abs(drift) * n) + 2), (3, 8))
    cloud_alpha = np.clip((cloud_cover - (1 - scene.clouds)) * 4, 0, 0.9) * np.linspace(1, 0.3, hzi)[:, None]
    cloud_color = {"sunny": (250, 250, 250), "overcast": (185, 185, 190), "dusk": (200, 130, 140)}[scene.light]
    cloud_color = np.asarray(cloud_color, np.float32)

    # camera: on a tripod; still, panning across the margin or zooming about the centre (either way)
    way = float(rng.choice([-1.0, 1.0]))
    lin = np.linspace(0, 1, n) if way > 0 else np.linspace(1, 0, n)
    pan = np.zeros(n)
    zoom = np.ones(n)
    if scene.camera == "pan":
        pan = (2 * lin - 1) * ox * rng.uniform(0.5, 1.0)
    elif scene.camera == "zoom":
        zoom = rng.uniform(1.1, 1.35) ** lin

    # occluders, lighting and the sensor
    walkers = []
    if rng.random() < scene.passers:
        size, cross = rng.uniform(0.7, 1.3) * h, rng.uniform(0.5, 1.0) * n
        speed = float(rng.choice([-1.0, 1.0])) * (w + 0.6 * size) / cross
        t0 = rng.uniform(-0.3 * cross, n - 0.7 * cross)
        walkers.append((size, speed, t0, rng.uniform(1.0, 1.15) * h, rng.uniform(15, 90, 3), rng.uniform(0.15, 0.3)))
    leaves = [(rng.uniform(0, 0.25), rng.uniform(0, 0.2), rng.uniform(0.06, 0.12),
               rng.uniform([15, 35, 15], [50, 80, 40])) for _ in range(7)] if scene.branch else []
    corner = float(scene_rng.choice([0.0, 1.0]))
    sway = rng.uniform(20, 50)
    shadows = np.sin(2 * math.pi * np.arange(n) / rng.uniform(30, 90) + rng.uniform(0, 6))  # clouds pass the sun
    gain = scene.exposure * (1 + scene.slow_flicker * shadows + scene.fast_flicker * rng.uniform(-1, 1, n))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = (1 - scene.vignette * (((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2))[..., None]
    noise = SensorNoise(rng, n, h, w, scene.noise)
    lut = np.clip(255 * (np.arange(256) / 255.0) ** scene.gamma, 0, 255).astype(np.uint8)

    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        frame = bg.copy()
        if scene.clouds > 0:
            off = int(round(drift * t)) + (int(abs(drift) * n) + 1 if drift < 0 else 0)
            a = cloud_alpha[:, off: off + sw] * clear
            frame[:hzi] += a[..., None] * (cloud_color - frame[:hzi])
        draw(Canvas(frame, 0, 0), t)
        view = _camera(frame, h, w, sw / 2 + pan[t], sh / 2, zoom[t])
        cv = Canvas(view, 0, 0)
        for size, speed, t0, feet, color, steps in walkers:
            x = (-0.3 * size if speed > 0 else w + 0.3 * size) + speed * (t - t0)
            _walker(cv, x, feet, size, steps * t, color)
        for lx, ly, lr, color in leaves:
            cx = abs(corner - lx) * w + 0.02 * w * math.sin(2 * math.pi * t / sway)
            cv.capsule(corner * w, 0, cx, ly * h, 0.015 * w, (50, 35, 25))
            cv.disk(cx, ly * h, lr * w, color)
        view *= gain[t] * vignette
        noise.add(view, t)
        np.clip(view, 0, 255, out=view)
        out[t] = lut[view.astype(np.uint8)]
    return out


def _camera(frame: np.ndarray, h: int, w: int, cx: float, cy: float, zoom: float) -> np.ndarray:
    """(h, w, 3) float32: the canvas seen through a camera centred on ``(cx, cy)`` and zoomed ``zoom`` times
    (bilinear; a plain crop when not zoomed)."""
    sh, sw = frame.shape[:2]
    if zoom == 1.0:
        x0 = min(max(int(round(cx - w / 2)), 0), sw - w)
        y0 = min(max(int(round(cy - h / 2)), 0), sh - h)
        return frame[y0: y0 + h, x0: x0 + w].copy()
    ys = np.clip(cy + (np.arange(h) + 0.5 - h / 2) / zoom - 0.5, 0, sh - 1.001)
    xs = np.clip(cx + (np.arange(w) + 0.5 - w / 2) / zoom - 0.5, 0, sw - 1.001)
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = (ys - y0).astype(np.float32)[:, None, None], (xs - x0).astype(np.float32)[None, :, None]
    rows = frame[y0] * (1 - fy) + frame[y0 + 1] * fy  # (h, sw, 3)
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx


FAMILY = Family(
    name="outdoor", pairs=TIME_PAIRS, appearance=APPEARANCE_CLASSES, descriptions=CLASS_DESCRIPTIONS,
    num_frames=(36, 150), fps=24, size=(160, 240), key_base=3000, render=render, groups=25, clips_per_group=4,
    notes=("Held out: never used to choose a setting. Outdoor scenes in perspective (sky, clouds, ground), a",
           "tripod camera that pans or zooms, flickering light, people walking past in front of the action."))
