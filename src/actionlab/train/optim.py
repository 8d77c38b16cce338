"""Optimizers and the learning-rate schedule (a pure function of the step, nanoGPT's ``get_lr``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from actionlab.config import OptimConfig


def param_groups(model: nn.Module | Iterable[nn.Parameter], weight_decay: float,
                 decay_bias_and_norm: bool = False) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group.

    Tensors with fewer than 2 dims (biases, batch/layer-norm scales and shifts) get no weight decay
    (nanoGPT/timm practice: decaying them only shrinks scales the next layer must undo). Matrices,
    convolution kernels and embeddings are decayed. ``decay_bias_and_norm=True`` decays everything, like
    Chainer's ``WeightDecay`` hook that the LSTM ablation study used.
    """
    params = [p for p in (model.parameters() if isinstance(model, nn.Module) else model) if p.requires_grad]
    if decay_bias_and_norm or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module | Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name``: ``sgd`` (momentum), ``adam``, ``adamw`` or ``rmsprop``.

    Weight decay (``cfg.weight_decay``) is applied to weight matrices/kernels only, not to biases and
    normalization parameters, unless ``cfg.decay_bias_and_norm`` (see ``param_groups``). For ``sgd``,
    ``adam`` and ``rmsprop`` it is an L2 term added to the gradient (as in the LSTM ablation study); ``adamw`` decouples it.
    The learning rate set here is the base rate; the training loop overwrites it every step with ``lr_at``.
    """
    groups = param_groups(model, cfg.weight_decay, cfg.decay_bias_and_norm)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.name!r}; choose sgd, adam, adamw or rmsprop")


def lr_at(step: int, total_steps: int, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    ``schedule`` gives the rate after warm-up: ``constant`` (``cfg.lr``), ``step`` (times ``gamma`` every
    ``step_size`` epochs) or ``cosine`` (from ``cfg.lr`` at the end of warm-up to 0 at ``total_steps``).
    A linear warm-up over the first ``warmup_epochs * steps_per_epoch`` steps multiplies it by
    ``(step + 1) / warmup_steps``. Pure: the same arguments always give the same rate, so a resumed run
    continues the schedule exactly.
    """
    if step < 0 or total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"lr_at needs step >= 0, total_steps >= 1, steps_per_epoch >= 1; got "
                         f"{step}, {total_steps}, {steps_per_epoch}")
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "constant":
        lr = cfg.lr
    elif cfg.schedule == "step":
        lr = cfg.lr * cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
    elif cfg.schedule == "cosine":
        progress = min(1.0, max(0.0, (step - warmup) / max(1, total_steps - warmup)))
        lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose constant, step or cosine")
    if step < warmup:
        lr *= (step + 1) / warmup
    return lr
