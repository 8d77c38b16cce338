"""S3D: Inception networks with separable spatio-temporal convolutions (1xkxk spatial, then kx1x1 temporal).

Xie et al., "Rethinking Spatiotemporal Feature Learning: Speed-Accuracy Trade-offs in Video Classification",
ECCV 2018. Three registered models:

- ``s3d``: Inception-v1 with every 3D convolution made separable (as ``torchvision.models.video.s3d``,
  8.32M parameters at 400 classes; :func:`load_torchvision_state_dict` loads torchvision's weights).
- ``s3d_top_heavy``: the same network with 2D (1xkxk) convolutions and pooling in the lower half and separable 3D
  ones only from ``mixed4b`` up; the paper finds top-heavy temporal modelling as accurate and cheaper.
- ``s3d_v3`` (the S3D-v3 reproduction paper): S3D convolutions on an Inception-v3 backbone (its Table 1); each 1x7/7x1 pair gains a
  7x1x1 temporal convolution. Padding keeps every stage valid for small clips (32x32 and up); no aux head.

Input ``(B, 3, T, H, W)`` float (papers: 64x224x224), output ``(B, K)`` logits. Global average pooling
before the classifier equals torchvision's 2x7x7 pooling for 16x224x224 clips and works at any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from actionlab.models.registry import register_model

# ------------------------------------------------------------------------------------------ blocks


class BasicConv3d(nn.Sequential):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU.

    BatchNorm uses PyTorch's momentum 0.1 (torchvision's S3D: 0.001, from TF), better for training from scratch;
    it changes neither loaded weights nor eval-mode outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int] | int = 1,
                 stride: tuple[int, int, int] | int = 1, padding: tuple[int, int, int] | int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)


class SepConv3d(nn.Module):
    """1xkxk spatial conv, then kx1x1 temporal conv (each with BN + ReLU); stride ``s`` on T, H and W.

    ``temporal=False`` keeps only the spatial conv (a 2D conv applied per frame; frames are still subsampled
    by ``s`` so shapes match the 3D version).
    """

    def __init__(self, in_channels: int, out_channels: int, k: int, stride: int = 1, temporal: bool = True) -> None:
        super().__init__()
        p = k // 2
        t_stride = 1 if temporal else stride
        self.spatial = BasicConv3d(in_channels, out_channels, (1, k, k), (t_stride, stride, stride), (0, p, p))
        self.temporal = BasicConv3d(out_channels, out_channels, (k, 1, 1), (stride, 1, 1), (p, 0, 0)) \
            if temporal else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))


class SepInception(nn.Module):
    """Inception-v1 block with separable 3x3 convs: four branches concatenated on channels (H, W, T kept)."""

    def __init__(self, in_channels: int, b0: int, b1_mid: int, b1: int, b2_mid: int, b2: int, b3: int,
                 temporal: bool = True) -> None:
        super().__init__()
        self.branch0 = BasicConv3d(in_channels, b0)
        self.branch1_reduce = BasicConv3d(in_channels, b1_mid)
        self.branch1_conv = SepConv3d(b1_mid, b1, 3, temporal=temporal)
        self.branch2_reduce = BasicConv3d(in_channels, b2_mid)
        self.branch2_conv = SepConv3d(b2_mid, b2, 3, temporal=temporal)
        self.branch3_pool = nn.MaxPool3d((3 if temporal else 1, 3, 3), stride=1, padding=(1 if temporal else 0, 1, 1))
        self.branch3_proj = BasicConv3d(in_channels, b3)
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x),
                          self.branch1_conv(self.branch1_reduce(x)),
                          self.branch2_conv(self.branch2_reduce(x)),
                          self.branch3_proj(self.branch3_pool(x))], dim=1)


def init_weights(model: nn.Module) -> None:
    """He initialization for the ReLU convolutions (PyTorch's default shrinks the signal through 50+ layers)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------ S3D (Inception-v1)

# Layer order of S3D; ``temporal_from`` names the first layer with temporal convolutions.
S3D_LAYERS = ("conv1", "conv3", "mixed3b", "mixed3c", "pool3", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
              "mixed4f", "pool4", "mixed5b", "mixed5c")


class S3D(nn.Module):
    """S3D on Inception-v1; layers before ``temporal_from`` are 2D (``"conv1"``: all 3D, the original)."""

    default_clip = {"clip_len": 64, "size": 224}

    def __init__(self, num_classes: int = 400, dropout: float = 0.2, temporal_from: str = "conv1") -> None:
        super().__init__()
        if temporal_from not in S3D_LAYERS:
            raise ValueError(f"temporal_from must be one of {S3D_LAYERS}, got {temporal_from!r}")
        first = S3D_LAYERS.index(temporal_from)

        def t(name: str) -> bool:  # does this layer model time?
            return S3D_LAYERS.index(name) >= first

        self.conv1 = SepConv3d(3, 64, 7, stride=2, temporal=t("conv1"))
        self.pool1 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.conv2 = BasicConv3d(64, 64)
        self.conv3 = SepConv3d(64, 192, 3, temporal=t("conv3"))
        self.pool2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.mixed3b = SepInception(192, 64, 96, 128, 16, 32, 32, t("mixed3b"))
        self.mixed3c = SepInception(256, 128, 128, 192, 32, 96, 64, t("mixed3c"))
        self.pool3 = nn.MaxPool3d((3, 3, 3) if t("pool3") else (1, 3, 3), stride=2, padding=(int(t("pool3")), 1, 1))
        self.mixed4b = SepInception(480, 192, 96, 208, 16, 48, 64, t("mixed4b"))
        self.mixed4c = SepInception(512, 160, 112, 224, 24, 64, 64, t("mixed4c"))
        self.mixed4d = SepInception(512, 128, 128, 256, 24, 64, 64, t("mixed4d"))
        self.mixed4e = SepInception(512, 112, 144, 288, 32, 64, 64, t("mixed4e"))
        self.mixed4f = SepInception(528, 256, 160, 320, 32, 128, 128, t("mixed4f"))
        self.pool4 = nn.MaxPool3d((2, 2, 2) if t("pool4") else (1, 2, 2), stride=2)
        self.mixed5b = SepInception(832, 256, 160, 320, 32, 128, 128, t("mixed5b"))
        self.mixed5c = SepInception(832, 384, 192, 384, 48, 128, 128, t("mixed5c"))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 1024, T/8, H/32, W/32)`` (rounded up)."""
        x = self.pool1(self.conv1(x))                         # (B, 64, T/2, H/4, W/4)
        x = self.pool2(self.conv3(self.conv2(x)))             # (B, 192, T/2, H/8, W/8)
        x = self.pool3(self.mixed3c(self.mixed3b(x)))         # (B, 480, T/4, H/16, W/16)
        for block in (self.mixed4b, self.mixed4c, self.mixed4d, self.mixed4e, self.mixed4f):
            x = block(x)                                      # (B, 832, T/4, H/16, W/16) after 4f
        x = self.pool4(x)                                     # (B, 832, T/8, H/32, W/32)
        return self.mixed5c(self.mixed5b(x))                  # (B, 1024, T/8, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        x = self.avgpool(self.forward_features(x)).flatten(1)  # (B, 1024)
        return self.fc(self.dropout(x))


def load_torchvision_state_dict(model: S3D, state: Mapping[str, torch.Tensor], load_head: bool = True) -> None:
    """Load a ``torchvision.models.video.s3d`` state dict into an all-3D :class:`S3D`.

    Both networks register the same layers in the same order (torchvision's are anonymous ``features.N``), so
    entries are paired by position; each pair must agree on the kind of tensor and its number of elements.
    torchvision's 1x1x1 classifier conv becomes ``fc``; ``load_head=False`` keeps our freshly initialized head.
    """
    ours = model.state_dict()
    if len(ours) != len(state):
        raise ValueError(f"S3D state dicts differ in length ({len(state)} vs {len(ours)}): only the all-3D s3d "
                         "matches torchvision's s3d")
    new = {}
    for (theirs_key, value), (key, ref) in zip(state.items(), ours.items()):
        if key.startswith("fc.") and not load_head:
            continue
        if theirs_key.rsplit(".", 1)[-1] != key.rsplit(".", 1)[-1] or value.numel() != ref.numel():
            raise ValueError(f"cannot map torchvision's {theirs_key} {tuple(value.shape)} onto {key} {tuple(ref.shape)}")
        new[key] = value.reshape(ref.shape)  # the classifier: (K, 1024, 1, 1, 1) conv -> (K, 1024) linear
    model.load_state_dict(new, strict=load_head)


# ------------------------------------------------------------------------------------------ S3D-v3 (Inception-v3)


class Separable7(nn.Sequential):
    """Inception-v3's 1x7 then 7x1 spatial pair, followed by a 7x1x1 temporal conv (the S3D-v3 reproduction paper)."""

    def __init__(self, in_channels: int, mid: int, out_channels: int) -> None:
        super().__init__()
        self.conv_w = BasicConv3d(in_channels, mid, (1, 1, 7), padding=(0, 0, 3))
        self.conv_h = BasicConv3d(mid, out_channels, (1, 7, 1), padding=(0, 3, 0))
        self.conv_t = BasicConv3d(out_channels, out_channels, (7, 1, 1), padding=(3, 0, 0))


class AvgPool3x3x3(nn.Module):
    """3x3x3 average pooling, stride 1, size-preserving; borders are replicated (not zero-padded).

    ``nn.AvgPool3d`` refuses inputs smaller than its kernel even when padded, which the 1-frame/1-pixel maps of
    short or small clips are at the top of the network.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate"), kernel_size=3, stride=1)


def _avg_pool() -> AvgPool3x3x3:
    return AvgPool3x3x3()


class InceptionA(nn.Module):
    """Type 1 (35x35 grid in 2D): 1x1 | 1x1->sep5 | 1x1->sep3->sep3 | avgpool->1x1."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv3d(in_channels, 64)
        self.branch5x5 = nn.Sequential(BasicConv3d(in_channels, 48), SepConv3d(48, 64, 5))
        self.branch3x3dbl = nn.Sequential(BasicConv3d(in_channels, 64), SepConv3d(64, 96, 3), SepConv3d(96, 96, 3))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv3d(in_channels, pool_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


class InceptionB(nn.Module):
    """Grid reduction to 768 channels: sep3/2 | 1x1->sep3->sep3/2 | maxpool/2. Halves T, H and W."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = SepConv3d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl = nn.Sequential(BasicConv3d(in_channels, 64), SepConv3d(64, 96, 3),
                                          SepConv3d(96, 96, 3, stride=2))
        self.branch_pool = nn.MaxPool3d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


class InceptionC(nn.Module):
    """Type 2 (17x17 grid in 2D), 768 channels: 1x1 | 1x1->7 | 1x1->7->7 | avgpool->1x1 (7 = Separable7)."""

    def __init__(self, in_channels: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv3d(in_channels, 192)
        self.branch7x7 = nn.Sequential(BasicConv3d(in_channels, c7), Separable7(c7, c7, 192))
        self.branch7x7dbl = nn.Sequential(BasicConv3d(in_channels, c7), Separable7(c7, c7, c7),
                                          Separable7(c7, c7, 192))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv3d(in_channels, 192))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch7x7dbl(x), self.branch_pool(x)], 1)


class InceptionD(nn.Module):
    """Grid reduction to 1280 channels: 1x1->sep3/2 | 1x1->7->sep3/2 | maxpool/2. Halves T, H and W."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = nn.Sequential(BasicConv3d(in_channels, 192), SepConv3d(192, 320, 3, stride=2))
        self.branch7x7x3 = nn.Sequential(BasicConv3d(in_channels, 192), Separable7(192, 192, 192),
                                         SepConv3d(192, 192, 3, stride=2))
        self.branch_pool = nn.MaxPool3d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch7x7x3(x), self.branch_pool(x)], 1)


