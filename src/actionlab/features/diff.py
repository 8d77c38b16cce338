"""Frame differences as a modality: a motion stream at the cost of an RGB one.

For each position the frame sampler chooses (the RGB sampler's, so the stores align step by step), the frames
``t, t+s, t+2s, t+3s`` (``s = DIFF_STEP``; the window shifted back to fit the video, as optical flow's) are
decoded at the backbone's size, turned grey (ITU-R 601 weights) and differenced; the three differences become
the three channels of one image, in order, which the backbone reads with its own ImageNet weights::

    channel k = clip(0.5 + DIFF_GAIN * (g[t+(k+1)s] - g[t+ks]), 0, 1)        g in [0, 1]; still pixels -> 0.5

A moving edge leaves a signed pair (its leading and trailing side) whose colour says in which of the three
intervals it moved, so the image carries where things move, which way, and in what order; a still scene is flat
grey. This is Wang et al.'s RGB difference (Temporal Segment Networks, 2016), made readable by a frozen
ImageNet CNN: no flow estimator runs, so it costs about what RGB extraction costs (decoding four frames per
position instead of one), against optical flow's 6x (measured in ``docs/results.md``). Unlike flow it does not
separate the camera's motion from the actors'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionlab.config import ExtractConfig
from actionlab.data.video.decode import VideoInfo
from actionlab.features import rgb
from actionlab.features.flow import decode_windows, flow_windows
from actionlab.features.frames import FramePipeline, engine_features
from actionlab.features.preprocess import Preprocess

NAME = "diff"
DIFF_STEP = 1
"""Frames between the two images of each difference (TSN's consecutive frames)."""
DIFF_LENGTH = 3
"""Differences per position: one per channel of the image."""
DIFF_GAIN = 2.0
"""A difference of 0.25 (a quarter of the grey range) fills a channel's range."""
_GREY = (0.299, 0.587, 0.114)


def difference_windows(num_frames: int, positions: np.ndarray) -> np.ndarray:
    """``(T, 4) int64``: the frames whose three differences describe each position (:func:`flow_windows`)."""
    return flow_windows(num_frames, positions, DIFF_LENGTH, DIFF_STEP)


def difference_image(frames: np.ndarray, windows: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """``frames (N, H, W, 3)`` uint8 RGB at ``pre``'s decode size, ``windows (T, 4)`` indices into them ->
    ``(T, 3, h, w)`` float32: the three grey differences of each window, what ``pre`` shows of them (centre crop
    or whole frame), as an image normalised like the backbone's frames."""
    h, w = frames.shape[1:3]
    top, left, vh, vw = pre.view_box(h, w)
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + vh, left:left + vw]))
    grey = torch.tensordot(x.float(), torch.tensor(_GREY, dtype=torch.float32), dims=1).mul_(1.0 / 255)
    idx = torch.from_numpy(np.asarray(windows, np.int64))
    d = grey[idx[:, 1:]] - grey[idx[:, :-1]]  # (T, 3, vh, vw)
    return pre.normalise_(d.mul_(DIFF_GAIN).add_(0.5).clamp_(0.0, 1.0).contiguous())


@dataclass(frozen=True)
class DiffStep:
    """The decoding workers' step for frame differences: a video file -> ``(positions (T,), x, info)``."""

    cfg: ExtractConfig
    preprocess: Preprocess

    def __call__(self, path: str | Path, expected_frames: int = 0) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
        positions, frames, windows, info = decode_windows(path, self.preprocess.short_side, self.cfg,
                                                          expected_frames, DIFF_LENGTH, DIFF_STEP)
        return positions, difference_image(frames, windows, self.preprocess), info


def diff_preprocessing(pre: Preprocess) -> dict[str, Any]:
    """What a store of frame differences holds, for its provenance and the checkpoints of runs trained on it."""
    return {**pre.record(), "input": "frame differences", "step": DIFF_STEP, "gain": DIFF_GAIN,
            "image": "channel k = clip(0.5 + gain * (g[t+(k+1)*step] - g[t+k*step]), 0, 1), g grey in [0, 1] "
                     "(0.299 R + 0.587 G + 0.114 B), k = 0, 1, 2; the backbone's own RGB weights"}


def build_backbone(cfg: ExtractConfig) -> tuple[Any, torch.nn.Module]:
    """``(spec, module in eval mode)`` reading difference images: the RGB backbone (:func:`rgb.build_backbone`:
    ImageNet or other RGB weights; weights fine-tuned on optical flow are refused), seeing what ``cfg.view``
    resolves to for motion (the centre crop by default)."""
    return rgb.build_backbone(dataclasses.replace(cfg, modality="rgb", view=cfg.resolved_view))


def build_pipeline(cfg: ExtractConfig) -> FramePipeline:
    """Extraction of frame differences: decoding workers run :class:`DiffStep`, the backbone runs on its output."""
    spec, module = build_backbone(cfg)
    return FramePipeline(DiffStep(cfg, spec.preprocess), spec, module, int(spec.feature_dim),
                         diff_preprocessing(spec.preprocess), light_workers=True)


def file_features(path: str | Path, cfg: ExtractConfig, spec: Any, engine: Callable[..., Any]
                  ) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(positions (T,), features (T, D) float32, info)`` of one video file, as extraction stores them."""
    positions, x, info = DiffStep(cfg, spec.preprocess)(path)
    return positions, engine_features(x, engine, cfg.batch_size), info
