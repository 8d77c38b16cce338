"""Metrics against scikit-learn (property tests) plus the documented tie rule and the seed-001 class changes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

from actionlab.evaluate import metrics as M


@st.composite
def scored_labels(draw, distinct: bool = True):
    """(scores (N, K), labels (N,)) with N >= 1, K >= 2; distinct scores per row when asked (sklearn's ties differ)."""
    n = draw(st.integers(1, 30))
    k = draw(st.integers(3, 12))  # sklearn treats K=2 as binary with 1-D scores
    if distinct:
        # A random permutation per row plus noise keeps every row free of ties.
        perms = draw(st.lists(st.permutations(list(range(k))), min_size=n, max_size=n))
        scores = np.array(perms, dtype=np.float64) + draw(
            hnp.arrays(np.float64, (n, k), elements=st.floats(0, 0.5)))
    else:
        scores = draw(hnp.arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 0.5, 1.0])))
    labels = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
    return scores, labels


@settings(max_examples=60, deadline=None)
@given(scored_labels(), st.integers(1, 12))
def test_topk_matches_sklearn(data, k):
    scores, labels = data
    num_classes = scores.shape[1]
    with warnings.catch_warnings():  # "k >= n_classes gives a perfect score"
        warnings.simplefilter("ignore")
        expected = skm.top_k_accuracy_score(labels, scores, k=min(k, num_classes), labels=np.arange(num_classes))
    assert M.topk_accuracy(scores, labels, k) == pytest.approx(expected)
    accs = M.topk_accuracies(scores, labels, ks=(1, k))
    assert accs["top1"] == pytest.approx(np.mean(np.argmax(scores, axis=1) == labels))
    assert accs[f"top{k}"] == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(scored_labels(distinct=False), st.integers(1, 5))
def test_topk_ties_rank_lower_index_first(data, k):
    scores, labels = data
    # Reference: stable sort on -score puts equal scores in index order.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    expected = np.mean([labels[i] in order[i] for i in range(len(labels))])
    assert M.topk_accuracy(scores, labels, k) == pytest.approx(expected)
    # top-1 always agrees with argmax, whatever the ties.
    assert M.topk_accuracy(scores, labels, 1) == pytest.approx(np.mean(np.argmax(scores, 1) == labels))


def test_topk_constant_scores_and_clipping():
    scores = np.zeros((4, 3))
    labels = np.array([0, 1, 2, 0])
    assert M.topk_accuracy(scores, labels, 1) == 0.5  # ties -> class 0 predicted
    assert M.topk_accuracy(scores, labels, 2) == 0.75
    assert M.topk_accuracies(scores, labels, ks=(1, 5, 10)) == {"top1": 0.5, "top5": 1.0, "top10": 1.0}


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="labels must be in"):
        M.topk_accuracy(np.zeros((2, 3)), np.array([0, 3]), 1)
    with pytest.raises(ValueError, match="NaN"):
        M.topk_accuracy(np.full((1, 3), np.nan), np.array([0]), 1)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        M.topk_accuracy(np.zeros(3), np.array([0]), 1)


@st.composite
def label_pairs(draw):
    k = draw(st.integers(1, 8))
    n = draw(st.integers(1, 40))
    ints = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return np.array(draw(ints)), np.array(draw(ints)), k


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_confusion_and_balanced_accuracy_match_sklearn(data):
    labels, preds, k = data
    cm = M.confusion_matrix(labels, preds, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, preds, labels=np.arange(k)))
    assert cm.dtype == np.int64 and cm.sum() == len(labels)
    with warnings.catch_warnings():  # sklearn warns when y_pred has classes absent from y_true
        warnings.simplefilter("ignore")
        expected = skm.balanced_accuracy_score(labels, preds)
    assert M.mean_class_accuracy(labels, preds, k) == pytest.approx(expected)
    recall = skm.recall_score(labels, preds, labels=np.unique(labels), average=None, zero_division=0)
    acc = M.per_class_accuracy(cm)
    np.testing.assert_allclose(acc[np.unique(labels)], recall)
    absent = np.setdiff1d(np.arange(k), labels)
    assert np.isnan(acc[absent]).all()


def test_most_confused_pairs_order_and_fraction():
    classes = ["a", "b", "c"]
    cm = np.array([[5, 3, 1], [0, 4, 3], [2, 0, 0]])
    pairs = M.most_confused_pairs(cm, classes, n=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("a", "b", 3), ("b", "c", 3), ("c", "a", 2)]
    assert pairs[0]["fraction"] == pytest.approx(3 / 9)
    assert len(M.most_confused_pairs(np.eye(3, dtype=int), classes)) == 0


def test_class_changes_finds_improved_and_hurt_classes():
    classes = ["ApplyEyeMakeup", "ApplyLipstick", "Basketball", "JumpRope"]
    labels = np.array([0] * 4 + [1] * 4 + [2] * 2 + [3] * 2)
    base = np.array([1, 1, 1, 0] + [1, 1, 1, 1] + [2, 0] + [0, 0])
    new = np.array([0, 0, 0, 1] + [1, 1, 0, 0] + [2, 2] + [0, 0])
    out = M.class_changes(labels, base, new, classes, n=5)
    improved = [(c["class"], c["delta"]) for c in out["improved"]]
    assert improved == [("ApplyEyeMakeup", pytest.approx(0.5)), ("Basketball", pytest.approx(0.5))]
    assert out["improved"][0]["base_confused_with"] == {"class": "ApplyLipstick", "count": 3}
    assert [c["class"] for c in out["hurt"]] == ["ApplyLipstick"]
    assert out["hurt"][0]["base_correct"] == 4 and out["hurt"][0]["new_correct"] == 2
    assert [u["class"] for u in out["unchanged"]] == ["JumpRope"]
    assert out["num_improved"] == 2 and out["num_hurt"] == 1


def test_summarize_is_json_and_consistent():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 4))
    labels = rng.integers(0, 3, size=20)  # class 3 never appears -> None accuracy
    out = M.summarize(scores, labels, ["a", "b", "c", "d"])
    text = json.dumps(out, allow_nan=False)  # must be strict JSON
    back = json.loads(text)
    assert back["top1"] == pytest.approx(np.mean(np.argmax(scores, 1) == labels))
    assert back["top10"] == 1.0
    assert back["per_class_accuracy"][3] is None
    assert np.array(back["confusion_matrix"]).sum() == 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.balanced_accuracy_score(labels, np.argmax(scores, 1))
    assert back["mean_class_accuracy"] == pytest.approx(expected)
