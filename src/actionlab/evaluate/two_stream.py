"""Late fusion of runs (two-stream networks): a weighted average of their video log-probabilities.

``fused = log_softmax(w * logp_a + (1 - w) * logp_b)``: the weighted geometric mean of the two streams'
probabilities, renormalised (Simonyan & Zisserman fuse by averaging; Feichtenhofer et al. weight the streams).
The weight is chosen on the validation split only (:func:`choose_weight`): the best top-1, ties broken by the
weight nearest 0.5 (plain averaging), then by the lower negative log-likelihood. Not NLL first: each stream was
early-stopped on that same split, so its validation NLL flatters it, and on a small split many weights tie on
top-1; the sharper stream's NLL then picks a weight of 0 or 1 and drops the other stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actionlab.evaluate.aggregate import log_softmax

WEIGHT_GRID = tuple(round(i / 20, 2) for i in range(21))
"""Weights of the first run tried: 0, 0.05, ..., 1."""


def fuse_log_probs(members: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``(N, K)`` log-probabilities: ``log_softmax(sum_i weights[i] * members[i])`` of members ``(N, K)`` each."""
    if len(members) != len(weights) or not members:
        raise ValueError(f"need one weight per member, got {len(members)} members and {len(weights)} weights")
    total = sum(float(w) * np.asarray(m, np.float64) for w, m in zip(weights, members))
    return log_softmax(np.asarray(total)).astype(np.float32)


def choose_weight(first: np.ndarray, second: np.ndarray, labels: np.ndarray,
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, list[dict[str, float]]]:
    """``(w, table)``: the weight of ``first`` (``second`` gets ``1 - w``) with the best top-1 on ``labels``
    (ties: nearer 0.5, then lower mean NLL), and every tried weight's ``{"weight", "top1", "nll"}``."""
    labels = np.asarray(labels, np.int64)
    if not len(labels):
        raise ValueError("choosing a fusion weight needs labelled validation videos")
    rows = []
    for w in grid:
        fused = fuse_log_probs([first, second], [w, 1.0 - w])
        rows.append({"weight": float(w), "top1": float(np.mean(fused.argmax(1) == labels)),
                     "nll": float(-np.mean(fused[np.arange(len(labels)), labels]))})
    best = min(rows, key=lambda r: (-r["top1"], round(abs(r["weight"] - 0.5), 9), r["nll"]))
    return best["weight"], rows


def fused_video_scores(member_scores: list[np.ndarray], record: dict[str, Any]) -> np.ndarray:
    """One video's fused log-probabilities ``(K,)`` from its members' ``(K,)`` (in ``record["members"]`` order):
    what ``predict`` on a fused run computes after running each member on the video."""
    return fuse_log_probs([np.asarray(s)[None] for s in member_scores], record["weights"])[0]
