"""Pictures of videos: frame strips with heat maps overlaid, a curve over time, images as data URIs, MP4s.

Shared by ``actionlab explain`` (a PNG strip and an MP4) and the HTML report (JPEG strips of the test videos a
run got most wrong or fixed). Frames are ``(N, H, W, 3)`` uint8 RGB, heat maps ``(N, h, w)`` in ``[0, 1]``.
Drawing uses Pillow (torchvision's own image dependency); MP4s are encoded with PyAV.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import Image, ImageFont

__all__ = ["curve_panel", "data_uri", "frame_strip", "heat_colors", "overlay", "resize_frames", "write_mp4"]

# A perceptually ordered blue -> cyan -> green -> yellow -> red ramp (jet without its dark ends).
_STOPS = np.array([[0.0, 40, 40, 200], [0.25, 30, 150, 230], [0.5, 60, 200, 90], [0.75, 250, 210, 40],
                   [1.0, 220, 30, 30]], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _STOPS[:, 0], _STOPS[:, c]) for c in (1, 2, 3)], 1
                ).round().astype(np.uint8)  # (256, 3)
INK, MUTED, GRID, LINE = (30, 41, 59), (100, 116, 139), (226, 232, 240), (37, 99, 235)


def heat_colors(heat: np.ndarray) -> np.ndarray:
    """``(...)`` values in ``[0, 1]`` -> ``(..., 3)`` uint8 colours."""
    return _LUT[np.clip(np.nan_to_num(heat) * 255, 0, 255).astype(np.uint8)]


def resize_frames(frames: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, height, width, 3)`` (width keeps the aspect ratio when not given)."""
    n, h, w, _ = frames.shape
    width = width or max(1, round(w * height / h))
    if (h, w) == (height, width):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=height < h)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def overlay(frames: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Heat maps ``(N, h, w)`` stretched over frames ``(N, H, W, 3)``; a pixel's colour weighs ``alpha * heat``,
    so the frame stays visible where the map is cold."""
    n, h, w, _ = frames.shape
    hm = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[:, None]
    hm = F.interpolate(hm, size=(h, w), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1).numpy()
    a = (alpha * hm)[..., None]
    out = frames.astype(np.float32) * (1 - a) + heat_colors(hm).astype(np.float32) * a
    return out.round().clip(0, 255).astype(np.uint8)


def _font(size: int = 12) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def curve_panel(width: int, height: int, xs: Sequence[float], ys: Sequence[float], label: str,
                marks: Sequence[float] = (), cursor: float | None = None,
                groups: Sequence[int] | None = None) -> Image.Image:
    """A line chart ``width x height`` of ``ys`` over ``xs`` (frame numbers), a zero line when the values change
    sign, tick marks at ``marks`` (the frames shown above it) and an optional vertical ``cursor``. Points of
    different ``groups`` (e.g. the clips of a video, whose frames interleave) get lines of their own."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font = _font(11)
    left, right, top, bottom = 8, 8, 18, 16
    d.text((left, 2), label, fill=INK, font=font)
    xs, ys = np.asarray(xs, np.float64), np.nan_to_num(np.asarray(ys, np.float64))
    if len(xs) == 0:
        return img
    x0, x1 = float(xs.min()), float(xs.max())
    lo, hi = min(0.0, float(ys.min())), max(0.0, float(ys.max()))
    hi = hi if hi > lo else lo + 1.0
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * pw

    def py(y: float) -> float:
        return top + ph - (y - lo) / (hi - lo) * ph

    d.rectangle([left, top, left + pw, top + ph], outline=GRID)
    if lo < 0 < hi:
        d.line([(left, py(0)), (left + pw, py(0))], fill=MUTED)
    for m in marks:
        d.line([(px(m), top + ph), (px(m), top + ph + 4)], fill=MUTED)
    if cursor is not None:
        d.line([(px(cursor), top), (px(cursor), top + ph)], fill=(234, 88, 12), width=2)
    pts = [(px(x), py(y)) for x, y in zip(xs, ys)]
    owner = np.zeros(len(pts), np.int64) if groups is None else np.asarray(groups)
    for g in np.unique(owner):
        line = [p for p, o in zip(pts, owner) if o == g]
        if len(line) > 1:
            d.line(line, fill=LINE, width=2)
    for x, y in pts:
        d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=LINE)
    d.text((left, top + ph + 3), f"frame {x0:g}", fill=MUTED, font=font)
    end = f"frame {x1:g}"
    d.text((left + pw - d.textlength(end, font=font), top + ph + 3), end, fill=MUTED, font=font)
    return img


def frame_strip(tiles: np.ndarray, captions: Sequence[str] = (), title: str = "",
                curve: Image.Image | None = None, gap: int = 4) -> Image.Image:
    """One image: ``title``, the ``(N, H, W, 3)`` tiles side by side with a caption under each, and a
    ``curve`` image (:func:`curve_panel`) under them, stretched to the strip's width."""
    from PIL import Image, ImageDraw

    n, h, w, _ = tiles.shape
    width = n * w + (n - 1) * gap
    title_h = 20 if title else 0
    cap_h = 16 if captions else 0
    curve_h = curve.height if curve is not None else 0
    img = Image.new("RGB", (width, title_h + h + cap_h + curve_h), "white")
    d = ImageDraw.Draw(img)
    font = _font(12)
    if title:
        d.text((2, 3), title, fill=INK, font=font)
    for i in range(n):
        x = i * (w + gap)
        img.paste(Image.fromarray(tiles[i]), (x, title_h))
        if i < len(captions):
            d.text((x + 2, title_h + h + 2), captions[i], fill=MUTED, font=_font(11))
    if curve is not None:
        img.paste(curve.resize((width, curve_h)) if curve.width != width else curve, (0, title_h + h + cap_h))
    return img


def data_uri(img: Image.Image, fmt: str = "JPEG", quality: int = 80) -> str:
    """``data:image/...;base64,...`` of a PIL image (JPEG for photos, PNG for sharp-edged pictures)."""
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    else:
        img.save(buf, fmt.upper(), optimize=True)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 4) -> Path:
    """``(N, H, W, 3)`` uint8 frames as an H.264 MP4 (MPEG-4 Part 2 where PyAV lacks libx264); odd sizes are
    padded by one pixel, as yuv420p needs even ones."""
    from actionlab.data.video.encode import write_video

    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    write_video(path, np.ascontiguousarray(frames), fps=fps, codec="h264")
    return Path(path)
