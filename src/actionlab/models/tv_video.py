"""torchvision's video classifiers in the actionlab registry, with strictly offline Kinetics-400 weights.

``tv_r3d_18``, ``tv_mc3_18``, ``tv_r2plus1d_18``, ``tv_s3d``, ``tv_mvit_v1_b`` and ``tv_swin3d_t`` build the
torchvision network, optionally load its Kinetics-400 weights **from a local file only** and replace the
classification head for ``num_classes``. Input ``(B, 3, T, H, W)`` float, normalized as in Kinetics training
(mean ``(0.43216, 0.394666, 0.37645)``, std ``(0.22803, 0.22145, 0.216989)``); output ``(B, K)`` logits.

Weights are looked up (never downloaded) under their torchvision file name, e.g. ``r3d_18-b3b3357e.pth``, in
``$ACTIONLAB_WEIGHTS_DIR`` and then in torch hub's cache (``$TORCH_HOME/hub/checkpoints``), by
:mod:`actionlab.features.weights`; the sha256 prefix in torchvision's file names is checked. An explicit
``weights_path=`` is loaded as is (e.g. a converted or fine-tuned file).

:func:`load_local_state_dict` also serves the other model files that start from torchvision weights (I3D
inflation from GoogLeNet, S3D and R(2+1)D weight conversion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import video as tvv

from actionlab.features.weights import WeightsNotFoundError, WeightsSpec, read_weights_file, resolve_weights
from actionlab.models.registry import register_model

logger = logging.getLogger(__name__)

__all__ = ["WeightsNotFoundError", "build_torchvision_video", "load_local_state_dict"]


def load_local_state_dict(url: str, what: str, weights_path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision's weights file for ``url``, from disk only (``weights_only=True``), hash prefix checked.

    Search order and checks are :func:`actionlab.features.weights.resolve_weights`'s (``$ACTIONLAB_WEIGHTS_DIR``,
    torch hub's cache, installed packages). ``weights_path`` is loaded as is; ``what`` names the weights in errors.
    """
    if weights_path is None:
        filename = url.rsplit("/", 1)[-1]
        try:
            weights_path = resolve_weights(WeightsSpec(filename=filename, url=url))
        except WeightsNotFoundError as e:
            raise WeightsNotFoundError(f"{what}: {e}\nOr build the model with pretrained=False "
                                       "(random initialization).") from None
    state, _ = read_weights_file(weights_path)
    logger.info("loaded %s from %s", what, weights_path)
    return state


# ------------------------------------------------------------------------------------------ builders


def _set_fc(m: nn.Module, k: int) -> None:
    m.fc = nn.Linear(m.fc.in_features, k)


def _set_s3d_head(m: nn.Module, k: int) -> None:
    m.classifier[1] = nn.Conv3d(m.classifier[1].in_channels, k, kernel_size=1, bias=True)


def _set_mvit_head(m: nn.Module, k: int) -> None:
    m.head[1] = nn.Linear(m.head[1].in_features, k)


def _set_swin_head(m: nn.Module, k: int) -> None:
    m.head = nn.Linear(m.head.in_features, k)


# name -> (torchvision builder, its Kinetics-400 weights, head replacement, default clip)
_SPECS: dict[str, tuple[Callable[..., nn.Module], Any, Callable[[nn.Module, int], None], dict[str, int]]] = {
    "r3d_18": (tvv.r3d_18, tvv.R3D_18_Weights.KINETICS400_V1, _set_fc, {"clip_len": 16, "size": 112}),
    "mc3_18": (tvv.mc3_18, tvv.MC3_18_Weights.KINETICS400_V1, _set_fc, {"clip_len": 16, "size": 112}),
    "r2plus1d_18": (tvv.r2plus1d_18, tvv.R2Plus1D_18_Weights.KINETICS400_V1, _set_fc, {"clip_len": 16, "size": 112}),
    "s3d": (tvv.s3d, tvv.S3D_Weights.KINETICS400_V1, _set_s3d_head, {"clip_len": 16, "size": 224}),
    "mvit_v1_b": (tvv.mvit_v1_b, tvv.MViT_V1_B_Weights.KINETICS400_V1, _set_mvit_head, {"clip_len": 16, "size": 224}),
    "swin3d_t": (tvv.swin3d_t, tvv.Swin3D_T_Weights.KINETICS400_V1, _set_swin_head, {"clip_len": 32, "size": 224}),
}


