"""From per-step / per-window / per-clip scores to one score vector per video (pure numpy).

The LSTM ablation study's inference: cut a video into strided windows, run the recurrent model over each window,
combine the window's per-step predictions with weights that grow toward the end (the hidden state is
poor early in a sequence), then average the windows in log space, or let the windows vote.

Everything here returns **normalized log-probabilities** (``logsumexp == 0`` over classes), so outputs can be
averaged again (clips -> video) or fed to :mod:`actionlab.evaluate.metrics`. Inputs may be logits or
log-probabilities (they are ``log_softmax``-ed first; that is a no-op on log-probs). Torch tensors work via
``np.asarray`` once on the CPU (``t.detach().cpu().numpy()``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actionlab.data.sampling import WEIGHTINGS, step_weights

__all__ = [
    "WEIGHTINGS",
    "WINDOW_MODES",
    "aggregate_clips",
    "aggregate_steps",
    "aggregate_windows",
    "log_softmax",
    "step_weights",
]

WINDOW_MODES = ("windows", "vote")


def log_softmax(x: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log_softmax`` in float64 (``-inf`` entries stay ``-inf``)."""
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("scores contain NaN; the model diverged or an input was empty")
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    shifted = x - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))



def aggregate_windows(window_scores: Any, mode: str = "windows") -> np.ndarray:
    """Combine ``W`` window (or clip) predictions ``(W, K)`` of one video into ``(K,)`` log-probabilities.

    - ``windows``: ``log_softmax`` each window, average in log space, renormalize: the normalized geometric
      mean of the windows' probabilities.
    - ``vote``: each window votes for its argmax. The result ranks classes by vote count, ties broken by the
      summed window log-probabilities (then by lower class index). It is the distribution
      ``(votes + q / 2) / (W + 1/2)`` with ``q`` the ``windows`` distribution: a half vote of soft evidence, so
      vote counts always dominate and every class keeps a finite score for top-5/10.
    """
    logp = log_softmax(window_scores)
    if logp.ndim != 2 or logp.shape[0] == 0 or logp.shape[1] == 0:
        raise ValueError(f"window scores must be (W, K) with W, K >= 1, got shape {logp.shape}")
    mean = log_softmax(logp.mean(axis=0))  # (K,)
    if mode == "windows":
        return mean
    if mode == "vote":
        num_windows, num_classes = logp.shape
        votes = np.bincount(np.argmax(logp, axis=1), minlength=num_classes).astype(np.float64)
        with np.errstate(divide="ignore"):
            log_votes = np.log(votes)
        return np.logaddexp(log_votes, mean + np.log(0.5)) - np.log(num_windows + 0.5)
    raise ValueError(f"mode must be one of {WINDOW_MODES}, got {mode!r}")


def aggregate_steps(step_logits: Any, weighting: str = "uniform", mode: str = "windows") -> np.ndarray:
    """Per-step predictions of one video -> ``(K,)`` log-probabilities.

    ``step_logits`` is ``(T, K)`` (one sequence, e.g. ``inference.mode=full``) or ``(W, T, K)`` (``W`` windows of
    ``T`` steps). Each step is ``log_softmax``-ed, steps are averaged with :func:`step_weights` and renormalized;
    with windows the ``(W, K)`` results are combined by :func:`aggregate_windows` with ``mode``.
    """
    logp = log_softmax(step_logits)
    if logp.ndim not in (2, 3) or 0 in logp.shape:
        raise ValueError(f"step logits must be (T, K) or (W, T, K) and non-empty, got shape {logp.shape}")
    w = step_weights(logp.shape[-2], weighting)  # (T,)
    # Weighted mean over the time axis; 0 * -inf would be nan, so zero-weight steps are dropped first.
    keep = w > 0
    pooled = np.einsum("...tk,t->...k", logp[..., keep, :], w[keep])
    if logp.ndim == 2:
        return log_softmax(pooled)
    return aggregate_windows(pooled, mode)


def aggregate_clips(part_scores: Any, part_video: Any, num_videos: int, mode: str = "windows") -> np.ndarray:
    """Clip-level scores ``(M, K)`` with their video index ``part_video (M,)`` -> ``(num_videos, K)`` log-probs.

    Every video must have at least one clip (a missing video is an error, not a silent zero row).
    ``mode`` as in :func:`aggregate_windows`; ``windows`` is vectorized.
    """
    logp = log_softmax(part_scores)
    part_video = np.asarray(part_video)
    if logp.ndim != 2 or part_video.shape != (logp.shape[0],):
        raise ValueError(f"part_scores must be (M, K) and part_video (M,), got {logp.shape} and {part_video.shape}")
    if part_video.size and (not np.issubdtype(part_video.dtype, np.integer)
                            or part_video.min() < 0 or part_video.max() >= num_videos):
        raise ValueError(f"part_video must hold integer video indices in [0, {num_videos})")
    counts = np.bincount(part_video.astype(np.int64), minlength=num_videos)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise ValueError(f"{missing.size} video(s) have no clip scores (first indices: {missing[:5].tolist()}); "
                         "every video needs at least one clip")
    if mode == "windows":
        sums = np.zeros((num_videos, logp.shape[1]))
        np.add.at(sums, part_video, logp)
        return log_softmax(sums / counts[:, None])
    if mode == "vote":
        return np.stack([aggregate_windows(logp[part_video == v], "vote") for v in range(num_videos)])
    raise ValueError(f"mode must be one of {WINDOW_MODES}, got {mode!r}")
