"""Training runs and what is done with them: train, evaluate, predict, sweep, report.

A run directory (``runs/NAME/``) is the stage boundary between training and evaluation::

    config.yaml            resolved TrainConfig + git revision + data provenance
    metrics.jsonl          one line per epoch (written by the training loop)
    checkpoints/{last,best}.pt
    predictions_test.npz   video-level log-probs (+ per-window / per-clip scores)
    metrics.json           the final evaluation (``evaluate.metrics.summarize``)
    labels.txt             class names, one per line

Temporal models train on an HDF5 feature store (``features=``); video networks on a manifest (``manifest=``),
decoding clips on the fly. Both go through the one loop in :mod:`actionlab.train.loop`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import InferenceConfig, TrainConfig, apply_overrides, from_dict, save_yaml, to_dict
from actionlab.data import sampling
from actionlab.evaluate.aggregate import aggregate_clips, aggregate_steps, log_softmax
from actionlab.evaluate.metrics import class_changes, summarize, topk_accuracies
from actionlab.evaluate.predictions import Predictions, load_predictions, save_predictions
from actionlab.models import create_model, model_kind
from actionlab.train.checkpoint import load_model_from_checkpoint
from actionlab.train.loop import fit
from actionlab.train.optim import build_optimizer
from actionlab.train.sampler import GlobalBatchSampler
from actionlab.utils import atomic_write_text, available_memory, distributed_info, git_revision, select_device

logger = logging.getLogger(__name__)

Log = Callable[[str], Any]
TEMPORAL_FIELDS = ("hidden_size", "num_layers", "fc_size", "bidirectional", "batch_norm", "dropout")
VIDEO_FIELDS = ("hidden_size", "num_layers", "dropout", "backbone", "freeze_backbone", "pretrained", "batch_norm",
                "width")


# ----------------------------------------------------------------------------------- temporal inference


def window_logits(model: nn.Module, feats: np.ndarray, inf: InferenceConfig, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-step logits of one video under the inference technique.

    ``feats (T, D)`` -> ``(logits (W, L, K), starts (W,))``: ``full`` runs the whole sequence once (W=1, L=T);
    ``windows``/``vote`` run strided windows of ``inf.window`` steps (short videos reverse-repeat padded).
    """
    t = len(feats)
    if inf.mode == "full":
        idx = np.arange(t)[None]
    else:
        idx = sampling.sliding_windows(t, inf.window, inf.stride)  # (W, L)
    x = torch.from_numpy(np.ascontiguousarray(feats[idx], dtype=np.float32)).to(device)  # (W, L, D)
    with torch.inference_mode():
        logits = model(x).float().cpu().numpy()  # (W, L, K)
    return logits, idx[:, 0]


