"""C3D: VGG-style 3x3x3 convolutions and max-pooling over whole clips.

- ``c3d``: Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015. Eight
  convolutions (conv1a..conv5b), five pools (pool1 keeps time), fc6/fc7 with 4096 units; 16x112x112 clips.
  ~78M parameters (101 classes: 78.4M; Sports-1M's 487: 80.0M).
- ``c3d_small`` (a UCF-11 student project): the layout for 30x64x64 UCF-11 clips: six 3x3x3 convolutions, four pools (the first
  1x2x2 so early layers see every frame), two fully connected layers of 1024 units.

Input ``(B, 3, T, H, W)``, output ``(B, K)`` logits. The flattened fc6 input is sized for the model's default
clip; other clip sizes are average-pooled to that grid first (as torchvision's VGG does with its adaptive
pooling), so any clip of at least ``min_clip_len`` frames and 16x16 pixels runs. ``width`` scales every
convolution's channels (0.25: 16 -> 128 channels instead of 64 -> 512, about 16x fewer FLOPs), for CPUs and
small datasets.
"""

from __future__ import annotations

import torch
from torch import nn

from actionlab.models.registry import register_model, scaled


class ConvReLU3d(nn.Sequential):
    """3x3x3 convolution (padding 1, bias) -> ReLU [-> BatchNorm3d before the ReLU when ``batch_norm``]."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        if batch_norm:
            self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class C3D(nn.Module):
    """The original C3D: conv1a..conv5b, fc6/fc7 4096."""

    default_clip = {"clip_len": 16, "size": 112}
    min_clip_len = 16  # pool5 needs two frames left after four temporal halvings

    def __init__(self, num_classes: int = 487, dropout: float = 0.5, batch_norm: bool = False,
                 width: float = 1.0) -> None:
        super().__init__()
        bn = batch_norm
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.conv1a = ConvReLU3d(3, c1, bn)
        self.pool1 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.conv2a = ConvReLU3d(c1, c2, bn)
        self.pool2 = nn.MaxPool3d(2, stride=2)
        self.conv3a = ConvReLU3d(c2, c3, bn)
        self.conv3b = ConvReLU3d(c3, c3, bn)
        self.pool3 = nn.MaxPool3d(2, stride=2)
        self.conv4a = ConvReLU3d(c3, c4, bn)
        self.conv4b = ConvReLU3d(c4, c4, bn)
        self.pool4 = nn.MaxPool3d(2, stride=2)
        self.conv5a = ConvReLU3d(c4, c4, bn)
        self.conv5b = ConvReLU3d(c4, c4, bn)
        self.pool5 = nn.MaxPool3d(2, stride=2, padding=(0, 1, 1))
        self.gridpool = nn.AdaptiveAvgPool3d((1, 4, 4))  # identity for 16x112x112 clips
        self.fc6 = nn.Linear(c4 * 1 * 4 * 4, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 4096)`` fc7 activations (the "C3D features" of the paper)."""
        x = self.pool1(self.conv1a(x))                # (B, 64, 16, 56, 56) for a 16x112x112 clip (width 1)
        x = self.pool2(self.conv2a(x))                # (B, 128, 8, 28, 28)
        x = self.pool3(self.conv3b(self.conv3a(x)))   # (B, 256, 4, 14, 14)
        x = self.pool4(self.conv4b(self.conv4a(x)))   # (B, 512, 2, 7, 7)
        x = self.pool5(self.conv5b(self.conv5a(x)))   # (B, 512, 1, 4, 4)
        x = self.gridpool(x).flatten(1)               # (B, 8192)
        x = self.dropout(self.relu(self.fc6(x)))
        return self.dropout(self.relu(self.fc7(x)))   # (B, 4096)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        return self.fc8(self.forward_features(x))


class C3DSmall(nn.Module):
    """A UCF-11 student project's C3D for 30x64x64 clips: 6 convs, 4 pools, fc 1024."""

    default_clip = {"clip_len": 30, "size": 64}
    min_clip_len = 8

    def __init__(self, num_classes: int = 11, dropout: float = 0.5, fc_size: int = 1024,
                 batch_norm: bool = False, width: float = 1.0) -> None:
        super().__init__()
        bn = batch_norm
        c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.conv1 = ConvReLU3d(3, c1, bn)
        self.pool1 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.conv2 = ConvReLU3d(c1, c2, bn)
        self.pool2 = nn.MaxPool3d(2, stride=2)
        self.conv3a = ConvReLU3d(c2, c3, bn)
        self.conv3b = ConvReLU3d(c3, c3, bn)
        self.pool3 = nn.MaxPool3d(2, stride=2)
        self.conv4a = ConvReLU3d(c3, c4, bn)
        self.conv4b = ConvReLU3d(c4, c4, bn)
        self.pool4 = nn.MaxPool3d(2, stride=2)
        self.gridpool = nn.AdaptiveAvgPool3d((3, 4, 4))  # identity for 30x64x64 clips
        self.fc1 = nn.Linear(c4 * 3 * 4 * 4, fc_size)
        self.fc2 = nn.Linear(fc_size, fc_size)
        self.fc3 = nn.Linear(fc_size, num_classes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        x = self.pool1(self.conv1(x))                 # (B, 64, 30, 32, 32) for a 30x64x64 clip (width 1)
        x = self.pool2(self.conv2(x))                 # (B, 128, 15, 16, 16)
        x = self.pool3(self.conv3b(self.conv3a(x)))   # (B, 256, 7, 8, 8)
        x = self.pool4(self.conv4b(self.conv4a(x)))   # (B, 512, 3, 4, 4)
        x = self.gridpool(x).flatten(1)               # (B, 24576)
        x = self.dropout(self.relu(self.fc1(x)))
        x = self.dropout(self.relu(self.fc2(x)))
        return self.fc3(x)


@register_model("video")
def c3d(num_classes: int, dropout: float = 0.5, batch_norm: bool = False, width: float = 1.0) -> C3D:
    """C3D (Tran et al. 2015): 8 conv + 3 fc, ~78M params; 16x112x112 clips."""
    return C3D(num_classes, dropout, batch_norm, width)


@register_model("video")
def c3d_small(num_classes: int, dropout: float = 0.5, batch_norm: bool = False, width: float = 1.0) -> C3DSmall:
    """A UCF-11 student project's small C3D: 6 conv, 4 pool, fc 1024; 30x64x64 clips."""
    # ModelConfig.fc_size sizes temporal heads; the seed's 1024-unit layers are fixed here.
    return C3DSmall(num_classes, dropout, batch_norm=batch_norm, width=width)
