"""Temporal-model training speed, as ratios measured in one run (never collected by pytest).

(a) float32 matmul GFLOP/s of this machine (square 1024 and the LSTM's own GEMM shapes);
(b) the LSTM's achieved GFLOP/s in a full training step (forward + backward + Adam), FLOPs counted with
    ``torch.utils.flop_counter`` (and analytically); ratio b/a;
(c) actionlab's training throughput (sequences/s) through ``SequenceBatches`` + ``train_one_epoch`` vs
(d) the bare model step on pre-made tensors; ratio c/d (target >= 0.90);
(e) one epoch (training + validation, as ``fit`` runs it) of the default LSTM vs the previous default (hidden
    512, fc 512, 16-step segments, strided-window validation) on the same 600-video store-like data; ratio.

Config: batch 32, 30-step sequences of 1280-d features (MobileNetV2), LSTM hidden 512, fc 512, 101 classes.
Prints the epoch time implied for UCF-101 split 1 (9,537 training videos).

    .venv/bin/python benchmarks/bench_temporal.py [--device cuda] [--steps 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from actionlab.config import TrainConfig, apply_overrides, resolved_inference
from actionlab.evaluate.inference import predict_sequences
from actionlab.models import create_model
from actionlab.models.registry import model_entry
from actionlab.runs.train import model_kwargs
from actionlab.train.loop import sequence_loss, step_weights, train_one_epoch
from actionlab.train.optim import build_optimizer
from actionlab.train.sequences import SequenceBatches
from actionlab.utils import select_device

UCF101_TRAIN_VIDEOS = 9537


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(m: int, k: int, n: int, device: torch.device, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ b
        reps += 10
        sync(device)
    return 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


def analytic_step_flops(b: int, t: int, d: int, h: int, fc: int, k: int) -> float:
    """Forward FLOPs of LSTM(d->h) + Linear(h->fc) + Linear(fc->k) over (B, T), times 3 for fwd + bwd."""
    forward = 2 * b * t * (4 * h * (d + h) + h * fc + fc * k)
    return 3.0 * forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=8, help="training steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of (c) and (d), interleaved")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=30)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--hidden", type=int, default=512)
    args = ap.parse_args()
    device = select_device(args.device)
    B, T, D, H, FC, K = args.batch, args.seq, args.dim, args.hidden, 512, 101
    torch.manual_seed(0)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"config: batch {B}, seq {T}, dim {D}, hidden {H}, fc {FC}, classes {K}")

    # (a) matmul throughput: square, and the LSTM's GEMMs (input projection over all steps; recurrent step)
    peak = {
        "1024x1024x1024": matmul_gflops(1024, 1024, 1024, device),
        f"input proj {B * T}x{D}x{4 * H}": matmul_gflops(B * T, D, 4 * H, device),
        f"recurrent {B}x{H}x{4 * H}": matmul_gflops(B, H, 4 * H, device),
    }
    for name, g in peak.items():
        print(f"(a) matmul {name:>28}: {g:8.1f} GFLOP/s")
    a = peak["1024x1024x1024"]

    cfg = apply_overrides(TrainConfig(), {"batch_size": B, "sequence.seq_len": T, "epochs": 1})
    model = create_model("lstm", num_classes=K, input_dim=D, hidden_size=H, fc_size=FC).to(device)
    opt = build_optimizer(model, cfg.optim)
    x = torch.randn(B, T, D, device=device)
    y = torch.randint(0, K, (B,), device=device)
    weights = step_weights(T, cfg.sequence.loss_weighting, device)

    def bare_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = sequence_loss(model(x), y, weights)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        bare_step()
    counted = counter.get_total_flops()
    analytic = analytic_step_flops(B, T, D, H, FC, K)
    # flop_counter sees the GEMMs of the head but not inside CPU's fused aten::lstm, so the analytic count
    # (GEMMs only, 3x forward for forward + backward) is the one used; it ignores the cheap elementwise gates.
    print(f"(b) FLOPs per step: analytic {analytic / 1e9:.2f} G (flop_counter sees {counted / 1e9:.2f} G)")
    flops = max(counted, analytic)

    # Data for (c): videos of 40..200 steps (UCF-101-like lengths), float16 in RAM, one epoch = `steps` batches.
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((int(n), D), dtype=np.float32).astype(np.float16)
             for n in rng.integers(40, 200, size=B * args.steps)]
    labels = rng.integers(0, K, size=len(feats))
    batches = SequenceBatches(feats, labels, B, T, seed=0, device=device)

    for _ in range(2):  # warm-up both paths
        bare_step()
    train_one_epoch(model, itertools.islice(batches(0), 2), opt, cfg, epoch=0, steps_per_epoch=len(batches),
                    device=device)

    bare, pipeline, gather = [], [], []
    for r in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            bare_step()
        sync(device)
        bare.append(args.steps * B / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        train_one_epoch(model, batches(r + 1), opt, cfg, epoch=0, steps_per_epoch=len(batches), device=device)
        sync(device)
        pipeline.append(len(batches) * B / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in batches(r + 100):
            pass
        sync(device)
        gather.append(len(batches) * B / (time.perf_counter() - t0))

    d, c = statistics.median(bare), statistics.median(pipeline)
    b = flops * d / B / 1e9
    print(f"(b) LSTM training step: {b:8.1f} GFLOP/s achieved; b/a = {b / a:.2f} of 1024^3 matmul, "
          f"{b / peak[f'input proj {B * T}x{D}x{4 * H}']:.2f} of its input-projection GEMM")
    print(f"(c) actionlab SequenceBatches + train_one_epoch: {c:8.1f} sequences/s  (runs: "
          f"{', '.join(f'{v:.1f}' for v in pipeline)})")
    print(f"(d) bare model step on pre-made tensors:        {d:8.1f} sequences/s  (runs: "
          f"{', '.join(f'{v:.1f}' for v in bare)})")
    print(f"    batching alone: {statistics.median(gather):.0f} sequences/s")
    print(f"c/d = {c / d:.3f} (target >= 0.90)")
    print(f"UCF-101 split 1 ({UCF101_TRAIN_VIDEOS} videos): {UCF101_TRAIN_VIDEOS / c:.1f} s per epoch at (c), "
          f"{UCF101_TRAIN_VIDEOS / d:.1f} s at (d)")
    compare_defaults(device, args.repeats)


PREVIOUS_DEFAULT = {"model.hidden_size": 512, "model.fc_size": 512, "model.dropout": 0.0, "model.input_dropout": 0.0,
                    "model.input_proj": 0, "optim.weight_decay": 0.0, "sequence.sampling": "segment",
                    "sequence.short_policy": "reverse_repeat", "sequence.loss_weighting": "uniform",
                    "inference.mode": "windows", "inference.window": 16, "inference.stride": 8,
                    "inference.step_weighting": "linear"}


def epoch_seconds(cfg: TrainConfig, train: list[np.ndarray], labels: np.ndarray, val: list[np.ndarray],
                  device: torch.device, repeats: int) -> float:
    """Median seconds of one training epoch plus one validation pass of ``cfg``'s model."""
    torch.manual_seed(0)
    kwargs = model_kwargs(cfg.model, model_entry(cfg.model.name), {"input_dim": train[0].shape[1]})
    model = create_model(cfg.model.name, num_classes=int(labels.max()) + 1, **kwargs).to(device)
    opt = build_optimizer(model, cfg.optim)
    batches = SequenceBatches(train, labels, cfg.batch_size, cfg.sequence.seq_len, seed=0, device=device,
                              policy=cfg.sequence.short_policy, sampling=cfg.sequence.sampling)
    inf = resolved_inference(cfg)
    times = []
    for r in range(repeats + 1):  # the first is a warm-up
        sync(device)
        t0 = time.perf_counter()
        model.train()
        train_one_epoch(model, batches(r), opt, cfg, epoch=r, steps_per_epoch=len(batches), device=device)
        predict_sequences(model, val, inf, device)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def compare_defaults(device: torch.device, repeats: int) -> None:
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((25, 1280), dtype=np.float32).astype(np.float16) for _ in range(600 + 100)]
    labels = rng.integers(0, 10, size=600)
    train, val = feats[:600], [f.astype(np.float32) for f in feats[600:]]
    new = TrainConfig()
    old = apply_overrides(new, PREVIOUS_DEFAULT)
    t_old = epoch_seconds(old, train, labels, val, device, repeats)
    t_new = epoch_seconds(new, train, labels, val, device, repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(e) one epoch, 600 training + 100 validation videos of 25 x 1280-d steps (load average {load:.2f}):")
    print(f"    previous default LSTM (hidden 512, fc 512, segments, windows): {t_old:6.2f} s")
    print(f"    default LSTM ({new.model.input_proj}-d projection, hidden {new.model.hidden_size}, "
          f"{new.sequence.sampling} sampling): {t_new:6.2f} s")
    print(f"    default / previous = {t_new / t_old:.3f} (goal <= 0.25)")


if __name__ == "__main__":
    main()
