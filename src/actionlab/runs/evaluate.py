"""Evaluation of finished runs: metrics of saved predictions, comparison with a baseline, the single-frame
baseline of a feature store, and reports over runs and sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.compare import PairedComparison, compare_predictions
from actionlab.evaluate.diagnose import memorisation_warning
from actionlab.evaluate.inference import average_probabilities
from actionlab.evaluate.metrics import class_changes, summarize, topk_accuracies
from actionlab.evaluate.predictions import Predictions, load_predictions, save_predictions
from actionlab.rundir import RunDir

PAIRED_FIELDS = ("difference", "ci95", "mcnemar_p", "b_right_a_wrong", "a_right_b_wrong", "clear", "verdict",
                 "per_class", "resamples")
"""What a paired comparison adds to an evaluation (:class:`~actionlab.evaluate.compare.PairedComparison`)."""



def clip_metrics(preds: Predictions) -> dict[str, Any]:
    """Accuracy of the parts of each video (windows, clips or frames), when the predictions keep them."""
    labelled = preds.labelled()
    if preds.part_scores is None or not labelled.num_videos:
        return {}
    clip_labels = np.asarray(preds.labels)[preds.part_video]
    clip = topk_accuracies(preds.part_scores, clip_labels, (1, 5))
    return {"clip_top1": clip["top1"], "clip_top5": clip["top5"], "num_clips": int(len(clip_labels))}


def save_evaluation(out: Path, preds: Predictions, extra: dict[str, Any], split: str = "test") -> dict[str, Any]:
    """Write ``predictions_<split>.npz``, ``metrics.json`` (strict JSON: NaN -> null) and ``labels.txt`` into
    ``out``; returns the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    run = RunDir(out)
    save_predictions(run.predictions(split), preds)
    labelled = preds.labelled()
    metrics = {**summarize(labelled.scores, labelled.labels, list(preds.classes)), **extra, **clip_metrics(preds)}
    run.write_metrics(metrics)
    run.write_labels(list(preds.classes))
    return metrics


def paired_fields(comparison: PairedComparison) -> dict[str, Any]:
    """The JSON fields of a comparison that an evaluation carries (:data:`PAIRED_FIELDS`)."""
    data = comparison.as_dict()
    return {k: data[k] for k in PAIRED_FIELDS}


def compare_runs(base: Predictions, new: Predictions, names: tuple[str, str]) -> PairedComparison:
    """``new`` against ``base`` on the labelled videos of ``new`` (``base`` aligned to them by key): the paired
    top-1 difference, its interval, McNemar's p-value, the per-class discordant counts and the sentence."""
    labelled = new.labelled()
    other = base.align(list(labelled.keys))
    return compare_predictions(labelled.labels, other.preds, labelled.preds, list(new.classes), names=names)


