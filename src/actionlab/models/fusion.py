"""How a 2D CNN fuses time: Karpathy et al.'s family, and a UCF-11 student project's per-frame VGG9.

Karpathy, Toderici, Shetty, Leung, Sukthankar, Fei-Fei, "Large-scale Video Classification with Convolutional
Neural Networks", CVPR 2014 (65.4% on UCF-101 with Sports-1M pre-training). One tower,
``C(96,11,3)-N-P-C(256,5,1)-N-P-C(384,3,1)-C(384,3,1)-C(256,3,1)-P-FC(4096)-FC(4096)`` (``C(d,f,s)``: d filters
of f x f, stride s; N: local response normalisation; P: 2 x 2 max-pooling; 170 x 170 inputs), four ways of
letting it see time, differing only in the temporal extent of the convolutions:

- ``single_frame_cnn``: the tower on one frame (the clip's middle one); clips are averaged per video at test.
- ``early_fusion``: conv1's filters span the whole clip (``11 x 11 x 3 x T``, T = 10 in the paper), so motion
  is combined at the pixel level, once.
- ``late_fusion``: two single-frame towers with shared weights on the first and last frame of the clip (15
  frames apart in the paper: ``clip.clip_len=16 clip.frame_interval=1``), merged at the first fully connected
  layer; no layer sees motion, FC6 sees the change.
- ``slow_fusion``: conv1 has temporal extent 4, stride 2 over 10 frames (4 responses), conv2 and conv3 extent 2,
  stride 2: higher layers see progressively more time (conv3 all 10 frames). Longer clips leave several
  responses after conv3, averaged in time.

All are ``(B, C, T, H, W) -> (B, K)`` 3D convolution networks (a 2D layer is a 3D one of temporal extent 1), so
they train from clips like the other video networks. ``width`` scales every layer (0.25: 24-96 filters, FC
1024, ~16x cheaper) for CPUs; ``batch_norm`` puts batch normalisation after every convolution instead of the
paper's LRN (easier to train from scratch on small datasets). The conv5 grid is average-pooled to the paper's
6 x 6 (identity at 170 px), so clips of 32 px and more run too.

The student project's models (VGG9, ``3x3`` convolutions 64-128-256-256-512-512, two FC 2048, 64 x 64 frames):

- ``fusion_vgg``: VGG9 scores every frame (500 scores), the ``(T, 500)`` scores are flattened and a linear layer
  maps them to the K classes (clip length fixed at build time);
- ``vgg9_average``: VGG9 scores every frame in the K classes, the logits are averaged over time (score fusion).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from actionlab.models.registry import register_model, scaled

# ----------------------------------------------------------------------------------- Karpathy et al. 2014

FUSIONS = ("single", "early", "late", "slow")
_CONVS = ((96, 11, 3, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
"""conv1..conv5: (filters, spatial size, stride, padding)."""
_TEMPORAL = {  # (extent, stride) of conv1..conv5
    "single": ((1, 1),) * 5,
    "early": (None, (1, 1), (1, 1), (1, 1), (1, 1)),  # None: the whole clip
    "late": ((1, 1),) * 5,
    "slow": ((4, 2), (2, 2), (2, 2), (1, 1), (1, 1)),
}
SLOW_MIN_FRAMES = 10  # conv3 needs 2 responses of conv2, which needs 4 of conv1: (4 - 1) * 2 + 4
MIN_SIZE = 32  # pool5 needs a 2 x 2 map: conv1 (11 x 11, stride 3) must give 8 x 8


class KarpathyNet(nn.Module):
    """One of the four networks (``fusion`` in :data:`FUSIONS`); ``clip_len`` sizes early fusion's conv1."""

    def __init__(self, num_classes: int, fusion: str = "slow", clip_len: int = 10, width: float = 1.0,
                 dropout: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion, self.clip_len = fusion, clip_len
        self.default_clip = {"clip_len": {"single": 1, "late": 16}.get(fusion, 10), "size": 170}
        layers: list[tuple[str, nn.Module]] = []
        cin = 3
        for i, ((filters, k, s, p), temporal) in enumerate(zip(_CONVS, _TEMPORAL[fusion]), start=1):
            t, ts = temporal or (clip_len, 1)
            cout = scaled(filters, width)
            layers.append((f"conv{i}", nn.Conv3d(cin, cout, (t, k, k), stride=(ts, s, s), padding=(0, p, p))))
            if batch_norm:
                layers.append((f"bn{i}", nn.BatchNorm3d(cout)))
            layers.append((f"relu{i}", nn.ReLU(inplace=True)))
            if not batch_norm and i <= 2:
                layers.append((f"norm{i}", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)))  # AlexNet's
            if i in (1, 2, 5):
                layers.append((f"pool{i}", nn.MaxPool3d((1, 2, 2), (1, 2, 2))))
            cin = cout
        self.features = nn.Sequential(OrderedDict(layers))
        towers = 2 if fusion == "late" else 1
        self.gridpool = nn.AdaptiveAvgPool3d((1, 6, 6))  # time averaged; identity for 170 px
        fc = scaled(4096, width)
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(towers * cin * 6 * 6, fc)), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(fc, fc)), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(fc, num_classes)),
        ]))

    def _frames(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The inputs of the tower(s): ``(B, C, T', H, W)`` each."""
        t = x.shape[2]
        if self.fusion == "single":
            return [x[:, :, t // 2:t // 2 + 1]]
        if self.fusion == "late":
            return [x[:, :, :1], x[:, :, -1:]]  # first and last frame, (T - 1) x frame_interval apart
        if self.fusion == "early" and t != self.clip_len:
            raise ValueError(f"early_fusion was built for clips of {self.clip_len} frames (its conv1 spans them), "
                             f"got {t}; set clip.clip_len={self.clip_len} or build it with clip_len={t}")
        if min(x.shape[-2:]) < MIN_SIZE:
            name = "single_frame_cnn" if self.fusion == "single" else f"{self.fusion}_fusion"
            raise ValueError(f"{name} needs frames of at least {MIN_SIZE} px, got "
                             f"{tuple(x.shape[-2:])}; raise clip.size")
        if self.fusion == "slow" and t < SLOW_MIN_FRAMES:
            raise ValueError(f"slow_fusion needs clips of at least {SLOW_MIN_FRAMES} frames, got {t}; set "
                             f"clip.clip_len={SLOW_MIN_FRAMES}")
        return [x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W) -> (B, K)`` logits."""
        # (B, C, T', 170, 170) -> conv1 (B, 96, t1, 54, 54) -> pool 27 -> conv2 27 -> pool 13 -> conv3-5 13 -> pool 6
        feats = [self.gridpool(self.features(f)).flatten(1) for f in self._frames(x)]  # (B, 256 * 6 * 6) each
        return self.classifier(torch.cat(feats, dim=1))  # late fusion: the two towers meet at fc6


@register_model("video")
def single_frame_cnn(num_classes: int, width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False
                     ) -> KarpathyNet:
    """Karpathy et al. 2014's single-frame network (the clip's middle frame); 170x170 inputs."""
    return KarpathyNet(num_classes, "single", width=width, dropout=dropout, batch_norm=batch_norm)


@register_model("video")
def early_fusion(num_classes: int, clip_len: int = 10, width: float = 1.0, dropout: float = 0.5,
                 batch_norm: bool = False) -> KarpathyNet:
    """Karpathy et al. 2014's early fusion: conv1 spans the clip's T frames (10 in the paper)."""
    return KarpathyNet(num_classes, "early", clip_len, width, dropout, batch_norm)


@register_model("video")
def late_fusion(num_classes: int, width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False
                ) -> KarpathyNet:
    """Karpathy et al. 2014's late fusion: two shared towers on the clip's first and last frame, merged at fc6."""
    return KarpathyNet(num_classes, "late", width=width, dropout=dropout, batch_norm=batch_norm)


@register_model("video")
def slow_fusion(num_classes: int, width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False
                ) -> KarpathyNet:
    """Karpathy et al. 2014's slow fusion: temporal extent 4, 2, 2 (stride 2) in conv1-3; 10-frame clips."""
    return KarpathyNet(num_classes, "slow", width=width, dropout=dropout, batch_norm=batch_norm)


# ----------------------------------------------------------------------------------- a student project's VGG9


class VGG9(nn.Module):
    """Small VGG for one frame: ``(N, 3, H, W) -> (N, num_classes)`` scores. The conv grid is average-pooled to
    4x4 (identity for 64x64 frames) so other frame sizes work too."""

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


class VGG9Average(_PerFrameModel):
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
def vgg9_average(num_classes: int, batch_norm: bool = False, dropout: float = 0.5) -> VGG9Average:
    """VGG9 per frame, class logits averaged over the clip (a UCF-11 student project's score fusion)."""
    return VGG9Average(num_classes, batch_norm, dropout)
