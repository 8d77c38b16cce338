"""Feature-extraction throughput, measured in one run so the ratios are comparable.

(a) bare engine: ONNX Runtime frames/s on pre-made ``(N, 3, 224, 224)`` tensors (MobileNetV2, ImageNet weights)
(c) eager PyTorch frames/s on the same tensors (channels-last, ``inference_mode``)
(b) is the end-to-end extraction benchmark (decode + preprocess + engine + HDF5), owned by the store/extract
    engineer: ``bench_pipeline`` below when present.
(d) the view's cost: ONNX Runtime frames/s on the whole frame (``extract --view full``, the default) of a 4:3 and
    a 16:9 video against the 224 x 224 centre crop (``--view centre``), timed alternately in one run.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--backbone mobilenet_v2] [--batch 32] [--repeats 5]``.
Prints frames/s of each and the ratio (a)/(c). Never collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from actionlab.features.backbones import create_backbone, get_backbone_spec
from actionlab.features.engine import OnnxEngine, TorchEngine, cpu_threads, create_engine


def _frames_per_second(run: Callable[[np.ndarray], object], batch: np.ndarray, repeats: int) -> float:
    run(batch)  # warm-up: allocations, oneDNN/ORT kernel selection
    best = float("inf")
    for _ in range(repeats):  # best of N: least disturbed by other processes on a shared machine
        t0 = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - t0)
    return len(batch) / best


def bench_engine_onnx(backbone: str = "mobilenet_v2", batch: int = 32, repeats: int = 5,
                      onnx_dir: str | None = None) -> float:
    """(a) ONNX Runtime frames/s on pre-made tensors (export time excluded)."""
    spec = get_backbone_spec(backbone)
    model = create_backbone(backbone, weights="imagenet" if spec.weights else "none")
    engine = create_engine(model, spec, "cpu", "onnx", onnx_dir=onnx_dir or tempfile.mkdtemp())
    assert isinstance(engine, OnnxEngine)
    x = np.random.default_rng(0).standard_normal((batch, 3, spec.preprocess.crop, spec.preprocess.crop),
                                                 dtype=np.float32)
    return _frames_per_second(engine, x, repeats)


def bench_engine_torch(backbone: str = "mobilenet_v2", batch: int = 32, repeats: int = 5) -> float:
    """(c) eager PyTorch frames/s on the same tensors (CPU, channels-last, inference_mode)."""
    spec = get_backbone_spec(backbone)
    model = create_backbone(backbone, weights="imagenet" if spec.weights else "none")
    engine = TorchEngine(model, torch.device("cpu"))
    x = np.random.default_rng(0).standard_normal((batch, 3, spec.preprocess.crop, spec.preprocess.crop),
                                                 dtype=np.float32)
    return _frames_per_second(engine, x, repeats)


# ----------------------------------------------------------------------------------- (b) whole extraction path

_RSS_CHILD = """
import json, resource, sys
from actionlab.config import ExtractConfig, from_dict
from actionlab.features.extract import extract_features
a = json.loads(sys.argv[1])
r = extract_features(a["manifest"], a["out"], from_dict(ExtractConfig, a["cfg"]))
print(json.dumps({"frames": r.frames, "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _xvid_dataset(root: str, classes: int, groups: int, frames: int = 60) -> str:
    """A UCF-101-layout set of 320x240 XviD videos (``classes x groups x 2`` of them); returns a manifest path."""
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import write_manifest
    from actionlab.synth.families import make_synthetic_dataset

    make_synthetic_dataset(os.path.join(root, "data"), classes=classes, groups=groups, clips_per_group=2,
                           num_frames=frames, size=(240, 320), seed=0)
    manifest, _ = index_dataset(os.path.join(root, "data"), workers=1)
    path = os.path.join(root, "manifest.csv")
    write_manifest(manifest, path)
    return path


def bench_pipeline(args: argparse.Namespace, engine_fps: float | None = None) -> dict[str, float]:
    """(b) ``extract_features`` frames/s: decode (workers) + preprocess + engine + HDF5 parts + merge + stats.

    Uses 32 XviD videos of 320x240, 25 uniform frames each, batches of ``--batch`` frames, 2 decoding workers,
    the ONNX engine. Prints the end-to-end rate (whole call: model load, extraction, merge) and the steady
    rate (first to last finished video), their ratio to (a), and the peak RSS of a fresh process extracting
    a small set and a 4x larger one (it should stay flat: bounded prefetch, part files).
    """
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    from actionlab.config import ExtractConfig
    from actionlab.features.extract import extract_features

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ACTIONLAB_CACHE", os.path.join(tmp, "cache"))  # the export is not timed below
        small = _xvid_dataset(os.path.join(tmp, "small"), classes=2, groups=2)  # 8 videos
        large = _xvid_dataset(os.path.join(tmp, "large"), classes=4, groups=4)  # 32 videos
        spec = get_backbone_spec(args.backbone)
        cfg = ExtractConfig(backbone=args.backbone, weights="imagenet" if spec.weights else "none",
                            sampler="uniform", num_frames=25, batch_size=args.batch, workers=2, engine="onnx")
        extract_features(small, os.path.join(tmp, "warm.h5"), cfg)  # ONNX export + cache, page cache

        # The bare engine again, sustained over as many frames as (b), right before and right after (b): on a
        # shared machine the load drifts, and (a)'s best-of-N picks its quietest moment.
        model = create_backbone(args.backbone, weights=cfg.weights)
        engine = create_engine(model, spec, "cpu", "onnx")
        x = np.random.default_rng(0).standard_normal((args.batch, 3, spec.preprocess.crop, spec.preprocess.crop),
                                                     dtype=np.float32)

        def sustained() -> float:
            engine(x)
            t0 = time.perf_counter()
            for _ in range(800 // args.batch):
                engine(x)
            return (800 // args.batch) * args.batch / (time.perf_counter() - t0)

        before = sustained()
        stamps: list[float] = []
        report = extract_features(large, os.path.join(tmp, "large.h5"), cfg,
                                  progress=lambda done, total: stamps.append(time.perf_counter()))
        after = sustained()
        bare = (before + after) / 2
        steady = (report.frames - report.frames / report.done) / (stamps[-1] - stamps[1])  # after video 1
        results.update(pipeline_fps=report.frames_per_second, steady_fps=steady, bare_sustained_fps=bare)
        print(f"(b) extract_features   : {report.frames_per_second:8.1f} frames/s end to end "
              f"({report.done} videos, {report.frames} frames, {report.seconds:.1f} s); "
              f"{steady:.1f} frames/s steady")
        print(f"    bare engine around (b): {before:.1f} before, {after:.1f} after (sustained, 800 frames)")
        if engine_fps:
            print(f"ratio (b)/(a)          : {report.frames_per_second / engine_fps:8.2f} end to end, "
                  f"{steady / engine_fps:.2f} steady (vs (a)'s best-of-N)")
        print(f"ratio (b)/bare         : {report.frames_per_second / bare:8.2f} end to end, "
              f"{steady / bare:.2f} steady (vs the sustained bare engine around (b); target >= 0.85)")
        fixed = max(0.0, report.seconds - report.frames / steady)  # model load, workers start, merge
        print(f"UCF-101 estimate       : 13,320 videos x 25 frames = {(fixed + 13320 * 25 / steady) / 3600:.2f} h "
              f"at the steady rate + {fixed:.1f} s fixed cost ({13320 * 25 / report.frames_per_second / 3600:.2f} h "
              f"at the end-to-end rate of this small run)")

        for name, manifest in (("small (8 videos)", small), ("large (32 videos)", large)):
            a = json.dumps({"manifest": manifest, "out": os.path.join(tmp, f"rss-{len(name)}.h5"),
                            "cfg": asdict(cfg)})
            out = subprocess.run([sys.executable, "-c", _RSS_CHILD, a], capture_output=True, text=True,
                                 check=True, env=os.environ.copy())
            rss = json.loads(out.stdout.strip().splitlines()[-1])
            results[f"rss_{name.split()[0]}_mb"] = rss["self_mb"]
            print(f"peak RSS {name:17s}: main {rss['self_mb']:7.1f} MiB, largest worker {rss['workers_mb']:7.1f} MiB"
                  f" ({rss['frames']} frames)")
    return results


def bench_engines_interleaved(backbone: str = "mobilenet_v2", batch: int = 32, repeats: int = 5,
                              onnx_dir: str | None = None) -> tuple[float, float]:
    """(a) and (c) timed alternately, best of ``repeats`` each: a fair ratio when the load on the machine varies."""
    spec = get_backbone_spec(backbone)
    model = create_backbone(backbone, weights="imagenet" if spec.weights else "none")
    onnx = create_engine(model, spec, "cpu", "onnx", onnx_dir=onnx_dir or tempfile.mkdtemp())
    eager = TorchEngine(create_backbone(backbone, weights="imagenet" if spec.weights else "none"),
                        torch.device("cpu"))
    x = np.random.default_rng(0).standard_normal((batch, 3, spec.preprocess.crop, spec.preprocess.crop),
                                                 dtype=np.float32)
    best = {"onnx": float("inf"), "torch": float("inf")}
    for engine in (onnx, eager):
        engine(x)  # warm-up
    for _ in range(repeats):
        for name, engine in (("onnx", onnx), ("torch", eager)):
            t0 = time.perf_counter()
            engine(x)
            best[name] = min(best[name], time.perf_counter() - t0)
    return batch / best["onnx"], batch / best["torch"]


def bench_views(backbone: str = "mobilenet_v2", batch: int = 32, repeats: int = 5,
                onnx_dir: str | None = None) -> dict[str, float]:
    """(d) frames/s of one ONNX engine (any height and width) on the centre crop and on whole 4:3 / 16:9 frames."""
    spec = get_backbone_spec(backbone)
    model = create_backbone(backbone, weights="imagenet" if spec.weights else "none")
    engine = create_engine(model, spec, "cpu", "onnx", onnx_dir=onnx_dir or tempfile.mkdtemp())
    crop, rng = spec.preprocess.crop, np.random.default_rng(0)
    shapes = {"centre": (crop, crop), "full 4:3": (crop, round(crop * 4 / 3)), "full 16:9": (crop, round(crop * 16 / 9))}
    inputs = {name: rng.standard_normal((batch, 3, *hw), dtype=np.float32) for name, hw in shapes.items()}
    best = dict.fromkeys(shapes, float("inf"))
    for x in inputs.values():
        engine(x)  # warm-up, and ONNX Runtime's kernel choice for each shape
    for _ in range(repeats):
        for name, x in inputs.items():
            t0 = time.perf_counter()
            engine(x)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: batch / t for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"backbone {args.backbone}, batch {args.batch}, {cpu_threads()} cores, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    onnx_fps, torch_fps = bench_engines_interleaved(args.backbone, args.batch, args.repeats)
    print(f"(a) onnxruntime engine : {onnx_fps:8.1f} frames/s")
    print(f"(c) eager pytorch      : {torch_fps:8.1f} frames/s")
    print(f"ratio (a)/(c)          : {onnx_fps / torch_fps:8.2f}x")
    views = bench_views(args.backbone, args.batch, args.repeats)
    for name, fps in views.items():
        print(f"(d) view {name:14s}: {fps:8.1f} frames/s, {fps / views['centre']:.2f}x the centre crop's")
    pipeline = globals().get("bench_pipeline")
    if callable(pipeline):
        pipeline(args, onnx_fps)


if __name__ == "__main__":
    main()
