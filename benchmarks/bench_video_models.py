"""Training throughput of the end-to-end video networks, and how much of the machine's matmul speed they reach.

For each model: one training step = forward + backward + SGD step on a batch of clips. Prints clips/s, the
FLOPs of one step (counted with ``torch.utils.flop_counter.FlopCounterMode``, forward and backward; 2 per
multiply-add, grouped-convolution backward corrected), the
achieved GFLOP/s and its ratio to a plain float32 matmul's GFLOP/s measured in the same run. Only ratios measured
in one run are comparable (the machine may be shared).

On CPU the clips are reduced (at most 16 frames of 112x112; MViT: 96x96, its sizes must be multiples of 32) so the
whole run takes minutes; the clip used is printed per model. ``--full`` uses each model's ``default_clip``.

    .venv/bin/python benchmarks/bench_video_models.py                  # all video models, CPU, batch 2
    .venv/bin/python benchmarks/bench_video_models.py c3d s3d --steps 5 --batch 4
    .venv/bin/python benchmarks/bench_video_models.py --device cuda --full --amp
    .venv/bin/python benchmarks/bench_video_models.py r2plus1d_18 c3d_small --width 0.25 --clip 16x32 --batch 16
    .venv/bin/python benchmarks/bench_video_models.py tsm_mobilenet_v2 --clip 8x96 --batch 8 --layout both
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from actionlab.models import create_model, list_models, model_entry
from actionlab.train.loop import conv_weights_channels_last
from actionlab.utils import select_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _conv_backward_flop(grad_out_shape: Any, x_shape: Any, w_shape: Any, _bias: Any, _stride: Any, _padding: Any,
                        _dilation: Any, transposed: bool, _output_padding: Any, _groups: Any, output_mask: Any,
                        out_shape: Any = None, **kwargs: Any) -> int:
    # torch's formula ignores ``groups`` and overcounts depthwise convolutions (MobileNet, MViT pooling) by up to
    # ``groups`` times; the input gradient and the weight gradient each cost as many multiply-adds as the forward.
    fwd = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def matmul_gflops(device: torch.device, n: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of a float32 ``n x n`` matmul on ``device`` (best of ``repeats``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def clip_for(name: str, model: nn.Module, full: bool) -> tuple[int, int]:
    clip = getattr(model, "default_clip", {"clip_len": 16, "size": 112})
    t, s = clip["clip_len"], clip["size"]
    if full:
        return t, s
    t, s = min(t, 16), min(s, 112)
    if name == "c3d":
        t = 16  # pool5 needs 16 frames
    if name == "tv_s3d":
        s = 224  # fixed 2x7x7 final pooling
    return t, s


def build(name: str, num_classes: int, full: bool, width: float = 1.0) -> tuple[nn.Module, tuple[int, int]]:
    # the convolutional networks' channel multiplier, for the models that take one
    kwargs: dict[str, Any] = {"width": width} if "width" in model_entry(name).params else {}
    if name == "lrcn":
        kwargs.update(backbone="mobilenet_v2", freeze_backbone=False)  # end to end
    probe = create_model(name, num_classes, **kwargs) if name not in ("fusion_vgg", "tv_mvit_v1_b") else None
    if probe is not None:
        return probe, clip_for(name, probe, full)
    if name == "fusion_vgg":
        t, s = (30, 64)
        return create_model(name, num_classes, clip_len=t), (t, s)
    t, s = (16, 224) if full else (16, 96)
    return create_model(name, num_classes, clip_len=t, size=s), (t, s)


def bench_model(name: str, device: torch.device, batch: int, steps: int, full: bool, amp: bool,
                num_classes: int = 101, width: float = 1.0, clip: tuple[int, int] | None = None,
                channels_last: bool = True) -> dict[str, Any]:
    torch.manual_seed(0)
    model, (t, s) = build(name, num_classes, full, width)
    if clip is not None:
        t, s = clip
    model.to(device)
    if channels_last:  # as the training loop does
        conv_weights_channels_last(model, device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, t, s, s, device=device)
    if device.type == "cuda" and channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, num_classes, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})
    with counter:
        step()  # also the warm-up
    flops = counter.get_total_flops()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    sec = sorted(times)[len(times) // 2]  # median step
    return {"name": name, "clip": f"{t}x{s}x{s}", "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "gflop_step": flops / 1e9, "step_s": sec, "clips_s": batch / sec, "gflops": flops / sec / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model names (default: every video model)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (median reported)")
    parser.add_argument("--full", action="store_true", help="each model's default clip instead of a reduced one")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (c3d, c3d_small, r2plus1d_18)")
    parser.add_argument("--clip", help="TxS clip for every model, e.g. 16x32 (default: per model)")
    parser.add_argument("--layout", choices=("channels_last", "contiguous", "both"), default="channels_last",
                        help="conv weights as the training loop keeps them (channels_last), plain contiguous, or "
                             "both side by side (the speed-up of the layout)")
    args = parser.parse_args()
    clip = tuple(int(v) for v in args.clip.lower().split("x")) if args.clip else None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    names = args.models or list_models("video")

    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, load {os.getloadavg()}, "
          f"{args.clip or ('default' if args.full else 'reduced')} clips, width {args.width}, amp={args.amp}")
    print("GFLOP/s are compared with a float32 1024x1024 matmul timed just before each model (load drifts)\n")
    header = f"{'model':26s} {'clip':>12s} {'params':>8s} {'GFLOP/step':>11s} {'s/step':>8s} {'clips/s':>8s} " \
             f"{'GFLOP/s':>8s} {'matmul':>7s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    layouts = {"channels_last": [True], "contiguous": [False], "both": [False, True]}[args.layout]
    for name in names:
        for channels_last in layouts:
            base = matmul_gflops(device)
            r = bench_model(name, device, args.batch, args.steps, args.full, args.amp, width=args.width,
                            clip=clip, channels_last=channels_last)  # type: ignore[arg-type]
            label = r["name"] + ("" if len(layouts) == 1 else " (cl)" if channels_last else " (contig)")
            print(f"{label:26s} {r['clip']:>12s} {r['params_m']:7.1f}M {r['gflop_step']:11.1f} {r['step_s']:8.3f} "
                  f"{r['clips_s']:8.2f} {r['gflops']:8.1f} {base:7.1f} {r['gflops'] / base:6.2f}", flush=True)

if __name__ == "__main__":
    main()
