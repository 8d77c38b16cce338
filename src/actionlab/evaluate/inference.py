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
from actionlab.evaluate.aggregate import aggregate_clips

# the numpy half lives in a torch-free module (an export's predictor uses it); imported here for evaluation
from actionlab.evaluate.video_scores import average_probabilities, sequence_video_scores, window_indices

__all__ = ["Scores", "average_probabilities", "predict_clips", "predict_frames", "predict_sequences",
           "sequence_video_scores", "window_indices", "window_logits"]

Scores = tuple[np.ndarray, np.ndarray, np.ndarray]


def window_logits(model: nn.Module, feats: np.ndarray, inf: InferenceConfig, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-step logits of one video under the inference technique: ``feats (T, D)`` -> ``(logits (W, L, K),
    starts (W,))``, the windows of :func:`window_indices`."""
    idx = window_indices(len(feats), inf)  # (W, L)
    x = torch.from_numpy(np.ascontiguousarray(feats[idx], dtype=np.float32)).to(device)  # (W, L, D)
    with torch.inference_mode():
        logits = model(x).float().cpu().numpy()  # (W, L, K)
    return logits, idx[:, 0]


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


def predict_frames(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int = 0,
                   amp: bool = False) -> Scores:
    """2D frame classifiers: ``(video log-probs (N, K), frame log-probs (M, K), frame video index (M,))``."""
    frame_scores, frame_video = _item_scores(model, dataset, batch_size, device, num_workers, amp)
    return average_probabilities(frame_scores, frame_video, dataset.num_videos), frame_scores, frame_video
