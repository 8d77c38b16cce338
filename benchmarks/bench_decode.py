"""Decode throughput of actionlab's frame-exact reader against the ``ffmpeg`` command-line tool.

Measured in one run, on one file (default: a 320x240, 300-frame XviD AVI with B-frames, like UCF-101,
encoded here with PyAV's ``mpeg4`` encoder; or any video given as an argument):

- actionlab full decode to RGB arrays (frames/s), single-threaded and with FFmpeg's threading;
- actionlab sparse decode (16 uniformly spaced frames), as seconds per clip and effective frames/s;
- ``ffmpeg -threads 1 -i f -f rawvideo -pix_fmt rgb24 -`` to /dev/null, and the same with default threads.

Prints the ratios actionlab/ffmpeg (target >= 0.5) and sparse/full time (target <= 1). Each timing is
the best of ``--repeat`` runs (the least disturbed by other processes). Not collected by pytest.

    python benchmarks/bench_decode.py [VIDEO] [--frames 300] [--gop 12] [--repeat 5]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from actionlab.data.sampling import uniform_indices
from actionlab.data.video.decode import VideoReader, probe


def make_xvid(path: Path, frames: int = 300, size: tuple[int, int] = (240, 320), gop: int = 12,
              seed: int = 0) -> Path:
    """A UCF-101-like clip: MPEG-4 Part 2 with the XVID tag, 2 B-frames, textured moving content."""
    h, w = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(h * 2, w * 2, 3)).astype(np.float32)
    for _ in range(3):  # smooth the noise into a natural-looking texture (white noise defeats motion search)
        texture = (texture + sum(np.roll(texture, s, a) for s in (-1, 1) for a in (0, 1))) / 5
    texture = (texture - texture.min()) * (255 / (texture.max() - texture.min()))
    texture = texture.astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_tag = "XVID"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 2
        stream.codec_context.bit_rate = 800_000  # UCF-101 clips average about 0.7 Mbit/s
        for i in range(frames):
            dy, dx = int(40 + 30 * np.sin(i / 20)), (2 * i) % w  # camera pan
            img = texture[dy:dy + h, dx:dx + w].copy()
            cy, cx = h // 2 + int(50 * np.sin(i / 7)), (5 * i) % w  # a moving "actor"
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < 400] = (220, 40, 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds) of ``repeat`` calls; CPU time counts this process and its children.

    On a shared machine wall time includes waiting for a core; CPU time does not.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = _cpu()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return min(walls), min(cpus)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def ffmpeg_time(path: Path, threads: int | None, repeat: int, frames: int | None = None) -> tuple[float, float]:
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if threads is not None:
        cmd += ["-threads", str(threads)]
    cmd += ["-i", str(path)]
    if frames is not None:
        cmd += ["-frames:v", str(frames)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]

    def run() -> None:
        # RGB to /dev/null: ffmpeg still converts and writes every frame, nothing is spent reading it back.
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)

    return best_time(run, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, help="a video file (default: generate an XviD clip)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--gop", type=int, default=12, help="keyframe interval of the generated clip")
    parser.add_argument("--sparse", type=int, default=16, help="frames of the sparse (uniform) sample")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.video or make_xvid(Path(tmp) / "clip.avi", frames=args.frames, gop=args.gop)
        info = probe(path)
        n = info.num_frames
        print(f"file: {path} ({info.codec}, {info.width}x{info.height}, {n} frames, {info.fps:.2f} fps)")
        print(f"probe (exact frame count, no decode): {best_time(lambda: probe(path), args.repeat)[0] * 1e3:.1f} ms")

        def full(threads: int) -> None:
            with VideoReader(path, threads=threads) as reader:
                frames = reader.get_frames(np.arange(n))
            assert frames.shape == (n, info.height, info.width, 3)

        sparse_idx = uniform_indices(n, args.sparse)
        seeks = []

        def sparse(threads: int) -> None:
            with VideoReader(path, threads=threads) as reader:
                frames = reader.get_frames(sparse_idx)
                seeks.append(reader.seeks)
            assert frames.shape[0] == len(sparse_idx)

        results: dict[str, tuple[float, float]] = {}
        for threads in (1, 0):
            results[f"full_t{threads}"] = best_time(lambda t=threads: full(t), args.repeat)
            results[f"sparse_t{threads}"] = best_time(lambda t=threads: sparse(t), args.repeat)
        have_ffmpeg = shutil.which("ffmpeg") is not None
        if have_ffmpeg:
            results["ffmpeg_t1"] = ffmpeg_time(path, 1, args.repeat)
            results["ffmpeg_auto"] = ffmpeg_time(path, None, args.repeat)
            # Process start-up + opening + one frame, to see the decode cost alone.
            results["ffmpeg_start"] = ffmpeg_time(path, 1, args.repeat, frames=1)

        print(f"\n{'what':50s} {'wall s':>8s} {'frames/s':>9s} {'CPU s':>8s} {'frames/CPU-s':>12s}")

        def row(label: str, key: str, frames: int, extra: str = "") -> None:
            wall, cpu = results[key]
            print(f"{label:50s} {wall:8.4f} {frames / wall:9.1f} {cpu:8.4f} {frames / max(cpu, 1e-9):12.1f}{extra}")

        for threads, label in ((1, "1 thread"), (0, "FFmpeg threads")):
            row(f"actionlab full decode to RGB, {label}", f"full_t{threads}", n)
            row(f"actionlab sparse {args.sparse}/{n} uniform, {label}", f"sparse_t{threads}", args.sparse,
                f"  ({seeks[-1]} seeks; {results[f'sparse_t{threads}'][0] * 1e3:.1f} ms per clip)")
        if have_ffmpeg:
            row("ffmpeg -threads 1 -> rawvideo rgb24 /dev/null", "ffmpeg_t1", n)
            row("ffmpeg default threads -> rawvideo rgb24 /dev/null", "ffmpeg_auto", n)
            row("ffmpeg -threads 1, first frame only (start-up)", "ffmpeg_start", 1)

        print("\nratios (measured in this run; > 1 means actionlab is faster)")
        if have_ffmpeg:
            for i, what in ((0, "wall"), (1, "CPU")):
                r1 = results["ffmpeg_t1"][i] / results["full_t1"][i]
                ra = results["ffmpeg_auto"][i] / results["full_t0"][i]
                net = (results["ffmpeg_t1"][i] - results["ffmpeg_start"][i]) / results["full_t1"][i]
                print(f"  actionlab/ffmpeg full-decode speed, {what:4s} 1 thread: {r1:5.2f}, default threads: {ra:5.2f}, "
                      f"1 thread without ffmpeg start-up: {net:5.2f}  (target >= 0.5)")
        else:
            print("  ffmpeg not found on PATH: no actionlab/ffmpeg ratio")
        for threads in (1, 0):
            rw = results[f"sparse_t{threads}"][0] / results[f"full_t{threads}"][0]
            rc = results[f"sparse_t{threads}"][1] / results[f"full_t{threads}"][1]
            print(f"  sparse/full time, threads={threads}: wall {rw:.2f}, CPU {rc:.2f}  (target <= 1)")


if __name__ == "__main__":
    main()