def predict_sequences(model: nn.Module, features: Sequence[np.ndarray], inf: InferenceConfig,
                      device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-level log-probs ``(N, K)`` plus per-window log-probs ``(M, K)`` and their video index ``(M,)``."""
    model.eval()
    videos, windows, owner = [], [], []
    for i, f in enumerate(features):
        logits, _ = window_logits(model, f, inf, device)
        videos.append(aggregate_steps(logits, inf.step_weighting, mode="vote" if inf.mode == "vote" else "windows"))
        per_window = np.stack([aggregate_steps(w, inf.step_weighting) for w in logits])  # (W, K)
        windows.append(per_window)
        owner.append(np.full(len(per_window), i, dtype=np.int64))
    return np.stack(videos), np.concatenate(windows), np.concatenate(owner)


# ----------------------------------------------------------------------------------- clip inference


def predict_clips(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int = 0,
                  amp: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video networks: ``(video log-probs (N, K), clip log-probs (M, K), clip video index (M,))``."""
    from torch.utils.data import DataLoader

    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    scores, owner = [], []
    with torch.inference_mode():
        for x, _, vid in loader:
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                out = model(x.to(device, non_blocking=True))
            scores.append(F.log_softmax(out.float(), dim=-1).cpu().numpy())
            owner.append(vid.numpy().astype(np.int64))
    clip_scores, clip_video = np.concatenate(scores), np.concatenate(owner)
    return aggregate_clips(clip_scores, clip_video, dataset.num_videos), clip_scores, clip_video


# ----------------------------------------------------------------------------------- training runs


def _model_kwargs(cfg: TrainConfig, kind: str, num_classes: int, input_dim: int | None) -> dict[str, Any]:
    fields = to_dict(cfg.model)
    if kind == "temporal":
        kwargs = {k: fields[k] for k in TEMPORAL_FIELDS}
        kwargs["input_dim"] = int(input_dim or 0)
    else:
        kwargs = {k: fields[k] for k in VIDEO_FIELDS}
        kwargs.update(clip_len=cfg.clip.clip_len, size=cfg.clip.size)
    kwargs["num_classes"] = num_classes
    return kwargs


def _prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                              "another --run directory")
    if resume and (run_dir / "config.yaml").exists():
        import yaml

        saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        saved_cfg = from_dict(TrainConfig, {k: v for k, v in saved.items() if k in to_dict(cfg)})
        if saved_cfg != cfg and last.exists():
            diff = sorted(k for k, v in _flat(to_dict(cfg)).items() if _flat(to_dict(saved_cfg)).get(k) != v)
            raise ValueError(f"{run_dir} was trained with another config (differs in {', '.join(diff)}); resume "
                             "with the same settings or choose another --run directory")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _finish_run(run_dir: Path, predictions: Predictions, history: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Save the test predictions and the final metrics of a run; returns the metrics."""
    save_predictions(run_dir / "predictions_test.npz", predictions)
    labelled = predictions.labelled()
    metrics = summarize(labelled.scores, labelled.labels, list(predictions.classes))
    last = history.epochs[-1] if history.epochs else {}
    metrics.update({"train_loss": last.get("train_loss", math.nan), "train_acc": last.get("train_acc", math.nan),
                    "epochs": len(history.epochs), "best_epoch": history.best_epoch,
                    "stopped_early": history.stopped_early, **extra})
    if predictions.clip_scores is not None and labelled.num_videos:
        clip_labels = np.asarray(predictions.labels)[predictions.clip_video]
        clip_acc = topk_accuracies(predictions.clip_scores, clip_labels, (1,))["top1"]
        metrics["clip_top1"] = clip_acc
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    atomic_write_text(run_dir / "labels.txt", "".join(c + "\n" for c in predictions.classes))
    return metrics


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("top1", "top5", "top10", "mean_class_accuracy", "clip_top1", "train_loss", "train_acc", "epochs",
            "best_epoch")
    return {k: metrics[k] for k in keys if k in metrics}


def train_run(cfg: TrainConfig, run_dir: str | Path, features: str | Path | None = None,
              manifest: str | Path | None = None, resume: bool = False, log: Log = logger.info) -> dict[str, Any]:
    """Train ``cfg.model`` into ``run_dir`` and evaluate it on ``cfg.eval_split``; returns headline metrics.

    Temporal models need ``features`` (an HDF5 store), video networks a ``manifest``. Rerunning with
    ``resume=True`` continues from ``checkpoints/last.pt`` (a finished run is then only re-evaluated).
    """
    run_dir = Path(run_dir)
    kind = model_kind(cfg.model.name)
    if kind == "temporal" and features is None:
        raise ValueError(f"model {cfg.model.name!r} is a temporal model over cached features: pass --features "
                         "STORE.h5 (make one with `actionlab extract`)")
    if kind == "video" and manifest is None:
        raise ValueError(f"model {cfg.model.name!r} is a video network trained on clips: pass --manifest "
                         "MANIFEST.csv (make one with `actionlab index`)")
    _prepare_run_dir(run_dir, cfg, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = select_device(cfg.device)
    rank, world, _ = distributed_info()
    if kind == "temporal":
        return _train_temporal(cfg, run_dir, Path(features), device, rank, world, resume, log)  # type: ignore[arg-type]
    return _train_video(cfg, run_dir, Path(manifest), device, rank, world, resume, log)  # type: ignore[arg-type]


def _epoch_log(log: Log) -> Callable[[dict[str, Any]], None]:
    def fmt(row: dict[str, Any]) -> None:
        parts = [f"epoch {row.get('epoch', '?')}"]
        for key in ("lr", "train_loss", "train_acc", "val_loss", "val_top1", "seconds"):
            if key in row and row[key] is not None:
                parts.append(f"{key} {row[key]:.4g}" if isinstance(row[key], float) else f"{key} {row[key]}")
        log("  ".join(parts))

    return fmt


def _val_split(splits: Sequence[str], cfg: TrainConfig, what: str, log: Log) -> str | None:
    if cfg.val_split in splits:
        return cfg.val_split
    log(f"no {cfg.val_split!r} split in {what}: no validation, so checkpoints/best.pt follows the training loss "
        "(carve one with `actionlab index --val-fraction 0.2`)")
    return None


def _eval_split(splits: Sequence[str], cfg: TrainConfig, what: str) -> str:
    if cfg.eval_split in splits:
        return cfg.eval_split
    for alt in ("test", "val"):
        if alt in splits:
            logger.warning("no %r split in %s; evaluating on %r", cfg.eval_split, what, alt)
            return alt
    raise ValueError(f"{what} has no {cfg.eval_split!r}, 'test' or 'val' split to evaluate on; splits: {splits}")


def _train_temporal(cfg: TrainConfig, run_dir: Path, store_path: Path, device: torch.device, rank: int,
                    world: int, resume: bool, log: Log) -> dict[str, Any]:
    from actionlab.features.store import FeatureStore
    from actionlab.train.sequences import SequenceBatches

    store = FeatureStore(store_path)
    splits = sorted({store.record(k).split for k in store.keys()})
    classes = list(store.classes)
    train_x, train_y, _ = store.load_split("train")
    if not train_x:
        raise ValueError(f"{store_path} has no training videos (splits: {splits})")
    val = _val_split(splits, cfg, str(store_path), log)
    eval_split = _eval_split(splits, cfg, str(store_path))
    kwargs = _model_kwargs(cfg, "temporal", len(classes), store.feature_dim)
    model = create_model(cfg.model.name, **kwargs)
    optimizer = build_optimizer(model, cfg.optim)
    batches = SequenceBatches(train_x, train_y, cfg.batch_size, cfg.sequence.seq_len, seed=cfg.seed,
                              policy=cfg.sequence.short_policy, rank=rank, world_size=world, device=device)

    validate = None
    if val is not None:
        val_x, val_y, _ = store.load_split(val, dtype=np.float32)

        def validate(m: nn.Module) -> dict[str, float]:
            scores, _, _ = predict_sequences(m, val_x, cfg.inference, device)
            out = topk_accuracies(scores, val_y, (1, 5, 10))
            loss = float(F.nll_loss(torch.from_numpy(scores), torch.from_numpy(val_y)))
            return {"val_loss": loss, **{f"val_{k}": v for k, v in out.items()}}

    provenance = store.provenance
    meta = {"model_name": cfg.model.name, "model_kwargs": kwargs, "classes": classes, "kind": "temporal",
            "extract": provenance.get("extract_config", {}), "preprocessing": provenance.get("preprocessing", {}),
            "feature_mean": [float(v) for v in store.mean], "feature_std": [float(v) for v in store.std]}
    if rank == 0:
        save_yaml(cfg, run_dir / "config.yaml", extra={
            "git": git_revision(),
            "meta": {"kind": "temporal", "features": str(store_path), "store_provenance": {
                k: provenance.get(k) for k in ("backbone", "weights", "weights_sha256", "sampler", "feature_dim",
                                               "manifest_checksum", "dtype")}}})
    history = fit(model, batches, optimizer, cfg, run_dir=run_dir, validate=validate, resume=resume,
                  device=device, log=_epoch_log(log), meta=meta)
    if rank != 0:
        return {}
    best, _ = load_model_from_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=device)
    test_x, test_y, test_keys = store.load_split(eval_split, dtype=np.float32)
    scores, win_scores, win_video = predict_sequences(best, test_x, cfg.inference, device)
    # Keys are manifest paths, as in video runs, so that any two runs on one dataset compare video by video.
    preds = Predictions(keys=[store.record(k).path for k in test_keys], labels=np.asarray(test_y),
                        scores=scores, classes=classes, clip_scores=win_scores, clip_video=win_video)
    metrics = _finish_run(run_dir, preds, history, {"split": eval_split, "model": cfg.model.name})
    log(f"{cfg.model.name}: {eval_split} top-1 {metrics['top1']:.3f}  top-5 {metrics.get('top5', math.nan):.3f}  "
        f"mean class acc {metrics.get('mean_class_accuracy', math.nan):.3f}  -> {run_dir}")
    return _headline(metrics)


def _check_cache_fits(datasets: Sequence[Any], cfg: TrainConfig) -> None:
    """Refuse ``clip.cache_frames`` when the decoded frames would take more than half the available memory."""
    need, free = sum(ds.cache_estimate() for ds in datasets), available_memory()
    if free is not None and need > free // 2:
        raise ValueError(f"clip.cache_frames would hold about {need / 2**30:.1f} GiB of decoded frames (short side "
                          f"clip.resize={cfg.clip.resize}), more than half of the {free / 2**30:.1f} GiB available: "
                          "set clip.cache_frames=false (frames are then decoded every epoch) or lower clip.resize")


def _train_video(cfg: TrainConfig, run_dir: Path, manifest_path: Path, device: torch.device, rank: int,
                 world: int, resume: bool, log: Log) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from actionlab.data.datasets import ClipDataset
    from actionlab.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    splits = manifest.splits()
    classes = list(manifest.classes)
    val = _val_split(splits, cfg, str(manifest_path), log)
    eval_split = _eval_split(splits, cfg, str(manifest_path))
    kwargs = _model_kwargs(cfg, "video", len(classes), None)
    model = create_model(cfg.model.name, **kwargs)
    optimizer = build_optimizer(model, cfg.optim)
    train_ds = ClipDataset.from_config(manifest, "train", cfg.clip, train=True, seed=cfg.seed)
    if len(train_ds) == 0:
        raise ValueError(f"{manifest_path} has no training videos")
    # Per-process batches of one global order: 2 processes x B == 1 process x 2B, batch for batch.
    sampler = GlobalBatchSampler(len(train_ds), cfg.batch_size, seed=cfg.seed,
                                 drop_last=len(train_ds) > cfg.batch_size * world, rank=rank, world_size=world)

    def train_batches(epoch: int) -> Any:
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        return ((x, y) for x, y, _ in loader)

    amp = cfg.amp and device.type == "cuda"
    validate = None
    datasets = [train_ds]
    if val is not None:
        val_ds = ClipDataset.from_config(manifest, val, cfg.clip, train=False, seed=cfg.seed)
        datasets.append(val_ds)

        def validate(m: nn.Module) -> dict[str, float]:
            scores, _, _ = predict_clips(m, val_ds, cfg.batch_size, device, cfg.num_workers, amp)
            labels = np.asarray(val_ds.labels)
            out = topk_accuracies(scores, labels, (1, 5, 10))
            loss = float(F.nll_loss(torch.from_numpy(scores), torch.from_numpy(labels)))
            return {"val_loss": loss, **{f"val_{k}": v for k, v in out.items()}}
    if cfg.clip.cache_frames:
        _check_cache_fits(datasets, cfg)
        if cfg.num_workers > 0:  # decode before the workers fork, or each fills a copy of its own every epoch
            held = sum(ds.fill_cache() for ds in datasets)
            log(f"decoded {sum(ds.num_videos for ds in datasets)} videos into memory: {held / 2**20:.0f} MiB")

    meta = {"model_name": cfg.model.name, "model_kwargs": kwargs, "classes": classes, "kind": "video",
            "clip": to_dict(cfg.clip)}
    if rank == 0:
        save_yaml(cfg, run_dir / "config.yaml", extra={
            "git": git_revision(),
            "meta": {"kind": "video", "manifest": str(manifest_path), "manifest_checksum": manifest.checksum()}})
    history = fit(model, train_batches, optimizer, cfg, run_dir=run_dir, validate=validate,
                  steps_per_epoch=len(sampler), resume=resume, device=device, log=_epoch_log(log), meta=meta)
    if rank != 0:
        return {}
    best, _ = load_model_from_checkpoint(run_dir / "checkpoints" / "best.pt", map_location=device)
    test_ds = ClipDataset.from_config(manifest, eval_split, cfg.clip, train=False, seed=cfg.seed)
    scores, clip_scores, clip_video = predict_clips(best, test_ds, cfg.batch_size, device, cfg.num_workers, amp)
    preds = Predictions(keys=[r.path for r in test_ds.records], labels=np.asarray(test_ds.labels), scores=scores,
                        classes=classes, clip_scores=clip_scores, clip_video=clip_video)
    metrics = _finish_run(run_dir, preds, history, {"split": eval_split, "model": cfg.model.name})
    log(f"{cfg.model.name}: {eval_split} video top-1 {metrics['top1']:.3f}  clip top-1 "
        f"{metrics.get('clip_top1', math.nan):.3f}  -> {run_dir}")
    return _headline(metrics)


# ----------------------------------------------------------------------------------- evaluation


def evaluate_run(run_dir: str | Path, split: str = "test", baseline: str | Path | None = None) -> dict[str, Any]:
    """Metrics of a run's saved predictions, and with ``baseline`` the classes it improved or hurt most."""
    run_dir = Path(run_dir)
    path = run_dir / f"predictions_{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train the run first (`actionlab train ... --run "
                                f"{run_dir}`), or pick another --split")
    preds = load_predictions(path)
    labelled = preds.labelled()
    classes = list(preds.classes)
    result: dict[str, Any] = {"run": str(run_dir), "name": run_dir.name, "split": split,
                              "metrics": summarize(labelled.scores, labelled.labels, classes)}
    if preds.clip_scores is not None and labelled.num_videos:
        clip_labels = np.asarray(preds.labels)[preds.clip_video]
        clip = topk_accuracies(preds.clip_scores, clip_labels, (1, 5))
        result["metrics"]["clip_top1"], result["metrics"]["clip_top5"] = clip["top1"], clip["top5"]
        result["metrics"]["num_clips"] = int(len(clip_labels))
    if baseline is not None:
        base_path = Path(baseline) / f"predictions_{split}.npz"
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
    return result


