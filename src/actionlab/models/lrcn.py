"""LRCN: a 2D CNN per frame feeding an LSTM, trained end to end (an LRCN student report).

Donahue et al., "Long-term Recurrent Convolutional Networks for Visual Recognition and Description", CVPR 2015
/ TPAMI 2017. Each frame goes through a 2D CNN (one of :func:`actionlab.features.backbones.list_backbones`, or
a UCF-11 student project's three-layer ``small_cnn``) to a ``D``-d feature; an LSTM reads the ``T`` features and a linear layer
scores every step; the clip's logits are the average of the step logits (the paper averages per-frame
predictions at test time).

``freeze_backbone=True`` trains only the LSTM and the classifier (the CNN stays in eval mode: BatchNorm statistics
fixed, no gradients, run under ``no_grad``); ``False`` fine-tunes it end to end. ``pretrained=True`` loads the
backbone's ImageNet weights from a local file (:mod:`actionlab.features.weights`; an error if absent), ``False``
is an explicit random initialization. Clips must be normalized as the backbone's weights expect (ImageNet
mean/std for torchvision backbones; see ``get_backbone_spec(name).preprocess``).

Input ``(B, 3, T, H, W)``, output ``(B, K)``; :meth:`LRCN.forward_steps` gives the ``(B, T, K)`` step logits.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from actionlab.models.registry import register_model, with_normalization

logger = logging.getLogger(__name__)


class SmallCNN(nn.Module):
    """A UCF-11 student project's frame CNN: conv 2x2 -> pool -> conv 3x3 -> pool -> conv 5x5 -> pool, ReLUs; ``(N,3,H,W) -> (N,128)``."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))     # (N, 32, H/2, W/2)
        x = self.pool(self.relu(self.conv2(x)))     # (N, 64, H/4, W/4)
        x = self.pool(self.relu(self.conv3(x)))     # (N, 128, H/8, W/8)
        return x.mean(dim=(2, 3))                   # (N, 128)


def build_frame_backbone(name: str, pretrained: bool) -> tuple[nn.Module, int]:
    """``(module with forward_features((N,3,H,W)) -> (N,D), D)`` for ``small_cnn`` or a registered 2D backbone."""
    if name == "small_cnn":
        if pretrained:
            raise ValueError("backbone 'small_cnn' has no pretrained weights; use pretrained=False or another "
                             "backbone (actionlab.features.backbones.list_backbones())")
        return SmallCNN(), SmallCNN.feature_dim
    from actionlab.features.backbones import create_backbone

    module = create_backbone(name, weights="imagenet" if pretrained else "none")
    if getattr(module, "head_name", ""):  # the ImageNet classifier is unused: drop its parameters
        module.set_submodule(module.head_name, nn.Identity())
    return module, int(module.feature_dim)


class LRCN(nn.Module):
    """Frame CNN -> dropout -> LSTM -> dropout -> linear per step -> mean over steps."""

    default_clip = {"clip_len": 16, "size": 224}

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.5, freeze_backbone: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.fc = nn.Linear(hidden_size, num_classes)

    def train(self, mode: bool = True) -> LRCN:
        super().train(mode)
        if self.freeze_backbone:  # a frozen CNN keeps its BatchNorm statistics and no dropout
            self.backbone.eval()
        return self

    def to(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        # The CNN's weights are 4D and cannot take channels_last_3d; channels_last is their equivalent.
        if kwargs.get("memory_format") is torch.channels_last_3d:
            kwargs["memory_format"] = torch.channels_last
        return super().to(*args, **kwargs)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, T, D)``: every frame through the CNN in one batch."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, 3, H, W), time-major per clip
        if self.freeze_backbone:
            with torch.no_grad():
                f = self.backbone.forward_features(frames)
        else:
            f = self.backbone.forward_features(frames)
        return f.reshape(b, t, -1)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, T, K)`` logits after each frame."""
        f = self.dropout(self.frame_features(x))   # (B, T, D)
        h, _ = self.lstm(f)                         # (B, T, hidden)
        return self.fc(self.dropout(h))             # (B, T, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)``: step logits averaged over time."""
        return self.forward_steps(x).mean(dim=1)


@register_model("video")
def lrcn(num_classes: int, backbone: str = "mobilenet_v2", pretrained: bool = False, freeze_backbone: bool = True,
         hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.5) -> LRCN:
    """LRCN: 2D CNN per frame (``backbone``) -> LSTM -> averaged step logits; end to end or frozen CNN."""
    cnn, dim = build_frame_backbone(backbone, pretrained)
    if not pretrained and freeze_backbone:
        logger.warning("lrcn: the %s backbone is frozen at its random initialization (pretrained=False, "
                       "freeze_backbone=True); only the LSTM and classifier will learn", backbone)
    model = LRCN(cnn, dim, num_classes, hidden_size, num_layers, dropout, freeze_backbone)
    if pretrained:  # the ImageNet CNN expects its own input statistics, not the video default
        from actionlab.features.backbones import get_backbone_spec

        pre = get_backbone_spec(backbone).preprocess
        with_normalization(model, pre.mean, pre.std)
    return model
