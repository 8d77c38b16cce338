"""Per-frame 2D CNN ("VGG9", a UCF-11 student project) whose frame scores are fused over time.

- ``fusion_vgg``: every frame is scored by the VGG9 (``frame_classes`` scores, 500 in the seed); the
  ``(B, T, frame_classes)`` scores are flattened to ``(B, T * frame_classes)`` and a linear layer maps them to
  the ``K`` clip classes. The fusion layer has one weight per (frame position, score), so the clip length is
  fixed at build time (``clip_len``).
- ``late_fusion``: the VGG9 scores every frame directly in the ``K`` classes and the logits are averaged over
  time (any clip length).

VGG9 (a UCF-11 student project): 3x3 convolutions, stride 1, 64 channels doubling after each 2x2 max-pool (64-128-256-256-512-
512: six conv layers), then two fully connected layers of 2048 and the score layer: nine weight layers. The
conv grid is average-pooled to 4x4 (identity for 64x64 frames) so other frame sizes work too.

Input ``(B, 3, T, H, W)``, output ``(B, K)`` logits. Frames are folded into the batch, so ``model.to(
memory_format=torch.channels_last_3d)`` is mapped to ``channels_last`` for the 2D convolutions.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from actionlab.models.registry import register_model


class VGG9(nn.Module):
    """Small VGG for one frame: ``(N, 3, H, W) -> (N, num_classes)`` scores."""

    def __init__(self, num_classes: int, batch_norm: bool = False, dropout: float = 0.5, fc_size: int = 2048) -> None:
        super().__init__()
        layers: list[tuple[str, nn.Module]] = []
        in_ch = 3
        # (stage, widths): a 2x2 max-pool ends every stage
        for stage, widths in enumerate(((64,), (128,), (256, 256), (512, 512)), start=1):
            for j, width in enumerate(widths):
                name = f"conv{stage}{'ab'[j]}"
                layers.append((name, nn.Conv2d(in_ch, width, 3, padding=1)))
                if batch_norm:
                    layers.append((f"{name}_bn", nn.BatchNorm2d(width)))
                layers.append((f"{name}_relu", nn.ReLU(inplace=True)))
                in_ch = width
            layers.append((f"pool{stage}", nn.MaxPool2d(2, 2)))
        self.features = nn.Sequential(OrderedDict(layers))  # names such as conv3b, pool4
        self.gridpool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(512 * 4 * 4, fc_size)), ("relu1", nn.ReLU(inplace=True)), ("drop1", nn.Dropout(dropout)),
            ("fc2", nn.Linear(fc_size, fc_size)), ("relu2", nn.ReLU(inplace=True)), ("drop2", nn.Dropout(dropout)),
            ("fc3", nn.Linear(fc_size, num_classes)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                       # (N, 512, H/16, W/16)
        x = self.gridpool(x).flatten(1)            # (N, 8192)
        return self.classifier(x)                  # (N, num_classes)


def _frames(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W) -> (B*T, C, H, W)``: frames folded into the batch, time-major within each clip."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class _PerFrameModel(nn.Module):
    def to(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # 2D conv weights are 4D and cannot take channels_last_3d; channels_last is their equivalent.
        if kwargs.get("memory_format") is torch.channels_last_3d:
            kwargs["memory_format"] = torch.channels_last
        return super().to(*args, **kwargs)


class FusionVGG(_PerFrameModel):
    """VGG9 frame scores, flattened over a fixed-length clip and fused by one linear layer (a UCF-11 student project)."""

    default_clip = {"clip_len": 30, "size": 64}

    def __init__(self, num_classes: int, clip_len: int = 30, frame_classes: int = 500, batch_norm: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.clip_len = clip_len
        self.frame_cnn = VGG9(frame_classes, batch_norm, dropout)
        self.fusion = nn.Linear(clip_len * frame_classes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)``; ``T`` must equal ``clip_len``."""
        b, t = x.shape[0], x.shape[2]
        if t != self.clip_len:
            raise ValueError(f"fusion_vgg was built for clips of {self.clip_len} frames, got {t}; set "
                             f"clip.clip_len={self.clip_len} or build the model with clip_len={t}")
        scores = self.frame_cnn(_frames(x)).view(b, -1)  # (B, T * frame_classes)
        return self.fusion(scores)


class LateFusion(_PerFrameModel):
    """VGG9 scores every frame in the clip classes; the per-frame logits are averaged over time."""

    default_clip = {"clip_len": 30, "size": 64}

    def __init__(self, num_classes: int, batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.frame_cnn = VGG9(num_classes, batch_norm, dropout)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, T, K)`` per-frame logits."""
        b, t = x.shape[0], x.shape[2]
        return self.frame_cnn(_frames(x)).view(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` time-averaged logits."""
        return self.forward_steps(x).mean(dim=1)


@register_model("video")
def fusion_vgg(num_classes: int, clip_len: int = 30, frame_classes: int = 500, batch_norm: bool = False,
               dropout: float = 0.5) -> FusionVGG:
    """A UCF-11 student project's VGG9 per frame, frame scores flattened and fused by a linear layer (fixed ``clip_len``)."""
    return FusionVGG(num_classes, clip_len, frame_classes, batch_norm, dropout)


@register_model("video")
def late_fusion(num_classes: int, batch_norm: bool = False, dropout: float = 0.5) -> LateFusion:
    """VGG9 per frame, class logits averaged over the clip."""
    return LateFusion(num_classes, batch_norm, dropout)
