"""Clip-consistent augmentation for end-to-end video models, and frame transforms for fine-tuning.

A clip is augmented with ONE set of random parameters (crop box, flip, colour jitter) drawn from an
explicit :class:`numpy.random.Generator` and applied to every frame, so motion is never distorted by
per-frame jitter. Inputs are uint8 clips ``(T, H, W, 3)`` (numpy, as decoders give them) or tensors
``(C, T, H, W)`` (uint8, or float in ``[0, 1]``); outputs are float32 ``(C, T, h, w)`` normalised with
``mean``/``std`` (torchvision's video layout).

Functional pieces (``clip`` below is float ``(T, C, H, W)`` in ``[0, 1]``, the internal layout):
:func:`as_tchw`, :func:`random_resized_crop_box`, :func:`centre_crop_box`, :func:`three_crop_boxes`,
:func:`crop_resize`, :func:`color_jitter`, :func:`normalize`. Composed transforms:
:class:`ClipTrainTransform`, :class:`ClipEvalTransform`, :class:`FrameTrainTransform`,
:class:`FrameEvalTransform`.

Horizontal flips swap left and right, so they change the label of direction classes (the synthetic
``MoveLeft``/``MoveRight`` and ``TurnClockwise``/``TurnCounterClockwise``; SSv2's "from left to right").
They are therefore off unless asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The geometry and the evaluation settings are shared with the numpy transforms of exports (torch-free).
from actionlab.data.eval_arrays import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    Box,
    ClipEval,
    FrameEval,
    centre_crop_box,
    check_crop_size,
    clip_frame_shape,
    resized_shape,
    three_crop_boxes,
)
from actionlab.data.eval_arrays import scale_box as _scale_box

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "KINETICS_MEAN", "KINETICS_STD", "Box", "ClipEvalTransform",
           "ClipTrainTransform", "FrameEvalTransform", "FrameTrainTransform", "JitterParams", "as_tchw",
           "centre_crop_box", "clip_frame_shape", "color_jitter", "crop_resize", "normalize",
           "random_resized_crop_box", "resized_shape", "sample_jitter", "three_crop_boxes"]


# ----------------------------------------------------------------------------------- functional


def as_tchw(clip: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Any supported clip layout -> float32 ``(T, C, H, W)`` in ``[0, 1]``.

    Accepts numpy ``(T, H, W, 3)`` uint8 (decoder output), a numpy frame ``(H, W, 3)`` uint8 (returned
    with ``T = 1``), or a tensor ``(C, T, H, W)`` (uint8, or float already in ``[0, 1]``).
    """
    if isinstance(clip, np.ndarray):  # channels last: (T, H, W, 3) or (H, W, 3)
        if clip.dtype != np.uint8:
            raise TypeError(f"numpy clips must be uint8 (T, H, W, 3), got {clip.dtype}")
        if clip.ndim == 3:
            clip = clip[None]
        if clip.ndim != 4:
            raise ValueError(f"expected a numpy clip (T, H, W, 3) or frame (H, W, 3), got shape {clip.shape}")
        x = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)
    else:  # torch: (C, T, H, W)
        if clip.ndim != 4:
            raise ValueError(f"expected a tensor clip (C, T, H, W), got shape {tuple(clip.shape)}")
        x = clip.permute(1, 0, 2, 3)
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got clip of shape {tuple(clip.shape)}")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def random_resized_crop_box(h: int, w: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.4, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Box:
    """torchvision's RandomResizedCrop box: area fraction in ``scale``, log-uniform aspect ``ratio``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    # fallback: central crop at the nearest allowed ratio
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def crop_resize(x: torch.Tensor, box: tuple[float, float, float, float], out: tuple[int, int]) -> torch.Tensor:
    """Crop ``box`` (top, left, height, width; may be fractional, in pixels of ``x``) from ``(T, C, H, W)``
    and resize it to ``out = (h, w)`` with antialiased bilinear interpolation -> ``(T, C, h, w)``."""
    top, left, bh, bw = box
    t0, l0 = max(0, int(math.floor(top))), max(0, int(math.floor(left)))
    t1 = min(x.shape[-2], int(math.ceil(top + bh)))
    l1 = min(x.shape[-1], int(math.ceil(left + bw)))
    crop = x[..., t0:t1, l0:l1]
    if crop.shape[-2:] == tuple(out):
        return crop.contiguous()
    return F.interpolate(crop, size=out, mode="bilinear", align_corners=False, antialias=True)


@dataclass(frozen=True)
class JitterParams:
    """Multiplicative factors (1 = unchanged) shared by every frame of a clip."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    """Hue shift in turns of the colour wheel (0 = unchanged, 0.5 = opposite colours)."""
    grayscale: bool = False


def sample_jitter(rng: np.random.Generator, brightness: float, contrast: float, saturation: float,
                  hue: float = 0.0, grayscale: float = 0.0) -> JitterParams:
    """Factors uniform in ``[1 - s, 1 + s]`` for each strength ``s`` (0 disables), a hue shift uniform in
    ``[-hue, hue]`` and grayscale with probability ``grayscale``. Draws nothing for a disabled part, so adding
    ``hue``/``grayscale`` later leaves earlier parameters unchanged."""
    def f(s: float) -> float:
        return float(rng.uniform(max(0.0, 1 - s), 1 + s)) if s > 0 else 1.0

    b, c, s = f(brightness), f(contrast), f(saturation)
    h = float(rng.uniform(-hue, hue)) if hue > 0 else 0.0
    g = bool(rng.random() < grayscale) if grayscale > 0 else False
    return JitterParams(b, c, s, h, g)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def color_jitter(x: torch.Tensor, p: JitterParams) -> torch.Tensor:
    """Brightness, contrast (toward each frame's mean grey) and saturation on ``(T, C, H, W)`` in ``[0, 1]``."""
    if p.brightness != 1.0:
        x = x * p.brightness
    if p.contrast != 1.0:
        mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
        x = (x - mean) * p.contrast + mean
    if p.saturation != 1.0:
        g = _gray(x)
        x = (x - g) * p.saturation + g
    x = x.clamp_(0.0, 1.0)
    if p.hue != 0.0:
        from torchvision.transforms.v2.functional import adjust_hue

        x = adjust_hue(x, p.hue)
    if p.grayscale:
        x = _gray(x).expand_as(x).contiguous()
    return x


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(T, C, H, W)``."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


# ----------------------------------------------------------------------------------- clip transforms


@dataclass(frozen=True)
class ClipTrainTransform:
    """Training augmentation of a clip, identical on every frame: random resized crop of the frame
    resized to short side ``resize`` (crop area fraction in ``scale``) -> ``size x size``, optional
    horizontal flip, colour jitter, normalisation. ``__call__(clip, rng) -> (C, T, size, size)`` float32."""

    size: int = 112
    resize: int = 128
    scale: tuple[float, float] = (0.4, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = False
    """Random horizontal flip (p = 0.5); off by default because it swaps left/right-dependent classes."""
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.0
    """Hue shift drawn from ``[-hue, hue]`` turns (0.5: any hue), so that colour is no cue."""
    grayscale: float = 0.0
    """Probability of a grey clip."""
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    keep_aspect: bool = True
    """False: crops are drawn from the whole frame squeezed to ``resize x resize`` (:func:`clip_frame_shape`)."""

    def __post_init__(self) -> None:
        check_crop_size(self.size, self.resize)
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {self.scale}")

    def params(self, h: int, w: int, rng: np.random.Generator) -> tuple[Box, bool, JitterParams]:
        """Draw the clip's parameters: crop box (in pixels of the frame resized to ``resize``), flip, jitter."""
        rh, rw = clip_frame_shape(h, w, self.resize, self.keep_aspect)
        box = random_resized_crop_box(rh, rw, rng, self.scale, self.ratio)
        flip = bool(rng.random() < 0.5) if self.flip else False
        jitter = sample_jitter(rng, self.brightness, self.contrast, self.saturation, self.hue, self.grayscale)
        return box, flip, jitter

    def __call__(self, clip: np.ndarray | torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = as_tchw(clip)  # (T, C, H, W)
        h, w = x.shape[-2:]
        box, flip, jitter = self.params(h, w, rng)
        rh, rw = clip_frame_shape(h, w, self.resize, self.keep_aspect)
        # One interpolation: crop the region in original pixels and resize it straight to the output.
        x = crop_resize(x, _scale_box(box, rh / h, rw / w), (self.size, self.size))
        if flip:
            x = x.flip(-1)
        x = color_jitter(x, jitter)
        return normalize(x, self.mean, self.std).permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)


@dataclass(frozen=True)
class ClipEvalTransform(ClipEval):
    """Test-time transform: short side to ``resize``, then ``crops`` = 1 (centre) or 3 (left/centre/right)
    ``size x size`` crops, normalised (the settings and boxes of :class:`~actionlab.data.eval_arrays.ClipEval`).
    ``__call__(clip) -> (crops, C, T, size, size)``; ``crop(clip, k)`` gives one of them ``(C, T, size, size)``."""

    def crop(self, clip: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
        """Crop ``k`` (0-based) of the clip: ``(C, T, size, size)`` float32."""
        x = as_tchw(clip)
        return self._one(x, k)

    def _one(self, x: torch.Tensor, k: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        rh, rw = clip_frame_shape(h, w, self.resize, self.keep_aspect)
        y = crop_resize(x, _scale_box(self.boxes(h, w)[k], rh / h, rw / w), (self.size, self.size))
        return normalize(y, self.mean, self.std).permute(1, 0, 2, 3).contiguous()

    def __call__(self, clip: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = as_tchw(clip)
        return torch.stack([self._one(x, k) for k in range(self.crops)])


# ----------------------------------------------------------------------------------- frame transforms


@dataclass(frozen=True)
class FrameTrainTransform:
    """Single-frame fine-tuning augmentation (the course handout: random crop + flip): short side to ``resize``,
    random ``crop x crop`` window (or a random resized crop when ``scale`` is given), horizontal flip with
    p = 0.5, normalisation. ``__call__(frame (H, W, 3) uint8, rng) -> (3, crop, crop)`` float32."""

    crop: int = 224
    resize: int = 256
    flip: bool = True
    scale: tuple[float, float] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"need 1 <= crop <= resize, got crop={self.crop}, resize={self.resize}")

    def __call__(self, frame: np.ndarray | torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        x = as_tchw(frame)  # (1, 3, H, W)
        h, w = x.shape[-2:]
        rh, rw = resized_shape(h, w, self.resize)
        if self.scale is None:
            box = (int(rng.integers(0, rh - self.crop + 1)), int(rng.integers(0, rw - self.crop + 1)),
                   self.crop, self.crop)
        else:
            box = random_resized_crop_box(rh, rw, rng, self.scale)
        x = crop_resize(x, _scale_box(box, rh / h), (self.crop, self.crop))
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        return normalize(x, self.mean, self.std)[0].contiguous()


@dataclass(frozen=True)
class FrameEvalTransform(FrameEval):
    """Short side to ``resize``, centre ``crop``, normalise (the backbone's own preprocessing; the settings of
    :class:`~actionlab.data.eval_arrays.FrameEval`). ``__call__(frame (H, W, 3) uint8, rng=None) -> (3, crop,
    crop)`` float32."""

    def __call__(self, frame: np.ndarray | torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        x = as_tchw(frame)
        h, w = x.shape[-2:]
        rh, rw = resized_shape(h, w, self.resize)
        x = crop_resize(x, _scale_box(centre_crop_box(rh, rw, self.crop), rh / h), (self.crop, self.crop))
        return normalize(x, self.mean, self.std)[0].contiguous()
