"""The one training loop, for temporal models on features and end-to-end video models alike.

``fit`` runs epochs of ``train_one_epoch``, validates through a callable (this module never imports
``actionlab.evaluate``), writes ``metrics.jsonl`` and checkpoints, stops early and resumes. Models return
per-step logits ``(B, T, K)`` (temporal) or ``(B, K)`` (video); labels are ``(B,)`` class indices.

Truncated BPTT (``cfg.sequence.tbptt = k``, recurrent models): a ``(B, T, D)`` batch is cut into
``ceil(T / k)`` chunks; each chunk starts from the previous chunk's hidden state *detached*, and is
followed by its own backward, gradient clipping and optimizer step. That is the practice of Chainer's
``loss.backward(); loss.unchain_backward(); optimizer.update()`` every k steps in the course handout's starter code (the
LSTM ablation study): gradients never cross a chunk boundary, but the state carries information from the
whole past. With ``k >= T`` it is exactly full BPTT.

Randomness: the torch generator is re-seeded from ``(seed, epoch, rank)`` at every epoch start, and batch
samplers derive theirs from ``(seed, epoch, ...)``, so an epoch replays identically after a resume.

Each epoch is committed in three atomic writes, ``metrics.jsonl``, then ``best.pt`` (when the epoch is the best
so far), then ``last.pt``. ``last.pt`` is the commit: a process killed anywhere before it resumes from the
previous epoch and redoes this one identically (rewriting the first two), so a resumed run evaluates the same
``best.pt`` and has the same ``metrics.jsonl`` as an uninterrupted one.

Divergence: an epoch whose training loss or weights are not finite (NaN or infinite) ends training;
``History.diverged_epoch`` says which, the loop state records it (a resume does not train on), and ``best.pt``
stays the best finite epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from actionlab.config import TrainConfig, to_dict
from actionlab.data.sampling import step_weights
from actionlab.models.checkpoint import load_checkpoint, save_checkpoint, unwrap_model
from actionlab.models.temporal import detach_state
from actionlab.rundir import RunDir
from actionlab.train.optim import lr_at
from actionlab.utils import (
    atomic_path,
    atomic_write_text,
    distributed_info,
    kill_point,
    select_device,
    strict_json,
)

logger = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class History:
    """What ``fit`` returns: one metrics dict per epoch plus the early-stopping outcome."""

    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    """Best monitored loss: ``val_loss`` when ``validate`` reports it, else ``train_loss``."""
    stopped_early: bool = False
    diverged_epoch: int | None = None
    """The epoch whose training loss or weights became NaN or infinite (training stopped there), else None."""


def step_weights_tensor(num_steps: int, weighting: str, device: torch.device | str | None = None) -> Tensor:
    """:func:`actionlab.data.sampling.step_weights` as a float32 tensor ``(T,)`` on ``device``.

    Normalizing keeps every weighting on the cross-entropy scale, so changing it does not silently change
    the effective learning rate (the "scale factor" and "simple addition" of per-step losses differ only by it).
    """
    return torch.as_tensor(step_weights(num_steps, weighting), dtype=torch.float32, device=device)


def sequence_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """``sum_t weights[t] * mean_b CE(logits[b, t], labels[b])`` for ``logits (B, T, K)``, ``labels (B,)``."""
    b, t, k = logits.shape
    ce = F.cross_entropy(logits.reshape(b * t, k).float(), labels.repeat_interleave(t), reduction="none")
    return (ce.view(b, t).mean(0) * weights).sum()


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank], spawn_key=(0x7041,)).generate_state(1)[0])


def train_one_epoch(model: nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
                    cfg: TrainConfig, *, epoch: int, steps_per_epoch: int, device: torch.device,
                    scaler: torch.amp.GradScaler | None = None, loss_fn: LossFn | None = None,
                    amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """One pass over ``batches``; returns ``{"lr", "train_loss", "train_acc", "steps"}``.

    ``train_loss`` is the (step-weighted) loss and ``train_acc`` the accuracy of the step-weighted sum of
    per-step log-probabilities (or of ``(B, K)`` logits), averaged over sequences (all ranks under DDP).
    """
    model.train()
    recurrent = getattr(unwrap_model(model), "is_recurrent", False)
    tbptt = cfg.sequence.tbptt if recurrent else 0
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    total_steps = cfg.epochs * steps_per_epoch
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on device: no sync per step
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count, lr = 0, 0.0
    for i, (x, y) in enumerate(batches):
        lr = lr_at(min(epoch * steps_per_epoch + i, total_steps - 1), total_steps, steps_per_epoch, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if x.ndim == 5 and device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        num_steps = x.shape[1] if x.ndim == 3 else 1
        weights_cpu = step_weights_tensor(num_steps, cfg.sequence.loss_weighting)  # (T,); decisions without a sync
        weights = weights_cpu.to(device, non_blocking=True)
        bounds = [(s, min(s + tbptt, num_steps)) for s in range(0, num_steps, tbptt)] if tbptt else [(0, None)]
        state, scores, batch_loss = None, 0.0, 0.0
        for start, end in bounds:
            chunk_w = weights[start:end] if x.ndim == 3 else weights
            train = loss_fn is not None or bool(weights_cpu[start:end].sum() > 0)
            with torch.set_grad_enabled(train), autocast:
                if tbptt:  # (B, k, D) chunk from the carried state
                    logits, state = model(x[:, start:end], state=state, return_state=True)
                else:
                    logits = model(x)  # (B, T, K) or (B, K)
                if loss_fn is not None:
                    loss, share = loss_fn(logits, y), 1.0 / len(bounds)
                elif logits.ndim == 3:
                    share = chunk_w.sum()
                    loss = sequence_loss(logits, y, chunk_w / share) if train else logits.new_zeros(())
                else:
                    loss, share = F.cross_entropy(logits.float(), y), 1.0
            if train:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.optim.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                kill_point("train:step")
            state = detach_state(state)
            batch_loss = batch_loss + loss.detach().double() * share
            logp = logits.detach().float().log_softmax(-1)
            scores = scores + (torch.einsum("btk,t->bk", logp, chunk_w) if logp.ndim == 3 else logp)
        loss_sum += batch_loss * len(y)
        correct += (scores.argmax(-1) == y).sum()
        count += len(y)
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(count), device=device).double()])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    loss_total, correct_total, n = totals.tolist()
    return {"lr": lr, "train_loss": loss_total / max(n, 1), "train_acc": correct_total / max(n, 1),
            "steps": i + 1 if count else 0}


EXPLODED_LOSS = 100.0
"""An epoch whose mean training loss is over this many times a uniform guess's (``ln K``) has diverged, finite
or not: no run that learns is there (``--set optim.lr=1e6`` gives ~1e5)."""


def fit(model: nn.Module, train_batches: Callable[[int], Iterable[Batch]], optimizer: torch.optim.Optimizer,
        cfg: TrainConfig, run_dir: str | Path | None = None,
        validate: Callable[[nn.Module], Mapping[str, float]] | None = None, *,
        steps_per_epoch: int | None = None, loss_fn: LossFn | None = None, resume: bool = False,
        device: str | torch.device | None = None, log: Callable[[dict[str, Any]], None] | None = None,
        meta: Mapping[str, Any] | None = None) -> History:
    """Train for ``cfg.epochs`` epochs (fewer with early stopping); returns the ``History``.

    Args:
        train_batches: ``epoch -> iterable of (x, y)`` (e.g. ``SequenceBatches``); under DDP it must already
            yield this rank's shard. ``steps_per_epoch`` defaults to ``len(train_batches)``.
        validate: ``model -> {"val_loss": ..., "val_top1": ...}``, called in eval mode under ``no_grad`` on
            rank 0 (the result is broadcast). ``val_loss`` drives ``best.pt`` and early stopping
            (``cfg.patience``); without it ``best.pt`` follows ``train_loss`` and there is no early stop.
        loss_fn: replaces the step-weighted cross-entropy (``cfg.sequence.loss_weighting``).
        resume: continue from ``run_dir/checkpoints/last.pt`` (model, optimizer, scaler, epoch, best,
            patience counter, history, RNG) and end where an uninterrupted run would.
        meta: saved in the checkpoints (``model_name``, ``model_kwargs``, ``classes``...) so that
            ``load_model_from_checkpoint`` can rebuild the model; the resolved config is added.
        log: called with each epoch's metrics dict (default: ``logger.info``).
    """
    rank, world, local_rank = distributed_info()
    model, device, amp_dtype = _place(model, cfg, device, rank, world, local_rank)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    steps_per_epoch = steps_per_epoch if steps_per_epoch is not None else _steps(train_batches)
    if cfg.sequence.tbptt and not getattr(unwrap_model(model), "is_recurrent", False):
        logger.warning("sequence.tbptt=%d ignored: %s is not recurrent", cfg.sequence.tbptt, type(model).__name__)
    log = log or (lambda row: logger.info("epoch %s", json.dumps(row)))
    run = RunDir(run_dir) if run_dir is not None else None
    state = _LoopState()
    if resume:
        state = _resume(run, model, optimizer, scaler, device, rank)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                  else None)
    classes = len((meta or {}).get("classes") or ())
    exploded = EXPLODED_LOSS * math.log(classes) if classes > 1 else math.inf
    hist = state.hist
    for epoch in range(state.start, cfg.epochs):
        if hist.stopped_early or hist.diverged_epoch is not None:
            break
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, rank))
        t0 = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch}
        row.update(train_one_epoch(net, train_batches(epoch), optimizer, cfg, epoch=epoch,
                                   steps_per_epoch=steps_per_epoch, device=device, scaler=scaler,
                                   loss_fn=loss_fn, amp_dtype=amp_dtype))
        # a NaN/inf loss, a loss far past a uniform guess's, or weights that became NaN/inf in the last steps
        diverged = (not math.isfinite(row["train_loss"]) or row["train_loss"] > exploded
                    or not all(bool(torch.isfinite(p).all()) for p in model.parameters()))
        if diverged:
            hist.diverged_epoch = epoch
        row.update(_validation(model, validate if not diverged else None, rank, world))
        row["seconds"] = time.perf_counter() - t0
        monitored = row.get("val_loss", row["train_loss"])
        if not diverged and monitored < hist.best_loss:  # (a NaN compares False: never the best)
            hist.best_loss, hist.best_epoch, state.bad_epochs = monitored, epoch, 0
        else:
            state.bad_epochs += 1
        hist.stopped_early = bool(cfg.patience and "val_loss" in row and state.bad_epochs >= cfg.patience)
        hist.epochs.append(row)
        if rank == 0 and run is not None:
            _commit(run, model, optimizer, scaler, epoch, state, {**dict(meta or {}), "config": to_dict(cfg)}, device)
        if rank == 0:
            log(row)
        if hist.stopped_early:
            logger.info("early stop after epoch %d: no val_loss improvement for %d epochs", epoch, state.bad_epochs)
        if diverged:
            logger.warning("training diverged at epoch %d (train_loss %s, or NaN/infinite weights): stopped; "
                           "checkpoints/best.pt is the best finite epoch (%s)", epoch, row["train_loss"],
                           hist.best_epoch if hist.best_epoch >= 0 else "none")
    return hist


@dataclass
class _LoopState:
    """What a resumed run continues from: the history, the next epoch and the early-stopping counter."""

    hist: History = field(default_factory=History)
    start: int = 0
    bad_epochs: int = 0


def _place(model: nn.Module, cfg: TrainConfig, device: str | torch.device | None, rank: int, world: int,
           local_rank: int) -> tuple[nn.Module, torch.device, torch.dtype | None]:
    """``(model on its device, device, autocast dtype or None)``: the process group under torchrun, SyncBatchNorm
    where it works, channels-last convolution weights (3D ones on CUDA only), and mixed precision when ``cfg.amp`` on
    CUDA."""
    device = torch.device(device) if device is not None else select_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    model.to(device)
    if world > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        if device.type == "cuda" and cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same Parameter objects: optimizer unchanged
        elif rank == 0:
            logger.warning("batch norm under DDP on %s: each process normalizes with its own %d-item batch "
                           "(SyncBatchNorm needs CUDA and sync_bn=true)", device.type, cfg.batch_size)
    conv_weights_channels_last(model, device)
    amp_dtype = None
    if cfg.amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return model, device, amp_dtype


def conv_weights_channels_last(model: nn.Module, device: torch.device) -> None:
    """Convolution weights in the layout they run fastest in, in place (the same Parameter objects): 2D ones
    channels-last on every device (oneDNN on CPU: 1.5x per TSM training step on 2 cores), 3D ones
    channels-last on CUDA only (cuDNN)."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5 and device.type == "cuda":
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)


