"""``actions101``: a generated benchmark with UCF-101's shape, written in UCF-101's layout (:func:`make_benchmark`).

- 101 classes drawn from randomised primitives (:mod:`actionlab.synth.primitives`): 22 order pairs (the
  second class reverses the first's motion in time, or mirrors its direction), 8 fine pairs (the same path
  2-2.6x faster, or another small part moving on the same still object) and 41 single classes;
- 25 groups per class (a group: one scene, actor look and camera set-up, like UCF-101's ``gNN``) of 4-7 clips
  each, drawn per (class, group) with the seed and adjusted so that the 101 classes hold exactly 13,320
  videos (:func:`clip_counts`);
- 320x240 at 25 fps, XviD ``.avi``; lengths from a log-normal of median 7.2 s (sigma 0.4) whose tail above 9 s
  is folded softly into 9-10 s and held at 1 s or more: mean 7.2 s like UCF-101 (about 2.4 M frames in all).
  UCF-101's median is nearer 6 s, but within 1-10 s a mean of 7.2 s leaves no room for a median below 7 s;
  the mean (the frames, so the cost of every stage) is what this benchmark keeps;
- ``ucfTrainTestlist/`` as UCF-101 ships it (split N tests groups 7(N-1)+1 .. 7N).

``scale`` keeps that share of each class's clips (``round(scale * clips)``, at least one), taken from every
block of groups that the three splits test (1-7, 8-14, 15-21) and from 22-25 in proportion, one clip per group
before a group's second: ``scale=0.1`` gives 1,332 videos of all 101 classes. Each video is a pure function
of ``(seed, class, group, clip)``, so a smaller scale holds (almost always) a subset of a larger one's videos.

Generation runs over ``workers`` processes, one (class, group) at a time (its background drawn once), and
resumes: each video is written under a temporary name and renamed when complete, and a rerun skips the
videos already there. ``generation.json`` records the settings, so a rerun with other settings is refused.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np

from actionlab.data.layouts import ucf101
from actionlab.data.layouts.common import SynthClass, SynthVideo
from actionlab.synth.primitives import ClassSpec, draw_classes, pairs
from actionlab.utils import worker_context

logger = logging.getLogger(__name__)

NAME = "actions101"
NUM_CLASSES = 101
GROUPS = 25
CLIPS_PER_GROUP = (4, 7)
TOTAL_VIDEOS = 13_320
FPS = 25
SIZE = (240, 320)
LENGTH_MEDIAN_S, LENGTH_SIGMA = 7.2, 0.4
"""Log-normal clip lengths (then folded into 1-10 s): mean 7.2 s."""
_STREAM = 101


def clip_counts(seed: int = 0) -> np.ndarray:
    """(101, 25) int clips per (class, group), each 4-7, summing to exactly 13,320."""
    rng = np.random.default_rng([seed, _STREAM, 1])
    lo, hi = CLIPS_PER_GROUP
    counts = rng.choice(np.arange(lo, hi + 1), size=(NUM_CLASSES, GROUPS), p=(0.3, 0.28, 0.23, 0.19)).ravel()
    diff = TOTAL_VIDEOS - int(counts.sum())
    while diff:  # nudge cells with room by one clip each until the total is exact
        step = 1 if diff > 0 else -1
        room = np.flatnonzero(counts < hi if step > 0 else counts > lo)
        pick = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
        counts[pick] += step
        diff -= step * len(pick)
    return counts.reshape(NUM_CLASSES, GROUPS)


def clip_seconds(seed: int, index: int, group: int, clip: int) -> float:
    """Length of one clip in seconds (1-10, mean 7.2 over the benchmark)."""
    x = LENGTH_MEDIAN_S * float(np.exp(LENGTH_SIGMA * np.random.default_rng([seed, _STREAM, index, group, clip, 2])
                                       .standard_normal()))
    if x > 9.0:  # fold the tail softly into 9-10 s
        x = 9.0 + (1.0 - float(np.exp(-(x - 9.0))))
    return max(x, 1.0)


def _blocks() -> list[list[int]]:
    tested = [ucf101.scaled_test_groups(GROUPS, split) for split in (1, 2, 3)]
    rest = [g for g in range(1, GROUPS + 1) if all(g not in t for t in tested)]
    return [*tested, rest]


def select_clips(counts: np.ndarray, scale: float, seed: int, index: int) -> list[tuple[int, int]]:
    """``(group, clip)`` pairs (1-based) kept of one class's ``counts`` (25,) at ``scale`` (see the module)."""
    total = int(counts.sum())
    if scale >= 1.0:
        return [(g + 1, c + 1) for g in range(GROUPS) for c in range(int(counts[g]))]
    quota = max(1, round(scale * total))
    blocks = _blocks()
    sizes = np.array([sum(int(counts[g - 1]) for g in b) for b in blocks])
    share = quota * sizes / total
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take), kind="stable")[: quota - int(take.sum())]:  # largest remainders
        take[i] += 1
    rng = np.random.default_rng([seed, _STREAM, index, 7])
    keep = []
    for block, n in zip(blocks, take):
        order = [block[i] for i in rng.permutation(len(block))]
        row = [(g, c) for c in range(1, CLIPS_PER_GROUP[1] + 1) for g in order if c <= counts[g - 1]]
        keep += row[:n]
    return sorted(keep)


