"""Which frames of a video a temporal run reads, and their features a batch at a time: the torch-free part of
the frame pipeline (:mod:`actionlab.features.frames`), shared by extraction and by prediction from a run or an
export, so a video's features at prediction time are the ones extraction would have stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

import numpy as np

from actionlab.config import ExtractConfig
from actionlab.data import sampling

__all__ = ["sample_frame_indices", "sampler_params", "video_features"]


def sample_frame_indices(num_frames: int, cfg: ExtractConfig) -> np.ndarray:
    """``(T,) int64`` frames to extract from a video of ``num_frames`` frames, by ``cfg.sampler``."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if cfg.sampler == "all":
        return sampling.all_indices(num_frames)
    if cfg.sampler == "stride":
        return sampling.strided_indices(num_frames, cfg.stride)
    return sampling.uniform_indices(num_frames, cfg.num_frames)


def sampler_params(cfg: ExtractConfig) -> dict[str, Any]:
    """The sampler as a store's provenance and an export's manifest record it."""
    if cfg.sampler == "uniform":
        return {"name": "uniform", "num_frames": cfg.num_frames}
    if cfg.sampler == "stride":
        return {"name": "stride", "stride": cfg.stride}
    return {"name": "all"}


def video_features(source: Any, cfg: ExtractConfig, preprocess: Callable[[np.ndarray], Any],
                   engine: Callable[..., Any], timings: MutableMapping[str, float] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(indices (T,), features (T, D) float32)`` of one video, as extraction computes them.

    ``source`` is an open video (``info`` and ``get_frames``, e.g. a ``VideoReader`` decoding at the backbone's
    short side); frames are decoded, made ``(B, 3, S, S)`` by ``preprocess`` (e.g.
    :meth:`~actionlab.features.preprocess.Preprocess.preprocess_array`) and run through ``engine``
    ``cfg.batch_size`` at a time, so only one batch of frames is ever in memory. ``timings`` accumulates
    ``decode`` and ``features`` seconds.
    """
    indices = sample_frame_indices(source.info.num_frames, cfg)
    clock = timings if timings is not None else {}
    feats = []
    for s in range(0, len(indices), cfg.batch_size):
        t0 = time.perf_counter()
        frames = source.get_frames(indices[s:s + cfg.batch_size])  # (B, H, W, 3) uint8
        t1 = time.perf_counter()
        feats.append(np.asarray(engine(preprocess(frames))[0], np.float32))  # (B, D)
        t2 = time.perf_counter()
        clock["decode"] = clock.get("decode", 0.0) + t1 - t0
        clock["features"] = clock.get("features", 0.0) + t2 - t1
    return np.asarray(indices, np.int64), np.concatenate(feats)
