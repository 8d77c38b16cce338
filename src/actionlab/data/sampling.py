"""Pure frame samplers over positions ``0..n-1``.

Every function returns a new ``np.ndarray`` of dtype int64 whose values are valid positions
(``0 <= i < n``); randomness comes only from an explicit ``numpy.random.Generator`` argument, so a sampler
with the same arguments and an identically seeded generator returns the same indices. ``n`` is the number
of frames (or feature steps) of one video.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PAD_POLICIES",
    "all_indices",
    "clip_indices",
    "fit_length",
    "pad_indices",
    "random_segment",
    "sliding_windows",
    "spread_clip_indices",
    "strided_indices",
    "tsn_indices",
    "uniform_indices",
]

PAD_POLICIES = ("stretch", "reverse_repeat", "loop", "last")


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        what = "a video with no frames cannot be sampled" if name == "n" else f"{name} must be >= {minimum}"
        raise ValueError(f"{what} (got {name}={value})")
    return int(value)


def all_indices(n: int) -> np.ndarray:
    """Every position: ``[0, 1, ..., n-1]``, shape ``(n,)``."""
    n = _check_count("n", n)
    return np.arange(n, dtype=np.int64)


def strided_indices(n: int, stride: int, offset: int = 0) -> np.ndarray:
    """Every ``stride``-th position from ``offset``: ``[offset, offset+stride, ...] < n``, shape ``(ceil((n-offset)/stride),)``."""
    n = _check_count("n", n)
    stride = _check_count("stride", stride)
    offset = _check_count("offset", offset, minimum=0)
    if offset >= n:
        raise ValueError(f"offset must be < n, got offset={offset} for n={n}")
    return np.arange(offset, n, stride, dtype=np.int64)


def uniform_indices(n: int, num: int) -> np.ndarray:
    """``num`` evenly spaced positions, each at the centre of one of ``num`` equal segments; shape ``(num,)``.

    Non-decreasing; when ``num > n`` positions repeat (each frame about ``num / n`` times).
    """
    n = _check_count("n", n)
    num = _check_count("num", num)
    k = np.arange(num, dtype=np.int64)
    return ((2 * k + 1) * n) // (2 * num)  # floor((k + 0.5) * n / num), exact in integers


def tsn_indices(n: int, num_segments: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN sampling: one position per segment of ``num_segments`` equal segments; shape ``(num_segments,)``.

    With ``rng`` the position is uniformly random inside its segment (training); without, it is the
    segment's centre (evaluation, the same as ``uniform_indices``). Non-decreasing either way; segments
    shorter than one frame (``num_segments > n``) share frames.
    """
    n = _check_count("n", n)
    num_segments = _check_count("num_segments", num_segments)
    if rng is None:
        return uniform_indices(n, num_segments)
    k = np.arange(num_segments + 1, dtype=np.int64)
    edges = (k * n) // num_segments  # segment k is [edges[k], edges[k+1])
    start, stop = edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)
    return np.minimum(rng.integers(start, stop), n - 1).astype(np.int64)