def select_classes(specs: list[ClassSpec], classes: Sequence[str] | int | None) -> list[ClassSpec]:
    """All classes, the first N, or the named ones (in benchmark order)."""
    if classes is None:
        return specs
    if isinstance(classes, int):
        if not 1 <= classes <= len(specs):
            raise ValueError(f"classes must be in 1..{len(specs)}, got {classes}")
        return specs[:classes]
    names = {s.name for s in specs}
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f"unknown {NAME} classes {unknown}; the classes are listed in README.txt of a generated "
                         f"copy, or by actionlab.synth.primitives.draw_classes(seed)")
    wanted = set(classes)
    return [s for s in specs if s.name in wanted]


def plan_benchmark(seed: int = 0, scale: float = 1.0, classes: Sequence[str] | int | None = None,
                   max_frames: int | None = None) -> tuple[list[ClassSpec], list[SynthVideo]]:
    """The classes and every video of the benchmark (nothing rendered): what :func:`make_benchmark` writes."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if max_frames is not None and max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    specs = select_classes(draw_classes(seed), classes)
    counts = clip_counts(seed)
    videos = []
    for spec in specs:
        cls = SynthClass(spec.name, spec.index, spec.index)
        for g, c in select_clips(counts[spec.index], scale, seed, spec.index):
            n = max(2, round(clip_seconds(seed, spec.index, g, c) * FPS))
            n = min(n, max_frames) if max_frames else n
            rel, label, split = ucf101.synth_path(cls, g, c, GROUPS, seed, "avi")
            videos.append(SynthVideo(rel, label, spec.name, g, c, n, split))
    return specs, videos


# ----------------------------------------------------------------------------------- writing


def _render_cell(job: tuple) -> tuple[int, int]:
    """Render and encode the clips of one (class, group); returns (videos, frames) written."""
    import cv2

    from actionlab.data.video.encode import write_video
    from actionlab.synth.stage import STREAM, draw_scene, render_video

    cv2.setNumThreads(1)  # one process per core already
    root, spec, seed, group, clips, (h, w) = job
    scene = draw_scene(spec, np.random.default_rng([seed, STREAM, spec.index, group]), h, w)
    frames = 0
    for clip, n, rel in clips:
        final = Path(root) / rel
        tmp = final.with_name(f".{final.stem}.tmp{final.suffix}")
        write_video(tmp, render_video(spec, seed, group, clip, n, h, w, FPS, scene=scene), fps=FPS, codec="xvid")
        os.replace(tmp, final)  # a video is there whole or not at all
        frames += n
    return len(clips), frames


def _readme(specs: list[ClassSpec], params: dict, videos: int, frames: int) -> str:
    lines = [f"actionlab {NAME}: a generated benchmark with UCF-101's shape",
             "=" * 60, "",
             f"Generated by actionlab.synth.benchmark.make_benchmark with {json.dumps(params, sort_keys=True)}.",
             f"{videos} videos, {frames} frames, {len(specs)} classes, {GROUPS} groups; split N tests groups "
             "7(N-1)+1..7N.", "",
             "Pairs (only the order, direction or speed of motion, or a small part's motion, tells them apart):"]
    lines += [f"  {a:32s} {b:36s} [{kind}]" for a, b, kind in pairs(specs)]
    lines += ["", "Classes:"] + [f"  {s.index + 1:3d} {s.name:32s} {s.description}" for s in specs] + [""]
    return "\n".join(lines)


def _run(jobs: list[tuple], workers: int, total: int, total_frames: int) -> None:
    done = frames = 0
    start = last = time.monotonic()

    def report(force: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if force or now - last >= 30:
            last = now
            rate = done / max(now - start, 1e-6)
            eta = (total - done) / rate / 60 if rate > 0 else float("nan")
            logger.info("%s: %d/%d videos (%.0f%%), %d/%d frames, %.2f videos/s, %.0f frames/s, about %.1f min left",
                        NAME, done, total, 100 * done / max(total, 1), frames, total_frames, rate,
                        frames / max(now - start, 1e-6), eta)

    if workers <= 1:
        for job in jobs:
            v, f = _render_cell(job)
            done, frames = done + v, frames + f
            report()
    else:
        with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
            for fut in as_completed([pool.submit(_render_cell, job) for job in jobs]):
                v, f = fut.result()
                done, frames = done + v, frames + f
                report()
    report(force=True)


def make_benchmark(out: str | Path, scale: float = 1.0, seed: int = 0, workers: int | None = None,
                   classes: Sequence[str] | int | None = None, max_frames: int | None = None,
                   size: tuple[int, int] = SIZE) -> Path:
    """Generate (or finish generating) the benchmark under ``out``; returns ``out``.

    Writes ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi``, ``ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt``,
    ``README.txt`` (classes, descriptions, pairs), ``generation.json`` (the settings) and, once every video is
    there, ``synth_info.json`` (settings, classes and every video, as for the other generated families).

    Args:
        scale: share of each class's clips, in (0, 1] (0.1: 1,332 videos).
        seed: draws the classes, the clip counts and lengths, and every pixel.
        workers: processes (default: all cores); 1 renders in this process.
        classes: the first N classes, or names (for tests); default all 101.
        max_frames: cap on frames per video (for tests).
        size: ``(H, W)``, even (default 240 x 320); sizes scale with it.
    """
    out = Path(out)
    h, w = size
    if h % 2 or w % 2 or h < 32 or w < 32:
        raise ValueError(f"size must be even and >= 32, got {size}")
    specs, videos = plan_benchmark(seed, scale, classes, max_frames)
    params = {"family": NAME, "seed": seed, "scale": scale, "classes": [s.name for s in specs],
              "max_frames": max_frames, "size": [h, w], "fps": FPS, "codec": "xvid"}
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "generation.json"
    if settings.exists():
        before = json.loads(settings.read_text())
        if before != params:
            changed = sorted(k for k in set(before) | set(params) if before.get(k) != params.get(k))
            raise FileExistsError(f"{settings}: {out} holds a benchmark generated with other settings (differing: "
                                  f"{', '.join(changed)}); generate into another folder, or delete {out} first")
    elif any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and has no generation.json; generate into an empty folder")
    else:
        tmp = settings.with_suffix(".tmp")
        tmp.write_text(json.dumps(params, indent=1))
        os.replace(tmp, settings)
    for stale in out.glob("UCF-101/*/.*.tmp.avi"):  # half-written by an interrupted run
        stale.unlink()
    by_cell: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    for v in videos:
        if not (out / v.path).exists():
            by_cell.setdefault((v.synth_class, v.group), []).append((v.clip, v.num_frames, v.path))
    spec_of = {s.name: s for s in specs}
    for s in specs:
        (out / "UCF-101" / s.name).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), spec_of[name], seed, g, clips, (h, w)) for (name, g), clips in by_cell.items()]
    todo = sum(len(j[4]) for j in jobs)
    todo_frames = sum(n for j in jobs for _, n, _ in j[4])
    total_frames = sum(v.num_frames for v in videos)
    workers = (os.cpu_count() or 1) if workers is None else workers
    logger.info("%s: %d classes, %d videos (%d frames, %.1f h of video) in %s; %d already there, %d to render "
                "with %d worker(s)", NAME, len(specs), len(videos), total_frames, total_frames / FPS / 3600, out,
                len(videos) - todo, todo, workers)
    if jobs:
        _run(jobs, min(workers, len(jobs)), todo, todo_frames)
    ucf101.write_splits(out, [SynthClass(s.name, s.index, s.index) for s in specs], videos, GROUPS, seed)
    (out / "README.txt").write_text(_readme(specs, params, len(videos), total_frames))
    info = {"params": params, "classes": [asdict(s) for s in specs], "pairs": [list(p) for p in pairs(specs)],
            "videos": [asdict(v) for v in videos]}
    tmp = out / "synth_info.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / "synth_info.json")
    logger.info("%s: wrote %d videos to %s", NAME, len(videos), out)
    return out
