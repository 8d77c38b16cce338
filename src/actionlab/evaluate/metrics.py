"""Classification metrics over video-level scores (pure numpy, JSON-friendly results).

Conventions used throughout:

- ``scores`` is ``(N, K)``: any monotone per-class score (logits, probabilities or log-probabilities);
  only the ranking of classes within a row matters.
- ``labels`` and ``preds`` are ``(N,)`` integer class indices in ``[0, K)``.
- Ranking ties are broken toward the **lower class index**, the same rule as ``np.argmax``: class ``c``
  ranks above class ``d`` iff ``s[c] > s[d]`` or (``s[c] == s[d]`` and ``c < d``). So top-1 accuracy always
  equals ``mean(argmax(scores) == labels)``, even for constant scores.
- A confusion matrix ``cm`` is ``(K, K)`` int64 with rows = true class and columns = predicted class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "class_changes",
    "confusion_matrix",
    "mean_class_accuracy",
    "most_confused_pairs",
    "per_class_accuracy",
    "summarize",
    "topk_accuracies",
    "topk_accuracy",
]


def _check_scores(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"labels must be (N,) with N={scores.shape[0]} matching scores, got {labels.shape}")
    if scores.shape[1] == 0:
        raise ValueError("scores has no classes (K=0)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be in [0, {scores.shape[1]}), got range [{labels.min()}, {labels.max()}]")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; the model diverged or an input was empty")
    return scores, labels.astype(np.int64)


def _check_labels(labels: Any, preds: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    if labels.ndim != 1 or labels.shape != preds.shape:
        raise ValueError(f"labels and preds must be (N,) of equal length, got {labels.shape} and {preds.shape}")
    for name, arr in (("labels", labels), ("preds", preds)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes}), got range [{arr.min()}, {arr.max()}]")
    return labels.astype(np.int64), preds.astype(np.int64)


def label_ranks(scores: Any, labels: Any) -> np.ndarray:
    """0-based rank of the true class in each row of ``scores (N, K)``, ties toward the lower index -> ``(N,)``.

    ``rank == 0`` means the true class is the top prediction. O(N*K), no sort.
    """
    scores, labels = _check_scores(scores, labels)
    n, k = scores.shape
    true = scores[np.arange(n), labels][:, None]  # (N, 1)
    higher = (scores > true).sum(axis=1)
    tied_before = ((scores == true) & (np.arange(k)[None, :] < labels[:, None])).sum(axis=1)
    return (higher + tied_before).astype(np.int64)


def topk_accuracy(scores: Any, labels: Any, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` best of ``scores (N, K)``; ``labels (N,)``.

    ``k`` larger than ``K`` counts every row as a hit. Ties rank the lower class index first (see module doc).
    An empty input gives ``nan``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = label_ranks(scores, labels)
    return float(np.mean(ranks < k)) if ranks.size else math.nan


def topk_accuracies(scores: Any, labels: Any, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"top1": ..., "top5": ..., "top10": ...}`` for ``scores (N, K)``; each ``k`` is clipped to ``K``.

    Keys keep the requested ``k`` (``top10`` with 5 classes is top-5 = 1.0), so tables line up across datasets.
    """
    ranks = label_ranks(scores, labels)
    num_classes = np.asarray(scores).shape[1]
    out = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out[f"top{k}"] = float(np.mean(ranks < min(k, num_classes))) if ranks.size else math.nan
    return out


