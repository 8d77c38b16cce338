"""Fine-tune a 2D backbone on single frames of the training videos (seed 001, part 1).

Train the top layers (``train_layers="top"``: the last feature block and the classifier; the rest frozen with
its BatchNorm statistics) or all layers on frames sampled from each training video (TSN segments, a new frame
per epoch) with random-crop and flip augmentation, through the shared loop :func:`actionlab.train.loop.fit`.
Then report frame-level accuracy and video-level accuracy (frame probabilities averaged per video) on the
test split.

``out_dir`` receives::

    backbone.pt              the fine-tuned backbone (name, classes, state_dict): ``weights=`` for extraction
    checkpoints/{last,best}.pt, metrics.jsonl   the training loop's files (resumable)
    predictions_test.npz     video-level log-probs + per-frame log-probs (``clip_scores``)
    metrics.json, labels.txt, config.yaml
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from actionlab.config import OptimConfig, TrainConfig, save_yaml
from actionlab.data.datasets import FrameDataset
from actionlab.data.manifest import Manifest, read_manifest
from actionlab.data.transforms import FrameEvalTransform, FrameTrainTransform
from actionlab.evaluate.metrics import topk_accuracies
from actionlab.evaluate.predictions import save_predictions
from actionlab.features.backbones import TRAIN_LAYERS, Backbone, create_backbone, get_backbone_spec
from actionlab.features.weights import save_backbone_checkpoint
from actionlab.train.checkpoint import load_checkpoint
from actionlab.train.loop import fit
from actionlab.train.optim import build_optimizer
from actionlab.utils import atomic_write_text, git_revision, select_device

logger = logging.getLogger(__name__)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, 0xF7]).generate_state(1)[0]))
    return g


@torch.inference_mode()
def predict_frames(model: Backbone, dataset: FrameDataset, batch_size: int, device: torch.device,
                   num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame log-probabilities ``(N, K)`` float32 and the video index ``(N,)`` of each frame."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    amp = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    scores, videos = [], []
    for x, _, v in loader:
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp, enabled=device.type == "cuda"):
            logits = model(x)  # (B, K)
        scores.append(logits.float().log_softmax(-1).cpu())
        videos.append(v)
    return torch.cat(scores).numpy(), torch.cat(videos).numpy().astype(np.int64)


def video_scores(frame_logp: np.ndarray, frame_video: np.ndarray, num_videos: int) -> np.ndarray:
    """``(V, K)`` log of the mean frame probability of each video (seed 001's "average of frame scores")."""
    probs = np.zeros((num_videos, frame_logp.shape[1]), dtype=np.float64)
    np.add.at(probs, frame_video, np.exp(frame_logp.astype(np.float64)))
    counts = np.bincount(frame_video, minlength=num_videos)[:, None]
    if (counts == 0).any():
        raise ValueError("every video needs at least one frame score")
    return np.log(probs / counts).astype(np.float32)


def finetune(manifest: Manifest | str | Path, out_dir: str | Path, backbone: str = "mobilenet_v2",
             train_layers: str = "top", epochs: int = 5, lr: float = 1e-3, batch_size: int = 32,
             frames_per_video: int = 4, seed: int = 0, device: str = "auto", *, weights: str = "imagenet",
             optimizer: str = "sgd", weight_decay: float = 5e-4, test_frames_per_video: int = 5,
             crop: int | None = None, resize: int | None = None, num_workers: int = 0,
             resume: bool = False) -> dict[str, Any]:
    """Fine-tune ``backbone`` on single frames of ``manifest``'s train split; evaluate on its test split.

    Args:
        manifest: a :class:`Manifest` or the path of a manifest CSV.
        train_layers: ``top`` (last feature block + classifier) or ``all``.
        frames_per_video: training frames per video per epoch (one per TSN segment, random within it).
        weights: starting weights (``imagenet``, a file, or ``none``).
        optimizer: ``sgd`` (momentum 0.9), ``adam``, ``adamw`` or ``rmsprop``; ``lr`` is constant.
        test_frames_per_video: evenly spaced frames per test video (segment centres).
        crop, resize: override the backbone's input size (default: its ImageNet preprocessing).
        resume: continue an interrupted run from ``out_dir/checkpoints/last.pt``.

    Returns ``{"frame_top1", "frame_top5", "video_top1", "video_top5", ..., "checkpoint"}``; the same dict is
    written to ``out_dir/metrics.json``. ``out_dir/backbone.pt`` loads with
    ``create_backbone(backbone, weights=out_dir / "backbone.pt")`` (its head predicts the manifest's classes).
    """
    if train_layers not in TRAIN_LAYERS:
        raise ValueError(f"train_layers must be one of {TRAIN_LAYERS}, got {train_layers!r}")
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = get_backbone_spec(backbone)
    pre = spec.preprocess
    crop = crop or pre.crop
    resize = resize or (pre.resize if crop == pre.crop else round(crop * pre.resize / pre.crop))
    classes = list(manifest.classes)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device, num_workers=num_workers,
                      optim=OptimConfig(name=optimizer, lr=lr, weight_decay=weight_decay))
    dev = select_device(device)
    torch.manual_seed(seed)

    model = create_backbone(backbone, weights=weights, num_classes=len(classes))
    trainable = model.set_trainable(train_layers)
    opt = build_optimizer(trainable, cfg.optim)
    logger.info("fine-tuning %s (%s layers: %d tensors, %d parameters) on %d classes", backbone, train_layers,
                len(trainable), sum(p.numel() for p in trainable), len(classes))

    train_tf = FrameTrainTransform(crop=crop, resize=resize, flip=True, mean=pre.mean, std=pre.std)
    eval_tf = FrameEvalTransform(crop=crop, resize=resize, mean=pre.mean, std=pre.std)
    train_ds = FrameDataset(manifest, "train", frames_per_video, train_tf, seed=seed, train=True,
                            decode_size=resize)
    drop_last = len(train_ds) > batch_size  # no batch of 1 for the BatchNorm layers being trained
    steps = len(train_ds) // batch_size if drop_last else 1

    def train_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        train_ds.set_epoch(epoch)
        loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                            generator=_epoch_generator(seed, epoch), num_workers=num_workers,
                            pin_memory=dev.type == "cuda")
        return ((x, y) for x, y, _ in loader)

    validate = None
    if manifest.split("val"):
        val_ds = FrameDataset(manifest, "val", test_frames_per_video, eval_tf, seed=seed, train=False,
                              decode_size=resize)

        def validate(m: torch.nn.Module) -> dict[str, float]:
            logp, vid = predict_frames(m, val_ds, batch_size, dev, num_workers)  # type: ignore[arg-type]
            labels = val_ds.labels[vid]
            return {"val_loss": float(F.nll_loss(torch.from_numpy(logp), torch.from_numpy(labels))),
                    "val_top1": topk_accuracies(logp, labels, (1,))["top1"]}
    else:
        logger.info("manifest has no val split: best.pt follows the training loss (no early stopping)")

    save_yaml(cfg, out_dir / "config.yaml", extra={
        "finetune": {"backbone": backbone, "weights": str(weights), "train_layers": train_layers,
                     "frames_per_video": frames_per_video, "test_frames_per_video": test_frames_per_video,
                     "crop": crop, "resize": resize},
        "git": git_revision(), "data": {"root": str(manifest.root), "manifest_sha256": manifest.checksum()}})
    meta = {"kind": "backbone", "backbone": backbone, "classes": classes, "train_layers": train_layers}
    history = fit(model, train_batches, opt, cfg, run_dir=out_dir, validate=validate, steps_per_epoch=steps,
                  resume=resume, device=dev, meta=meta)

    best = load_checkpoint(out_dir / "checkpoints" / "best.pt", map_location="cpu")
    model.load_state_dict(best["model"])
    base_weights = model.weights_id
    ckpt_path = save_backbone_checkpoint(
        out_dir / "backbone.pt", backbone=backbone, state_dict=model.state_dict(), num_classes=len(classes),
        classes=classes, base_weights=base_weights,
        extra={"train_layers": train_layers, "epoch": int(best["epoch"]), "crop": crop, "resize": resize})
    model.to(dev)

    test_ds = FrameDataset(manifest, "test", test_frames_per_video, eval_tf, seed=seed, train=False,
                           decode_size=resize)
    frame_logp, frame_video = predict_frames(model, test_ds, batch_size, dev, num_workers)
    frame_labels = test_ds.labels[frame_video]
    vid_logp = video_scores(frame_logp, frame_video, test_ds.num_videos)
    frame_acc = topk_accuracies(frame_logp, frame_labels, (1, 5))
    video_acc = topk_accuracies(vid_logp, test_ds.labels, (1, 5))
    save_predictions(out_dir / "predictions_test.npz", keys=[r.path for r in test_ds.records],
                     labels=test_ds.labels, scores=vid_logp, classes=classes, clip_scores=frame_logp,
                     clip_video=frame_video)
    last = history.epochs[-1] if history.epochs else {}
    metrics: dict[str, Any] = {
        "backbone": backbone, "train_layers": train_layers, "base_weights": base_weights,
        "frame_top1": frame_acc["top1"], "frame_top5": frame_acc["top5"],
        "video_top1": video_acc["top1"], "video_top5": video_acc["top5"],
        "test_videos": test_ds.num_videos, "test_frames": int(len(frame_labels)),
        "epochs": len(history.epochs), "best_epoch": history.best_epoch,
        "train_loss": last.get("train_loss", math.nan), "train_acc": last.get("train_acc", math.nan),
        "checkpoint": str(ckpt_path),
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out_dir / "labels.txt", "".join(c + "\n" for c in classes))
    logger.info("fine-tuned %s: frame top-1 %.3f, video top-1 %.3f on %d test videos", backbone,
                metrics["frame_top1"], metrics["video_top1"], test_ds.num_videos)
    return metrics