def single_frame_run(store_path: str | Path, out_dir: str | Path | None = None, split: str = "test") -> Path:
    """Seed 001's ``singleFrameAccuracy``: the per-frame class scores a fine-tuned backbone stored during
    extraction (``extract --predictions``), averaged per video, saved as a run directory for ``evaluate`` and
    ``--baseline``. Returns that directory (default: ``<store>.single_frame/``)."""
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
        frame_logp = [log_softmax(f.astype(np.float64)) for f in frames]
        owner = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in enumerate(frame_logp)])
        clip_scores = np.concatenate(frame_logp)
        # average of frame probabilities per video (seed 001), in log space for the predictions file
        video = np.stack([np.log(np.exp(f).mean(0) + 1e-12) for f in frame_logp])
        records = [store.record(k) for k in keys]
        preds = Predictions(keys=[r.path for r in records], labels=np.array([r.label_index for r in records]),
                            scores=video.astype(np.float32), classes=classes,
                            clip_scores=clip_scores.astype(np.float32), clip_video=owner)
    out.mkdir(parents=True, exist_ok=True)
    save_predictions(out / f"predictions_{split}.npz", preds)
    labelled = preds.labelled()
    metrics = {**summarize(labelled.scores, labelled.labels, classes), "model": "single_frame (fine-tuned head)",
               "split": split, "features": str(store_path)}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    atomic_write_text(out / "labels.txt", "".join(c + "\n" for c in classes))
    return out


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):5.1f}%"


