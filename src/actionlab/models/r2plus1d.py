"""R(2+1)D-18: a 3D ResNet-18 whose 3x3x3 convolutions are factorized into 1x3x3 spatial + 3x1x1 temporal.

Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018. Each factorized
convolution has ``M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i))`` middle channels so that it has as
many parameters as the full 3D convolution it replaces; with a ReLU between the two halves it has twice the
nonlinearities. Same layer layout (and state-dict order) as ``torchvision.models.video.r2plus1d_18``: 31.5M
parameters for 400 classes; :func:`convert_torchvision_state_dict` maps torchvision's names to these.

Input ``(B, 3, T, H, W)`` (paper: 16x112x112), output ``(B, K)`` logits. ``width`` scales every layer's channels
(0.25: 16 -> 128 instead of 64 -> 512, about 16x fewer FLOPs) for CPUs and small datasets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from actionlab.models.registry import register_model, scaled


class Conv2Plus1d(nn.Module):
    """1xkxk spatial conv -> BN -> ReLU -> kx1x1 temporal conv. ``(B, C, T, H, W) -> (B, C', T/s, H/s, W/s)``."""

    def __init__(self, in_channels: int, out_channels: int, mid: int, stride: int = 1) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(in_channels, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn = nn.BatchNorm3d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.temporal = nn.Conv3d(mid, out_channels, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.relu(self.bn(self.spatial(x))))


class Downsample(nn.Sequential):
    """1x1x1 strided projection of the shortcut when a block changes shape."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels)


class BasicBlock(nn.Module):
    """Two (2+1)D convolutions with a residual connection; ``stride`` 2 halves T, H and W."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        # M_i from the block's input/output widths; like torchvision (and its 31.5M count), conv2 reuses it.
        mid = (in_channels * out_channels * 3 * 3 * 3) // (in_channels * 3 * 3 + 3 * out_channels)
        self.conv1 = Conv2Plus1d(in_channels, out_channels, mid, stride)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = Conv2Plus1d(out_channels, out_channels, mid)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (Downsample(in_channels, out_channels, stride)
                           if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Stem(nn.Module):
    """(2+1)D stem: 1x7x7/2 spatial conv to ``mid`` (45) channels, then 3x1x1 temporal conv to 64. Halves H, W."""

    def __init__(self, mid: int = 45, out_channels: int = 64) -> None:
        super().__init__()
        self.spatial = nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
        self.bn_spatial = nn.BatchNorm3d(mid)
        self.temporal = nn.Conv3d(mid, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn_temporal = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_spatial(self.spatial(x)))
        return self.relu(self.bn_temporal(self.temporal(x)))


class R2Plus1D(nn.Module):
    """R(2+1)D ResNet; ``layers`` blocks per stage (18 layers: ``(2, 2, 2, 2)``)."""

    default_clip = {"clip_len": 16, "size": 112}

    def __init__(self, num_classes: int = 400, layers: tuple[int, int, int, int] = (2, 2, 2, 2),
                 dropout: float = 0.0, width: float = 1.0) -> None:
        super().__init__()
        widths = tuple(scaled(c, width) for c in (64, 128, 256, 512))
        channels = widths[0]
        self.stem = Stem(scaled(45, width), channels)
        for i, (out, blocks) in enumerate(zip(widths, layers), start=1):
            stride = 1 if i == 1 else 2
            stage = [BasicBlock(channels, out, stride)] + [BasicBlock(out, out) for _ in range(blocks - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            channels = out
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 512)`` pooled features (width 1; shapes below too)."""
        x = self.stem(x)      # (B, 64, T, H/2, W/2)
        x = self.layer1(x)    # (B, 64, T, H/2, W/2)
        x = self.layer2(x)    # (B, 128, T/2, H/4, W/4)
        x = self.layer3(x)    # (B, 256, T/4, H/8, W/8)
        x = self.layer4(x)    # (B, 512, T/8, H/16, W/16)
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        return self.fc(self.dropout(self.forward_features(x)))


# torchvision name -> ours. torchvision nests nn.Sequential: stem.{0,1,3,4}, blockN.conv1.0.{0,1,3}, conv1.1 (BN).
_TV_RULES = [
    (r"^stem\.0\.", "stem.spatial."), (r"^stem\.1\.", "stem.bn_spatial."),
    (r"^stem\.3\.", "stem.temporal."), (r"^stem\.4\.", "stem.bn_temporal."),
    (r"\.conv(\d)\.0\.0\.", r".conv\1.spatial."), (r"\.conv(\d)\.0\.1\.", r".conv\1.bn."),
    (r"\.conv(\d)\.0\.3\.", r".conv\1.temporal."), (r"\.conv(\d)\.1\.", r".bn\1."),
    (r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn."),
]


def convert_torchvision_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``torchvision.models.video.r2plus1d_18`` state dict to :class:`R2Plus1D`'s names."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _TV_RULES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


@register_model("video")
def r2plus1d_18(num_classes: int, dropout: float = 0.0, pretrained: bool = False,
                weights_path: str | Path | None = None, width: float = 1.0) -> R2Plus1D:
    """R(2+1)D-18 (31.5M params at 400 classes), 16x112x112 clips; ``pretrained``: local Kinetics-400 file."""
    model = R2Plus1D(num_classes=num_classes, dropout=dropout, width=width)
    if pretrained or weights_path is not None:
        if width != 1.0:
            raise ValueError(f"r2plus1d_18's Kinetics-400 weights are for width 1.0, not {width}: train from "
                             "scratch (model.pretrained=false) or use model.width=1.0")
        from torchvision.models.video import R2Plus1D_18_Weights

        from actionlab.models.tv_video import load_local_state_dict

        url = R2Plus1D_18_Weights.KINETICS400_V1.url
        state = convert_torchvision_state_dict(
            load_local_state_dict(url, "Kinetics-400 weights of torchvision's r2plus1d_18", weights_path))
        if state["fc.weight"].shape[0] != num_classes:  # new head for a new label set
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ValueError(f"weights do not fit r2plus1d_18: missing {missing}, unexpected {unexpected}")
    return model
