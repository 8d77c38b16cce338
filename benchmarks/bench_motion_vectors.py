"""Flow fields per second: Farneback vs DIS vs the decoder's motion vectors (``flow.algorithm = "mv"``), measured
side by side in one run on the same videos.

For each video, the whole per-video flow step of extraction (``features.flow.FlowStep`` with ``flow.output=raw``:
open, decode what the algorithm needs, compute the fields of the 25 sampled positions x ``flow.stack`` pairs,
quantise) runs once per algorithm, the algorithms alternating video by video so that load changes hit them
alike; best of ``--repeats`` per video. A field is one frame pair's ``(H, W, 2)`` flow (pairs shared by
overlapping windows count once). Also shown: decoding the frames Farneback/DIS need to RGB, without flow
(``VideoReader.get_frames``), which is the floor of those two.

Default settings (``flow.size`` = mobilenet_v2's 256, ``flow.stack`` 5, 25 positions), on generated XviD
videos of a family (``gestures`` by default: 320x180 at 30 fps, 48-120 frames). Prints the load average
first, fields/s per algorithm, the speed ratios to Farneback, and the time for UCF-101's 13,320 videos on two
processes (extrapolated from the mean time per video; UCF-101's videos are longer, 186 frames on average, which
costs ``mv`` more than the others since it decodes every frame).

Run: ``.venv/bin/python benchmarks/bench_motion_vectors.py [--videos 20] [--repeats 2] [--family gestures]
[--manifest M.csv]`` (``--manifest``: videos evenly spread over an indexed dataset instead of generated ones).
Never collected by pytest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import cv2
import numpy as np

from actionlab.config import ExtractConfig, FlowConfig
from actionlab.data.video.decode import VideoReader
from actionlab.features.flow import FlowStep, flow_windows
from actionlab.features.frames import sample_frame_indices

UCF101_VIDEOS = 13320
ALGORITHMS = ("farneback", "dis", "mv")


def _videos(root: str, family: str, videos: int, manifest: str | None) -> list[str]:
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import read_manifest, write_manifest
    from actionlab.synth.families import family_classes, make_synthetic_dataset

    if manifest is None:
        classes = family_classes(family)
        per_class = max(2, -(-videos // len(classes)))  # the UCF-101 layout needs 2 groups per class
        make_synthetic_dataset(os.path.join(root, "data"), family=family, groups=per_class, clips_per_group=1,
                               seed=0, workers=1)
        m, _ = index_dataset(os.path.join(root, "data"), workers=1)
        manifest = os.path.join(root, "manifest.csv")
        write_manifest(m, manifest)
    m = read_manifest(manifest)
    # evenly spread records: classes (and so lengths and motions) spread over the sample
    records = [m.records[i] for i in np.unique(np.linspace(0, len(m.records) - 1, videos).round().astype(int))]
    return [str(m.abspath(r)) for r in records]


def _fields(path: str, cfg: ExtractConfig) -> int:
    """Distinct frame pairs the step computes for ``path``."""
    n = VideoReader(path).info.num_frames
    w = flow_windows(n, sample_frame_indices(n, cfg), cfg.flow.stack)
    pairs = {(a, b) for row in w.tolist() for a, b in zip(row[:-1], row[1:]) if a != b}
    return max(len(pairs), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--family", default="gestures")
    parser.add_argument("--manifest", help="use these videos (evenly spread) instead of generating some")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # extraction runs one OpenCV thread per worker process
    base = ExtractConfig(modality="flow", workers=0, flow=FlowConfig(output="raw"))
    cfgs = {a: dataclasses.replace(base, flow=dataclasses.replace(base.flow, algorithm=a)) for a in ALGORITHMS}
    size = 256  # mobilenet_v2's resize: the default flow.size
    steps = {a: FlowStep(cfg, size, None) for a, cfg in cfgs.items()}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores); OpenCV "
          f"{cv2.__version__}, 1 thread; flow.size {size}, stack {base.flow.stack}, {base.num_frames} positions")
    with tempfile.TemporaryDirectory() as tmp:
        paths = _videos(tmp, args.family, args.videos, args.manifest)
        fields = [_fields(p, base) for p in paths]
        frames = sum(VideoReader(p).info.num_frames for p in paths)

        def decode_only(path: str) -> None:  # the RGB frames Farneback and DIS need, no flow
            with VideoReader(path, size=size) as reader:
                n = reader.info.num_frames
                reader.get_frames(np.unique(flow_windows(n, sample_frame_indices(n, base), base.flow.stack)))

        runs = {**{a: steps[a] for a in ALGORITHMS}, "decode only": decode_only}
        best = {name: [float("inf")] * len(paths) for name in runs}
        for run in runs.values():
            run(paths[0])  # warm-up: imports, page cache
        for _ in range(args.repeats):
            for i, path in enumerate(paths):
                for name, run in runs.items():
                    t0 = time.perf_counter()
                    run(path)
                    best[name][i] = min(best[name][i], time.perf_counter() - t0)
    total = sum(fields)
    print(f"{len(paths)} {args.family} videos, {frames} frames, {total} distinct flow fields; best of "
          f"{args.repeats} per video")
    rate = {name: total / sum(t) for name, t in best.items()}
    for name in runs:
        per_video = sum(best[name]) / len(paths)
        ucf = UCF101_VIDEOS * per_video / 2 / 3600
        ratio = f"{rate[name] / rate['farneback']:7.1f}x farneback" if name != "farneback" else " " * 18
        print(f"{name:12s}: {rate[name]:8.1f} fields/s  {per_video * 1000:7.1f} ms/video  {ratio}   UCF-101 "
              f"(2 processes, these lengths): {ucf:5.2f} h")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
