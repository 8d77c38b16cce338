"""The life of a training run, in one function: :func:`train_run`.

A run directory (``runs/NAME/``) is the stage boundary between training and evaluation::

    config.yaml            resolved TrainConfig + git revision + data provenance
    metrics.jsonl          one line per epoch (written by the training loop)
    checkpoints/{last,best}.pt   weights + what rebuilds the model + the preprocessing its inputs need
    predictions_test.npz   video-level log-probs (+ per-window / per-clip / per-frame scores)
    predictions_val.npz    the same for the validation split (what ``fuse`` chooses its weight on)
    metrics.json           the final evaluation (``evaluate.metrics.summarize``)
    labels.txt             class names, one per line
    backbone.pt            (frame classifiers) the fine-tuned backbone, for ``extract --weights``

Every model kind goes through it; what differs (features, clips or frames) is a :class:`RunInputs`.

One process trains a run directory at a time (``RUN/.lock``: a second one is refused naming the holder). A
resumed run must meet the config and the data it was trained with (``config.yaml``: the settings, the store's
provenance or the manifest's checksum); anything else is refused naming the differing fields. A run whose
training loss turned NaN or infinite stops there; ``metrics.json`` then says ``"diverged": true`` and evaluates
``best.pt``, the best finite epoch (when there is none, it holds no test metrics).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from actionlab.config import ModelConfig, TrainConfig, flatten, save_yaml, to_dict
from actionlab.evaluate.compare import seed_interval
from actionlab.evaluate.diagnose import memorisation_warning
from actionlab.evaluate.metrics import topk_accuracies
from actionlab.evaluate.predictions import Predictions, save_predictions
from actionlab.models.checkpoint import load_model_from_checkpoint
from actionlab.models.registry import ModelEntry, create_model, model_entry, models_taking
from actionlab.rundir import RunDir
from actionlab.runs.evaluate import save_evaluation
from actionlab.runs.inputs import RunInputs, StorePaths, open_inputs
from actionlab.runs.tensorboard import open_tensorboard
from actionlab.train.loop import History, fit
from actionlab.train.optim import build_optimizer
from actionlab.utils import (
    FileError,
    distributed_info,
    git_revision,
    output_lock,
    select_device,
)

logger = logging.getLogger(__name__)

HEADLINE = ("top1", "top5", "top10", "mean_class_accuracy", "clip_top1", "train_loss", "train_acc", "val_top1",
            "best_train_acc", "epochs", "best_epoch", "diverged", "diverged_epoch")


def train_run(cfg: TrainConfig, run_dir: str | Path, features: StorePaths | None = None,
              manifest: str | Path | None = None, resume: bool = False, tensorboard: bool = False) -> dict[str, Any]:
    """Train ``cfg.model`` into ``run_dir`` and evaluate its best checkpoint on ``cfg.eval_split`` (and save its
    predictions on the validation split too).

    Temporal models read ``features`` (an HDF5 store, or several aligned ones concatenated per step); video
    networks and frame classifiers a ``manifest`` (video networks also a raw optical flow store, ``features``).
    ``resume=True`` continues from ``checkpoints/last.pt`` (a finished run is only re-evaluated).
    ``tensorboard=True`` also writes TensorBoard event files into ``run_dir/tensorboard/``
    (:mod:`actionlab.runs.tensorboard`; an output switch, not part of the config). Returns the headline
    metrics.
    """
    run_dir = Path(run_dir)
    entry = model_entry(cfg.model.name)
    check_run_dir(run_dir, cfg, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world, _ = distributed_info()
    with output_lock(run_dir, run_dir / ".lock") if rank == 0 else contextlib.nullcontext():
        return _train_run(cfg, run_dir, entry, features, manifest, resume, rank, world, tensorboard)


def _train_run(cfg: TrainConfig, run_dir: Path, entry: ModelEntry, features: StorePaths | None,
               manifest: str | Path | None, resume: bool, rank: int, world: int,
               tensorboard: bool) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    with open_inputs(entry.kind, cfg, device, rank, world, features, manifest) as data:
        check_run_data(run_dir, data.provenance(), resume)
        val_split, eval_split = data.validation_split(), data.evaluation_split()
        kwargs = {**model_kwargs(cfg.model, entry, data.builder_args()), "num_classes": len(data.classes)}
        model = create_model(cfg.model.name, **kwargs)
        data.bind(model, val_split)
        optimizer = build_optimizer(model, cfg.optim)
        if rank == 0:
            save_yaml(cfg, RunDir(run_dir).config, extra={"git": git_revision(), "meta": data.provenance()})
        meta = {"model_name": cfg.model.name, "model_kwargs": kwargs, "classes": data.classes, "kind": entry.kind,
                **data.checkpoint_meta()}
        board = open_tensorboard(run_dir) if tensorboard and rank == 0 else None
        history = fit(model, data.train_batches, optimizer, cfg, run_dir=run_dir,
                      validate=validator(data, val_split), steps_per_epoch=data.steps_per_epoch, resume=resume,
                      device=device, log=epoch_log(board.epoch if board else None), meta=meta)
        if rank != 0:
            return {}
        diverged = {} if history.diverged_epoch is None else {"diverged": True,
                                                                "diverged_epoch": history.diverged_epoch}
        if diverged:
            logger.warning(divergence_message(run_dir, cfg, history.diverged_epoch))  # type: ignore[arg-type]
            if history.best_epoch < 0:  # not one finite epoch: nothing to evaluate
                return write_diverged(run_dir, history, {"split": eval_split, "model": cfg.model.name, **diverged})
        best_path = RunDir(run_dir).best
        best, best_meta = load_model_from_checkpoint(best_path, map_location=device)
        if best_meta["epoch"] != history.best_epoch:
            raise FileError(best_path, f"holds epoch {best_meta['epoch']}, but the best validation epoch is "
                            f"{history.best_epoch} (a crash between checkpoint writes on a nondeterministic device?)",
                            "train into a new --run directory")
        predictions = data.predict(best, eval_split)
        if val_split is not None and val_split != eval_split:
            save_predictions(RunDir(run_dir).predictions(val_split), data.predict(best, val_split))
        extra = data.finish(run_dir, best)
    metrics = write_results(run_dir, predictions, history,
                            {"split": eval_split, "model": cfg.model.name, **extra, **diverged})
    if board is not None:
        board.finish(metrics)
    logger.info(f"{cfg.model.name}: {eval_split} top-1 {metrics['top1']:.3f}  top-5 {metrics.get('top5', math.nan):.3f}  "
        f"mean class acc {metrics.get('mean_class_accuracy', math.nan):.3f}  -> {run_dir}")
    warning = memorisation_warning(metrics.get("best_train_acc", math.nan), metrics.get("val_top1", math.nan))
    if warning:
        logger.warning(warning)
    return {k: metrics[k] for k in HEADLINE if k in metrics}


def divergence_message(run_dir: Path, cfg: TrainConfig, epoch: int) -> str:
    """What to say about a run whose training loss became NaN or infinite."""
    return (f"{run_dir}: training diverged at epoch {epoch} (the training loss or the weights became NaN or "
            "infinite, or the loss exploded past 100 times a uniform guess's) and stopped; "
            f"metrics.json says \"diverged\": true (lower optim.lr, now {cfg.optim.lr:g}, or clip gradients with "
            "optim.grad_clip, e.g. 5)")


def write_diverged(run_dir: Path, history: History, extra: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` of a run that diverged before any finite epoch: no model to evaluate, no test metrics."""
    last = history.epochs[-1] if history.epochs else {}
    metrics = {**extra, "top1": None, "epochs": len(history.epochs), "best_epoch": history.best_epoch,
               "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc")}
    RunDir(run_dir).write_metrics(metrics)
    return {k: metrics[k] for k in HEADLINE if k in metrics}