def build_torchvision_video(name: str, num_classes: int, pretrained: bool = False,
                            weights_path: str | Path | None = None, **tv_kwargs: Any) -> nn.Module:
    """torchvision's ``name`` with a ``num_classes`` head; ``pretrained`` loads local Kinetics-400 weights first.

    ``tv_kwargs`` go to the torchvision builder (e.g. ``dropout`` for S3D).
    """
    builder, weights, set_head, clip = _SPECS[name]
    if pretrained or weights_path is not None:
        state = load_local_state_dict(weights.url, f"Kinetics-400 weights of torchvision's {name}", weights_path)
        model = builder(num_classes=len(weights.meta["categories"]), **tv_kwargs)
        model.load_state_dict(state)
        if num_classes != len(weights.meta["categories"]):
            set_head(model, num_classes)
    else:
        model = builder(num_classes=num_classes, **tv_kwargs)
    model.default_clip = dict(clip)  # type: ignore[assignment]
    return model


@register_model("video")
def tv_r3d_18(num_classes: int, pretrained: bool = False, weights_path: str | None = None) -> nn.Module:
    """torchvision R3D-18 (full 3D ResNet-18, 33.4M params), 16x112x112 clips."""
    return build_torchvision_video("r3d_18", num_classes, pretrained, weights_path)


@register_model("video")
def tv_mc3_18(num_classes: int, pretrained: bool = False, weights_path: str | None = None) -> nn.Module:
    """torchvision MC3-18 (3D convs in the first stage, 2D after), 16x112x112 clips."""
    return build_torchvision_video("mc3_18", num_classes, pretrained, weights_path)


@register_model("video")
def tv_r2plus1d_18(num_classes: int, pretrained: bool = False, weights_path: str | None = None) -> nn.Module:
    """torchvision R(2+1)D-18 (31.5M params), 16x112x112 clips."""
    return build_torchvision_video("r2plus1d_18", num_classes, pretrained, weights_path)


@register_model("video")
def tv_s3d(num_classes: int, pretrained: bool = False, weights_path: str | None = None, dropout: float = 0.2) -> nn.Module:
    """torchvision S3D (8.3M params); its fixed 2x7x7 final pooling needs clips of >= 13 frames of 216x216 px."""
    return build_torchvision_video("s3d", num_classes, pretrained, weights_path, dropout=dropout)


@register_model("video")
def tv_mvit_v1_b(num_classes: int, pretrained: bool = False, weights_path: str | None = None,
                 clip_len: int = 16, size: int = 224) -> nn.Module:
    """torchvision MViT-v1-B (36.6M params); absolute position embeddings fix the clip to ``clip_len x size x size``.

    torchvision builds it for 16x224x224 (the only size with pretrained weights); for another size the position
    embeddings are replaced by freshly initialized ones of the right shape (MViT-v1 uses no other size-bound
    parameters). ``clip_len`` must be even and ``size`` a multiple of 32.
    """
    if (clip_len, size) != (16, 224):
        if pretrained or weights_path is not None:
            raise ValueError(f"tv_mvit_v1_b's Kinetics weights need clip_len=16 and size=224, got {clip_len}, {size}")
        if clip_len % 2 or size % 32:
            raise ValueError(f"tv_mvit_v1_b needs an even clip_len and a size divisible by 32, got {clip_len}, {size}")
    model = build_torchvision_video("mvit_v1_b", num_classes, pretrained, weights_path)
    if (clip_len, size) != (16, 224):
        t, s = (n // k for n, k in zip((clip_len, size), model.conv_proj.stride[:2]))  # patches: 2x4x4 px
        old = model.pos_encoding
        model.pos_encoding = type(old)(old.class_token.numel(), (s, s), t, rel_pos_embed=False)
        for p in model.pos_encoding.parameters():  # MViT's initialization
            nn.init.trunc_normal_(p, std=0.02)
    model.default_clip = {"clip_len": clip_len, "size": size}  # type: ignore[assignment]
    return model


@register_model("video")
def tv_swin3d_t(num_classes: int, pretrained: bool = False, weights_path: str | None = None) -> nn.Module:
    """torchvision Video Swin-T (28.2M params), 32x224x224 clips (any size works; windows are padded)."""
    return build_torchvision_video("swin3d_t", num_classes, pretrained, weights_path)