def random_segment(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """A contiguous run of ``length`` positions starting uniformly at random; shape ``(length,)``.

    Needs ``length <= n``; use ``fit_length`` to also handle shorter videos.
    """
    n = _check_count("n", n)
    length = _check_count("length", length)
    if length > n:
        raise ValueError(f"random_segment needs length <= n, got length={length} > n={n}; use fit_length")
    start = int(rng.integers(0, n - length + 1))
    return np.arange(start, start + length, dtype=np.int64)


def pad_indices(idx: np.ndarray, length: int, policy: str = "stretch") -> np.ndarray:
    """Extend 1-D ``idx`` to exactly ``length`` entries (longer inputs are cut to ``length``); shape ``(length,)``.

    Policies, shown for ``idx = [0, 1, 2, 3]``:

    - ``stretch`` (the default): every entry repeated in time order, spread evenly, ``0 0 1 1 2 2 3 3`` for 8:
      the motion plays forward, slower. The other policies play part of it backwards or jump back to the
      start, which changes the label of any class told apart by its direction (open vs close, left vs right).

    - ``reverse_repeat`` (the course handout: play the sequence back and forth so motion stays smooth): a ping-pong
      that does **not** repeat the end points, ``0 1 2 3 2 1 0 1 2 3 2 ...``; a single entry repeats.
    - ``loop``: start again from the beginning, ``0 1 2 3 0 1 2 3 ...``.
    - ``last``: hold the last entry, ``0 1 2 3 3 3 ...``.
    """
    if policy not in PAD_POLICIES:
        raise ValueError(f"policy must be one of {PAD_POLICIES}, got {policy!r}")
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    length = _check_count("length", length)
    m = len(idx)
    if m == 0:
        raise ValueError("cannot pad an empty index array")
    if m >= length:
        return idx[:length].copy()
    if policy == "stretch":
        return idx[(np.arange(length, dtype=np.int64) * m) // length]
    if policy == "last":
        return np.concatenate([idx, np.full(length - m, idx[-1], dtype=np.int64)])
    if policy == "loop" or m == 1:
        return idx[np.arange(length) % m]
    # Ping-pong over positions 0..m-1 with period 2(m-1): 0 1 .. m-1 m-2 .. 1 | 0 1 ...
    t = np.arange(length) % (2 * (m - 1))
    return idx[np.where(t < m, t, 2 * (m - 1) - t)]


def fit_length(n: int, length: int, rng: np.random.Generator | None = None,
               policy: str = "stretch") -> np.ndarray:
    """Exactly ``length`` positions of a video of ``n`` frames; shape ``(length,)``.

    Long videos (``n >= length``) give a contiguous segment: random with ``rng`` (training), the centred one
    without (evaluation). Short videos give all frames padded by ``policy`` (see ``pad_indices``).
    """
    n = _check_count("n", n)
    length = _check_count("length", length)
    if n < length:
        return pad_indices(np.arange(n, dtype=np.int64), length, policy)
    if rng is not None:
        return random_segment(n, length, rng)
    start = (n - length) // 2
    return np.arange(start, start + length, dtype=np.int64)


def sliding_windows(n: int, window: int, stride: int, policy: str = "stretch") -> np.ndarray:
    """Windows of ``window`` consecutive positions every ``stride`` steps; shape ``(num_windows, window)``.

    Together they cover every position: the last window is aligned to the end (``[n-window, n)``) even when
    the stride does not land there. A video shorter than ``window`` gives one window padded with ``policy``
    (see :func:`pad_indices`; the default keeps time order).
    """
    n = _check_count("n", n)
    window = _check_count("window", window)
    stride = _check_count("stride", stride)
    if n <= window:
        return pad_indices(np.arange(n, dtype=np.int64), window, policy)[None, :]
    starts = np.arange(0, n - window + 1, stride, dtype=np.int64)
    if starts[-1] != n - window:
        starts = np.append(starts, n - window)
    return starts[:, None] + np.arange(window, dtype=np.int64)[None, :]


CLIP_SAMPLINGS = ("dense", "spread")


def clip_indices(n: int, clip_len: int, frame_interval: int, num_clips: int = 1,
                 rng: np.random.Generator | None = None, sampling: str = "dense") -> np.ndarray:
    """``num_clips`` clips of ``clip_len`` frames taken every ``frame_interval`` frames; shape ``(num_clips, clip_len)``.

    ``sampling="spread"`` takes the frames over the whole video instead (:func:`spread_clip_indices`;
    ``frame_interval`` is then unused).

    A clip spans ``(clip_len - 1) * frame_interval + 1`` frames. With ``rng`` each clip starts uniformly at
    random (training); without, clip starts are evenly spaced from the first to the last possible start
    (one clip: the centred one). A video shorter than the span is sampled evenly from its first to its last
    frame instead (a smaller interval; frames repeat when ``n < clip_len``), the same for every clip: the clip
    keeps time order, which back-and-forth padding would break for actions told apart by their direction.
    """
    if sampling not in CLIP_SAMPLINGS:
        raise ValueError(f"sampling must be one of {CLIP_SAMPLINGS}, got {sampling!r}")
    if sampling == "spread":
        return spread_clip_indices(n, clip_len, num_clips, rng)
    n = _check_count("n", n)
    clip_len = _check_count("clip_len", clip_len)
    frame_interval = _check_count("frame_interval", frame_interval)
    num_clips = _check_count("num_clips", num_clips)
    span = (clip_len - 1) * frame_interval + 1
    steps = np.arange(clip_len, dtype=np.int64) * frame_interval
    if n >= span:
        last = n - span  # largest valid start
        if rng is not None:
            starts = rng.integers(0, last + 1, size=num_clips).astype(np.int64)
        elif num_clips == 1:
            starts = np.array([last // 2], dtype=np.int64)
        else:
            starts = (np.arange(num_clips, dtype=np.int64) * last) // (num_clips - 1)
        return starts[:, None] + steps[None, :]
    whole = np.floor(np.linspace(0, n - 1, clip_len) + 0.5).astype(np.int64)
    return np.repeat(whole[None, :], num_clips, axis=0)


def spread_clip_indices(n: int, clip_len: int, num_clips: int = 1,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """``num_clips`` clips of ``clip_len`` frames spread over the whole video, one frame in each of ``clip_len``
    equal segments (TSN-style); shape ``(num_clips, clip_len)``.

    With ``rng`` each frame is uniformly random inside its segment (training: :func:`tsn_indices`); without,
    clip ``j`` takes the point ``(j + 0.5) / num_clips`` of the way through every segment (evaluation: one clip
    is the segment centres, several clips interleave). Every clip sees the action from its start to its end, in
    time order, whatever the video's length; a video shorter than ``clip_len`` repeats frames in order.
    """
    n = _check_count("n", n)
    clip_len = _check_count("clip_len", clip_len)
    num_clips = _check_count("num_clips", num_clips)
    if rng is not None:
        return np.stack([tsn_indices(n, clip_len, rng) for _ in range(num_clips)])
    k = np.arange(clip_len, dtype=np.int64)[None, :]
    j = np.arange(num_clips, dtype=np.int64)[:, None]
    # floor((k + (j + 0.5) / num_clips) * n / clip_len), exact in integers
    return ((2 * k * num_clips + 2 * j + 1) * n) // (2 * clip_len * num_clips)


WEIGHTINGS = ("uniform", "linear", "last")
"""How the steps of a sequence count: equally, more toward the end, or only the last one."""


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