def confusion_matrix(labels: Any, preds: Any, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; ``cm[i, j]`` = videos of true class ``i`` predicted as ``j``."""
    labels, preds = _check_labels(labels, preds, num_classes)
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: Any) -> np.ndarray:
    """Recall of each class from a confusion matrix ``cm (K, K)`` -> ``(K,)`` float; ``nan`` for absent classes."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be (K, K), got {cm.shape}")
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(labels: Any, preds: Any, num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``labels`` (scikit-learn's balanced accuracy)."""
    labels_arr = np.asarray(labels)
    preds_arr = np.asarray(preds)
    if labels_arr.size == 0:
        return math.nan
    if num_classes is None:
        num_classes = int(max(labels_arr.max(), preds_arr.max())) + 1
    acc = per_class_accuracy(confusion_matrix(labels_arr, preds_arr, num_classes))
    return float(np.nanmean(acc))


def most_confused_pairs(cm: Any, classes: Sequence[str], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` largest off-diagonal cells of ``cm (K, K)``, largest first (ties: lower true, then predicted index).

    Each item: ``{"true", "predicted", "true_index", "predicted_index", "count", "fraction"}`` where
    ``fraction`` is the share of the true class's videos that went to ``predicted``.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(classes)} class names")
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    # Stable sort on -count keeps row-major (true, predicted) order among equal counts.
    order = np.argsort(-flat, kind="stable")
    support = cm.sum(axis=1)
    out = []
    for idx in order[:n]:
        count = int(flat[idx])
        if count == 0:
            break
        i, j = divmod(int(idx), cm.shape[1])
        out.append({"true": classes[i], "predicted": classes[j], "true_index": i, "predicted_index": j,
                    "count": count, "fraction": count / int(support[i])})
    return out


def _top_confusion(cm: np.ndarray, i: int, classes: Sequence[str]) -> dict[str, Any] | None:
    row = cm[i].copy()
    row[i] = 0
    j = int(np.argmax(row))
    if row[j] == 0:
        return None
    return {"class": classes[j], "count": int(row[j])}


def class_changes(labels: Any, base_preds: Any, new_preds: Any, classes: Sequence[str],
                  n: int = 10) -> dict[str, Any]:
    """Which classes a new model improved or hurt most against a baseline (the course handout's question).

    ``labels``, ``base_preds``, ``new_preds`` are ``(N,)`` over the same videos in the same order.
    Returns ``{"improved": [...], "hurt": [...], "unchanged": [...], "num_improved", "num_hurt"}``:
    ``improved`` has the ``n`` classes with the largest positive per-class accuracy change (largest first),
    ``hurt`` the ``n`` most negative; ties go to the lower class index. Each item gives the class, ``support``,
    correct counts and accuracies before/after, ``delta`` and each model's most frequent confusion
    (``base_confused_with``/``new_confused_with``: ``{"class", "count"}`` or ``None``), which is usually the
    "why". ``unchanged`` lists the classes (with support) whose accuracy did not move, with their accuracy.
    """
    k = len(classes)
    labels_arr, base = _check_labels(labels, base_preds, k)
    _, new = _check_labels(labels_arr, new_preds, k)
    cm_base = confusion_matrix(labels_arr, base, k)
    cm_new = confusion_matrix(labels_arr, new, k)
    support = cm_base.sum(axis=1)
    base_acc = per_class_accuracy(cm_base)
    new_acc = per_class_accuracy(cm_new)
    delta = new_acc - base_acc
    items = []
    for i in np.flatnonzero(support > 0):
        i = int(i)
        items.append({
            "class": classes[i], "index": i, "support": int(support[i]),
            "base_correct": int(cm_base[i, i]), "new_correct": int(cm_new[i, i]),
            "base_accuracy": float(base_acc[i]), "new_accuracy": float(new_acc[i]), "delta": float(delta[i]),
            "base_confused_with": _top_confusion(cm_base, i, classes),
            "new_confused_with": _top_confusion(cm_new, i, classes),
        })
    improved = sorted((it for it in items if it["new_correct"] > it["base_correct"]),
                      key=lambda it: (-it["delta"], it["index"]))
    hurt = sorted((it for it in items if it["new_correct"] < it["base_correct"]),
                  key=lambda it: (it["delta"], it["index"]))
    unchanged = [{"class": it["class"], "support": it["support"], "accuracy": it["new_accuracy"]}
                 for it in items if it["new_correct"] == it["base_correct"]]
    return {"improved": improved[:n], "hurt": hurt[:n], "unchanged": unchanged,
            "num_improved": len(improved), "num_hurt": len(hurt)}


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def summarize(scores: Any, labels: Any, classes: Sequence[str], ks: Sequence[int] = (1, 5, 10),
              num_confused: int = 10) -> dict[str, Any]:
    """All metrics of one evaluation as a JSON-serializable dict (``nan`` becomes ``None``).

    ``scores (N, K)``, ``labels (N,)``, ``classes`` the ``K`` names. Keys: ``num_videos``, ``num_classes``,
    ``top1``/``top5``/``top10`` (per ``ks``), ``mean_class_accuracy``, ``classes``, ``per_class_accuracy``
    (list aligned with ``classes``), ``support``, ``confusion_matrix`` (list of lists, rows = true),
    ``most_confused`` (see :func:`most_confused_pairs`) and ``predictions`` (argmax per video).
    """
    scores, labels = _check_scores(scores, labels)
    if scores.shape[1] != len(classes):
        raise ValueError(f"scores have {scores.shape[1]} classes but {len(classes)} class names were given")
    preds = np.argmax(scores, axis=1) if scores.shape[0] else np.zeros(0, np.int64)
    cm = confusion_matrix(labels, preds, len(classes))
    acc = per_class_accuracy(cm)
    out: dict[str, Any] = {"num_videos": int(scores.shape[0]), "num_classes": len(classes)}
    out.update({key: _none_if_nan(v) for key, v in topk_accuracies(scores, labels, ks).items()})
    out["mean_class_accuracy"] = _none_if_nan(mean_class_accuracy(labels, preds, len(classes)))
    out["classes"] = [str(c) for c in classes]
    out["per_class_accuracy"] = [_none_if_nan(float(a)) for a in acc]
    out["support"] = [int(s) for s in cm.sum(axis=1)]
    out["confusion_matrix"] = cm.tolist()
    out["most_confused"] = most_confused_pairs(cm, out["classes"], num_confused)
    out["predictions"] = [int(p) for p in preds]
    return out