def evaluate_run(run_dir: str | Path, split: str = "test", baseline: str | Path | None = None) -> dict[str, Any]:
    """Metrics of a run's saved predictions; with ``baseline`` the classes it improved or hurt most and the
    paired comparison (:data:`PAIRED_FIELDS`: the top-1 difference run - baseline, its 95% interval, McNemar's
    p-value, the discordant counts overall and per class, and a sentence). A fused run also carries its
    comparison with each member stream (``vs_members``) when ``split`` is the one it was evaluated on."""
    run_dir = Path(run_dir)
    path = RunDir(run_dir).predictions(split)
    trained = RunDir(run_dir).read_metrics()
    if not path.is_file():
        if isinstance(trained, dict) and trained.get("diverged") and trained.get("top1") is None:
            raise FileNotFoundError(f"{run_dir}: training diverged at epoch {trained.get('diverged_epoch')} before "
                                    "any finite epoch, so there is no model to evaluate (retrain with a lower "
                                    "optim.lr or with optim.grad_clip)")
        raise FileNotFoundError(f"{path} does not exist: train the run first (`actionlab train ... --run "
                                f"{run_dir}`), or pick another --split")
    preds = load_predictions(path)
    labelled = preds.labelled()
    classes = list(preds.classes)
    result: dict[str, Any] = {"run": str(run_dir), "name": run_dir.name, "split": split,
                              "metrics": {**summarize(labelled.scores, labelled.labels, classes), **clip_metrics(preds)}}
    if isinstance(trained, dict) and trained:
        warning = memorisation_warning(_number(trained.get("best_train_acc")), _number(trained.get("val_top1")))
        if warning:
            result["warning"] = warning
    if baseline is not None:
        base_path = RunDir(baseline).predictions(split)
        if not base_path.is_file():
            raise FileNotFoundError(f"{base_path} does not exist: the baseline run has no {split} predictions")
        base = load_predictions(base_path).align(list(preds.keys))
        if list(base.classes) != classes:
            raise ValueError(f"{baseline} and {run_dir} were trained on different class lists; they cannot be "
                             "compared class by class")
        result["baseline"] = str(baseline)
        result["baseline_metrics"] = {k: v for k, v in summarize(base.scores, base.labels, classes).items()
                                      if k in ("top1", "top5", "top10", "mean_class_accuracy")}
        result["changes"] = class_changes(preds.labels, base.preds, preds.preds, classes, n=10)
        names = (Path(baseline).name, run_dir.name)
        if names[0] == names[1]:  # e.g. two seed-0 directories: the sentence must still say which is which
            names = ("the baseline", "this run")
        result.update(paired_fields(compare_runs(base, preds, names)))
    if isinstance(trained, dict) and trained.get("vs_members") and trained.get("split") == split:
        result["vs_members"] = trained["vs_members"]
    return result


def _number(x: Any) -> float:
    """A metric read from JSON: ``null`` (a NaN written as strict JSON) back to NaN."""
    return float("nan") if x is None else float(x)


def single_frame_run(store_path: str | Path, out_dir: str | Path | None = None, split: str = "test") -> Path:
    """The single-frame baseline of a fine-tuned backbone: the per-frame class scores it stored during
    extraction (``extract --predictions``), probabilities averaged per video, saved as a run directory for
    ``evaluate`` and ``--baseline``. Returns that directory (default: ``<store>.single_frame/``)."""
    from actionlab.features.store import FeatureStore

    store_path = Path(store_path)
    out = Path(out_dir) if out_dir else store_path.with_name(store_path.stem + ".single_frame")
    with FeatureStore(store_path) as store:
        keys = store.keys(split)
        if not keys:
            raise ValueError(f"{store_path} has no {split!r} videos")
        frames = [store.predictions(k) for k in keys]
        if any(f is None for f in frames):
            raise ValueError(f"{store_path} holds no per-frame predictions: extract with --predictions and a "
                             "fine-tuned backbone (`actionlab finetune`, then `extract --weights RUN/backbone.pt`)")
        classes = list(store.classes)
        if frames[0].shape[1] != len(classes):
            raise ValueError(f"{store_path}: the per-frame predictions have {frames[0].shape[1]} classes (the "
                             f"backbone's own head, e.g. ImageNet) but the dataset has {len(classes)}; fine-tune "
                             "the backbone on this dataset first (`actionlab finetune`)")
        frame_logp = np.concatenate([log_softmax(f.astype(np.float64)) for f in frames]).astype(np.float32)
        owner = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in enumerate(frames)])
        records = [store.record(k) for k in keys]
        preds = Predictions(keys=[r.path for r in records], labels=np.array([r.label_index for r in records]),
                            scores=average_probabilities(frame_logp, owner, len(keys)), classes=classes,
                            part_scores=frame_logp, part_video=owner)
    save_evaluation(out, preds, {"model": "single_frame (fine-tuned head)", "split": split,
                                 "features": str(store_path)}, split=split)
    return out

