"""Inference in one place: a trained model's scores, shared by validation during training, evaluation,
``predict`` (one video file at a time) and, through them, export and serving.

Three input kinds, one function each, all returning ``(video log-probs (N, K), part log-probs (M, K), part
video index (M,))``: the *parts* are windows of a feature sequence, clips, or frames.

- :func:`predict_sequences`: temporal models over cached features, by the inference technique
  (``InferenceConfig``: the whole sequence, strided windows averaged in log space, or a vote).
- :func:`predict_clips`: video networks over a clip dataset; clips averaged per video in log space.
- :func:`predict_frames`: 2D frame classifiers; frame probabilities averaged per video (the single-frame
  baseline's "average of frame scores").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import InferenceConfig
from actionlab.data import sampling
from actionlab.evaluate.aggregate import aggregate_clips, aggregate_steps

Scores = tuple[np.ndarray, np.ndarray, np.ndarray]


def window_indices(num_steps: int, inf: InferenceConfig) -> np.ndarray:
    """``(W, L)`` int64 steps of a ``num_steps``-step sequence that the model reads, one row per window:
    ``full`` the whole sequence once (W=1, L=T), ``spread`` ``inf.window`` evenly spaced steps once (W=1),
    ``windows``/``vote`` strided windows of ``inf.window`` steps (short sequences padded in time order)."""
    if inf.mode == "full":
        return np.arange(num_steps, dtype=np.int64)[None]
    if inf.mode == "spread":
        return sampling.uniform_indices(num_steps, inf.window)[None]  # (1, L) segment centres, in time order
    return sampling.sliding_windows(num_steps, inf.window, inf.stride)  # (W, L)


def window_logits(model: nn.Module, feats: np.ndarray, inf: InferenceConfig, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-step logits of one video under the inference technique: ``feats (T, D)`` -> ``(logits (W, L, K),
    starts (W,))``, the windows of :func:`window_indices`."""
    idx = window_indices(len(feats), inf)  # (W, L)
    x = torch.from_numpy(np.ascontiguousarray(feats[idx], dtype=np.float32)).to(device)  # (W, L, D)
    with torch.inference_mode():
        logits = model(x).float().cpu().numpy()  # (W, L, K)
    return logits, idx[:, 0]


def sequence_video_scores(logits: np.ndarray, inf: InferenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(W, L, K)`` window logits of one video -> ``(video log-probs (K,), window log-probs (W, K))``."""
    video = aggregate_steps(logits, inf.step_weighting, mode="vote" if inf.mode == "vote" else "windows")
    return video, np.stack([aggregate_steps(w, inf.step_weighting) for w in logits])


def predict_sequences(model: nn.Module, features: Sequence[np.ndarray], inf: InferenceConfig,
                      device: torch.device) -> Scores:
    """Temporal models: video log-probs ``(N, K)``, per-window log-probs ``(M, K)`` and their video ``(M,)``."""
    model.eval()
    videos, windows, owner = [], [], []
    for i, f in enumerate(features):
        logits, _ = window_logits(model, f, inf, device)
        video, per_window = sequence_video_scores(logits, inf)
        videos.append(video)
        windows.append(per_window)
        owner.append(np.full(len(per_window), i, dtype=np.int64))
    return np.stack(videos), np.concatenate(windows), np.concatenate(owner)


def _item_scores(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int,
                 amp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Log-probs ``(M, K)`` of every item of a ``(x, label, video index)`` dataset, and each item's video."""
    from torch.utils.data import DataLoader

    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    scores, owner = [], []
    with torch.inference_mode():
        for x, _, vid in loader:
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                out = model(x.to(device, non_blocking=True))
            scores.append(F.log_softmax(out.float(), dim=-1).cpu().numpy())
            owner.append(vid.numpy().astype(np.int64))
    return np.concatenate(scores), np.concatenate(owner)


def predict_clips(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int = 0,
                  amp: bool = False) -> Scores:
    """Video networks: ``(video log-probs (N, K), clip log-probs (M, K), clip video index (M,))``."""
    part_scores, part_video = _item_scores(model, dataset, batch_size, device, num_workers, amp)
    return aggregate_clips(part_scores, part_video, dataset.num_videos), part_scores, part_video


def average_probabilities(frame_logp: np.ndarray, frame_video: np.ndarray, num_videos: int) -> np.ndarray:
    """``(V, K)`` log of the mean frame probability of each video (the single-frame "average of frame scores")."""
    probs = np.zeros((num_videos, frame_logp.shape[1]), dtype=np.float64)
    np.add.at(probs, frame_video, np.exp(frame_logp.astype(np.float64)))
    counts = np.bincount(frame_video, minlength=num_videos)[:, None]
    if (counts == 0).any():
        raise ValueError("every video needs at least one frame score")
    return np.log(probs / counts).astype(np.float32)


def predict_frames(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int = 0,
                   amp: bool = False) -> Scores:
    """2D frame classifiers: ``(video log-probs (N, K), frame log-probs (M, K), frame video index (M,))``."""
    frame_scores, frame_video = _item_scores(model, dataset, batch_size, device, num_workers, amp)
    return average_probabilities(frame_scores, frame_video, dataset.num_videos), frame_scores, frame_video
