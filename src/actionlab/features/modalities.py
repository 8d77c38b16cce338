"""The modalities a 2D CNN reads, as one table: each is a module with the same four functions.

========  ==========================================================================
``rgb``   decoded frames (:mod:`actionlab.features.rgb`)
``flow``  dense optical flow between consecutive frames (:mod:`actionlab.features.flow`)
``diff``  differences of consecutive frames as one image (:mod:`actionlab.features.diff`)
========  ==========================================================================

A modality module defines ``NAME`` and:

- ``build_backbone(cfg) -> (spec, module)``: the CNN that reads it, checked against the weights;
- ``build_pipeline(cfg) -> FramePipeline``: what extraction runs (decoding workers' step, network, provenance);
- ``file_features(path, cfg, spec, engine) -> (indices, features, info)``: one video file's features, as
  extraction stores them (what prediction computes).

Adding a modality is a new module, one entry in :data:`MODALITIES` and its name in
:data:`actionlab.config.MODALITY_NAMES` (what configs accept); nothing else branches on the name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from actionlab.config import ExtractConfig
from actionlab.data.video.decode import VideoInfo
from actionlab.features import diff, flow, rgb
from actionlab.features.frames import FramePipeline

MODALITIES: dict[str, ModuleType] = {m.NAME: m for m in (rgb, flow, diff)}


def get_modality(name: str) -> ModuleType:
    """The module of modality ``name`` (a clear error naming the known ones)."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; choose one of {sorted(MODALITIES)}") from None


def build_backbone(cfg: ExtractConfig) -> tuple[Any, torch.nn.Module]:
    """``(spec, module in eval mode)`` of the CNN that reads ``cfg.modality``."""
    return get_modality(cfg.modality).build_backbone(cfg)


def build_pipeline(cfg: ExtractConfig) -> FramePipeline:
    """What extraction runs for ``cfg.modality``."""
    return get_modality(cfg.modality).build_pipeline(cfg)


def file_features(path: str | Path, cfg: ExtractConfig, spec: Any, engine: Callable[..., Any]
                  ) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(indices (T,), features (T, D) float32, info)`` of one video file in ``cfg.modality``."""
    return get_modality(cfg.modality).file_features(path, cfg, spec, engine)


def stacked_video_features(path: str | Path, parts: Sequence[tuple[ExtractConfig, Any, Callable[..., Any]]]
                           ) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(indices (T,), features (T, sum D), info)``: :func:`video_features` of one video file for each
    ``(cfg, spec, engine)`` of ``parts``, concatenated per step in that order, as a run trained on several
    aligned stores reads them (``train --features rgb.h5 --features flow.h5``; the checkpoint's meta lists each
    store's extraction config under ``stores``)."""
    runs = [file_features(path, cfg, spec, engine) for cfg, spec, engine in parts]
    if any(not np.array_equal(r[0], runs[0][0]) for r in runs):
        raise ValueError(f"{path}: the stores' samplers chose different frames; they were not aligned")
    return runs[0][0], np.concatenate([r[1] for r in runs], axis=1), runs[0][2]