def format_evaluation(result: dict[str, Any]) -> str:
    """A terminal summary of :func:`evaluate_run`."""
    m = result["metrics"]
    lines = [f"{result['name']} on {result['split']}: {m.get('num_videos', '?')} videos, "
             f"{len(m.get('classes', []))} classes"]
    row = [("top-1", m.get("top1")), ("top-5", m.get("top5")), ("top-10", m.get("top10")),
           ("mean class acc", m.get("mean_class_accuracy"))]
    if "clip_top1" in m:
        row.append(("clip top-1", m["clip_top1"]))
    lines.append("  ".join(f"{k} {_pct(v)}" for k, v in row))
    if "baseline_metrics" in result:
        b = result["baseline_metrics"]
        lines.append(f"baseline {Path(result['baseline']).name}: top-1 {_pct(b.get('top1'))}  "
                     f"mean class acc {_pct(b.get('mean_class_accuracy'))}")
    classes = m.get("classes", [])
    acc = m.get("per_class_accuracy", [])
    if classes and acc:
        lines.append("per-class accuracy:")
        width = max(len(c) for c in classes)
        lines += [f"  {c:<{width}}  {_pct(a)}" for c, a in zip(classes, acc)]
    pairs = m.get("most_confused", [])
    if pairs:
        lines.append("most confused (true -> predicted):")
        for p in pairs[:5]:
            lines.append(f"  {p.get('true')} -> {p.get('predicted')}: {p.get('count')}")
    ch = result.get("changes")
    if ch:
        for title, key in (("improved most vs baseline", "improved"), ("hurt most vs baseline", "hurt")):
            if ch.get(key):
                lines.append(f"{title}:")
                for c in ch[key]:
                    lines.append(f"  {c['class']}: {_pct(c.get('base_accuracy'))} -> {_pct(c.get('new_accuracy'))}")
    return "\n".join(lines)