SEED_METRICS = ("top1", "top5", "mean_class_accuracy", "val_top1", "best_train_acc", "epochs", "best_epoch")


def train_seeds(cfg: TrainConfig, run_dir: str | Path, seeds: Sequence[int], features: StorePaths | None = None,
                manifest: str | Path | None = None, resume: bool = False, tensorboard: bool = False) -> dict[str, Any]:
    """The same run once per seed, in ``run_dir/seed-<s>/``, and ``run_dir/seeds.json`` with every seed's
    headline metrics, their mean, sample standard deviation and 95% Student-t interval of the mean (``ci95``:
    ``[low, high]``, ``null`` with one seed; :func:`actionlab.evaluate.compare.seed_interval`). Returns that
    summary."""
    run_dir = Path(run_dir)
    per_seed: dict[str, dict[str, Any]] = {}
    diverged: list[int] = []
    for seed in seeds:
        logger.info("seed %d: %s", seed, RunDir(run_dir).seed(seed).path)
        out = train_run(dataclasses.replace(cfg, seed=int(seed)), RunDir(run_dir).seed(seed).path, features=features,
                        manifest=manifest, resume=resume, tensorboard=tensorboard)
        per_seed[str(seed)] = {k: out[k] for k in SEED_METRICS if k in out}
        if out.get("diverged"):
            diverged.append(int(seed))
    summary: dict[str, Any] = {"seeds": [int(s) for s in seeds], "runs": per_seed, "mean": {}, "std": {},
                               "ci95": {}, "n": {}}
    if diverged:
        summary["diverged"] = diverged
    for key in SEED_METRICS:
        values = [float(m[key]) for m in per_seed.values() if m.get(key) is not None]
        if values and not any(math.isnan(v) for v in values):
            interval = seed_interval(values, level=0.95)
            summary["mean"][key], summary["std"][key] = interval.mean, interval.std
            summary["ci95"][key], summary["n"][key] = [interval.low, interval.high], interval.n
    RunDir(run_dir).write_seeds(summary)
    return summary


