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

__all__ = [
    "WEIGHTINGS",
    "WINDOW_MODES",
    "aggregate_clips",
    "aggregate_steps",
    "aggregate_windows",
    "log_softmax",
    "step_weights",
]

WEIGHTINGS = ("uniform", "linear", "last")
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


def step_weights(num_steps: int, weighting: str = "uniform") -> np.ndarray:
    """Per-step weights ``(T,)`` summing to 1.

    ``uniform``: ``1/T``; ``linear``: proportional to ``(t + 1)`` (the LSTM ablation study's ``(j+1)/length``, toward later
    steps), i.e. ``2 (t + 1) / (T (T + 1))``; ``last``: all weight on the final step.
    """
    if num_steps < 1:
        raise ValueError(f"need at least one step, got {num_steps}")
    if weighting == "uniform":
        return np.full(num_steps, 1.0 / num_steps)
    if weighting == "linear":
        w = np.arange(1, num_steps + 1, dtype=np.float64)
        return w / w.sum()
    if weighting == "last":
        w = np.zeros(num_steps)
        w[-1] = 1.0
        return w
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


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


def aggregate_clips(clip_scores: Any, clip_video: Any, num_videos: int, mode: str = "windows") -> np.ndarray:
    """Clip-level scores ``(M, K)`` with their video index ``clip_video (M,)`` -> ``(num_videos, K)`` log-probs.

    Every video must have at least one clip (a missing video is an error, not a silent zero row).
    ``mode`` as in :func:`aggregate_windows`; ``windows`` is vectorized.
    """
    logp = log_softmax(clip_scores)
    clip_video = np.asarray(clip_video)
    if logp.ndim != 2 or clip_video.shape != (logp.shape[0],):
        raise ValueError(f"clip_scores must be (M, K) and clip_video (M,), got {logp.shape} and {clip_video.shape}")
    if clip_video.size and (not np.issubdtype(clip_video.dtype, np.integer)
                            or clip_video.min() < 0 or clip_video.max() >= num_videos):
        raise ValueError(f"clip_video must hold integer video indices in [0, {num_videos})")
    counts = np.bincount(clip_video.astype(np.int64), minlength=num_videos)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise ValueError(f"{missing.size} video(s) have no clip scores (first indices: {missing[:5].tolist()}); "
                         "every video needs at least one clip")
    if mode == "windows":
        sums = np.zeros((num_videos, logp.shape[1]))
        np.add.at(sums, clip_video, logp)
        return log_softmax(sums / counts[:, None])
    if mode == "vote":
        return np.stack([aggregate_windows(logp[clip_video == v], "vote") for v in range(num_videos)])
    raise ValueError(f"mode must be one of {WINDOW_MODES}, got {mode!r}")