def format_comparison(results: dict[str, dict[str, Any]]) -> str:
    """A table, one row per run: top-1/5/10, mean class accuracy, clip top-1."""
    header = f"{'run':<16} {'top-1':>7} {'top-5':>7} {'top-10':>7} {'mean cls':>8} {'clip top-1':>10}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        m = r["metrics"]
        lines.append(f"{name:<16} {_pct(m.get('top1')):>7} {_pct(m.get('top5')):>7} {_pct(m.get('top10')):>7} "
                     f"{_pct(m.get('mean_class_accuracy')):>8} {_pct(m.get('clip_top1')):>10}")
    return "\n".join(lines)


def format_per_class(results: dict[str, dict[str, Any]]) -> str:
    """A table, one row per class (test videos in brackets) and one column per run: per-class accuracy."""
    names = list(results)
    first = results[names[0]]["metrics"]
    labels = [f"{c} ({n})" for c, n in zip(first["classes"], first["support"])]
    width = max(len(label) for label in labels)
    header = f"{'class':<{width}}" + "".join(f" {n[:12]:>12}" for n in names)
    lines = [header, "-" * len(header)]
    for i, label in enumerate(labels):
        cells = "".join(f" {_pct(results[n]['metrics']['per_class_accuracy'][i]):>12}" for n in names)
        lines.append(f"{label:<{width}}{cells}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- predict


def _run_checkpoint(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{run_dir} has no checkpoints/best.pt or last.pt: train it first")


def _top(logp: np.ndarray, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    probs = np.exp(logp - logp.max())
    probs = probs / probs.sum()
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": classes[i], "probability": float(probs[i])} for i in order]


def predict_videos(paths: Sequence[str | Path], run_dir: str | Path, top: int = 5, device: str = "auto"
                   ) -> list[dict[str, Any]]:
    """Top-``top`` labels for each video file, plus per-window labels along its timeline."""
    from actionlab.data.decode import VideoReader

    run_dir = Path(run_dir)
    dev = select_device(device)
    model, meta = load_model_from_checkpoint(_run_checkpoint(run_dir), map_location=dev)
    classes = list(meta["classes"])
    cfg = _saved_config(run_dir)
    results = []
    if meta.get("kind") == "temporal":
        engine, spec, ecfg = _feature_engine(meta, dev)
        mean = np.asarray(meta["feature_mean"], dtype=np.float32)
        std = np.asarray(meta["feature_std"], dtype=np.float32)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such video file")
        if meta.get("kind") == "temporal":
            from actionlab.features.extract import sample_frame_indices

            with VideoReader(path, size=spec.preprocess.resize) as reader:
                info = reader.info
                indices = sample_frame_indices(info.num_frames, ecfg)
                frames = reader.get_frames(indices)
            feats = []
            for s in range(0, len(frames), 64):
                f, _ = engine(spec.preprocess.preprocess_batch(frames[s:s + 64]))
                feats.append(f)
            x = (np.concatenate(feats) - mean) / std  # (T, D) normalized with train-set statistics
            logits, starts = window_logits(model, x, cfg.inference, dev)
            video = aggregate_steps(logits, cfg.inference.step_weighting,
                                    mode="vote" if cfg.inference.mode == "vote" else "windows")
            length = logits.shape[1]
            spans = [(int(indices[s]), int(indices[min(s + length, len(indices)) - 1])) for s in starts]
            per_window = [aggregate_steps(w, cfg.inference.step_weighting) for w in logits]
        else:
            from actionlab.data.transforms import KINETICS_MEAN, KINETICS_STD, ClipEvalTransform

            clip = cfg.clip
            with VideoReader(path, size=clip.resize) as reader:
                info = reader.info
                idx = sampling.clip_indices(info.num_frames, clip.clip_len, clip.frame_interval, clip.test_clips)
                tf = ClipEvalTransform(size=clip.size, resize=clip.resize, crops=1, mean=KINETICS_MEAN,
                                       std=KINETICS_STD)
                batch = torch.stack([tf(reader.get_frames(row))[0] for row in idx])  # (W, C, T, S, S)
            with torch.inference_mode():
                per = F.log_softmax(model(batch.to(dev)).float(), -1).cpu().numpy()
            per_window = list(per)
            video = aggregate_clips(per, np.zeros(len(per), dtype=np.int64), 1)[0]
            spans = [(int(r[0]), int(r[-1])) for r in idx]
        fps = info.fps or 25.0
        results.append({
            "video": str(path), "frames": info.num_frames, "fps": info.fps, "duration": info.duration,
            "top": _top(video, classes, top),
            "windows": [{"start_s": round(a / fps, 2), "end_s": round(b / fps, 2),
                         "label": _top(w, classes, 1)[0]["label"], "probability": _top(w, classes, 1)[0]["probability"]}
                        for (a, b), w in zip(spans, per_window)],
        })
    return results


def _saved_config(run_dir: Path) -> TrainConfig:
    import yaml

    data = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    return from_dict(TrainConfig, {k: v for k, v in data.items() if k in to_dict(TrainConfig())})


def _feature_engine(meta: dict[str, Any], device: torch.device) -> tuple[Any, Any, Any]:
    """Rebuild the backbone + engine a temporal run's features came from (same weights and preprocessing)."""
    from actionlab.config import ExtractConfig
    from actionlab.features.backbones import create_backbone, get_backbone_spec
    from actionlab.features.engine import create_engine

    ecfg = from_dict(ExtractConfig, meta["extract"]) if meta.get("extract") else ExtractConfig()
    spec = get_backbone_spec(ecfg.backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # as extraction does, so weights="none" stores are reproducible
        module = create_backbone(ecfg.backbone, weights=ecfg.weights)
    return create_engine(module.eval(), spec, device=device, engine=ecfg.engine), spec, ecfg


def format_predictions(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r['video']}  ({r['frames']} frames, {r['duration']:.1f}s)")
        lines += [f"  {t['probability']:6.1%}  {t['label']}" for t in r["top"]]
        if len(r["windows"]) > 1:
            lines.append("  timeline:")
            lines += [f"    {w['start_s']:7.2f}s - {w['end_s']:7.2f}s  {w['label']} ({w['probability']:.0%})"
                      for w in r["windows"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- sweeps


def sweep_objective(base: dict[str, Any], features: str | None, manifest: str | None, overrides: dict[str, Any],
                    seed: int, trial_dir: Path) -> dict[str, float]:
    """One (setting, seed) of a sweep: a full training run in ``trial_dir``; returns its metrics."""
    cfg = apply_overrides(from_dict(TrainConfig, base), {**overrides, "seed": seed})
    metrics = train_run(cfg, trial_dir, features=features, manifest=manifest, resume=True, log=logger.debug)
    return {"train_loss": float(metrics.get("train_loss", math.nan)),
            "train_acc": float(metrics.get("train_acc", math.nan)),
            "test_top1": float(metrics["top1"]), "test_top5": float(metrics.get("top5", math.nan)),
            "test_top10": float(metrics.get("top10", math.nan))}


def _median_length(features: str | Path) -> int:
    from actionlab.features.store import FeatureStore

    store = FeatureStore(features)
    return int(np.median([len(store.frame_indices(k)) for k in store.keys("train")]))


def sweep_run(cfg: TrainConfig, out: str | Path, features: str | Path | None = None,
              manifest: str | Path | None = None, preset: str | None = None, grid: Sequence[str] = (),
              seeds: Sequence[int] = (0,), sampler: str = "grid", n_trials: int | None = None, n_jobs: int = 1,
              storage: str | None = None, scale: float = 1.0, log: Log = logger.info) -> str:
    """Run a sweep (or a preset study such as ``seed000``) on top of ``cfg``; returns its Markdown table(s)."""
    from actionlab.experiments.sweep import PRESETS, run_experiments, run_sweep

    objective = functools.partial(sweep_objective, to_dict(cfg), str(features) if features else None,
                                  str(manifest) if manifest else None)
    out = Path(out)
    if preset:
        if preset not in PRESETS:
            raise KeyError(f"unknown sweep preset {preset!r}; choose from {sorted(PRESETS)}")
        seq_scale = 1.0
        if features is not None:
            # seed 000's lengths (120-step sequences, 60-step windows) are for ~150-frame UCF-101 videos;
            # scale them to the store's videos so every setting is meaningful.
            seq_scale = min(1.0, _median_length(features) / 150)
        log(f"{preset}: epochs x{scale:g}, sequence lengths x{seq_scale:.2f}, seeds {list(seeds)}")
        results = run_experiments(PRESETS[preset](scale=scale, seq_scale=seq_scale), objective, out,
                                  seeds=tuple(seeds), n_jobs=n_jobs, storage=storage)
        return "\n".join(r.to_markdown() for r in results)
    if not grid:
        raise ValueError("give --grid FIELD=V1,V2 (repeatable) or --sweep-preset NAME")
    space: dict[str, list[str]] = {}
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid {item!r} must look like field=v1,v2 (e.g. model.num_layers=1,2,3)")
        space[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    result = run_sweep(space, objective, out, n_trials=n_trials, seeds=tuple(seeds), sampler=sampler,
                       storage=storage, n_jobs=n_jobs)
    return result.to_markdown()


# ----------------------------------------------------------------------------------- reports


def make_report(paths: Sequence[str | Path], output: str | Path, baseline: str | Path | None = None
                ) -> tuple[Path, Path]:
    """One HTML report (+ Markdown beside it) of run and sweep directories; returns both paths."""
    from actionlab.evaluate.report import load_run, write_report
    from actionlab.experiments.sweep import load_sweep

    runs, sweeps = [], []
    for p in map(Path, paths):
        if (p / "results.json").is_file():
            exp_dir = p / "experiments"
            parts = sorted(exp_dir.glob("*.json")) if exp_dir.is_dir() else []
            sweeps.extend(load_sweep(q) for q in parts) if parts else sweeps.append(load_sweep(p))
        else:
            runs.append(load_run(p))
    base_name = None
    if baseline is not None:
        base_name = Path(baseline).name
        if base_name not in {r.name for r in runs}:
            runs.insert(0, load_run(baseline))
    html = write_report(output, runs, sweeps, baseline=base_name)
    return html, Path(html).with_suffix(".md")