def model_kwargs(model: ModelConfig, entry: ModelEntry, from_data: dict[str, Any]) -> dict[str, Any]:
    """The builder arguments of ``entry`` from the config and the data; a field set away from its default that
    the model does not take is an error naming the models that take it (nothing is dropped silently)."""
    fields, defaults = to_dict(model), to_dict(ModelConfig())
    fields.pop("name")
    for key, value in fields.items():
        if key not in entry.params and value != defaults[key]:
            takers = models_taking(key)
            raise ValueError(f"model.{key}={value!r} does not apply to {entry.name!r}: it takes "
                             f"{', '.join('model.' + p for p in entry.params if p in fields) or 'no model.* field'}. "
                             f"Models that take model.{key}: {', '.join(takers) or 'none'}")
    kwargs = {k: v for k, v in fields.items() if k in entry.params}
    kwargs.update({k: v for k, v in from_data.items() if k in entry.params})
    return kwargs


def validator(data: RunInputs, split: str | None) -> Callable[[torch.nn.Module], dict[str, float]] | None:
    """``model -> {"val_loss", "val_top1", "val_top5", "val_top10"}`` on ``split`` (None: no validation)."""
    if split is None:
        return None

    def validate(model: torch.nn.Module) -> dict[str, float]:
        preds = data.predict(model, split)
        out = topk_accuracies(preds.scores, preds.labels, (1, 5, 10))
        loss = float(F.nll_loss(torch.from_numpy(preds.scores).float(), torch.from_numpy(preds.labels)))
        return {"val_loss": loss, **{f"val_{k}": v for k, v in out.items()}}

    return validate


def check_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    """Refuse to train over a finished run without ``resume``, or to resume it with other settings."""
    run = RunDir(run_dir)
    last = run.last
    if last.exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                              "another --run directory")
    if resume and last.exists() and run.config.exists():
        saved = run.train_config()
        if saved != cfg:
            have, want = flatten(saved), flatten(cfg)
            diff = [f"{k}: run={have.get(k)!r} now={v!r}" for k, v in sorted(want.items()) if have.get(k) != v]
            raise ValueError(f"{run_dir} was trained with another config ({'; '.join(diff)}); resume with the same "
                             "settings or choose another --run directory")


def check_run_data(run_dir: Path, provenance: dict[str, Any], resume: bool) -> None:
    """Refuse to resume (or re-evaluate) a run on other data than it was trained on: another store (its
    provenance: backbone, weights, sampler, manifest checksum, splits...) or another manifest (its checksum).
    The path may differ (a moved file); the content may not."""
    run = RunDir(run_dir)
    if not (resume and run.last.exists() and run.config.exists()):
        return
    saved = run.meta()
    paths = ("features", "manifest")
    have = {k: v for k, v in flatten(saved).items() if k.split(".")[0] not in paths}
    now = {k: v for k, v in flatten(provenance).items() if k.split(".")[0] not in paths}
    diffs = [f"{k}: run={have[k]!r} now={now[k]!r}" for k in sorted(set(have) & set(now)) if have[k] != now[k]]
    if diffs:
        source = saved.get("features") or saved.get("manifest") or "?"
        raise ValueError(f"{run_dir} was trained on other data ({'; '.join(diffs)}); resume it with its own data "
                         f"({source}) or train into another --run directory")


def write_results(run_dir: Path, predictions: Predictions, history: History, extra: dict[str, Any]
                  ) -> dict[str, Any]:
    """The run's evaluation files (:func:`save_evaluation`) with the training history's outcome; returns the
    metrics."""
    last = history.epochs[-1] if history.epochs else {}
    best = next((e for e in history.epochs if e.get("epoch") == history.best_epoch), {})
    trained: dict[str, Any] = {"train_loss": last.get("train_loss", math.nan),
                               "train_acc": last.get("train_acc", math.nan), "epochs": len(history.epochs),
                               "best_epoch": history.best_epoch, "stopped_early": history.stopped_early}
    if "val_top1" in best:  # the validation accuracy of the checkpoint that was evaluated
        trained.update(val_top1=best["val_top1"], best_train_acc=best.get("train_acc", math.nan))
    return save_evaluation(run_dir, predictions, {**trained, **extra})


def epoch_log(also: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], None]:
    """One line per epoch: ``epoch 3  lr 0.001  train_loss 0.52  train_acc 0.81  val_loss ...``; ``also`` gets
    every row too (e.g. the TensorBoard writer)."""
    def fmt(row: dict[str, Any]) -> None:
        if also is not None:
            also(row)
        parts = [f"epoch {row.get('epoch', '?')}"]
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_top1", "seconds"):
            if key in row and row[key] is not None:
                parts.append(f"{key} {row[key]:.4g}" if isinstance(row[key], float) else f"{key} {row[key]}")
        logger.info("  ".join(parts))

    return fmt