def _steps(train_batches: Any) -> int:
    if not hasattr(train_batches, "__len__"):
        raise TypeError("fit needs steps_per_epoch= (the learning-rate schedule is per step) when "
                        "train_batches has no len(); SequenceBatches has one")
    return len(train_batches)


def _resume(run: RunDir | None, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            device: torch.device, rank: int) -> _LoopState:
    """Load ``last.pt`` into the model, optimizer, scaler and RNGs; the loop state to continue from."""
    if run is None or not run.last.is_file():
        logger.info("resume requested but %s has no last.pt: starting from scratch",
                    run.checkpoints if run is not None else "a run without a directory")
        return _LoopState()
    ckpt = load_checkpoint(run.last, map_location=device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    loop = ckpt["meta"]["loop"]
    hist = History(list(loop["history"]), loop["best_epoch"], loop["best_loss"], loop["stopped_early"],
                   loop.get("diverged_epoch"))
    torch.set_rng_state(loop["rng_cpu"].cpu())
    if device.type == "cuda" and loop.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(loop["rng_cuda"].cpu(), device)
    if rank == 0:
        _repair_commit(run, ckpt, hist)
    logger.info("resumed %s at epoch %d", run.last, ckpt["epoch"] + 1)
    return _LoopState(hist, ckpt["epoch"] + 1, loop["bad_epochs"])


def _validation(model: nn.Module, validate: Callable[[nn.Module], Mapping[str, float]] | None, rank: int,
                world: int) -> dict[str, float]:
    """``validate(model)`` in eval mode on rank 0, broadcast to every rank (``{}`` without it)."""
    val: list[Any] = [{}]
    if validate is not None and rank == 0:
        model.eval()
        with torch.no_grad():
            val = [{k: float(v) for k, v in validate(model).items()}]
        model.train()
    if world > 1:
        dist.broadcast_object_list(val, src=0)
    return val[0]


def _commit(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            epoch: int, state: _LoopState, extra: dict[str, Any], device: torch.device) -> None:
    """Commit an epoch: ``metrics.jsonl``, then ``best.pt`` (when it is the best), then ``last.pt`` (the commit)."""
    hist = state.hist
    loop = {"history": hist.epochs, "best_epoch": hist.best_epoch, "best_loss": hist.best_loss,
            "bad_epochs": state.bad_epochs, "stopped_early": hist.stopped_early, "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "diverged_epoch": hist.diverged_epoch}
    extra = {**extra, "loop": loop}
    _write_history(run, hist)
    if hist.best_epoch == epoch:
        save_checkpoint(run.best, model, optimizer, scaler, epoch, extra)
    save_checkpoint(run.last, model, optimizer, scaler, epoch, extra)
    kill_point("train:epoch")


def _write_history(run: RunDir, hist: History) -> None:
    atomic_write_text(run.history, "".join(strict_json(r) + "\n" for r in hist.epochs))


def _repair_commit(run: RunDir, ckpt: Mapping[str, Any], hist: History) -> None:
    """On resume: make ``metrics.jsonl`` and ``best.pt`` agree with ``last.pt``, the committed state.

    ``metrics.jsonl`` may hold a row of an epoch that was not committed (it is redone) or, written by an older
    actionlab, lack the last committed one. ``best.pt`` may hold an uncommitted epoch (redone and rewritten) or,
    after a crash between ``last.pt`` and ``best.pt`` of older versions, an earlier epoch: when the committed
    epoch is the best one, ``last.pt`` holds exactly its weights.
    """
    _write_history(run, hist)
    best = run.best
    if hist.best_epoch != ckpt["epoch"]:
        return
    if best.is_file() and load_checkpoint(best)["epoch"] == ckpt["epoch"]:
        return
    logger.warning("%s does not hold the best epoch %d (a crash between checkpoint writes); rewriting it from "
                   "last.pt", best, hist.best_epoch)
    with atomic_path(best, suffix=".pt") as tmp:
        shutil.copyfile(run.last, tmp)