class InceptionE(nn.Module):
    """Type 3 (8x8 grid in 2D), 2048 channels; the 1x3 and 3x1 halves of a split branch see 3x1x1 temporal conv."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv3d(in_channels, 320)
        self.branch3x3_reduce = nn.Sequential(BasicConv3d(in_channels, 384),
                                              BasicConv3d(384, 384, (3, 1, 1), padding=(1, 0, 0)))
        self.branch3x3_w = BasicConv3d(384, 384, (1, 1, 3), padding=(0, 0, 1))
        self.branch3x3_h = BasicConv3d(384, 384, (1, 3, 1), padding=(0, 1, 0))
        self.branch3x3dbl_reduce = nn.Sequential(BasicConv3d(in_channels, 448), SepConv3d(448, 384, 3))
        self.branch3x3dbl_w = BasicConv3d(384, 384, (1, 1, 3), padding=(0, 0, 1))
        self.branch3x3dbl_h = BasicConv3d(384, 384, (1, 3, 1), padding=(0, 1, 0))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv3d(in_channels, 192))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_reduce(x)
        b = self.branch3x3dbl_reduce(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_w(a), self.branch3x3_h(a),
                          self.branch3x3dbl_w(b), self.branch3x3dbl_h(b), self.branch_pool(x)], 1)


class S3Dv3(nn.Module):
    """S3D convolutions on Inception-v3 (the S3D-v3 reproduction paper, Table 1)."""

    default_clip = {"clip_len": 64, "size": 224}

    def __init__(self, num_classes: int = 400, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1a = SepConv3d(3, 32, 3, stride=2)
        self.conv2a = SepConv3d(32, 32, 3)
        self.conv2b = SepConv3d(32, 64, 3)
        self.pool1 = nn.MaxPool3d(3, stride=2, padding=1)
        self.conv3b = BasicConv3d(64, 80)
        self.conv4a = SepConv3d(80, 192, 3)
        self.pool2 = nn.MaxPool3d(3, stride=2, padding=1)
        self.mixed5b = InceptionA(192, pool_features=32)
        self.mixed5c = InceptionA(256, pool_features=64)
        self.mixed5d = InceptionA(288, pool_features=64)
        self.mixed6a = InceptionB(288)
        self.mixed6b = InceptionC(768, c7=128)
        self.mixed6c = InceptionC(768, c7=160)
        self.mixed6d = InceptionC(768, c7=160)
        self.mixed6e = InceptionC(768, c7=192)
        self.mixed7a = InceptionD(768)
        self.mixed7b = InceptionE(1280)
        self.mixed7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, 2048, T/32, H/32, W/32)`` (rounded up)."""
        x = self.conv2b(self.conv2a(self.conv1a(x)))         # (B, 64, T/2, H/2, W/2)
        x = self.pool1(x)                                    # (B, 64, T/4, H/4, W/4)
        x = self.pool2(self.conv4a(self.conv3b(x)))          # (B, 192, T/8, H/8, W/8)
        x = self.mixed5d(self.mixed5c(self.mixed5b(x)))      # (B, 288, T/8, H/8, W/8)
        x = self.mixed6a(x)                                  # (B, 768, T/16, H/16, W/16)
        x = self.mixed6e(self.mixed6d(self.mixed6c(self.mixed6b(x))))
        x = self.mixed7a(x)                                  # (B, 1280, T/32, H/32, W/32)
        return self.mixed7c(self.mixed7b(x))                 # (B, 2048, T/32, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W) -> (B, K)`` logits."""
        x = self.avgpool(self.forward_features(x)).flatten(1)  # (B, 2048)
        return self.fc(self.dropout(x))


