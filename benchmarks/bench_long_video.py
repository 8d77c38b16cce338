"""Peak memory of ``actionlab predict`` on long videos: it should not grow with the video's length.

Generates videos of each length (64x80 pixels, 25 fps, XviD: cheap to write and to decode; a square moving
over a slowly changing background), then runs, in a fresh child process per video,

    actionlab predict VIDEO --run RUN --segments --json --output annotated.mp4

and prints the child's peak resident memory (``ru_maxrss`` from ``os.wait4``), its wall time, the segments
found and the annotated video's frame count (which must equal the input's). The videos are decoded as a
stream (one batch of frames and one window at a time), so the 60-minute figure should stay close to the
10-minute one; what does grow is the frame table (a few integers per frame) and the timeline (one row per
window). Quote only figures measured on a quiet machine (the load average is printed).

    .venv/bin/python benchmarks/bench_long_video.py --run runs/r2p1d                   # 10 and 60 minutes
    .venv/bin/python benchmarks/bench_long_video.py --run runs/lstm --minutes 1,10 --window 8
    .venv/bin/python benchmarks/bench_long_video.py                                    # a tiny R(2+1)D first
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import VideoWriter


def long_video(path: Path, minutes: float, fps: int = 25, size: tuple[int, int] = (64, 80)) -> int:
    """Write a ``minutes``-long video; returns its frame count."""
    h, w = size
    n = int(minutes * 60 * fps)
    yy, xx = np.mgrid[0:h, 0:w]
    with VideoWriter(path, h, w, fps, "xvid") as out:
        for i in range(n):
            t = i / fps
            frame = np.empty((h, w, 3), np.uint8)
            frame[..., 0] = np.clip(xx * 2 + 60 + 40 * np.sin(t / 7), 0, 255).astype(np.uint8)
            frame[..., 1] = (yy * 3).astype(np.uint8)
            frame[..., 2] = 90
            cy, cx = int(h / 2 + h / 3 * np.sin(t)), int(w / 2 + w / 3 * np.cos(t / 3))
            frame[max(0, cy - 6):cy + 6, max(0, cx - 6):cx + 6] = 250
            out.write(frame)
    return n


def tiny_run(out: Path) -> Path:
    from actionlab.cli import main as cli
    from actionlab.synth.families import make_synthetic_dataset

    root = make_synthetic_dataset(out / "data", classes=["GrowCircle", "ShrinkCircle", "MoveRight", "MoveLeft"],
                                  groups=2, clips_per_group=2, num_frames=48, size=(64, 80), fps=25, seed=0)
    for argv in (["index", root, "-o", out / "manifest.csv", "--workers", "0"],
                 ["train", "--manifest", out / "manifest.csv", "--preset", "video_cpu", "--run", out / "r2plus1d",
                  "--epochs", "1", "--device", "cpu"]):
        if cli([str(a) for a in argv]) != 0:
            raise SystemExit(f"failed: actionlab {' '.join(map(str, argv))}")
    return out / "r2plus1d"


def measure(cmd: list[str], threads: int | None = None) -> tuple[int, float, int, str]:
    """``(peak RSS bytes, seconds, exit status, stdout)`` of ``cmd`` in a child process."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode()
    return usage.ru_maxrss * 1024, seconds, proc.returncode, text  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="run or export directory (default: train a tiny R(2+1)D)")
    parser.add_argument("--minutes", default="10,60", help="comma-separated video lengths")
    parser.add_argument("--window", type=float, help="passed to predict --window (seconds)")
    parser.add_argument("--hop", type=float, help="passed to predict --hop (seconds)")
    parser.add_argument("--threads", type=int, help="torch threads of the child (OMP_NUM_THREADS; default: all)")
    parser.add_argument("--keep", type=Path, help="write the videos here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    exe = Path(sys.executable).parent / "actionlab"
    actionlab = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    with tempfile.TemporaryDirectory(prefix="bench_long-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = args.run or tiny_run(work)
        extra = [*(["--window", str(args.window)] if args.window else []), *(["--hop", str(args.hop)] if args.hop else [])]
        baseline, *_ = measure([sys.executable, "-c", "import actionlab.cli.main, torch, av, numpy"], args.threads)
        print(f"run: {run}\npeak RSS of importing the CLI, torch and PyAV alone: {baseline / 2**20:.0f} MiB")
        print(f"{'minutes':>8} {'frames':>8} {'write s':>8} {'peak RSS':>10} {'predict s':>10} {'segments':>9} "
              f"{'windows':>8} {'annotated':>10}")
        for minutes in (float(m) for m in args.minutes.split(",")):
            video = work / f"long_{minutes:g}min.avi"
            t0 = time.perf_counter()
            frames = long_video(video, minutes) if not video.exists() else VideoReader(video).info.num_frames
            written = time.perf_counter() - t0
            annotated = work / f"long_{minutes:g}min_annotated.mp4"
            cmd = [*actionlab, "predict", str(video), "--run", str(run), "--segments", "--json", "--device", "cpu",
                   "--output", str(annotated), *extra]
            rss, seconds, code, out = measure(cmd, args.threads)
            if code != 0:
                raise SystemExit(f"predict failed ({code}): {' '.join(cmd)}")
            result = json.loads(out)[0]
            print(f"{minutes:8g} {frames:8d} {written:8.0f} {rss / 2**20:8.0f} MiB {seconds:10.0f} "
                  f"{len(result['segments']):9d} {len(result['timeline']):8d} {result['annotated']['frames']:10d}")
            if result["annotated"]["frames"] != frames:
                raise SystemExit(f"the annotated video has {result['annotated']['frames']} frames, the input {frames}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
