"""A small registry of model builders (torchvision-style): ``create_model("s3d")`` -> ``nn.Module`` in one jump.

Three kinds of models share it, one per input kind of a training run:

- ``temporal``: input feature sequences ``(B, T, D)``, output per-step logits ``(B, T, K)``;
  built as ``builder(num_classes=K, input_dim=D, **config_fields)``; they train on a feature store.
- ``video``: input clips ``(B, C, T, H, W)``, output ``(B, K)``; they train on decoded clips.
- ``frames``: input single frames ``(B, C, H, W)``, output ``(B, K)``; a 2D CNN fine-tuned on frames.

A builder takes exactly the keyword arguments in its signature: :func:`create_model` refuses any other one,
naming it and the models that do take it, so a setting is never dropped silently.

Every video network takes ``in_channels`` (default 3): ``create_model("r2plus1d_18", K, in_channels=2)`` reads
2-channel optical flow clips, its first convolution's RGB kernels averaged over colour and replicated over the
new channels (TSN's cross-modality initialisation, which keeps pretrained weights useful), unless the builder
takes ``in_channels`` itself.

Every image model carries the preprocessing its weights expect as ``model.normalization``
(``{"mean": (r, g, b), "std": (r, g, b)}``, torchvision's ``Weights.transforms()`` idea): the registration's
default for a network trained from scratch, replaced by the builder (:func:`with_normalization`) when it starts
from pretrained weights (ImageNet statistics for an ImageNet 2D backbone, Kinetics statistics for Kinetics
weights). Training, evaluation and prediction all read it from there, through the run's checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from actionlab.data.transforms import KINETICS_MEAN, KINETICS_STD
from actionlab.features.layers import cross_modality_init

KINDS = ("temporal", "video", "frames")
M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    builder: Callable[..., nn.Module]
    doc: str
    normalization: dict[str, tuple[float, ...]] | None
    """Input normalization of the model trained from scratch (image models); None for temporal models."""
    params: tuple[str, ...]
    """The keyword arguments the builder takes (besides ``num_classes``)."""


_MODELS: dict[str, ModelEntry] = {}


def register_model(kind: str, name: str | None = None,
                   normalization: tuple[Sequence[float], Sequence[float]] | None = (KINETICS_MEAN, KINETICS_STD)
                   ) -> Callable[[Callable[..., M]], Callable[..., M]]:
    """Decorator: ``@register_model("video")`` above a builder function named after the model.

    ``normalization`` is ``(mean, std)`` of a model trained from scratch (default: the Kinetics-400 statistics,
    as torchvision's video models); temporal models have none.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn: Callable[..., M]) -> Callable[..., M]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is registered twice")
        parameters = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            raise TypeError(f"builder {key!r} takes **kwargs: list its keyword arguments so that unknown "
                            "settings are refused")
        doc = (fn.__doc__ or "").strip().splitlines()
        norm = None if kind == "temporal" or normalization is None else _norm(*normalization)
        params = tuple(n for n in parameters if n != "num_classes")
        if kind == "video" and "in_channels" not in params:
            params += ("in_channels",)  # any video network reads flow clips (create_model adapts its stem)
        _MODELS[key] = ModelEntry(key, kind, fn, doc[0] if doc else "", norm, params)
        return fn

    return wrap


def _norm(mean: Sequence[float], std: Sequence[float]) -> dict[str, tuple[float, ...]]:
    return {"mean": tuple(float(m) for m in mean), "std": tuple(float(s) for s in std)}


def with_normalization(model: M, mean: Sequence[float], std: Sequence[float]) -> M:
    """Record on ``model`` the input normalization of the weights it was given (``model.normalization``)."""
    model.normalization = _norm(mean, std)  # type: ignore[assignment]
    return model


def normalization_of(model: nn.Module) -> dict[str, tuple[float, ...]]:
    """The ``{"mean", "std"}`` an image model expects its ``[0, 1]`` RGB input to be normalized with."""
    norm = getattr(model, "normalization", None)
    if norm is None:
        raise ValueError(f"{type(model).__name__} records no input normalization; build it with create_model")
    return dict(norm)


def scaled(channels: int, width: float) -> int:
    """``channels`` under a builder's ``width`` multiplier: ``round(channels * width)``, at least 8."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(8, int(round(channels * width)))


def _ensure_loaded() -> None:
    # Importing the package registers every model file.
    import actionlab.models  # noqa: F401


def list_models(kind: str | None = None) -> list[str]:
    _ensure_loaded()
    return sorted(n for n, e in _MODELS.items() if kind is None or e.kind == kind)


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name]


def model_kind(name: str) -> str:
    return model_entry(name).kind


def models_taking(param: str) -> list[str]:
    """The registered models whose builder takes the keyword argument ``param``."""
    _ensure_loaded()
    return sorted(n for n, e in _MODELS.items() if param in e.params)


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model; a keyword argument its builder does not take is an error."""
    entry = model_entry(name)
    unknown = sorted(set(kwargs) - set(entry.params))
    if unknown:
        raise TypeError(f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(entry.params)}")
    channels = 3
    if "in_channels" not in inspect.signature(entry.builder).parameters:
        channels = int(kwargs.pop("in_channels", 3))
    model = entry.builder(num_classes=num_classes, **kwargs)
    if channels != 3:
        cross_modality_init(model, channels)
    if entry.normalization is not None and getattr(model, "normalization", None) is None:
        model.normalization = dict(entry.normalization)  # type: ignore[assignment]
    return model