# ------------------------------------------------------------------------------------------ builders


@register_model("video")
def s3d(num_classes: int, dropout: float = 0.2, pretrained: bool = False, weights_path: str | Path | None = None) -> S3D:
    """S3D (Inception-v1, separable 3D convs; 8.32M params at 400 classes); ``pretrained``: torchvision's file."""
    model = S3D(num_classes, dropout)
    if pretrained or weights_path is not None:
        from torchvision.models.video import S3D_Weights

        from actionlab.models.tv_video import load_local_state_dict

        state = load_local_state_dict(S3D_Weights.KINETICS400_V1.url, "Kinetics-400 weights of torchvision's s3d",
                                      weights_path)
        load_torchvision_state_dict(model, state, load_head=num_classes == len(S3D_Weights.KINETICS400_V1.meta["categories"]))
    return model


@register_model("video")
def s3d_top_heavy(num_classes: int, dropout: float = 0.2, temporal_from: str = "mixed4b") -> S3D:
    """S3D with 2D convolutions below ``temporal_from`` (default: the lower half) and separable 3D above."""
    return S3D(num_classes, dropout, temporal_from=temporal_from)


@register_model("video")
def s3d_v3(num_classes: int, dropout: float = 0.5) -> S3Dv3:
    """S3D-v3 (the S3D-v3 reproduction paper): separable spatio-temporal convolutions on an Inception-v3 backbone."""
    return S3Dv3(num_classes, dropout)
