"""Prediction latency split by stage, PyTorch against the ONNX export, and served throughput against direct calls.

(a) For every run: per-video seconds in decode / features (backbone, or clip preprocessing) / head (the network
    giving class scores), median over the videos after one warm-up call, for the run on PyTorch (a temporal run's
    backbone too) and for its ONNX export (``actionlab export``) on ONNX Runtime, with export/PyTorch ratios. Each
    call scores the whole video and its timeline.
(b) For the first run: videos per second through ``actionlab serve`` (a real server process on a free localhost
    port, one inference worker, ``--clients`` concurrent uploads) against calling the same ``Predictor`` in a
    loop in this process, and their ratio (the cost of HTTP, multipart parsing and the temporary file).

Only ratios measured in one run compare; the load average is printed at the start and the end (figures from a
machine with load >= 1 are not worth quoting).

    .venv/bin/python benchmarks/bench_predict.py                    # trains two tiny runs on generated videos
    .venv/bin/python benchmarks/bench_predict.py --runs demo/runs/lstm demo/runs/tsm --manifest demo/manifest.csv
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from actionlab.cli import main as cli
from actionlab.data.manifest import read_manifest
from actionlab.predict.export import export_run
from actionlab.predict.predictor import Predictor

STAGES = ("decode", "features", "head")


def tiny_runs(out: Path) -> tuple[list[Path], Path]:
    """An LSTM over MobileNetV2 features and a quarter-width R(2+1)D, trained briefly on generated videos."""
    from actionlab.synth.families import make_synthetic_dataset

    root = make_synthetic_dataset(out / "data", classes=["GrowCircle", "ShrinkCircle", "FadeIn", "BounceBall"],
                                  groups=3, clips_per_group=2, num_frames=48, size=(96, 128), fps=25, seed=0)
    manifest, store = out / "manifest.csv", out / "feats.h5"
    steps = [["index", root, "-o", manifest, "--val-fraction", "0.34", "--workers", "0"],
             ["extract", manifest, "-o", store, "--num-frames", "16", "--workers", "0"],
             ["train", "--features", store, "--model", "lstm", "--run", out / "lstm", "--epochs", "2",
              "--device", "cpu", "--set", "sequence.seq_len=8", "--set", "inference.window=8"],
             ["train", "--manifest", manifest, "--preset", "video_cpu", "--run", out / "r2plus1d", "--epochs", "1",
              "--device", "cpu"]]
    for argv in steps:
        if cli([str(a) for a in argv]) != 0:
            raise SystemExit(f"failed: actionlab {' '.join(map(str, argv))}")
    return [out / "lstm", out / "r2plus1d"], manifest


def stage_times(predictor: Predictor, videos: list[Path]) -> dict[str, float]:
    """Median seconds per video of each stage (and the total), after one warm-up call."""
    predictor.scores(videos[0])
    rows = []
    for v in videos:
        t0 = time.perf_counter()
        s = predictor.scores(v)
        rows.append({**{k: s.timings.get(k, 0.0) for k in STAGES}, "total": time.perf_counter() - t0})
    return {k: statistics.median(r[k] for r in rows) for k in (*STAGES, "total")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_rate(run: Path, videos: list[Path], requests: int, clients: int) -> float:
    """Videos per second through a real ``actionlab serve`` process (one worker, ``clients`` concurrent)."""
    port = free_port()
    exe = Path(sys.executable).parent / "actionlab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    proc = subprocess.Popen([*cmd, "serve", str(run), "--port", str(port), "--workers", "1", "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        data = [(v.name, v.read_bytes()) for v in videos]

        def one(i: int) -> None:
            name, body = data[i % len(data)]
            with httpx.Client(base_url=url, timeout=600) as client:
                r = client.post("/predict", files={"file": (name, body, "application/octet-stream")})
            r.raise_for_status()

        one(0)  # warm-up
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(requests)))
        return requests / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", type=Path, help="run directories (default: train two tiny ones)")
    parser.add_argument("--manifest", type=Path, help="manifest whose test videos are predicted")
    parser.add_argument("--videos", type=int, default=8, help="test videos per measurement")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench_predict-") as tmp:
        work = Path(tmp)
        if args.runs:
            runs, manifest = args.runs, args.manifest
            if manifest is None:
                raise SystemExit("--runs needs --manifest (its test videos are the ones predicted)")
        else:
            runs, manifest = tiny_runs(work)
        m = read_manifest(manifest)
        videos = [m.abspath(r) for r in m.split("test")][: args.videos]
        print(f"\n(a) seconds per video, median of {len(videos)} test videos")
        print(f"{'run':<12} {'engine':<12} " + " ".join(f"{k:>9}" for k in (*STAGES, "total")))
        for run in runs:
            export = work / f"{run.name}.actionlab"
            export_run(run, export, overwrite=True)
            times = {}
            for engine, source in (("pytorch", run), ("onnx", export)):
                # the run entirely on PyTorch (a temporal run's backbone too), the export on ONNX Runtime
                backbone = {"backbone_engine": "torch"} if engine == "pytorch" else {}
                times[engine] = stage_times(Predictor(source, device="cpu", **backbone), videos)
                print(f"{run.name:<12} {engine:<12} " + " ".join(f"{times[engine][k]:9.4f}" for k in (*STAGES, "total")))
            print(f"{run.name:<12} {'onnx/torch':<12} " + " ".join(
                f"{times['onnx'][k] / max(times['pytorch'][k], 1e-9):9.2f}" for k in (*STAGES, "total")))
        run = runs[0]
        predictor = Predictor(run, device="cpu")
        predictor.predict(videos[0])
        t0 = time.perf_counter()
        for i in range(args.requests):
            predictor.predict(videos[i % len(videos)])
        direct = args.requests / (time.perf_counter() - t0)
        served = served_rate(run, videos, args.requests, args.clients)
        print(f"\n(b) {run.name}: direct Predictor {direct:.2f} videos/s; served (1 worker, {args.clients} clients) "
              f"{served:.2f} videos/s; served/direct {served / direct:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
