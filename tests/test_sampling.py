"""Samplers: hand-checked examples plus hypothesis properties (valid, right length, deterministic per seed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionlab.data.sampling import (
    PAD_POLICIES,
    all_indices,
    clip_indices,
    fit_length,
    pad_indices,
    random_segment,
    sliding_windows,
    spread_clip_indices,
    strided_indices,
    tsn_indices,
    uniform_indices,
)

settings.register_profile("actionlab", max_examples=60, deadline=None)
settings.load_profile("actionlab")

frames = st.integers(1, 400)
counts = st.integers(1, 64)
seeds = st.integers(0, 2**32 - 1)


def valid(idx: np.ndarray, n: int) -> bool:
    return idx.dtype == np.int64 and bool(np.all((idx >= 0) & (idx < n)))


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------- examples


def test_examples() -> None:
    assert all_indices(4).tolist() == [0, 1, 2, 3]
    assert strided_indices(10, 3).tolist() == [0, 3, 6, 9]
    assert strided_indices(10, 3, offset=2).tolist() == [2, 5, 8]
    assert uniform_indices(10, 5).tolist() == [1, 3, 5, 7, 9]  # segment centres
    assert uniform_indices(300, 1).tolist() == [150]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # more samples than frames: repeats
    assert tsn_indices(10, 5).tolist() == uniform_indices(10, 5).tolist()
    assert pad_indices(np.arange(4), 11, "reverse_repeat").tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert pad_indices(np.arange(4), 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # default: stretched, in order
    assert pad_indices(np.arange(4), 6).tolist() == [0, 0, 1, 2, 2, 3]
    assert pad_indices(np.arange(4), 9, "loop").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert pad_indices(np.arange(4), 7, "last").tolist() == [0, 1, 2, 3, 3, 3, 3]
    assert pad_indices(np.array([7]), 3).tolist() == [7, 7, 7]
    assert pad_indices(np.array([5, 9]), 5, "reverse_repeat").tolist() == [5, 9, 5, 9, 5]
    assert pad_indices(np.arange(6), 4).tolist() == [0, 1, 2, 3]  # longer input: cut
    assert fit_length(10, 4).tolist() == [3, 4, 5, 6]  # centre segment
    assert fit_length(3, 6, policy="reverse_repeat").tolist() == [0, 1, 2, 1, 0, 1]
    assert fit_length(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # short videos keep time order by default
    assert sliding_windows(10, 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert sliding_windows(11, 4, 3)[-1].tolist() == [7, 8, 9, 10]  # last window aligned to the end
    assert sliding_windows(3, 5, 2, "reverse_repeat").tolist() == [[0, 1, 2, 1, 0]]
    assert sliding_windows(3, 5, 2).tolist() == [[0, 0, 1, 1, 2]]
    assert clip_indices(20, 4, 2).tolist() == [[6, 8, 10, 12]]  # centred clip
    assert clip_indices(20, 4, 2, num_clips=3).tolist() == [[0, 2, 4, 6], [6, 8, 10, 12], [13, 15, 17, 19]]
    assert clip_indices(5, 4, 2).tolist() == [[0, 1, 3, 4]]  # short video: the whole of it, in order
    assert clip_indices(3, 5, 1).tolist() == [[0, 1, 1, 2, 2]]
    # spread: one frame per equal segment over the whole video; two test clips interleave
    assert clip_indices(20, 4, 2, sampling="spread").tolist() == [[2, 7, 12, 17]]
    assert spread_clip_indices(20, 4, num_clips=2).tolist() == [[1, 6, 11, 16], [3, 8, 13, 18]]
    assert spread_clip_indices(3, 5).tolist() == [[0, 0, 1, 2, 2]]  # short video: in order, frames repeated


@pytest.mark.parametrize("call", [
    lambda: all_indices(0),
    lambda: uniform_indices(0, 4),
    lambda: uniform_indices(10, 0),
    lambda: strided_indices(10, 0),
    lambda: strided_indices(10, 2, offset=10),
    lambda: tsn_indices(-1, 3),
    lambda: random_segment(5, 6, np.random.default_rng(0)),
    lambda: pad_indices(np.array([], dtype=np.int64), 4),
    lambda: pad_indices(np.arange(3), 5, "mirror"),
    lambda: fit_length(10, 0),
    lambda: sliding_windows(10, 4, 0),
    lambda: clip_indices(10, 0, 2),
    lambda: clip_indices(10, 4, 2, num_clips=0),
    lambda: clip_indices(10, 4, 2, sampling="sparse"),
    lambda: spread_clip_indices(0, 4),
    lambda: uniform_indices(10.0, 2),  # type: ignore[arg-type]
])
def test_bad_arguments_raise_value_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


def test_empty_video_error_says_so() -> None:
    with pytest.raises(ValueError, match="no frames"):
        uniform_indices(0, 16)


# ----------------------------------------------------------------------------------- properties


@given(frames, st.integers(1, 50), st.integers(0, 49))
def test_strided(n: int, stride: int, offset: int) -> None:
    if offset >= n:
        return
    idx = strided_indices(n, stride, offset)
    assert valid(idx, n) and len(idx) == -(-(n - offset) // stride)
    assert np.all(np.diff(idx) == stride) and idx[0] == offset


@given(frames, counts)
def test_uniform(n: int, num: int) -> None:
    idx = uniform_indices(n, num)
    assert valid(idx, n) and len(idx) == num
    assert np.all(np.diff(idx) >= 0)
    if num <= n:
        assert len(np.unique(idx)) == num  # distinct when there are enough frames
    # sample k is the frame under the centre of segment k, [k*n/num, (k+1)*n/num)
    k = np.arange(num)
    assert np.all(2 * num * idx <= (2 * k + 1) * n) and np.all((2 * k + 1) * n < 2 * num * (idx + 1))
    assert np.all((idx + 1) * num > k * n) and np.all(idx * num < (k + 1) * n)  # frame overlaps its segment


@given(frames, counts, seeds)
def test_tsn(n: int, num: int, seed: int) -> None:
    a = tsn_indices(n, num, rng(seed))
    assert valid(a, n) and len(a) == num and np.all(np.diff(a) >= 0)
    assert np.array_equal(a, tsn_indices(n, num, rng(seed)))  # deterministic per seed
    k = np.arange(num)
    lo, hi = (k * n) // num, np.maximum(((k + 1) * n) // num, (k * n) // num + 1)
    assert np.all((a >= np.minimum(lo, n - 1)) & (a < hi))
    centre = tsn_indices(n, num)
    assert valid(centre, n) and np.array_equal(centre, uniform_indices(n, num))


@given(frames, counts, seeds)
def test_random_segment(n: int, length: int, seed: int) -> None:
    if length > n:
        return
    idx = random_segment(n, length, rng(seed))
    assert valid(idx, n) and len(idx) == length and np.all(np.diff(idx) == 1)
    assert np.array_equal(idx, random_segment(n, length, rng(seed)))


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30), st.integers(1, 100), st.sampled_from(PAD_POLICIES))
def test_pad(values: list[int], length: int, policy: str) -> None:
    idx = np.array(values, dtype=np.int64)
    out = pad_indices(idx, length, policy)
    assert out.dtype == np.int64 and len(out) == length
    assert set(out.tolist()) <= set(values)
    m = min(len(values), length)
    if policy == "stretch" and len(values) < length:
        pos = (np.arange(length) * len(values)) // length  # every entry, in order, repeated evenly
        assert np.array_equal(out, idx[pos]) and np.all(np.diff(pos) >= 0)
        assert set(pos.tolist()) == set(range(len(values)))
    else:
        assert np.array_equal(out[:m], idx[:m])  # the original comes first, unchanged
    if policy == "reverse_repeat" and len(values) > 1:
        # ping-pong: neighbours in the output are neighbours in the input (smooth motion)
        pos = np.arange(length) % (2 * (len(values) - 1))
        pos = np.where(pos < len(values), pos, 2 * (len(values) - 1) - pos)
        assert np.all(np.abs(np.diff(pos)) == 1)
        assert np.array_equal(out, idx[pos])


@given(frames, counts, seeds, st.sampled_from(PAD_POLICIES), st.booleans())
def test_fit_length(n: int, length: int, seed: int, policy: str, random: bool) -> None:
    idx = fit_length(n, length, rng(seed) if random else None, policy)
    assert valid(idx, n) and len(idx) == length
    if n >= length:
        assert np.all(np.diff(idx) == 1)
        if not random:
            assert idx[0] == (n - length) // 2
    elif policy == "stretch":
        assert set(idx.tolist()) == set(range(n)) and np.all(np.diff(idx) >= 0)  # every frame, in time order
    else:
        assert np.array_equal(idx[:n], np.arange(n))  # every frame is used
    again = fit_length(n, length, rng(seed) if random else None, policy)
    assert np.array_equal(idx, again)


@given(frames, st.integers(1, 40), st.integers(1, 40))
def test_sliding_windows(n: int, window: int, stride: int) -> None:
    w = sliding_windows(n, window, stride)
    assert w.ndim == 2 and w.shape[1] == window and valid(w, n)
    assert w[-1, -1] == n - 1 or (n < window and (n - 1) in w[-1])  # the last frame is covered
    if stride <= window:
        assert set(np.unique(w).tolist()) == set(range(n))  # and so is every other frame
    if n > window:
        assert np.all(np.diff(w, axis=1) == 1)
        starts = w[:, 0]
        assert starts[0] == 0 and starts[-1] == n - window
        assert np.all(np.diff(starts)[:-1] == stride) and 0 < np.diff(starts)[-1] <= stride


@given(frames, st.integers(1, 32), st.integers(1, 8), st.integers(1, 6), seeds, st.booleans())
def test_clip_indices(n: int, clip_len: int, interval: int, num_clips: int, seed: int, random: bool) -> None:
    clips = clip_indices(n, clip_len, interval, num_clips, rng(seed) if random else None)
    assert clips.shape == (num_clips, clip_len) and valid(clips, n)
    again = clip_indices(n, clip_len, interval, num_clips, rng(seed) if random else None)
    assert np.array_equal(clips, again)
    span = (clip_len - 1) * interval + 1
    if n >= span:
        assert np.all(np.diff(clips, axis=1) == interval)
        if not random and num_clips > 1:
            assert clips[0, 0] == 0 and clips[-1, 0] == n - span and clips[-1, -1] == n - 1  # first to last
            assert np.all(np.diff(clips[:, 0]) >= 0)
    else:
        assert np.all((np.diff(clips, axis=1) >= 0) & (np.diff(clips, axis=1) <= interval))  # forward, no gaps
        assert np.all(clips[:, 0] == 0) and np.all(clips[:, -1] == n - 1)  # the whole video


@given(frames, st.integers(1, 32), st.integers(1, 6), seeds, st.booleans())
def test_spread_clip_indices(n: int, clip_len: int, num_clips: int, seed: int, random: bool) -> None:
    clips = spread_clip_indices(n, clip_len, num_clips, rng(seed) if random else None)
    assert clips.shape == (num_clips, clip_len) and valid(clips, n)
    assert np.array_equal(clips, spread_clip_indices(n, clip_len, num_clips, rng(seed) if random else None))
    assert np.all(np.diff(clips, axis=1) >= 0)  # time order, never backwards
    k = np.arange(clip_len)  # frame p (covering [p, p+1)) overlaps segment k: [k n / L, (k+1) n / L)
    assert np.all((clips * clip_len < (k + 1) * n) & ((clips + 1) * clip_len > k * n))
    if not random:
        assert np.array_equal(spread_clip_indices(n, clip_len, 1)[0], uniform_indices(n, clip_len))
