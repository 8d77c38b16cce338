"""TSM: a 2D ImageNet CNN made a video network by shifting part of its channels along time.

Lin, Gan & Han, "TSM: Temporal Shift Module for Efficient Video Understanding", ICCV 2019. Every frame of a
clip goes through MobileNetV2 as one batch; in each inverted-residual block with a shortcut, before the block's
first convolution, 1/``fold_div`` of the channels take the values of the previous frame and another
1/``fold_div`` those of the next frame ("residual shift": the shortcut keeps the frame's own activations). So
every layer mixes neighbouring frames at no extra arithmetic, the receptive field in time grows with depth
like a 3D network's, and the weights start from the 2D network's ImageNet weights, which is what lets a
video network learn from a few hundred clips. Per-frame logits are averaged over time (TSN's consensus).

Input ``(B, 3, T, H, W)`` normalized with ImageNet statistics, output ``(B, K)``; :meth:`TSM.forward_steps`
gives the ``(B, T, K)`` frame logits. ``T`` is fixed at construction (``clip_len``).
"""

from __future__ import annotations

import torch
from torch import nn

from actionlab.models.registry import register_model, with_normalization


def temporal_shift(x: torch.Tensor, clip_len: int, fold_div: int = 8) -> torch.Tensor:
    """``(B*T, C, H, W) -> (B*T, C, H, W)``: channels ``[0, C/fold_div)`` of frame ``t`` come from frame ``t-1``,
    channels ``[C/fold_div, 2C/fold_div)`` from frame ``t+1`` (zeros past the clip's ends), the rest unchanged."""
    n, c, h, w = x.shape
    x = x.view(n // clip_len, clip_len, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, 1:, :fold] = x[:, :-1, :fold]  # from the past
    out[:, :-1, fold:2 * fold] = x[:, 1:, fold:2 * fold]  # from the future
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(n, c, h, w)


class ShiftedResidual(nn.Module):
    """An inverted-residual block ``x + conv(x)`` whose branch reads the time-shifted ``x``."""

    def __init__(self, block: nn.Module, clip_len: int, fold_div: int) -> None:
        super().__init__()
        self.conv, self.clip_len, self.fold_div = block.conv, clip_len, fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(temporal_shift(x, self.clip_len, self.fold_div))


class TSM(nn.Module):
    """MobileNetV2 with a temporal shift in every block that has a shortcut (10 of 17), then pooled features ->
    dropout -> linear per frame -> mean over frames."""

    default_clip = {"clip_len": 8, "size": 112}

    def __init__(self, num_classes: int, clip_len: int = 8, dropout: float = 0.5, pretrained: bool = False,
                 fold_div: int = 8) -> None:
        super().__init__()
        from actionlab.features.backbones import create_backbone

        if fold_div < 3:
            raise ValueError(f"fold_div must be >= 3 (two folds shift, the rest stays), got {fold_div}")
        backbone = create_backbone("mobilenet_v2", weights="imagenet" if pretrained else "none")
        features = backbone.features  # torchvision's MobileNetV2.features: stem, 17 inverted residuals, 1x1 conv
        for i, block in enumerate(features):
            if getattr(block, "use_res_connect", False):
                features[i] = ShiftedResidual(block, clip_len, fold_div)
        self.features, self.clip_len = features, clip_len
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(int(backbone.feature_dim), num_classes)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, T, K)`` frame logits."""
        b, c, t, h, w = x.shape
        if t != self.clip_len:
            raise ValueError(f"TSM was built for clips of {self.clip_len} frames, got {t}")
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, 3, H, W), time-major per clip
        f = self.features(frames).mean(dim=(2, 3))  # (B*T, 1280)
        return self.fc(self.dropout(f)).view(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)``: frame logits averaged over time."""
        return self.forward_steps(x).mean(dim=1)

    def to(self, *args: object, **kwargs: object) -> TSM:  # type: ignore[override]
        # The weights are 2D (4-D tensors) and cannot take channels_last_3d; channels_last is their equivalent.
        if kwargs.get("memory_format") is torch.channels_last_3d:
            kwargs["memory_format"] = torch.channels_last
        return super().to(*args, **kwargs)  # type: ignore[arg-type]


@register_model("video")
def tsm_mobilenet_v2(num_classes: int, clip_len: int = 8, dropout: float = 0.5, pretrained: bool = False) -> TSM:
    """MobileNetV2 with temporal shift (TSM), from its ImageNet weights (``pretrained``, offline) or from
    scratch; 8 frames spread over the video, 112 px in the paper's efficient setting."""
    model = TSM(num_classes, clip_len=clip_len, dropout=dropout, pretrained=pretrained)
    if pretrained:  # ImageNet weights expect ImageNet statistics
        from actionlab.features.backbones import get_backbone_spec

        pre = get_backbone_spec("mobilenet_v2").preprocess
        with_normalization(model, pre.mean, pre.std)
    return model
