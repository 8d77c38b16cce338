"""The ``predictions_<split>.npz`` schema: what a model said about every video of a split.

Arrays (no pickled objects; loaded with ``allow_pickle=False``):

- ``schema``: ``"actionlab-predictions v1"``
- ``keys (N,)`` str: video ids (feature-store keys or manifest paths)
- ``labels (N,)`` int64: true class indices (``-1`` = unknown label, e.g. unlabelled test videos)
- ``scores (N, K)`` float32: video-level log-probabilities
- ``classes (K,)`` str: class names
- optional ``part_scores (M, K)`` float32 + ``part_video (M,)`` int64: per-clip/window log-probs and the
  index (into ``keys``) of the video each belongs to
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.utils import FileError, atomic_file

logger = logging.getLogger(__name__)

SCHEMA = "actionlab-predictions v1"

__all__ = ["SCHEMA", "Predictions", "load_predictions", "save_predictions"]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Video-level predictions of one split; validated on construction (see the module doc for shapes)."""

    keys: np.ndarray
    """``(N,)`` str video ids."""
    labels: np.ndarray
    """``(N,)`` int64 true class indices; ``-1`` when unknown."""
    scores: np.ndarray
    """``(N, K)`` float32 video log-probabilities."""
    classes: tuple[str, ...]
    """The ``K`` class names."""
    part_scores: np.ndarray | None = None
    """``(M, K)`` float32 per-clip (or per-window) log-probabilities, optional."""
    part_video: np.ndarray | None = None
    """``(M,)`` int64 index into ``keys`` of each clip's video, optional (required with ``part_scores``)."""

    def __post_init__(self) -> None:
        keys = np.asarray(self.keys, dtype=str).reshape(-1) if len(self.keys) else np.zeros(0, dtype="<U1")
        labels = np.asarray(self.labels)
        scores = np.asarray(self.scores)
        classes = tuple(str(c) for c in self.classes)
        n = keys.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"labels must be (N,) with N={n} (one per key), got shape {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if scores.ndim != 2 or scores.shape != (n, len(classes)):
            raise ValueError(f"scores must be (N, K) = ({n}, {len(classes)}) (keys x classes), got {scores.shape}")
        if labels.size and (labels.min() < -1 or labels.max() >= len(classes)):
            raise ValueError(f"labels must be in [-1, {len(classes)}), got [{labels.min()}, {labels.max()}]")
        if len(set(keys.tolist())) != n:
            raise ValueError("keys must be unique (one row per video)")
        if (self.part_scores is None) != (self.part_video is None):
            raise ValueError("part_scores and part_video go together: give both or neither")
        part_scores = part_video = None
        if self.part_scores is not None:
            part_scores = np.asarray(self.part_scores, dtype=np.float32)
            part_video = np.asarray(self.part_video)
            if part_scores.ndim != 2 or part_scores.shape[1] != len(classes):
                raise ValueError(f"part_scores must be (M, K={len(classes)}), got {part_scores.shape}")
            if part_video.shape != (part_scores.shape[0],):
                raise ValueError(f"part_video must be (M,) = ({part_scores.shape[0]},), got {part_video.shape}")
            if part_video.size and (not np.issubdtype(part_video.dtype, np.integer)
                                    or part_video.min() < 0 or part_video.max() >= n):
                raise ValueError(f"part_video must hold integer indices into keys, in [0, {n})")
            part_video = part_video.astype(np.int64)
        set_ = object.__setattr__  # frozen: normalize dtypes once here
        set_(self, "keys", keys)
        set_(self, "labels", labels.astype(np.int64))
        set_(self, "scores", scores.astype(np.float32))
        set_(self, "classes", classes)
        set_(self, "part_scores", part_scores)
        set_(self, "part_video", part_video)

    @property
    def num_videos(self) -> int:
        return int(self.keys.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def preds(self) -> np.ndarray:
        """``(N,)`` argmax class per video (ties: lower index)."""
        return np.argmax(self.scores, axis=1) if self.num_videos else np.zeros(0, np.int64)

    def labelled(self) -> Predictions:
        """The rows with a known label (``labels >= 0``); clip rows are dropped."""
        keep = self.labels >= 0
        return dataclasses.replace(self, keys=self.keys[keep], labels=self.labels[keep],
                                   scores=self.scores[keep], part_scores=None, part_video=None)

    def align(self, keys: Sequence[str]) -> Predictions:
        """These predictions reordered to ``keys`` (e.g. a baseline's order); missing keys are an error."""
        index = {k: i for i, k in enumerate(self.keys.tolist())}
        missing = [str(k) for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} video(s) are not in these predictions, e.g. {missing[:3]}: were both "
                           "runs evaluated on the same split of the same manifest?")
        order = np.array([index[k] for k in keys], dtype=np.int64)
        return dataclasses.replace(self, keys=self.keys[order], labels=self.labels[order],
                                   scores=self.scores[order], part_scores=None, part_video=None)


def save_predictions(path: str | Path, predictions: Predictions | None = None, **fields: Any) -> Predictions:
    """Write predictions atomically as ``.npz``; pass a :class:`Predictions` or its fields as keywords.

    ``save_predictions(run / "predictions_test.npz", keys=keys, labels=labels, scores=logp, classes=classes)``
    """
    if predictions is None:
        predictions = Predictions(**fields)
    elif fields:
        raise TypeError("give either a Predictions object or keyword fields, not both")
    arrays: dict[str, np.ndarray] = {
        "schema": np.array(SCHEMA), "keys": predictions.keys, "labels": predictions.labels,
        "scores": predictions.scores, "classes": np.array(predictions.classes, dtype=str),
    }
    if predictions.part_scores is not None:
        arrays["part_scores"] = predictions.part_scores
        arrays["part_video"] = predictions.part_video  # type: ignore[assignment]
    need = sum(a.nbytes for a in arrays.values()) + (64 << 10)  # an upper bound: the arrays compressed
    with atomic_file(path, need=need) as fh:  # a file object: numpy adds no ".npz" suffix
        np.savez_compressed(fh, **arrays)
    logger.debug("wrote %d predictions to %s", predictions.num_videos, path)
    return predictions


def load_predictions(path: str | Path) -> Predictions:
    """Read a file written by :func:`save_predictions` (no pickle), validating shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions file; run evaluation first (it writes predictions_<split>.npz)")
    fix = "rerun the same `actionlab train ... --resume` command: a finished run is evaluated again and rewrites it"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        first = (str(err).splitlines() or [""])[0][:100] or type(err).__name__
        raise FileError(path, f"not a readable predictions file, truncated or damaged ({first})", fix) from None
    schema = str(arrays.pop("schema", ""))
    if schema != SCHEMA:
        raise ValueError(f"{path}: unknown predictions schema {schema!r}, expected {SCHEMA!r}")
    missing = {"keys", "labels", "scores", "classes"} - set(arrays)
    if missing:
        raise ValueError(f"{path}: missing array(s) {sorted(missing)}")
    try:
        return Predictions(keys=arrays["keys"], labels=arrays["labels"], scores=arrays["scores"],
                           classes=tuple(arrays["classes"].tolist()), part_scores=arrays.get("part_scores"),
                           part_video=arrays.get("part_video"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
