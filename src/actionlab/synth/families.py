"""A generated action dataset written in the public layouts of UCF-101, HMDB-51, Kinetics or plain folders.

Datasets come in families (:data:`FAMILIES`), each its own file of rendering code:

- ``demo`` (:mod:`actionlab.synth.demo`): the demo's 11 classes of simple shapes (grow/shrink, fade,
  turn, move left/right), 40-72 frames at 25 fps, 240x320;
- ``textures`` (:mod:`actionlab.synth.textures`): 8 classes of textured surfaces on striped, checkered
  or noisy backgrounds with drifting distractors, dark and noisy scenes, 30-90 frames at 15 fps, 240x320;
- ``gestures`` (:mod:`actionlab.synth.gestures`): 14 classes of hand/arm-like gestures on bright,
  cluttered scenes with a hand-held camera, 48-120 frames at 30 fps, 180x320 (16:9);
- ``outdoor`` (:mod:`actionlab.synth.outdoor`), held out (never used to choose a setting): 10 classes
  of outdoor scenes in perspective (a door, a tipper truck, a traffic light, a football, a flag, a fountain)
  with a panning or zooming camera, flickering light and passers-by, 36-150 frames at 24 fps, 160x240 (3:2),
  25 groups x 4 clips per class by default (1000 videos).

In every family most classes come in **time-order pairs**: clip ``(g, c)`` of the second class of a pair is
clip ``(g, c)`` of the first class played backwards, so the multiset of single frames is the same in both
classes and a single-frame classifier is at chance on every pair; a few **appearance classes** are
separable from one frame. Clips of one group share a scene (as UCF-101 groups share an actor and a
background) with small per-clip variation. Everything is a pure function of ``seed``: :func:`render_clip`
gives the exact frames that :func:`make_synthetic_dataset` encodes, which makes pixel-exact decode tests
possible with ``codec="ffv1"``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from actionlab.data.layouts import SYNTH_NAMES, get_layout, hmdb51, kinetics, ucf101
from actionlab.data.layouts.common import SynthClass, SynthVideo
from actionlab.data.video.encode import CODECS, write_video
from actionlab.synth import demo as synth_demo
from actionlab.synth import gestures as synth_gestures
from actionlab.synth import outdoor as synth_outdoor
from actionlab.synth import textures as synth_textures
from actionlab.synth.demo import APPEARANCE_CLASSES, CLASS_DESCRIPTIONS, SYNTH_CLASSES, TIME_PAIRS
from actionlab.synth.draw import Family
from actionlab.utils import worker_context

logger = logging.getLogger(__name__)

__all__ = ["APPEARANCE_CLASSES", "CLASS_DESCRIPTIONS", "CODECS", "FAMILIES", "LAYOUTS", "SYNTH_CLASSES",
           "TIME_PAIRS", "SynthVideo", "family_classes", "get_family", "hmdb_name", "hmdb_split_of_group",
           "kinetics_name", "make_synthetic_dataset", "read_synth_info", "render_clip", "ucf_test_groups",
           "write_video"]

_FAMILIES: dict[str, Family] = {f.name: f for f in (synth_demo.FAMILY, synth_textures.FAMILY, synth_gestures.FAMILY,
                                                     synth_outdoor.FAMILY)}
FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
"""The generated dataset families, ``"demo"`` first."""
_FAMILY_OF: dict[str, Family] = {name: f for f in _FAMILIES.values() for name in f.classes}
assert len(_FAMILY_OF) == sum(len(f.classes) for f in _FAMILIES.values()), "class names must be unique"

LAYOUTS = SYNTH_NAMES
"""The layouts :func:`make_synthetic_dataset` writes: ucf101, hmdb51, kinetics, folders."""
hmdb_name = hmdb51.class_name
kinetics_name = kinetics.class_name
ucf_test_groups = ucf101.scaled_test_groups


def get_family(name: str) -> Family:
    """The :class:`~actionlab.synth.draw.Family` called ``name`` (one of :data:`FAMILIES`)."""
    if name not in _FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {name!r}")
    return _FAMILIES[name]


def family_classes(family: str = "demo") -> list[str]:
    """The classes of a family, time-order pairs first (``family_classes("demo") == SYNTH_CLASSES``)."""
    return get_family(family).classes


def _family_of(name: str) -> Family:
    if name not in _FAMILY_OF:
        choices = "; ".join(f"{f.name}: {', '.join(f.classes)}" for f in _FAMILIES.values())
        raise ValueError(f"unknown synthetic class {name!r}; choose from {choices}")
    return _FAMILY_OF[name]


def render_clip(name: str, group: int, clip: int, num_frames: int, size: tuple[int, int] | None = None,
                seed: int = 0) -> np.ndarray:
    """The exact frames of one generated video: ``(num_frames, H, W, 3)`` uint8 RGB.

    ``name`` is a class of any family; ``size`` defaults to the family's. ``group`` and ``clip`` are 1-based
    as in UCF-101 names (``v_X_g01_c01``). Backward classes of a time-order pair return the forward class's
    clip reversed in time.
    """
    fam = _family_of(name)
    h, w = size if size is not None else fam.size
    key = fam.key(name)
    forward = fam.forward_of(name)
    frames = fam.render(forward, np.random.default_rng([seed, key, group]),
                        np.random.default_rng([seed, key, group, clip]), num_frames, h, w)
    return frames[::-1].copy() if forward != name else frames


def hmdb_split_of_group(seed: int, name: str, groups: int, split: int) -> dict[int, int]:
    """HMDB-51 split codes per group for one class: 1 train, 2 test, 0 unused (about 70/30)."""
    return hmdb51.split_codes(seed, _family_of(name).index(name), groups, split)


# ----------------------------------------------------------------------------------- assembly


def _plan(layout: str, fam: Family, classes: list[str], groups: int, clips_per_group: int,
          frames_range: tuple[int, int], seed: int, ext: str) -> list[SynthVideo]:
    synth_path = get_layout(layout).synth_path
    assert synth_path is not None
    videos = []
    for name in classes:
        cls = SynthClass(name, fam.key(name), fam.index(name))
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                # Both classes of a pair draw the same length, so reversed clips are exact mirrors.
                n = int(np.random.default_rng([seed, cls.key, g, c, 31]).integers(frames_range[0], frames_range[1] + 1))
                rel, label, split = synth_path(cls, g, c, groups, seed, ext)
                videos.append(SynthVideo(rel, label, name, g, c, n, split))
    return videos


def _readme(layout: str, fam: Family, classes: list[str], params: dict) -> str:
    lines = [
        "actionlab synthetic action dataset",
        "==================================",
        "",
        f"Layout: {layout}. Generated by actionlab.synth.families.make_synthetic_dataset with:",
        "  " + json.dumps(params, sort_keys=True),
        "",
        "Time-order pairs: the second class of each pair is the first one played backwards, clip for clip,",
        "so single frames are identically distributed and only the order of frames tells them apart.",
        "Appearance classes: one frame is enough.",
        *fam.notes,
        "",
        "Classes:",
    ]
    for name in classes:
        kind = "time-order" if name not in fam.appearance else "appearance"
        lines.append(f"  {name:22s} [{kind}] {fam.descriptions[name]}")
    lines += ["", "Groups share a scene (background, colours, size, position, shake, noise); clips of a",
              "group vary a little. Splits never separate a group.", ""]
    return "\n".join(lines)


def _encode_job(job: tuple) -> None:
    path, name, group, clip, n, size, seed, fps, codec = job
    write_video(path, render_clip(name, group, clip, n, size, seed), fps=fps, codec=codec)


def _resolve_classes(fam: Family, classes: Sequence[str] | int | None) -> list[str]:
    if classes is None:
        return fam.classes
    if isinstance(classes, int):
        if not 1 <= classes <= len(fam.classes):
            raise ValueError(f"classes must be in 1..{len(fam.classes)}, got {classes}")
        return fam.classes[:classes]
    classes = list(classes)
    unknown = [c for c in classes if c not in fam.classes]
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct names from {fam.classes} (family {fam.name!r}), got {classes}")
    return classes


def make_synthetic_dataset(
    out: str | Path,
    layout: str = "ucf101",
    classes: Sequence[str] | int | None = None,
    groups: int | None = None,
    clips_per_group: int | None = None,
    num_frames: int | tuple[int, int] | None = None,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    seed: int = 0,
    codec: str | None = None,
    lossless: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    family: str = "demo",
) -> Path:
    """Generate encoded videos and the split files of ``layout`` under ``out``; returns ``out``.

    Layouts (paths relative to ``out``):

    - ``ucf101``: ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` and ``ucfTrainTestlist/{classInd,trainlist0S,
      testlist0S}.txt`` (CRLF lines; train lines carry the 1-based class index, test lines none; split S
      tests the groups of :func:`ucf_test_groups`).
    - ``hmdb51``: ``<class>/<name>.avi`` and ``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``
      with ``name.avi C `` lines (C: 1 train, 2 test, 0 unused); a group is one source video.
    - ``kinetics``: ``annotations/{train,val}.csv`` (``label,youtube_id,time_start,time_end,split``) and
      ``{train,val}/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``; a group is one youtube id.
    - ``folders``: ``<Class>/<Class>_gNN_cNN.avi``.

    Also writes ``README.txt`` (the classes) and ``synth_info.json`` (parameters and every video).

    Args:
        classes: names from the family's classes (:func:`family_classes`; default all), or an int for the
            first N.
        groups, clips_per_group: videos per class = ``groups * clips_per_group`` (default: the family's,
            16 x 2 except ``outdoor``'s 25 x 4). Many groups of few clips
            give more distinct scenes for the same cost, which is what temporal models need to generalise
            (an LSTM over MobileNetV2 features: ~91% on the grow/fade/turn pairs with 8 x 3, ~96% with 16 x 2).
        num_frames: frames per video, or an inclusive ``(lo, hi)`` range drawn per video (default: the family's).
        size: ``(H, W)``, even for the lossy codecs (default: the family's).
        fps: frame rate written into the videos (default: the family's).
        codec: ``xvid``/``mpeg4`` (default for .avi layouts), ``h264`` (default for kinetics), ``ffv1``.
        lossless: shorthand for ``codec="ffv1"`` (pixel-exact frames, equal to :func:`render_clip`).
        workers: encoding processes; ``None`` picks up to ``os.cpu_count()`` for larger datasets.
        overwrite: replace an existing non-empty ``out``.
        family: one of :data:`FAMILIES` (``demo``: the demo's dataset, byte for byte as before families).
    """
    out = Path(out)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    fam = get_family(family)
    classes = _resolve_classes(fam, classes)
    groups = fam.groups if groups is None else groups
    clips_per_group = fam.clips_per_group if clips_per_group is None else clips_per_group
    if groups < 1 or clips_per_group < 1:
        raise ValueError("groups and clips_per_group must be >= 1")
    if num_frames is None:
        num_frames = fam.num_frames
    frames_range = (num_frames, num_frames) if isinstance(num_frames, int) else tuple(num_frames)
    if len(frames_range) != 2 or not 1 <= frames_range[0] <= frames_range[1]:
        raise ValueError(f"num_frames must be >= 1 or a (lo, hi) range with 1 <= lo <= hi, got {num_frames}")
    size = tuple(size) if size is not None else fam.size
    fps = fps if fps is not None else fam.fps
    if lossless:
        codec = "ffv1"
    if codec is None:
        codec = "h264" if layout == "kinetics" else "xvid"
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    h, w = size
    if codec != "ffv1" and (h % 2 or w % 2 or h < 16 or w < 16):
        raise ValueError(f"size {size} must be even and >= 16 for codec {codec!r} (or use codec='ffv1')")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True or choose another path")
        shutil.rmtree(out)

    ext = "mp4" if layout == "kinetics" else "avi"
    videos = _plan(layout, fam, classes, groups, clips_per_group, frames_range, seed, ext)  # type: ignore[arg-type]
    params = dict(layout=layout, classes=classes, groups=groups, clips_per_group=clips_per_group,
                  num_frames=list(frames_range), size=list(size), fps=fps, seed=seed, codec=codec)
    if family != "demo":  # the demo's files stay byte for byte what they were before families existed
        params = {"family": family, **params}

    # Build next to ``out`` and rename at the end: an interrupted run never leaves half a dataset.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        jobs = []
        for v in videos:
            (tmp / v.path).parent.mkdir(parents=True, exist_ok=True)
            jobs.append((tmp / v.path, v.synth_class, v.group, v.clip, v.num_frames, (h, w), seed, fps, codec))
        total_frames = sum(v.num_frames for v in videos)
        if workers is None:
            workers = min(os.cpu_count() or 1, 8) if total_frames > 3000 else 0
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
                list(pool.map(_encode_job, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
        else:
            for job in jobs:
                _encode_job(job)
        write_splits = get_layout(layout).write_splits
        assert write_splits is not None
        write_splits(tmp, [SynthClass(c, fam.key(c), fam.index(c)) for c in classes], videos, groups, seed)
        (tmp / "README.txt").write_text(_readme(layout, fam, classes, params))
        info = {"params": params, "videos": [asdict(v) for v in videos]}
        (tmp / "synth_info.json").write_text(json.dumps(info, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %d %s videos (%d frames, %s, family %s) to %s", len(videos), layout, total_frames, codec,
                family, out)
    return out


def read_synth_info(root: str | Path) -> dict:
    """The ``synth_info.json`` of a generated dataset: ``{"params": {...}, "videos": [{...}, ...]}``.

    ``params["family"]`` is absent for the demo's family (datasets made before families existed)."""
    path = Path(root) / "synth_info.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {root} was not made by make_synthetic_dataset")
    return json.loads(path.read_text())
