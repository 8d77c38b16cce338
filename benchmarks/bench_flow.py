"""Optical-flow throughput, measured in one run so the ratios are comparable.

(a) bare OpenCV: ``cvtColor`` + the estimator's call (``calcOpticalFlowFarneback``, the default, or one
    ``DISOpticalFlow`` reused) on pre-decoded frame pairs
(b) actionlab's flow of the same decoded frames (``features.flow.FlowFields``: grey conversion, the estimator
    (DIS: a fresh one per video), clipping + uint8 quantisation, stacking); (a) and (b) alternate video by video,
    best of N
(c) actionlab's whole per-video step in one process: decode the frames + (b) (``features.flow.FlowStep``)
(d) ``extract_features --modality flow --flow-output raw`` end to end (decoding and flow in 2 worker processes,
    part files, merge): the flow part of ``extract --modality flow`` (the CNN over stacked flow costs what RGB
    extraction costs, ``bench_extract.py``)
(e) (a) with the other estimator (DIS for Farneback and the reverse) on the same frames: their speed ratio

All at 25 frame pairs per video (``--flow-stack 1``, 25 uniform positions), frames decoded at short side 256
(the default ``flow.size`` for mobilenet_v2), on 320x240 XviD videos (UCF-101's size and codec). Prints frame
pairs/s, the ratio (b)/(a) (goal >= 0.90) and the estimated time for UCF-101 (13,320 videos).

Run: ``.venv/bin/python benchmarks/bench_flow.py [--videos 8] [--repeats 3] [--algorithm farneback|dis]
[--preset fast]``. Never collected by pytest. Re-take the figures on a quiet machine (the load average is printed first).
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
from actionlab.features.engine import cpu_threads
from actionlab.features.extract import extract_features
from actionlab.features.flow import FlowFields, FlowStep, create_estimator, flow_windows
from actionlab.features.frames import sample_frame_indices

UCF101_VIDEOS, PAIRS = 13320, 25


def _dataset(root: str, videos: int) -> str:
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import write_manifest
    from actionlab.synth.families import make_synthetic_dataset

    make_synthetic_dataset(os.path.join(root, "data"), classes=max(1, videos // 4), groups=2, clips_per_group=2,
                           num_frames=(60, 120), size=(240, 320), seed=0)
    manifest, _ = index_dataset(os.path.join(root, "data"), workers=1)
    path = os.path.join(root, "manifest.csv")
    write_manifest(manifest, path)
    return path


def _decoded(manifest_path: str, cfg: ExtractConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each video's decoded frames ``(U, H, W, 3)`` and its windows ``(25, 2)`` into them, as FlowStep makes them."""
    from actionlab.data.manifest import read_manifest

    m = read_manifest(manifest_path)
    out = []
    for rec in m.records:
        with VideoReader(m.abspath(rec), size=256) as reader:
            n = reader.info.num_frames
            windows = flow_windows(n, sample_frame_indices(n, cfg), cfg.flow.stack)
            frames, local = np.unique(windows, return_inverse=True)
            out.append((reader.get_frames(frames), local.reshape(windows.shape)))
    return out


def bench_pairs(videos: list[tuple[np.ndarray, np.ndarray]], cfg: ExtractConfig, repeats: int) -> tuple[float, float]:
    """(a) and (b): frame pairs/s of bare OpenCV and of actionlab on the same frames, alternating per video."""
    estimate, _ = create_estimator(cfg.flow)
    fields = FlowFields(cfg.flow)

    def bare(frames: np.ndarray, windows: np.ndarray) -> None:
        for a, b in windows.tolist():
            estimate(cv2.cvtColor(frames[a], cv2.COLOR_RGB2GRAY), cv2.cvtColor(frames[b], cv2.COLOR_RGB2GRAY))

    best = {"bare": [float("inf")] * len(videos), "actionlab": [float("inf")] * len(videos)}
    bare(*videos[0])  # warm-up
    fields(*videos[0])
    for _ in range(repeats):
        for i, video in enumerate(videos):
            for name, run in (("bare", bare), ("actionlab", fields)):
                t0 = time.perf_counter()
                run(*video)
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
    pairs = sum(len(w) for _, w in videos)
    return pairs / sum(best["bare"]), pairs / sum(best["actionlab"])


def bench_step(manifest_path: str, cfg: ExtractConfig) -> float:
    """(c) frame pairs/s of the whole per-video step (decode + flow) in this process."""
    from actionlab.data.manifest import read_manifest

    m = read_manifest(manifest_path)
    step = FlowStep(cfg, 256, None)
    t0 = time.perf_counter()
    pairs = sum(step(m.abspath(rec))[1].shape[0] for rec in m.records)
    return pairs / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algorithm", default=FlowConfig.algorithm, choices=["farneback", "dis", "tvl1"])
    parser.add_argument("--preset", default="fast", choices=["ultrafast", "fast", "medium"], help="DIS only")
    args = parser.parse_args()
    cfg = ExtractConfig(modality="flow", num_frames=PAIRS, workers=2,
                        flow=FlowConfig(algorithm=args.algorithm, preset=args.preset, stack=1, output="raw"))
    what = f"DIS preset {args.preset}" if args.algorithm == "dis" else args.algorithm
    print(f"{what}, {PAIRS} frame pairs per video, short side 256, {cpu_threads()} cores, OpenCV "
          f"{cv2.__version__} ({cv2.getNumThreads()} threads), load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _dataset(tmp, args.videos)
        videos = _decoded(manifest, cfg)
        bare, ours = bench_pairs(videos, cfg, args.repeats)
        print(f"(a) bare OpenCV        : {bare:8.1f} frame pairs/s")
        print(f"(b) actionlab flow     : {ours:8.1f} frame pairs/s   ratio (b)/(a) {ours / bare:.2f} (goal >= 0.90)")
        other = "dis" if args.algorithm != "dis" else "farneback"
        other_bare, _ = bench_pairs(videos, dataclasses.replace(cfg, flow=dataclasses.replace(
            cfg.flow, algorithm=other, preset="fast")), args.repeats)
        print(f"(e) bare OpenCV, {other:9s}: {other_bare:8.1f} frame pairs/s   {other} / {args.algorithm} speed "
              f"{other_bare / bare:.2f}x (same frames, this run)")
        step = bench_step(manifest, cfg)
        print(f"(c) decode + flow      : {step:8.1f} frame pairs/s   (one process)")
        extract_features(manifest, os.path.join(tmp, "warm.h5"), cfg)  # page cache, imports
        stamps: list[float] = []
        report = extract_features(manifest, os.path.join(tmp, "flow.h5"), cfg,
                                  progress=lambda done, total: stamps.append(time.perf_counter()))
        steady = (report.frames - report.frames / report.done) / (stamps[-1] - stamps[1])  # after video 1
        fixed = max(0.0, report.seconds - report.frames / steady)  # workers' start, merge
        print(f"(d) extract (raw flow) : {steady:8.1f} frame pairs/s steady, {report.frames_per_second:.1f} end to "
              f"end ({report.done} videos, {cfg.workers} workers, {fixed:.1f} s fixed cost)")
        for name, rate in (("(b) flow alone, 1 process", ours), ("(c) decode + flow, 1 process", step),
                           ("(d) extract, steady", steady)):
            print(f"UCF-101 at {PAIRS} pairs/video, {name:28s}: {UCF101_VIDEOS * PAIRS / rate / 3600:6.2f} h")


if __name__ == "__main__":
    main()
