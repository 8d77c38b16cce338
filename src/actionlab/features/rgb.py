"""RGB frames as a modality: decoded frames through the backbone's ImageNet preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionlab.config import ExtractConfig
from actionlab.data.video.decode import VideoInfo, VideoReader
from actionlab.features.frames import FramePipeline, decode_frames, load_backbone, video_features
from actionlab.features.weights import finetuned_input

NAME = "rgb"


@dataclass(frozen=True)
class RgbStep:
    """The decoding workers' step for RGB frames (:func:`decode_frames`)."""

    cfg: ExtractConfig
    preprocess: Any

    def __call__(self, path: str | Path, expected_frames: int = 0) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
        return decode_frames(path, self.cfg, self.preprocess, expected_frames)


def build_backbone(cfg: ExtractConfig) -> tuple[Any, torch.nn.Module]:
    """``(spec, module in eval mode)`` reading RGB frames; weights fine-tuned on optical flow are refused."""
    trained = finetuned_input(cfg.weights)
    if trained is not None and trained[0] == "optical flow":
        raise ValueError(f"--weights {cfg.weights} is a backbone fine-tuned on optical flow images: extract flow "
                         "features with it (--modality flow), and RGB features with RGB weights (imagenet, or "
                         "`actionlab finetune MANIFEST`)")
    return load_backbone(cfg)


def build_pipeline(cfg: ExtractConfig) -> FramePipeline:
    """Extraction of RGB frames: decoding workers run :class:`RgbStep`, the backbone runs on its output."""
    spec, module = build_backbone(cfg)
    return FramePipeline(RgbStep(cfg, spec.preprocess), spec, module, int(spec.feature_dim), spec.preprocess.record(),
                         light_workers=True)


def file_features(path: str | Path, cfg: ExtractConfig, spec: Any, engine: Callable[..., Any]
                  ) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(indices (T,), features (T, D) float32, info)`` of one video file, as extraction stores them."""
    with VideoReader(path, size=spec.preprocess.short_side) as src:
        indices, feats = video_features(src, cfg, spec.preprocess, engine)
        return indices, feats, src.info
