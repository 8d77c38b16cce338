"""What the ``outdoor`` family's classes draw (:mod:`actionlab.synth.outdoor` composes the scene).

Each drawer takes a :class:`Stage` (the group's static scene canvas, the view's place on it, the clip's motion
progress and random generators), paints its static props onto the canvas once and returns
``draw(canvas, t)``, which paints the moving parts of frame ``t`` in canvas coordinates, before the camera
pans or zooms. Sizes are fractions of the view, so every class renders at any frame size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from actionlab.synth.draw import Canvas, bilinear

GROUND = {"OpenDoor": "paving", "UnloadTruck": "dirt", "LightTurnsGreen": "grass", "BallApproaches": "pitch",
          "FlagWaves": "grass", "Fountain": "paving"}
"""The ground each forward or appearance class stands on."""
_FLAG_COLORS = np.array([[200, 20, 30], [255, 255, 255], [0, 50, 150], [250, 200, 0], [0, 130, 60],
                         [20, 20, 20], [255, 120, 0], [90, 160, 220]], np.float32)


@dataclass
class Stage:
    """The scene canvas (the view plus a margin the camera pans and zooms in) and what a class draws with."""

    cx: float  # where the subject stands (fraction of W)
    scale: float  # the subject's size
    rng: np.random.Generator  # the clip's
    srng: np.random.Generator  # the group's
    bg: np.ndarray  # (SH, SW, 3) float32, the static scene
    h: int
    w: int
    ox: int  # the view at rest starts at (ox, oy) of the canvas
    oy: int
    hz: float  # horizon row on the canvas
    p: np.ndarray  # (n,) motion progress

    @property
    def s(self) -> float:
        return float(min(self.h, self.w))

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        """Canvas pixel of a point given in fractions of the view at rest."""
        return self.ox + fx * self.w, self.oy + fy * self.h

    def ground_y(self, z: float) -> float:
        """Canvas row of the ground at depth ``z`` (1: the bottom of the canvas; the camera is 1 unit high)."""
        return self.hz + (self.bg.shape[0] - self.hz) / z


def ellipse(cv: Canvas, cx: float, cy: float, a: float, b: float, color, alpha: float = 1.0) -> None:
    """An anti-aliased axis-aligned ellipse of half-axes ``a``, ``b``, blended with opacity ``alpha``."""
    g = cv.grid(cx - a, cy - b, cx + a, cy + b)
    if g is not None:
        region, xs, ys = g
        d = np.sqrt(((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2)
        cv.blend(region, alpha * np.clip((1 - d) * min(a, b) + 0.5, 0.0, 1.0), color)


# ----------------------------------------------------------------------------------- the classes
Draw = Callable[[Canvas, int], None]


def _door(st: Stage) -> Draw:
    sr, r, s = st.srng, st.rng, st.s
    dw = 0.21 * s * st.scale
    dh = 2.05 * dw
    xd, base = st.at(st.cx + r.uniform(-0.03, 0.03), 0.88)
    cv = Canvas(st.bg, 0, 0)
    wall = sr.uniform([120, 70, 40], [220, 200, 170])
    x0, x1, top = xd - sr.uniform(1.3, 1.9) * dw, xd + sr.uniform(1.3, 1.9) * dw, base - 1.45 * dh
    cv.polygon(np.array([[x0 - 0.2 * dw, top], [x1 + 0.2 * dw, top], [x1 - 0.4 * dw, top - 0.9 * dw],
                         [x0 + 0.4 * dw, top - 0.9 * dw]], np.float32), sr.uniform(40, 120, 3))  # roof
    cv.box(x0, top, x1, base, wall)
    for k in range(int((base - top) / (0.16 * dw))):  # planks
        cv.box(x0, top + k * 0.16 * dw, x1, top + k * 0.16 * dw + 1.0, wall * 0.7)
    wx = xd - np.sign(xd - (x0 + x1) / 2 or 1) * 1.0 * dw
    cv.box(wx - 0.35 * dw, base - 1.6 * dw, wx + 0.35 * dw, base - 1.0 * dw, (70, 80, 95))  # window
    cv.box(xd - 0.58 * dw, base - dh - 0.08 * dw, xd + 0.58 * dw, base, wall * 0.45)  # frame
    cv.box(xd - 0.5 * dw, base - dh, xd + 0.5 * dw, base, sr.uniform(10, 45, 3))  # the dark doorway
    color = sr.uniform(30, 230, 3)
    hinge = float(sr.choice([-1.0, 1.0]))
    xh, yt = xd + hinge * dw / 2, base - dh
    theta1 = math.radians(r.uniform(70, 100))
    dist = r.uniform(3.0, 4.5) * dw  # camera distance: how strongly the opening door is foreshortened
    px, py = st.bg.shape[1] / 2, st.bg.shape[0] / 2

    def corner(u: float, v: float, th: float) -> list[float]:
        f = dist / (dist - u * dw * math.sin(th))
        return [px + (xh - hinge * u * dw * math.cos(th) - px) * f, py + (yt + v * dh - py) * f]

    def quad(u0: float, u1: float, v0: float, v1: float, th: float) -> np.ndarray:
        return np.array([corner(u0, v0, th), corner(u1, v0, th), corner(u1, v1, th), corner(u0, v1, th)],
                        np.float32)

    def draw(cv: Canvas, t: int) -> None:
        th = theta1 * st.p[t]
        shade = 0.6 + 0.4 * abs(math.cos(th - 0.4))
        cv.polygon(quad(0, 1, 0, 1, th), color * shade)
        for v0, v1 in ((0.07, 0.45), (0.55, 0.93)):
            cv.polygon(quad(0.18, 0.82, v0, v1, th), color * shade * 0.75)
        kx, ky = corner(0.88, 0.52, th)
        cv.disk(kx, ky, 0.06 * dw * dist / (dist - 0.88 * dw * math.sin(th)), (200, 180, 90))
    return draw


def _truck(st: Stage) -> Draw:
    sr, r = st.srng, st.rng
    length = 0.5 * st.w * st.scale
    fd = float(sr.choice([-1.0, 1.0]))  # the cab's side
    xc, base = st.at(st.cx + r.uniform(-0.03, 0.03), 0.84)
    x_rear, rad = xc - fd * 0.25 * length, 0.075 * length  # the pile behind and the truck span 1.5 lengths
    yc = base - 2.2 * rad  # top of the chassis
    paint, sand = sr.uniform(60, 255, 3), sr.uniform([170, 130, 70], [220, 185, 130])
    cv = Canvas(st.bg, 0, 0)

    def x(u: float) -> float:
        return x_rear + fd * u * length

    cv.box(min(x(0), x(1)), yc, max(x(0), x(1)), yc + 0.07 * length, (45, 45, 50))
    cv.box(min(x(0.76), x(1)), yc - 0.3 * length, max(x(0.76), x(1)), yc, paint)
    cv.box(min(x(0.86), x(0.97)), yc - 0.27 * length, max(x(0.86), x(0.97)), yc - 0.15 * length, (90, 110, 130))
    for u in (0.14, 0.3, 0.86):
        cv.disk(x(u), base - rad, rad, (25, 25, 25))
        cv.disk(x(u), base - rad, 0.4 * rad, (150, 150, 150))
    hinge = np.array([x(0.01), yc], np.float32)
    bed_a, bed_b = 0.72 * length, 0.2 * length
    tilt = math.radians(r.uniform(40, 55))
    pile_w, pile_h = r.uniform(0.24, 0.3) * length, r.uniform(0.18, 0.24) * length
    pile_x = x_rear - fd * (0.06 * length + 0.8 * pile_w)
    grid = sr.uniform(0, 1, (8, 8)).astype(np.float32)

    def bed(a: np.ndarray, b: np.ndarray, phi: float) -> np.ndarray:
        e, n = np.array([fd * math.cos(phi), -math.sin(phi)]), np.array([-fd * math.sin(phi), -math.cos(phi)])
        return (hinge + a[:, None] * e + b[:, None] * n).astype(np.float32)

    def draw(cv: Canvas, t: int) -> None:
        q = float(st.p[t])
        phi = tilt * min(q / 0.45, 1.0)
        poured = min(max((q - 0.2) / 0.75, 0.0), 1.0)
        left = 1.0 - poured
        if left > 0:  # the heap above the rim
            cv.polygon(bed(np.array([0.05, 0.95, 0.8, 0.2]) * bed_a,
                           bed_b + np.array([0, 0, 0.6, 0.6]) * bed_b * left ** 0.7, phi), sand)
        cv.polygon(bed(np.array([0, 1, 1, 0]) * bed_a, np.array([0, 0, 1, 1]) * bed_b, phi), paint * 0.85)
        if 0 < poured < 1:  # the stream falls from the open tailgate to the top of the pile
            exit_pt = bed(np.array([0.0]), np.array([0.3 * bed_b]), phi)[0]
            peak = (pile_x, base - pile_h * math.sqrt(poured))
            pts = [(exit_pt[0] + (peak[0] - exit_pt[0]) * k / 3, exit_pt[1] + (peak[1] - exit_pt[1]) * (k / 3) ** 2)
                   for k in range(4)]
            for a, b in zip(pts, pts[1:]):
                cv.capsule(*a, *b, 0.05 * length * (1 - abs(2 * poured - 1)) ** 0.3 + 2, sand * 0.9)
        if poured > 0:
            hw, hh = pile_w * math.sqrt(poured), pile_h * math.sqrt(poured)
            g = cv.grid(pile_x - hw, base - hh, pile_x + hw, base + 1)
            if g is not None:
                region, xs, ys = g
                k = (xs - pile_x) / hw
                surface = base - hh * np.clip(1 - k * k, 0, 1) ** 0.8
                alpha = np.clip(ys - surface + 0.5, 0, 1) * (np.abs(k) < 1) * (ys <= base + 0.5)
                tex = bilinear(grid, np.clip((xs - pile_x + pile_w) / (2 * pile_w), 0, 1) * 7, (base - ys) / pile_h * 3)
                lit = 1.0 + 0.15 * np.sign(k) * fd
                cv.blend(region, alpha, (sand * (0.8 + 0.3 * tex[..., None])) * lit[..., None])
    return draw


def _traffic(st: Stage) -> Draw:
    sr, r, w = st.srng, st.rng, st.w
    cv = Canvas(st.bg, 0, 0)
    sh = st.bg.shape[0]
    x_vp = st.at(st.cx, 0)[0]
    bottom = st.bg.shape[0]
    half = 0.55 * w
    cv.polygon(np.array([[x_vp - 3, st.hz], [x_vp + 3, st.hz], [x_vp + half, bottom], [x_vp - half, bottom]],
                        np.float32), sr.uniform(55, 95) * np.ones(3))
    for z0 in np.arange(1.0, 12.0, 1.2):  # the dashed centre line, in perspective
        y0, y1 = st.ground_y(z0 + 0.6), st.ground_y(z0)
        k0, k1 = (y0 - st.hz) / (sh - st.hz), (y1 - st.hz) / (sh - st.hz)
        cv.polygon(np.array([[x_vp - 0.012 * w * k0, y0], [x_vp + 0.012 * w * k0, y0], [x_vp + 0.012 * w * k1, y1],
                             [x_vp - 0.012 * w * k1, y1]], np.float32), (225, 225, 210))
    side = float(sr.choice([-1.0, 1.0]))  # the light's side of the road; the car waits in the other lane
    y_stop = st.at(0, 0.8)[1]
    k_stop = (y_stop - st.hz) / (sh - st.hz)
    cv.box(x_vp - half * k_stop, y_stop, x_vp + half * k_stop, y_stop + 0.02 * st.h, (230, 230, 230))
    pole_x, _ = st.at(st.cx + side * r.uniform(0.3, 0.36), 0)
    lamp = 0.045 * st.s
    top = st.at(0, r.uniform(0.08, 0.15))[1]
    cv.box(pole_x - 0.012 * st.s, top, pole_x + 0.012 * st.s, st.at(0, 0.9)[1], (70, 75, 80))
    cv.box(pole_x - 1.7 * lamp, top - 1.5 * lamp, pole_x + 1.7 * lamp, top + 6.2 * lamp, (25, 28, 30))
    lamps = [(top + k * 2.4 * lamp, c) for k, c in enumerate(((235, 35, 25), (250, 175, 20), (40, 225, 100)))]
    car = sr.uniform(20, 235, 3)
    lane_x = x_vp - side * 0.25 * w
    cw, ch = 0.36 * w, 0.3 * w
    t_amber = r.uniform(0.25, 0.35)
    t_green = t_amber + r.uniform(0.12, 0.2)

    def draw(cv: Canvas, t: int) -> None:
        q = float(st.p[t])
        on = (q < t_green, t_amber <= q < t_green, q >= t_green)
        for (y, c), lit in zip(lamps, on):
            c = np.asarray(c, np.float32)
            if lit:
                ellipse(cv, pole_x, y, 2.2 * lamp, 2.2 * lamp, c, 0.35)
            cv.disk(pole_x, y, lamp, c if lit else c * 0.18 + 20)
        go = min(max((q - t_green - 0.04) / (1.0 - t_green), 0.0), 1.0)
        k = 1.0 / (1.0 + 7.0 * go * go)  # perspective scale as the car accelerates away
        yb = st.hz + (y_stop - st.hz) * k
        xm, ww, hh = x_vp + (lane_x - x_vp) * k, cw * k, ch * k
        ellipse(cv, xm, yb, 0.55 * ww, 0.08 * hh, (0, 0, 0), 0.5)
        for sgn in (-1, 1):
            cv.box(xm + sgn * 0.42 * ww - 0.07 * ww, yb - 0.18 * hh, xm + sgn * 0.42 * ww + 0.07 * ww, yb, (20, 20, 20))
        cv.box(xm - ww / 2, yb - 0.6 * hh, xm + ww / 2, yb - 0.1 * hh, car)
        cv.polygon(np.array([[xm - 0.42 * ww, yb - 0.6 * hh], [xm + 0.42 * ww, yb - 0.6 * hh],
                             [xm + 0.32 * ww, yb - hh], [xm - 0.32 * ww, yb - hh]], np.float32), car * 0.9)
        cv.polygon(np.array([[xm - 0.36 * ww, yb - 0.64 * hh], [xm + 0.36 * ww, yb - 0.64 * hh],
                             [xm + 0.28 * ww, yb - 0.95 * hh], [xm - 0.28 * ww, yb - 0.95 * hh]], np.float32),
                   (50, 60, 75))
        brake = (255, 40, 30) if go == 0 else (120, 20, 15)
        for sgn in (-1, 1):
            cv.box(xm + sgn * 0.38 * ww - 0.08 * ww, yb - 0.52 * hh, xm + sgn * 0.38 * ww + 0.08 * ww, yb - 0.4 * hh,
                   brake)
        cv.box(xm - 0.1 * ww, yb - 0.35 * hh, xm + 0.1 * ww, yb - 0.25 * hh, (235, 235, 235))
    return draw


def _ball(st: Stage) -> Draw:
    sr, r = st.srng, st.rng
    cv = Canvas(st.bg, 0, 0)
    sh = st.bg.shape[0]
    x_vp = st.at(st.cx, 0)[0]
    unit = sh - st.hz  # pixels per world unit at depth 1
    z_far, z_near = r.uniform(7.0, 10.0), r.uniform(1.35, 1.7)
    goal_z, goal_w, goal_h = z_far + 0.6, sr.uniform(1.8, 2.4), sr.uniform(0.7, 0.9)
    gx0, gx1 = x_vp - goal_w * unit / goal_z, x_vp + goal_w * unit / goal_z
    gy, gt = st.ground_y(goal_z), st.ground_y(goal_z) - goal_h * unit / goal_z
    cv.box(gx0, gt, gx1, gy, (205, 210, 205) * np.ones(3) * 0.5 + st.bg[int(gy) - 1, int(x_vp)] * 0.5)  # the net
    for a, b in (((gx0, gy), (gx0, gt)), ((gx1, gy), (gx1, gt)), ((gx0, gt), (gx1, gt))):
        cv.capsule(*a, *b, max(1.5, 0.07 * unit / goal_z), (245, 245, 245))
    line_x = sr.choice([-1.0, 1.0]) * sr.uniform(2.5, 3.5)  # a touch line
    cv.polygon(np.array([[x_vp + line_x * unit / 40, st.ground_y(40)], [x_vp + line_x * unit / 40 + 1, st.ground_y(40)],
                         [x_vp + line_x * unit * 1.04, sh], [x_vp + line_x * unit * 0.96, sh]], np.float32),
               (235, 235, 235))
    radius = r.uniform(0.13, 0.17)
    lat0, lat1 = r.uniform(-0.4, 0.4), r.uniform(-0.3, 0.3)
    e = r.uniform(0.5, 0.65)  # restitution: each bounce e^2 as high
    heights = r.uniform(0.8, 1.3) * e ** (2 * np.arange(int(r.integers(3, 5))))
    spans = np.sqrt(heights)
    ends = np.cumsum(spans) / spans.sum() * r.uniform(0.6, 0.8)  # the bounces end here; then it rolls
    spin0 = r.uniform(0, 2 * math.pi)

    def draw(cv: Canvas, t: int) -> None:
        q = float(st.p[t])
        z = z_far + (z_near - z_far) * (1 - (1 - q) ** 1.4)
        i = int(np.searchsorted(ends, q, side="right"))
        height = 0.0
        if i < len(ends):
            start = ends[i - 1] if i else 0.0
            u = (q - start) / (ends[i] - start)
            height = 4 * heights[i] * u * (1 - u)
        lat = lat0 + (lat1 - lat0) * q
        x, ground = x_vp + lat * unit / z, st.ground_y(z)
        rad = radius * unit / z
        ellipse(cv, x, ground, 1.1 * rad, 0.3 * rad, (0, 0, 0), 0.5 / (1 + 2 * height))
        y = ground - (height + radius) * unit / z
        cv.disk(x, y, rad, (240, 240, 235))
        roll = spin0 + (z_far - z) / radius
        for k in range(5):  # dark patches turning with the roll (towards the camera: they move up the ball)
            a = roll + k * 2 * math.pi / 5
            if math.sin(a) > 0.1:
                cv.disk(x + 0.45 * rad * math.cos(k * 2.4), y - 0.7 * rad * math.cos(a), 0.28 * rad * math.sin(a),
                        (30, 30, 30))
    return draw


def _flag(st: Stage) -> Draw:
    sr, r = st.srng, st.rng
    x_pole, y_base = st.at(st.cx + r.uniform(-0.03, 0.03), 0.92)
    y_top = st.at(0, r.uniform(0.08, 0.16))[1]
    direction = float(sr.choice([-1.0, 1.0]))
    x_pole -= direction * 0.15 * st.w
    length, height = 0.36 * st.w * st.scale, 0.22 * st.w * st.scale
    cv = Canvas(st.bg, 0, 0)
    cv.capsule(x_pole, y_base, x_pole, y_top - 3, max(2.0, 0.018 * st.s), (190, 190, 195))
    colors = _FLAG_COLORS[sr.choice(len(_FLAG_COLORS), 3, replace=False)]
    kind = int(sr.integers(0, 4))  # vertical or horizontal tricolour, a cross, a disc
    waves, period, amp = r.uniform(0.8, 1.5), r.uniform(10, 20), r.uniform(0.08, 0.15) * height
    gust = r.uniform(30, 70)

    def draw(cv: Canvas, t: int) -> None:
        a = amp * (1 + 0.35 * math.sin(2 * math.pi * t / gust))
        g = cv.grid(min(x_pole, x_pole + direction * length), y_top - a - 1,
                    max(x_pole, x_pole + direction * length), y_top + height + a + 1)
        if g is None:
            return
        region, xs, ys = g
        u = (xs - x_pole) * direction / length
        phase = 2 * math.pi * (waves * u - t / period)
        v = (ys - y_top - a * u * np.sin(phase)) / height
        alpha = np.clip(np.minimum(np.minimum(u, 1 - u) * length, np.minimum(v, 1 - v) * height) + 0.5, 0, 1)
        if kind == 0:
            idx = np.clip((u * 3).astype(np.int64), 0, 2) + 0 * v.astype(np.int64)
        elif kind == 1:
            idx = np.clip((v * 3).astype(np.int64), 0, 2)
        elif kind == 2:
            idx = ((np.abs(u - 0.35) < 0.08) | (np.abs(v - 0.5) < 0.12)).astype(np.int64)
        else:
            idx = (np.hypot((u - 0.45) * length, (v - 0.5) * height) < 0.3 * height).astype(np.int64)
        shade = 1.0 + 0.3 * np.cos(phase) * np.clip(u * 4, 0, 1)
        cv.blend(region, alpha, colors[idx] * shade[..., None])
    return draw


def _fountain(st: Stage) -> Draw:
    sr, r = st.srng, st.rng
    xc, yb = st.at(st.cx + r.uniform(-0.03, 0.03), 0.74)
    rx = 0.3 * st.w * st.scale
    ry = 0.25 * rx
    stone, water = sr.uniform(140, 200) * np.array([1.0, 0.97, 0.9]), sr.uniform([20, 60, 70], [60, 110, 130])
    cv = Canvas(st.bg, 0, 0)
    cv.box(xc - rx, yb, xc + rx, yb + 0.16 * rx, stone * 0.8)
    ellipse(cv, xc, yb + 0.16 * rx, rx, ry, stone * 0.8)
    ellipse(cv, xc, yb, rx, ry, stone)
    ellipse(cv, xc, yb, 0.9 * rx, 0.9 * ry, water)
    cv.box(xc - 0.05 * rx, yb - 0.2 * rx, xc + 0.05 * rx, yb, stone * 0.9)
    nozzle_y = yb - 0.2 * rx
    jet = sr.uniform(0.45, 0.65) * st.h
    count = 300
    phase, life = r.uniform(0, 1, count), r.uniform(14, 22, count)
    reach, rise = r.uniform(-0.85, 0.85, count) * rx, jet * r.uniform(0.6, 1.0, count)
    ripple = r.uniform(0.07, 0.12) * rx
    sh, sw = st.bg.shape[:2]
    spray = np.array([225, 235, 245], np.float32)

    def draw(cv: Canvas, t: int) -> None:
        g = cv.grid(xc - 0.9 * rx, yb - 0.9 * ry, xc + 0.9 * rx, yb + 0.9 * ry)
        if g is not None:
            region, xs, ys = g
            rad = np.hypot((xs - xc) / 0.9, (ys - yb) / (0.9 * ry / rx))
            inside = np.clip((rx - rad) * 0.3, 0, 1)
            cv.frame[region] += (inside * 14 * np.sin(2 * math.pi * (rad / ripple - t / 8)))[..., None]
        tau = np.mod(t / life + phase, 1.0)
        x = (xc + reach * tau).astype(np.int64)
        y = (nozzle_y - 4 * rise * tau * (1 - tau) + (yb - nozzle_y) * tau * tau).astype(np.int64)
        for dy, dx, alpha in ((0, 0, 0.85), (1, 0, 0.5), (0, 1, 0.5)):
            ok = (y + dy >= 0) & (y + dy < sh) & (x + dx >= 0) & (x + dx < sw)
            view = cv.frame[y[ok] + dy, x[ok] + dx]
            cv.frame[y[ok] + dy, x[ok] + dx] = view + alpha * (spray - view)
    return draw


DRAWERS: dict[str, Callable[[Stage], Draw]] = {
    "OpenDoor": _door, "UnloadTruck": _truck, "LightTurnsGreen": _traffic, "BallApproaches": _ball,
    "FlagWaves": _flag, "Fountain": _fountain}
