"""Clip/step/window -> video aggregation (property tests) and the predictions.npz round trip."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from actionlab.evaluate.aggregate import (
    aggregate_clips,
    aggregate_steps,
    aggregate_windows,
    log_softmax,
    step_weights,
)
from actionlab.evaluate.predictions import Predictions, load_predictions, save_predictions

finite = st.floats(-20, 20, allow_nan=False, width=32)


def _logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8), elements=finite),
       st.randoms(use_true_random=False), st.sampled_from(["windows", "vote"]))
def test_windows_are_permutation_invariant_and_normalized(scores, rnd, mode):
    perm = list(range(scores.shape[0]))
    rnd.shuffle(perm)
    a = aggregate_windows(scores, mode)
    b = aggregate_windows(scores[perm], mode)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert a.shape == (scores.shape[1],)
    assert abs(_logsumexp(a)) < 1e-9  # proper log-probabilities


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.data())
def test_vote_picks_the_majority(num_windows, k, data):
    winners = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=num_windows, max_size=num_windows)))
    scores = np.array(data.draw(hnp.arrays(np.float64, (num_windows, k), elements=st.floats(-3, 3))))
    scores[np.arange(num_windows), winners] = 10.0  # each window's argmax is its winner
    out = aggregate_windows(scores, "vote")
    votes = np.bincount(winners, minlength=k)
    top = np.flatnonzero(votes == votes.max())
    if len(top) == 1:
        assert np.argmax(out) == top[0]
    else:  # tie in votes -> the larger summed log-prob among the tied classes
        summed = log_softmax(scores).sum(axis=0)[top]
        assert np.argmax(out) in top[summed >= summed.max() - 1e-9]  # exact ties in both: any of them
    # ranking is by votes first: every class with more votes scores higher
    for c in range(k):
        for d in range(k):
            if votes[c] > votes[d]:
                assert out[c] > out[d]


def test_vote_disagrees_with_mean_when_one_window_is_very_confident():
    scores = np.array([[0.0, 1.0], [0.0, 1.0], [30.0, 0.0]])
    assert np.argmax(aggregate_windows(scores, "windows")) == 0  # geometric mean follows the confident window
    assert np.argmax(aggregate_windows(scores, "vote")) == 1  # two votes beat one


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 7), st.integers(1, 5)), elements=finite))
def test_linear_weighting_equals_explicit_formula(logits):
    t = logits.shape[0]
    logp = log_softmax(logits)
    explicit = sum((i + 1) * logp[i] for i in range(t)) / (t * (t + 1) / 2)
    np.testing.assert_allclose(aggregate_steps(logits, "linear"), log_softmax(explicit), atol=1e-9)
    np.testing.assert_allclose(aggregate_steps(logits, "last"), logp[-1], atol=1e-9)
    np.testing.assert_allclose(aggregate_steps(logits, "uniform"), log_softmax(logp.mean(0)), atol=1e-9)


def test_step_weights_and_windowed_steps():
    np.testing.assert_allclose(step_weights(4, "linear"), [0.1, 0.2, 0.3, 0.4])
    assert step_weights(3, "last").tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="weighting"):
        step_weights(3, "exp")
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(3, 5, 4))  # (W, T, K)
    per_window = np.stack([aggregate_steps(w, "linear") for w in windows])
    np.testing.assert_allclose(aggregate_steps(windows, "linear"), aggregate_windows(per_window), atol=1e-12)
    np.testing.assert_allclose(aggregate_steps(windows, "linear", mode="vote"),
                               aggregate_windows(per_window, "vote"), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(2, 5), st.data(), st.sampled_from(["windows", "vote"]))
def test_clips_match_per_video_windows(num_videos, k, data, mode):
    part_video = np.array(data.draw(st.permutations(
        list(range(num_videos)) + data.draw(st.lists(st.integers(0, num_videos - 1), max_size=8)))))
    scores = data.draw(hnp.arrays(np.float64, (len(part_video), k), elements=finite))
    out = aggregate_clips(scores, part_video, num_videos, mode)
    assert out.shape == (num_videos, k)
    for v in range(num_videos):
        np.testing.assert_allclose(out[v], aggregate_windows(scores[part_video == v], mode), atol=1e-9)


def test_clips_without_a_video_are_an_error():
    with pytest.raises(ValueError, match="no clip scores"):
        aggregate_clips(np.zeros((2, 3)), np.array([0, 0]), num_videos=2)


def _preds(n=5, k=3, clips=True):
    rng = np.random.default_rng(1)
    scores = log_softmax(rng.normal(size=(n, k)))
    extra = {}
    if clips:
        part_video = np.repeat(np.arange(n), 2)
        extra = {"part_scores": log_softmax(rng.normal(size=(2 * n, k))), "part_video": part_video}
    return dict(keys=[f"v_{i}.avi" for i in range(n)], labels=rng.integers(0, k, n), scores=scores,
                classes=["<b>a</b>", "b c", "ünï"], **extra)


def test_predictions_round_trip_without_pickle(tmp_path):
    path = tmp_path / "predictions_test.npz"
    saved = save_predictions(path, **_preds())
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))
    with np.load(path, allow_pickle=False) as data:  # every array loads without pickle
        assert all(data[name].dtype != object for name in data.files)
    assert zipfile.is_zipfile(path)
    loaded = load_predictions(path)
    assert loaded.classes == ("<b>a</b>", "b c", "ünï")
    assert loaded.keys.tolist() == saved.keys.tolist()
    np.testing.assert_array_equal(loaded.labels, saved.labels)
    np.testing.assert_allclose(loaded.scores, saved.scores)
    np.testing.assert_array_equal(loaded.part_video, saved.part_video)
    # video scores can be recomputed from the clip scores
    re = aggregate_clips(loaded.part_scores, loaded.part_video, loaded.num_videos)
    assert re.shape == loaded.scores.shape
    aligned = loaded.align(list(reversed(loaded.keys.tolist())))
    assert aligned.keys[0] == "v_4.avi" and aligned.labels[0] == loaded.labels[-1]


def test_predictions_validation_errors(tmp_path):
    bad = _preds()
    bad["scores"] = bad["scores"][:, :2]
    with pytest.raises(ValueError, match=r"scores must be \(N, K\)"):
        Predictions(**bad)
    bad = _preds()
    bad["part_video"] = bad["part_video"] + 10
    with pytest.raises(ValueError, match="part_video"):
        Predictions(**bad)
    bad = _preds(clips=False)
    bad["keys"] = ["same"] * 5
    with pytest.raises(ValueError, match="unique"):
        Predictions(**bad)
    with pytest.raises(FileNotFoundError, match="no predictions file"):
        load_predictions(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_predictions(tmp_path / "junk.npz")
