"""A video's timeline: windows scored along one forward pass over its frames, then smoothed and merged.

A long video is never held in memory. Frames are read on a regular grid (every ``stride``-th frame), in
batches, in ascending order (the frame-exact reader decodes forward without seeking), and each batch is
*embedded* at once (backbone features, frame log-probs, or the resized frames a clip network needs). A window
is ``length`` consecutive grid steps, windows start every ``hop`` steps (the last one aligned to the end, as
:func:`actionlab.data.sampling.sliding_windows`), and a window is *combined* into log-probs as soon as its last
step is embedded; steps no later window needs are dropped. Memory is one batch plus one window, whatever the
video's length.

:func:`segments` turns the per-window scores into what a person reads: each window's probabilities averaged
with its neighbours (a small centred smoothing window), each frame given to the window whose centre is
nearest, and runs of frames with the same smoothed label merged.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from actionlab.data import sampling

Embed = Callable[[np.ndarray], np.ndarray]
"""``frames (N, H, W, 3) uint8 -> (N, ...)``: what one grid step keeps (features, log-probs or the frame)."""
Combine = Callable[[np.ndarray], np.ndarray]
"""``steps (B, L, ...) -> (B, K)`` log-probs of ``B`` windows of ``L`` embedded steps."""


@dataclass(frozen=True)
class WindowPlan:
    """Which frames a timeline reads and how they group into windows (all counts >= 1)."""

    stride: int
    """Frames between two grid steps."""
    length: int
    """Grid steps per window."""
    hop: int
    """Grid steps between two window starts."""

    def __post_init__(self) -> None:
        if min(self.stride, self.length, self.hop) < 1:
            raise ValueError(f"stride, length and hop must be >= 1, got {self}")

    def layout(self, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """``(grid (G,) frame indices, windows (W, L) positions into grid)`` for a video of ``num_frames``."""
        grid = sampling.strided_indices(num_frames, self.stride)
        return grid, sampling.sliding_windows(len(grid), self.length, self.hop)


def stream_windows(get_frames: Callable[[np.ndarray], np.ndarray], num_frames: int, plan: WindowPlan,
                   embed: Embed, combine: Combine, batch: int = 32,
                   timings: MutableMapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Score every window of ``plan`` over a video in one forward pass.

    ``get_frames(indices (N,)) -> (N, H, W, 3) uint8`` is called with ascending frame indices, ``batch`` at a
    time. Returns ``(log-probs (W, K), spans (W, 2))``, the first and last frame of each window. ``timings``
    (optional) accumulates seconds under ``decode``, ``features`` (embed) and ``head`` (combine).
    """
    grid, windows = plan.layout(num_frames)
    last_needed = windows.max(axis=1)  # non-decreasing: windows are in start order
    held: dict[int, np.ndarray] = {}
    out: list[np.ndarray] = []
    done = 0  # windows combined so far
    clock = timings if timings is not None else {}
    for start in range(0, len(grid), batch):
        pos = np.arange(start, min(start + batch, len(grid)))
        t0 = perf_counter()
        frames = get_frames(grid[pos])
        t1 = perf_counter()
        held.update(zip(pos.tolist(), embed(frames)))
        t2 = perf_counter()
        ready = done + int(np.searchsorted(last_needed[done:], pos[-1], side="right"))
        if ready > done:
            x = np.stack([np.stack([held[p] for p in row]) for row in windows[done:ready].tolist()])
            out.append(np.asarray(combine(x), dtype=np.float32))
            done = ready
            keep_from = int(windows[done:].min()) if done < len(windows) else len(grid)
            for p in [p for p in held if p < keep_from]:
                del held[p]
        t3 = perf_counter()
        for key, dt in (("decode", t1 - t0), ("features", t2 - t1), ("head", t3 - t2)):
            clock[key] = clock.get(key, 0.0) + dt
    spans = np.stack([grid[windows[:, 0]], grid[windows.max(axis=1)]], axis=1)
    return np.concatenate(out), spans


def smoothed_probabilities(logp: np.ndarray, width: int = 3) -> np.ndarray:
    """``(W, K)`` window log-probs -> ``(W, K)`` probabilities averaged over a centred run of ``width`` windows
    (fewer at the ends); ``width=1`` is no smoothing."""
    if width < 1:
        raise ValueError(f"the smoothing width must be >= 1 window, got {width}")
    probs = np.exp(np.asarray(logp, dtype=np.float64))
    csum = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    w = len(probs)
    lo = np.clip(np.arange(w) - (width - 1) // 2, 0, w)
    hi = np.clip(np.arange(w) + width // 2 + 1, 0, w)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def window_slots(spans: np.ndarray, num_frames: int) -> np.ndarray:
    """``(W, 2)`` ``[start, end)`` frames owned by each window: the frames nearer its centre than any other's
    (windows overlap; slots tile ``[0, num_frames)``)."""
    spans = np.asarray(spans, dtype=np.float64)
    centres = spans.mean(axis=1)
    cuts = np.ceil((centres[:-1] + centres[1:]) / 2).astype(np.int64)
    edges = np.clip(np.concatenate([[0], cuts, [num_frames]]), 0, num_frames)
    edges = np.maximum.accumulate(edges)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def segments(logp: np.ndarray, spans: np.ndarray, num_frames: int, width: int = 3
             ) -> list[tuple[int, int, int, float]]:
    """Merge a timeline into ``[(start frame, end frame (exclusive), class, score)]``: labels smoothed over
    ``width`` windows, consecutive windows with one label joined; ``score`` is the mean smoothed probability of
    that label over the joined windows. Covers ``[0, num_frames)`` without gaps."""
    probs = smoothed_probabilities(logp, width)
    labels = probs.argmax(axis=1)
    slots = window_slots(spans, num_frames)
    out: list[tuple[int, int, int, float]] = []
    run_start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[run_start]:
            k = int(labels[run_start])
            start, end = int(slots[run_start, 0]), int(slots[i - 1, 1])
            if end > start:
                out.append((start, end, k, float(probs[run_start:i, k].mean())))
            run_start = i
    return out
