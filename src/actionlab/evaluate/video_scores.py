"""The numpy half of inference: which windows of a feature sequence a temporal model reads, and how the scores
of its windows, clips or frames become one video's score. Imports no torch, so an export's predictor
(:mod:`actionlab.predict.scorers`) and evaluation (:mod:`actionlab.evaluate.inference`) share these lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actionlab.config import InferenceConfig
from actionlab.data import sampling
from actionlab.evaluate.aggregate import aggregate_steps

__all__ = ["average_probabilities", "sequence_video_scores", "window_indices"]


def window_indices(num_steps: int, inf: InferenceConfig) -> np.ndarray:
    """``(W, L)`` int64 steps of a ``num_steps``-step sequence that the model reads, one row per window:
    ``full`` the whole sequence once (W=1, L=T), ``spread`` ``inf.window`` evenly spaced steps once (W=1),
    ``windows``/``vote`` strided windows of ``inf.window`` steps (short sequences padded in time order)."""
    if inf.mode == "full":
        return np.arange(num_steps, dtype=np.int64)[None]
    if inf.mode == "spread":
        return sampling.uniform_indices(num_steps, inf.window)[None]  # (1, L) segment centres, in time order
    return sampling.sliding_windows(num_steps, inf.window, inf.stride)  # (W, L)


def sequence_video_scores(logits: np.ndarray, inf: InferenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(W, L, K)`` window logits of one video -> ``(video log-probs (K,), window log-probs (W, K))``."""
    video = aggregate_steps(logits, inf.step_weighting, mode="vote" if inf.mode == "vote" else "windows")
    return video, np.stack([aggregate_steps(w, inf.step_weighting) for w in logits])


def average_probabilities(frame_logp: np.ndarray, frame_video: np.ndarray, num_videos: int) -> np.ndarray:
    """``(V, K)`` log of the mean frame probability of each video (the single-frame "average of frame scores")."""
    probs = np.zeros((num_videos, frame_logp.shape[1]), dtype=np.float64)
    np.add.at(probs, frame_video, np.exp(frame_logp.astype(np.float64)))
    counts = np.bincount(frame_video, minlength=num_videos)[:, None]
    if (counts == 0).any():
        raise ValueError("every video needs at least one frame score")
    return np.log(probs / counts).astype(np.float32)


def top_labels(logp: np.ndarray, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of log-probabilities ``(K,)``: ``[{"label", "score"}]``, best first."""
    probs = np.exp(logp - logp.max())
    probs = probs / probs.sum()
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": classes[i], "score": float(probs[i])} for i in order]
