"""A small registry of model builders (torchvision-style): ``create_model("s3d")`` -> ``nn.Module`` in one jump.

Two kinds of models share it:

- ``temporal``: input feature sequences ``(B, T, D)``, output per-step logits ``(B, T, K)``;
  built as ``builder(num_classes=K, input_dim=D, **config_fields)``.
- ``video``: input clips ``(B, C, T, H, W)``, output ``(B, K)``; built as ``builder(num_classes=K, **kwargs)``.

Builders accept and ignore keyword arguments they do not use, so one ``ModelConfig`` can build any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

KINDS = ("temporal", "video")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    builder: Callable[..., nn.Module]
    doc: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(kind: str, name: str | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: ``@register_model("video")`` above a builder function named after the model."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[key] = ModelEntry(key, kind, fn, doc[0] if doc else "")
        return fn

    return wrap


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


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered model. Unused keyword arguments are ignored by the builders."""
    return model_entry(name).builder(num_classes=num_classes, **kwargs)
