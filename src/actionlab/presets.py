"""Named starting points for ``train --preset NAME``: dotted overrides on top of :class:`TrainConfig`'s defaults.

One table (:data:`PRESETS`), each entry saying what it is for; ``actionlab list presets`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actionlab.config import TrainConfig, apply_overrides


@dataclass(frozen=True)
class Preset:
    """A named starting point: dotted overrides on top of the defaults, and what it is for."""

    overrides: dict[str, Any]
    doc: str


PRESETS: dict[str, Preset] = {
    "lstm": Preset({"model.name": "lstm"}, "an LSTM over cached frame features (the defaults)"),
    "gru": Preset({"model.name": "gru"}, "a GRU over cached frame features"),
    "lstm_batchnorm_wd": Preset(
        {"model.name": "lstm", "optim.weight_decay": 5e-4, "model.batch_norm": True},
        "the best single-layer LSTM of the course project's ablation study on UCF-101: batch norm, weight decay"),
    "single_frame": Preset(
        {"model.name": "single_frame", "sequence.seq_len": 1, "inference.mode": "full",
         "inference.step_weighting": "uniform"},
        "the single-frame baseline: a per-frame classifier on cached features, log-probabilities averaged"),
    "finetune": Preset(
        {"model.name": "frame_classifier", "model.pretrained": True, "model.train_layers": "top",
         "optim.name": "sgd", "optim.lr": 1e-3, "optim.weight_decay": 5e-4, "epochs": 5},
        "fine-tune an ImageNet 2D CNN on single frames (its features then feed `extract --weights`)"),
    "finetune_flow": Preset(
        {"model.name": "frame_classifier", "model.pretrained": True, "model.train_layers": "all",
         "optim.name": "adamw", "optim.lr": 5e-4, "optim.weight_decay": 1e-4, "optim.schedule": "cosine",
         "optim.warmup_epochs": 1.0, "epochs": 15, "batch_size": 24, "frames.per_video": 3, "frames.flip": False},
        "fine-tune an ImageNet 2D CNN, all layers, on optical flow images of a raw flow store (TSN's flow stream; "
        "its features then feed `extract --modality flow --weights`); no flips, which would swap left and right"),
    "c3d": Preset({"model.name": "c3d_small", "clip.size": 64, "clip.resize": 72},
                  "the small C3D of a UCF-11 student project on 64 x 64 clips"),
    "video_cpu": Preset(
        {"model.name": "tsm_mobilenet_v2", "model.pretrained": True, "model.dropout": 0.5, "optim.lr": 5e-4,
         "optim.weight_decay": 5e-4, "optim.schedule": "cosine", "epochs": 20, "batch_size": 8, "patience": 0,
         "clip.clip_len": 8, "clip.sampling": "spread", "clip.size": 96, "clip.resize": 108,
         "clip.keep_aspect": False, "clip.hue": 0.5, "clip.grayscale": 0.2, "clip.cache_frames": True},
        "a video network that trains on 2 CPU cores: MobileNetV2 with temporal shift (TSM) from its ImageNet "
        "weights, 8 frames spread over the whole video, whole frames at 96 x 96 decoded once into memory, "
        "hue/grayscale augmentation"),
    "r2plus1d_cpu": Preset(
        {"model.name": "r2plus1d_18", "model.width": 0.25, "model.dropout": 0.3, "optim.lr": 1e-3,
         "optim.weight_decay": 5e-4, "optim.schedule": "cosine", "epochs": 60, "batch_size": 16,
         "clip.clip_len": 16, "clip.frame_interval": 3, "clip.size": 32, "clip.resize": 36, "clip.hue": 0.5,
         "clip.grayscale": 0.2, "clip.cache_frames": True, "patience": 0},
        "a 3D network trained from scratch on 2 CPU cores: R(2+1)D-18 at a quarter width on 16 x 32 x 32 clips of "
        "every 3rd frame, decoded once into memory, with hue/grayscale augmentation (simple scenes only: it "
        "learns little from a few hundred cluttered videos)"),
}


def preset(name: str, base: TrainConfig | None = None) -> TrainConfig:
    """A named starting point, e.g. ``preset("single_frame")``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return apply_overrides(base or TrainConfig(), PRESETS[name].overrides)
