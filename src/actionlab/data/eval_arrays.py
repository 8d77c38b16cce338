"""Test-time transforms on numpy arrays: the crop geometry every transform shares, an antialiased resize, and the
evaluation crops of clips (:class:`ClipEval`) and frames (:class:`FrameEval`). Imports no torch.

Prediction from an export runs on ONNX Runtime, PyAV and numpy alone, so its preprocessing lives here; the
training transforms (:mod:`actionlab.data.transforms`, torch) take their geometry and their evaluation
settings from this module, so both read the same boxes. On frames already decoded at the transform's size (what
prediction and evaluation decode) the arrays are bit-identical to the torch transforms': the same float32
operations in the same order. Frames of another size are resized as torch resizes them: :func:`resize_uint8`
is its antialiased bilinear uint8 kernel (the same integers), :func:`resize_antialiased` its float kernel (within
float32 rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's video models (Kinetics-400 statistics)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

Box = tuple[int, int, int, int]
"""``(top, left, height, width)`` in pixels of the frame it is applied to."""

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "KINETICS_MEAN", "KINETICS_STD", "Box", "ClipEval", "FrameEval", "check_crop_size",
           "centre_crop_box", "clip_frame_shape", "resize_antialiased", "resize_uint8", "resized_shape", "scale_box",
           "three_crop_boxes"]


# ----------------------------------------------------------------------------------- geometry


def resized_shape(h: int, w: int, short_side: int) -> tuple[int, int]:
    """``(H', W')`` after resizing the short side to ``short_side`` (torchvision's rounding: long side truncated)."""
    if h <= w:
        return short_side, int(short_side * w / h)
    return int(short_side * h / w), short_side


def centre_crop_box(h: int, w: int, size: int) -> Box:
    """The central ``size x size`` box (torchvision's rounding)."""
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the {h}x{w} frame; lower size or raise resize")
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size, size


def three_crop_boxes(h: int, w: int, size: int) -> list[Box]:
    """Three ``size x size`` boxes along the long side (left/centre/right, or top/centre/bottom)."""
    top, left, _, _ = centre_crop_box(h, w, size)
    if w >= h:
        return [(top, 0, size, size), (top, left, size, size), (top, w - size, size, size)]
    return [(0, left, size, size), (top, left, size, size), (h - size, left, size, size)]


def clip_frame_shape(h: int, w: int, resize: int, keep_aspect: bool = True) -> tuple[int, int]:
    """The frame size crops are drawn from: short side ``resize`` (``keep_aspect``), or the whole frame squeezed
    to ``resize x resize`` (so square crops see the whole width of a wide video)."""
    return resized_shape(h, w, resize) if keep_aspect else (resize, resize)


def scale_box(box: Box, f: float, fx: float | None = None) -> tuple[float, float, float, float]:
    """A box in resized-frame pixels -> the same region in original pixels (``f`` = resized / original height;
    ``fx`` the same for the width when the aspect ratio was not kept, default ``f``)."""
    fx = f if fx is None else fx
    return box[0] / f, box[1] / fx, box[2] / f, box[3] / fx


# ----------------------------------------------------------------------------------- antialiased resize


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


FILTERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {"bilinear": (_triangle, 1.0),
                                                                        "bicubic": (_cubic, 2.0)}
"""Interpolation -> (filter, half-width in input pixels at scale 1), as torch's antialiased kernels."""


def _resize_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """``(n_out, n_in)`` float64 weights of one axis: torch's ``_compute_indices_weights_aa`` (PIL's filter
    stretched by the downscale factor, each row normalised to sum 1)."""
    fn, half = FILTERS[mode]
    scale = n_in / n_out
    support = half * scale if scale >= 1.0 else half
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    out = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        w = fn((np.arange(lo, hi) - centre + 0.5) * inv)
        total = w.sum()
        out[i, lo:hi] = w / total if total != 0 else w
    return out


def _along(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``m (n_out, n_in)`` applied along ``axis`` of ``x``."""
    return np.moveaxis(np.tensordot(x, m, axes=([axis], [1])), -1, axis)


def resize_antialiased(x: np.ndarray, size: tuple[int, int], mode: str = "bilinear", axes: tuple[int, int] = (-2, -1)
                       ) -> np.ndarray:
    """Float32 ``x`` with its two ``axes`` (height, width) resized to ``size`` by torch's antialiased ``mode``
    (``F.interpolate(..., antialias=True, align_corners=False)``): width first, then height, in float64 (within
    float32 rounding of torch's kernel); an axis already at its size is left alone."""
    if mode not in FILTERS:
        raise ValueError(f"interpolation must be one of {sorted(FILTERS)}, got {mode!r}")
    out = x.astype(np.float64)
    for axis, n_out in ((axes[1], size[1]), (axes[0], size[0])):
        if out.shape[axis] != n_out:
            out = _along(out, _resize_matrix(out.shape[axis], n_out, mode), axis)
    return out.astype(np.float32)


def resize_uint8(x: np.ndarray, size: tuple[int, int], axes: tuple[int, int] = (-3, -2)) -> np.ndarray:
    """uint8 ``x`` (default ``(..., H, W, C)``) with its ``axes`` resized to ``size`` by torch's antialiased
    bilinear uint8 kernel: the weights as int16 fixed point, each axis rounded back to uint8 (width first)."""
    out = x
    for axis, n_out in ((axes[1], size[1]), (axes[0], size[0])):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        m = _resize_matrix(n_in, n_out, "bilinear")
        # torch: the most fractional bits that keep every weight below 2**15 (bilinear weights are >= 0)
        bits = 0
        while bits < 22 and int(0.5 + m.max() * (1 << (bits + 1))) < 1 << 15:
            bits += 1
        w = np.floor(0.5 + m * (1 << bits))
        # float64 products and sums of these integers are exact (< 2**53), and BLAS-fast
        acc = _along(out.astype(np.float64), w, axis).astype(np.int64) + (1 << (bits - 1))
        out = np.clip(acc >> bits, 0, 255).astype(np.uint8)
    return out


def _crop_resize(x: np.ndarray, box: tuple[float, float, float, float], out: tuple[int, int]) -> np.ndarray:
    """``box`` of ``(..., H, W)`` resized to ``out`` (the numpy :func:`actionlab.data.transforms.crop_resize`)."""
    top, left, bh, bw = box
    t0, l0 = max(0, int(math.floor(top))), max(0, int(math.floor(left)))
    t1 = min(x.shape[-2], int(math.ceil(top + bh)))
    l1 = min(x.shape[-1], int(math.ceil(left + bw)))
    crop = x[..., t0:t1, l0:l1]
    if crop.shape[-2:] == tuple(out):
        return crop
    return resize_antialiased(crop, out)


def _as_tchw(clip: np.ndarray) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` or ``(H, W, 3)`` -> float32 ``(T, 3, H, W)`` in ``[0, 1]`` (a view transposed)."""
    if clip.dtype != np.uint8:
        raise TypeError(f"numpy clips must be uint8 (T, H, W, 3), got {clip.dtype}")
    if clip.ndim == 3:
        clip = clip[None]
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a numpy clip (T, H, W, 3) or frame (H, W, 3), got shape {clip.shape}")
    return clip.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def _normalized(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean) / std`` per channel of float32 ``(T, 3, H, W)``."""
    m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------------- evaluation crops


def check_crop_size(size: int, resize: int) -> None:
    """Raise unless ``1 <= size <= resize`` (a ``size`` crop of frames resized to ``resize``)."""
    if size < 1 or resize < size:
        raise ValueError(f"need 1 <= size <= resize, got size={size}, resize={resize}")


@dataclass(frozen=True)
class ClipEval:
    """Test-time crops of a clip: short side to ``resize``, then ``crops`` = 1 (centre) or 3 (left/centre/right)
    ``size x size`` crops, normalised. :meth:`array` gives them as numpy; the torch transform
    (:class:`actionlab.data.transforms.ClipEvalTransform`) is this with tensors."""

    size: int = 112
    resize: int = 128
    crops: int = 1
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    keep_aspect: bool = True
    """False: crops come from the whole frame squeezed to ``resize x resize`` (:func:`clip_frame_shape`)."""

    def __post_init__(self) -> None:
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops}")
        check_crop_size(self.size, self.resize)

    def boxes(self, h: int, w: int) -> list[Box]:
        """The crop boxes in pixels of the frame resized to ``resize``."""
        rh, rw = clip_frame_shape(h, w, self.resize, self.keep_aspect)
        return [centre_crop_box(rh, rw, self.size)] if self.crops == 1 else three_crop_boxes(rh, rw, self.size)

    def array(self, clip: np.ndarray) -> np.ndarray:
        """uint8 ``(T, H, W, 3)`` -> float32 ``(crops, 3, T, size, size)``."""
        x = _as_tchw(np.asarray(clip))  # (T, 3, H, W)
        h, w = x.shape[-2:]
        rh, rw = clip_frame_shape(h, w, self.resize, self.keep_aspect)
        out = [_normalized(_crop_resize(x, scale_box(box, rh / h, rw / w), (self.size, self.size)), self.mean,
                           self.std).transpose(1, 0, 2, 3) for box in self.boxes(h, w)]
        return np.ascontiguousarray(np.stack(out))


@dataclass(frozen=True)
class FrameEval:
    """Short side to ``resize``, centre ``crop``, normalise (the backbone's own preprocessing). :meth:`array`
    gives numpy; the torch transform (:class:`actionlab.data.transforms.FrameEvalTransform`) is this with
    tensors."""

    crop: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def array(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W, 3)`` (or one frame ``(H, W, 3)``) -> float32 ``(N, 3, crop, crop)``."""
        x = _as_tchw(np.asarray(frames))  # (N, 3, H, W)
        h, w = x.shape[-2:]
        rh, rw = resized_shape(h, w, self.resize)
        box = scale_box(centre_crop_box(rh, rw, self.crop), rh / h)
        return np.ascontiguousarray(_normalized(_crop_resize(x, box, (self.crop, self.crop)), self.mean, self.std))
