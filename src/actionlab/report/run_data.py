"""What the report reads from one run directory: config, learning curves, final metrics, test predictions."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.evaluate.compare import PairedComparison, compare_predictions
from actionlab.evaluate.metrics import class_changes, summarize
from actionlab.evaluate.predictions import Predictions, load_predictions
from actionlab.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["RunData", "changes_against", "comparison_against", "load_run", "resolve_baseline"]


@dataclass
class RunData:
    """What the report needs from one run directory (see :func:`load_run`)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved config (nested dict from ``config.yaml``)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per epoch from ``metrics.jsonl`` (``epoch``, ``train_loss``, ``val_top1``, ...)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Final evaluation, as :func:`actionlab.evaluate.metrics.summarize` returns it."""
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    """``(K, K)`` counts, rows = true class."""
    predictions: Predictions | None = None
    """Video-level test predictions, used to compare runs class by class."""
    path: Path | None = None
    """The run directory it was read from."""

    @property
    def model(self) -> str:
        model = self.config.get("model", {})
        return str(model.get("name", "?")) if isinstance(model, Mapping) else str(model)

    def preds_and_labels(self) -> tuple[list[str] | None, np.ndarray, np.ndarray] | None:
        """``(keys or None, labels, preds)`` of the labelled test videos, if known."""
        if self.predictions is not None:
            p = self.predictions.labelled()
            return p.keys.tolist(), p.labels, p.preds
        if "predictions" in self.metrics and "labels" in self.metrics:
            return None, np.asarray(self.metrics["labels"]), np.asarray(self.metrics["predictions"])
        return None


def _pick_metrics(data: Mapping[str, Any], split: str) -> dict[str, Any]:
    """``metrics.json`` may be a summary or ``{"test": summary, ...}``; return the summary, with the run-level
    numbers beside it (``train_acc``, ``val_top1``, ``best_epoch``, ...) when the summary lacks them."""
    if "top1" in data or "confusion_matrix" in data:
        return dict(data)
    for key in (split, "test", "eval"):
        if isinstance(data.get(key), Mapping):
            run_level = {k: v for k, v in data.items() if not isinstance(v, (Mapping, list))}
            return {**run_level, **data[key]}
    return dict(data)


def load_run(run_dir: str | Path, split: str = "test", name: str | None = None) -> RunData:
    """Read ``config.yaml``, ``metrics.jsonl``, ``metrics.json`` and ``predictions_<split>.npz`` (all optional
    except that at least one must exist). Missing metrics are recomputed from the predictions."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    files = RunDir(run_dir)
    if not any(f.is_file() for f in (files.config, files.history, files.metrics, files.predictions(split))):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml, metrics.jsonl, metrics.json or "
                                f"predictions_{split}.npz); train or evaluate into it first")
    run = RunData(name=name or run_dir.name, path=run_dir)
    if files.config.is_file():
        run.config = files.read_config()
    run.history = files.read_history()
    run.metrics = _pick_metrics(files.read_metrics(), split)
    if files.predictions(split).is_file():
        run.predictions = load_predictions(files.predictions(split))
        run.classes = list(run.predictions.classes)
        labelled = run.predictions.labelled()
        if "confusion_matrix" not in run.metrics and labelled.num_videos:
            run.metrics = {**summarize(labelled.scores, labelled.labels, run.classes), **run.metrics}
    if not run.classes:
        run.classes = list(run.metrics.get("classes") or [])
    if not run.classes:
        run.classes = files.read_labels()
    if "confusion_matrix" in run.metrics:
        run.confusion = np.asarray(run.metrics["confusion_matrix"], dtype=np.int64)
    return run


def resolve_baseline(runs: Sequence[RunData], baseline: RunData | str | None) -> RunData | None:
    """The baseline run itself, found by name among ``runs`` when given as a string."""
    if baseline is None or isinstance(baseline, RunData):
        return baseline
    for run in runs:
        if run.name == baseline:
            return run
    raise KeyError(f"baseline {baseline!r} is not one of the runs ({[r.name for r in runs]})")


def _aligned(run: RunData, base: RunData) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(labels, base preds, run preds)`` on the labelled videos both predicted (matched by key when both have
    keys), or None when the runs cannot be compared video by video."""
    a, b = run.preds_and_labels(), base.preds_and_labels()
    if a is None or b is None or list(run.classes) != list(base.classes):
        return None
    keys_a, labels_a, preds_a = a
    keys_b, labels_b, preds_b = b
    if keys_a is not None and keys_b is not None:
        index = {k: i for i, k in enumerate(keys_b)}
        common = [i for i, k in enumerate(keys_a) if k in index]
        if not common:
            return None
        other = [index[keys_a[i]] for i in common]
        return labels_a[common], preds_b[other], preds_a[common]
    if len(labels_a) != len(labels_b) or not np.array_equal(labels_a, labels_b):
        return None
    return labels_a, preds_b, preds_a


def changes_against(run: RunData, base: RunData, n: int = 10) -> dict[str, Any] | None:
    """Class changes of ``run`` against ``base`` on the videos both predicted (matched by key when possible)."""
    aligned = _aligned(run, base)
    if aligned is None:
        return None
    labels, preds_base, preds_run = aligned
    return class_changes(labels, preds_base, preds_run, run.classes, n)


def comparison_against(run: RunData, base: RunData) -> PairedComparison | None:
    """``run`` against ``base`` on the videos both predicted, paired: the top-1 difference with its bootstrap
    95% interval, McNemar's p-value, the discordant counts (overall and per class) and the plain sentence."""
    aligned = _aligned(run, base)
    if aligned is None or not len(aligned[0]):
        return None
    labels, preds_base, preds_run = aligned
    names = (base.name, run.name) if base.name != run.name else ("the baseline", "this run")
    return compare_predictions(labels, preds_base, preds_run, run.classes, names=names)
