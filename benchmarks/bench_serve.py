"""Memory and throughput of ``actionlab serve EXPORT`` beside ``actionlab serve RUN``: the same tiny LSTM run,
served from its run directory (PyTorch) and from its ONNX export (ONNX Runtime, PyAV and numpy; no torch).

For each server, a real process on a free localhost port (one inference worker, as on a 2-4 core machine):
seconds until ``/health`` answers, resident memory once started (``VmRSS``), then ``--requests`` uploads of one
real clip, ``--clients`` at a time (requests/s and median latency after one warm-up upload), and the peak
resident memory of the process over its whole life (``VmHWM`` from ``/proc/PID/status``, read before it stops).
Whether libtorch is mapped into the process is read from ``/proc/PID/maps``. Every answer must be a 200 with the
same top label as the others.

The clip is real footage: the first ``--seconds`` of OpenCV's ``vtest.avi`` (pedestrians, 768x576, Debian's
``opencv-doc``) re-encoded as H.264, or ``--clip FILE``. The run is trained here on generated videos (an LSTM
over MobileNetV2 features, as ``tests/conftest.py`` makes one) unless ``--run`` names one. Only figures of one
session compare; ``uptime`` is printed at the start and the end (numbers from a loaded machine are ratios, not
speeds).

    .venv/bin/python benchmarks/bench_serve.py
    .venv/bin/python benchmarks/bench_serve.py --run demo/runs/lstm --clip my.mp4 --requests 40 --clients 4
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cli(*argv: object) -> None:
    from actionlab.cli import main

    if main([str(a) for a in argv]) != 0:
        raise SystemExit(f"failed: actionlab {' '.join(map(str, argv))}")


def tiny_lstm_run(out: Path) -> Path:
    """An LSTM over MobileNetV2 features of 16 frames per video, trained briefly on generated videos."""
    from actionlab.synth.families import make_synthetic_dataset

    root = make_synthetic_dataset(out / "data", classes=["GrowCircle", "ShrinkCircle", "FadeIn", "BounceBall"],
                                  groups=3, clips_per_group=2, num_frames=48, size=(96, 128), fps=25, seed=0)
    cli("index", root, "-o", out / "manifest.csv", "--val-fraction", "0.34", "--workers", "0")
    cli("extract", out / "manifest.csv", "-o", out / "feats.h5", "--num-frames", "16", "--workers", "0")
    cli("train", "--features", out / "feats.h5", "--model", "lstm", "--run", out / "lstm", "--epochs", "2",
        "--device", "cpu", "--set", "sequence.seq_len=8", "--set", "inference.window=8")
    return out / "lstm"


def real_clip(out: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``vtest.avi`` as H.264 MP4 (the one video writer, actionlab's own)."""
    from actionlab.data.video.decode import VideoReader
    from actionlab.data.video.encode import VideoWriter

    if not VTEST.is_file():
        raise SystemExit(f"{VTEST} is missing (apt-get install opencv-doc), or give --clip FILE")
    clip = out / "vtest_head.mp4"
    with VideoReader(VTEST) as reader:
        n = min(reader.info.num_frames, max(1, round(seconds * reader.info.fps)))
        with VideoWriter(clip, reader.height, reader.width, reader.info.fps, "h264") as writer:
            for frame in reader.get_frames(range(n)):
                writer.write(frame)
    return clip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_mb(pid: int, field: str) -> float:
    """``VmRSS``/``VmHWM`` of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _libtorch(pid: int) -> bool:
    return any("libtorch" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def measure(source: Path, clip: Path, requests: int, clients: int) -> dict[str, Any]:
    """Serve ``source`` in a fresh process and load it with ``requests`` uploads, ``clients`` at a time."""
    port = _free_port()
    exe = Path(sys.executable).parent / "actionlab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "serve", str(source), "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"actionlab serve {source} exited with {proc.returncode}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        started_s = time.perf_counter() - t0
        rss_started = _status_mb(proc.pid, "VmRSS")
        body = clip.read_bytes()

        def one(_: int) -> tuple[float, str]:
            t = time.perf_counter()
            with httpx.Client(base_url=url, timeout=600) as client:
                r = client.post("/predict", files={"file": (clip.name, body, "application/octet-stream")})
            if r.status_code != 200:
                raise SystemExit(f"{source}: {r.status_code} {r.text}")
            return time.perf_counter() - t, r.json()["top"][0]["label"]

        warm = one(0)
        t1 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t1
        labels = {warm[1], *(label for _, label in results)}
        if len(labels) != 1:
            raise SystemExit(f"{source}: the same upload got different labels: {sorted(labels)}")
        engine = httpx.get(url + "/model", timeout=10).json()["engine"]
        return {"engine": engine, "startup_s": started_s, "rss_started_mb": rss_started,
                "rss_after_mb": _status_mb(proc.pid, "VmRSS"), "peak_rss_mb": _status_mb(proc.pid, "VmHWM"),
                "requests_per_s": requests / wall, "p50_s": statistics.median(t for t, _ in results),
                "libtorch": _libtorch(proc.pid), "label": labels.pop()}
    finally:
        proc.terminate()
        proc.wait(30)


ROWS = [("startup_s", "seconds until /health answers", "{:.1f}"),
        ("rss_started_mb", "RSS once started (MiB)", "{:.0f}"),
        ("rss_after_mb", "RSS after the load (MiB)", "{:.0f}"),
        ("peak_rss_mb", "peak RSS, VmHWM (MiB)", "{:.0f}"),
        ("requests_per_s", "requests/s", "{:.2f}"),
        ("p50_s", "median latency (s)", "{:.2f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a temporal run directory (default: train a tiny LSTM here)")
    parser.add_argument("--clip", type=Path, help="the uploaded video (default: the head of vtest.avi)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of vtest.avi in the default clip")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--work", type=Path, help="keep the run, export and clip here and reuse them next time")
    args = parser.parse_args()
    print(f"start: {uptime()} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = args.run or (work / "lstm" if (work / "lstm" / "checkpoints" / "best.pt").is_file()
                           else tiny_lstm_run(work))
        export = work / f"{run.name}.actionlab"
        if not (export / "manifest.json").is_file():
            cli("export", run, "-o", export)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
        clip = args.clip or real_clip(work, args.seconds)
        from actionlab.data.video.decode import VideoReader

        with VideoReader(clip) as reader:
            info = reader.info
        print(f"clip: {clip.name}, {info.num_frames} frames {info.width}x{info.height} {info.codec} "
              f"({clip.stat().st_size / 1024:.0f} KiB); {args.requests} uploads, {args.clients} at a time, 1 worker")
        results = {}
        for name, source in (("serve RUN", run), ("serve EXPORT", export)):
            results[name] = measure(source, clip, args.requests, args.clients)
            print(f"  measured {name} ({uptime()})")
    a, b = results["serve RUN"], results["serve EXPORT"]
    print(f"\n{'':32}{'serve RUN':>14}{'serve EXPORT':>14}{'EXPORT/RUN':>12}")
    print(f"{'engine':32}{a['engine']:>14}{b['engine']:>14}")
    for key, label, fmt in ROWS:
        print(f"{label:32}{fmt.format(a[key]):>14}{fmt.format(b[key]):>14}{b[key] / max(a[key], 1e-9):>12.2f}")
    print(f"{'libtorch mapped':32}{str(a['libtorch']):>14}{str(b['libtorch']):>14}")
    print(f"{'top label (every answer)':32}{a['label']:>14}{b['label']:>14}")
    print(f"end: {uptime()}")


if __name__ == "__main__":
    main()
