"""Checkpoints: atomic writes of tensors and primitives only, so loading never unpickles code.

A checkpoint is a dict::

    {"format": "actionlab-checkpoint-v1", "epoch": int, "model": state_dict,
     "optimizer": state_dict | None, "scaler": state_dict | None, "meta": dict}

``meta`` holds what rebuilds the run: ``model_name``, ``model_kwargs`` (including ``num_classes`` and, for
temporal models, ``input_dim``), ``classes``, ``config`` (the resolved ``TrainConfig`` as a dict) and, for
``fit``'s ``last.pt``, the loop state (best loss, history, RNG states). Everything loads with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab.models.registry import create_model
from actionlab.utils import FileError, atomic_file, torch_load

logger = logging.getLogger(__name__)

FORMAT = "actionlab-checkpoint-v1"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``DistributedDataParallel``/``DataParallel``/``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def to_primitive(obj: Any, where: str = "extra") -> Any:
    """``obj`` with only tensors, numbers, strings, bools, None, lists, tuples and str-keyed dicts.

    Paths become strings and numpy values become Python numbers or tensors; anything else is an error
    naming the offending key (``weights_only`` loading would refuse it later, far from the cause).
    """
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, Mapping):
        return {str(k): to_primitive(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_primitive(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"checkpoint {where} is a {type(obj).__name__}; store only tensors and primitives "
                    "(convert it to a dict/list/str first)")


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scaler: torch.amp.GradScaler | None = None, epoch: int = 0,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``path`` atomically (a crash leaves the previous file); returns ``path``."""
    path = Path(path)
    ckpt = {
        "format": FORMAT,
        "epoch": int(epoch),
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "meta": to_primitive(dict(extra or {}), "extra"),
    }
    with atomic_file(path, need=tensor_bytes(ckpt) + (64 << 10)) as fh:  # a full disk: DiskFullError, old file kept
        torch.save(ckpt, fh)
    return path


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested dict/list (what ``torch.save`` will write, give or take its index)."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train first (or check the run directory)")
    fix = (f"delete {path.parent} and rerun `actionlab train ... --resume` to train the run again"
           if path.parent.name == "checkpoints" else "use a checkpoint written by actionlab's training")
    ckpt = torch_load(path, "the checkpoint", fix, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FileError(path, f"not an actionlab checkpoint (no format={FORMAT!r} entry)",
                        "re-save it with actionlab.models.checkpoint.save_checkpoint")
    return ckpt


def load_model_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint from its ``meta`` and load the weights; returns ``(model, meta)``.

    The model is in eval mode; ``meta`` is the checkpoint's meta plus its ``epoch``.
    """
    ckpt = load_checkpoint(path, map_location)
    meta = dict(ckpt["meta"])
    if "model_name" not in meta or "num_classes" not in meta.get("model_kwargs", {}):
        raise ValueError(f"{path} has no model_name/model_kwargs.num_classes in its meta, so the model cannot "
                         "be rebuilt; pass them in fit(meta=...) / save_checkpoint(extra=...)")
    kwargs = dict(meta["model_kwargs"])
    model = create_model(meta["model_name"], **kwargs)
    model.load_state_dict(ckpt["model"])
    meta["epoch"] = ckpt["epoch"]
    return model.to(map_location).eval(), meta
