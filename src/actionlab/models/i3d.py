"""I3D: Inception-v1 (GoogLeNet) inflated to 3D, optionally bootstrapped from 2D ImageNet weights.

Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset", CVPR 2017. Every
kxk convolution becomes kxkxk (the 7x7 stem: 7x7x7, stride 2 in time too) and pooling becomes 3D except in the
first two max-pools (1x3x3, time is not pooled early). Layer names and the 3x3 "5x5" branch follow
``torchvision.models.googlenet`` so :func:`inflate_2d_weights` can copy its weights: each 2D kernel is repeated
``k_t`` times along time and divided by ``k_t``, so a clip of identical frames (a "boring video") produces the
2D network's activations at every frame whose receptive field lies inside the clip.

Input ``(B, 3, T, H, W)`` (paper: 64x224x224), output ``(B, K)`` logits. I3D with GoogLeNet's ImageNet weights
expects inputs normalized to [-1, 1] (TF port); ``transform_input=True`` converts ImageNet-normalized clips
like torchvision's GoogLeNet does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from actionlab.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from actionlab.models.registry import register_model, with_normalization

logger = logging.getLogger(__name__)


class BasicConv3d(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d(eps=1e-3) -> ReLU, as GoogLeNet's BasicConv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.bn(self.conv(x)))


class Inception3d(nn.Module):
    """Inflated Inception block: 1x1x1 | 1x1x1->3x3x3 | 1x1x1->3x3x3 | maxpool 3x3x3->1x1x1, concatenated."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv3d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv3d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv3d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        # torchvision's GoogLeNet uses 3x3 here (not the paper's 5x5); kept so its weights inflate.
        self.branch3 = nn.Sequential(BasicConv3d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv3d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv3d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class I3D(nn.Module):
    """Inflated Inception-v1."""

    default_clip = {"clip_len": 64, "size": 224}

    def __init__(self, num_classes: int = 400, dropout: float = 0.5, transform_input: bool = False) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = BasicConv3d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), ceil_mode=True)
        self.conv2 = BasicConv3d(64, 64, kernel_size=1)
        self.conv3 = BasicConv3d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), ceil_mode=True)
        self.inception3a = Inception3d(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception3d(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool3d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception3d(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception3d(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception3d(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception3d(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception3d(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool3d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception3d(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception3d(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in self.modules():  # GoogLeNet's initialization
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 1024, ~T/8, ~H/32, ~W/32)``."""
        if self.transform_input:  # ImageNet mean/std normalization -> [-1, 1]
            mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
            std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
            x = (x * std + mean - 0.5) / 0.5
        x = self.maxpool1(self.conv1(x))                         # (B, 64, T/2, H/4, W/4)
        x = self.maxpool2(self.conv3(self.conv2(x)))             # (B, 192, T/2, H/8, W/8)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, T/4, H/16, W/16)
        for block in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = block(x)                                         # (B, 832, T/4, H/16, W/16) after 4e
        x = self.maxpool4(x)                                     # (B, 832, T/8, H/32, W/32)
        return self.inception5b(self.inception5a(x))             # (B, 1024, T/8, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        x = self.avgpool(self.forward_features(x)).flatten(1)  # (B, 1024)
        return self.fc(self.dropout(x))


def inflate_2d_weights(model: I3D, state_dict_2d: Mapping[str, torch.Tensor], load_head: bool = False) -> list[str]:
    """Copy a ``torchvision.models.googlenet`` state dict into ``model``, inflating conv kernels along time.

    A 2D kernel ``(O, I, kh, kw)`` becomes ``(O, I, kt, kh, kw)``: repeated ``kt`` times and divided by ``kt``, so
    its response to a temporally constant input is unchanged. BatchNorm entries are copied; ``fc`` is copied only
    with ``load_head=True`` (and matching ``num_classes``). Returns the 2D keys that were not used (aux heads...).
    """
    target = model.state_dict()
    new, skipped = {}, []
    for key, value in state_dict_2d.items():
        if key not in target or (key.startswith("fc.") and not load_head):
            skipped.append(key)
            continue
        ref = target[key]
        if value.dim() == 4 and ref.dim() == 5:  # conv kernel: inflate along time
            kt = ref.shape[2]
            value = value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        if value.shape != ref.shape:
            raise ValueError(f"cannot inflate {key}: 2D {tuple(value.shape)} vs 3D {tuple(ref.shape)}")
        new[key] = value
    missing = sorted(set(target) - set(new) - ({"fc.weight", "fc.bias"} if not load_head else set()))
    if missing:
        raise ValueError(f"the 2D state dict lacks {len(missing)} I3D entries, e.g. {missing[:3]}; "
                         "expected torchvision's googlenet layout")
    model.load_state_dict(new, strict=False)
    logger.info("inflated %d tensors into I3D, skipped %d (%s)", len(new), len(skipped), ", ".join(skipped[:4]))
    return skipped


@register_model("video")
def i3d(num_classes: int, dropout: float = 0.5, pretrained: bool = False, weights_path: str | Path | None = None) -> I3D:
    """I3D (inflated Inception-v1, 12.7M params at 400 classes); ``pretrained`` inflates local ImageNet GoogLeNet."""
    if not (pretrained or weights_path is not None):
        return I3D(num_classes, dropout)
    from torchvision.models import GoogLeNet_Weights

    from actionlab.models.tv_video import load_local_state_dict

    state = load_local_state_dict(GoogLeNet_Weights.IMAGENET1K_V1.url, "ImageNet weights of torchvision's "
                                  "googlenet (inflated into I3D)", weights_path)
    model = I3D(num_classes, dropout)
    inflate_2d_weights(model, state)
    model.transform_input = True  # torchvision's GoogLeNet weights were ported from TF: inputs in [-1, 1]
    # transform_input maps ImageNet-normalized input to the TF range, so the clips are ImageNet-normalized
    return with_normalization(model, IMAGENET_MEAN, IMAGENET_STD)
