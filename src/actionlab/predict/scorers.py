"""How each kind of run scores a video: one small class per kind, the same for a run and for its export.

A scorer turns a video (a file or ``(T, H, W, 3)`` uint8 frames) into :class:`VideoScores`:

- ``video``: log-probs ``(K,)`` of the whole video, computed as evaluation computes them (the same frame
  sampler, preprocessing and aggregation, through :mod:`actionlab.evaluate.video_scores` and
  :mod:`actionlab.features.frame_sampling`), so a test video gets the score in ``predictions_test.npz``;
- ``windows``/``spans``: the timeline, windows of about one training clip along the video, each scored as a
  clip of its own in one forward pass over the frames (:func:`actionlab.evaluate.timeline.stream_windows`:
  memory stays flat on an hour-long video).

The kinds fill in four hooks of :class:`KindScorer`: ``whole_video`` (the evaluation's parts and their
aggregate), ``plan`` (which frames make a window), ``embed`` (what each of those frames keeps) and
``combine`` (a window's steps -> log-probs). The networks are plain functions of arrays
(:mod:`actionlab.predict.graphs`), so PyTorch, ONNX Runtime and TorchScript share every other line; the
preprocessing is numpy (:mod:`actionlab.data.eval_arrays`, bit-identical to the torch transforms on frames decoded
at their size), so this module imports no torch and an ONNX export predicts without it.

A new kind (e.g. two streams fused late) only needs ``kind``, ``classes``, ``describe()`` and
``score(video, fps)``; it can hold two scorers and combine their :class:`VideoScores`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from actionlab.config import ExtractConfig, InferenceConfig
from actionlab.data import sampling
from actionlab.data.eval_arrays import ClipEval, FrameEval
from actionlab.data.video.decode import VideoInfo
from actionlab.data.video.sources import open_video
from actionlab.evaluate.aggregate import aggregate_clips, aggregate_steps, log_softmax
from actionlab.evaluate.timeline import WindowPlan, stream_windows
from actionlab.evaluate.video_scores import average_probabilities, sequence_video_scores, window_indices
from actionlab.features.frame_sampling import video_features
from actionlab.features.preprocess import Preprocess
from actionlab.predict.graphs import Net

Video = str | os.PathLike[str] | np.ndarray

DEFAULT_WINDOW_S = 2.0
"""Window length of a timeline when the run does not record how long its training videos were."""

CPU_BACKBONE_BATCH = 8
"""Frames a temporal run's 2D backbone takes at a time on a CPU. Its activations are what a served model's memory
is made of: MobileNetV2 on 32 frames of 224 x 298 peaked at 0.89 GB against 0.34 GB for 8, at the same speed
(``benchmarks/bench_serve.py``); a GPU gets 32."""


@dataclass
class VideoScores:
    """What a scorer says about one video."""

    video: np.ndarray
    """``(K,)`` log-probs of the whole video (as ``evaluate`` scores it)."""
    parts: np.ndarray
    """``(M, K)`` log-probs of the parts evaluation averages (feature windows, clips x crops, or frames)."""
    windows: np.ndarray
    """``(W, K)`` log-probs of the timeline's windows."""
    spans: np.ndarray
    """``(W, 2)`` first and last frame of each window."""
    info: VideoInfo
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in ``open``, ``decode``, ``features`` (backbone or preprocessing) and ``head`` (the network
    that gives class scores)."""


@dataclass(frozen=True)
class Timeline:
    """How long the windows of a timeline are and how far apart they start (``None``: the run's own)."""

    window_s: float | None = None
    """Seconds per window (temporal and frame runs; a video network's window is its clip)."""
    hop_s: float | None = None
    """Seconds between window starts (default: half a window)."""

    def __post_init__(self) -> None:
        for name in ("window_s", "hop_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value}")


class KindScorer:
    """The shared life of a scorer: open the video once at the kind's decode size, score the whole video,
    then stream its timeline."""

    kind = ""
    batch = 32
    """Frames decoded (and embedded) at a time."""
    decode_size: int | tuple[int, int]
    """Short side frames are decoded to."""

    def __init__(self, classes: list[str], card: dict[str, Any], timeline: Timeline) -> None:
        self.classes, self.card, self.timeline = list(classes), card, timeline

    def describe(self) -> dict[str, Any]:
        """What a user of the model needs to know (classes, preprocessing...), without any path."""
        return self.card

    def score(self, video: Video, fps: float | None = None) -> VideoScores:
        """Score a video file or ``(T, H, W, 3)`` uint8 frames (``fps`` for frames; default 25)."""
        timings: dict[str, float] = {}
        t0 = perf_counter()
        with open_video(video, size=self.decode_size, fps=fps) as src:
            timings["open"] = perf_counter() - t0
            info = src.info
            whole, parts = self.whole_video(src, timings)
            windows, spans = stream_windows(src.get_frames, info.num_frames, self.plan(info), self.embed,
                                            self.combine, self.batch, timings)
        return VideoScores(whole, parts, windows, spans, info, timings)

    # -- hooks
    def whole_video(self, src: Any, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """``(video log-probs (K,), part log-probs (M, K))`` as evaluation computes them."""
        raise NotImplementedError

    def plan(self, info: VideoInfo) -> WindowPlan:
        raise NotImplementedError

    def embed(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def combine(self, steps: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- shared by the kinds whose window spans a training video (temporal, frames)
    def _clip_plan(self, info: VideoInfo, length: int) -> WindowPlan:
        fps = info.fps or 25.0
        seconds = self.timeline.window_s or self.card.get("timeline", {}).get("clip_seconds") or DEFAULT_WINDOW_S
        stride = max(1, round(seconds * fps / length))
        return WindowPlan(stride, length, self._hop(fps, stride, length))

    def _hop(self, fps: float, stride: int, length: int) -> int:
        if self.timeline.hop_s is not None:
            return max(1, round(self.timeline.hop_s * fps / stride))
        return max(1, length // 2)


class TemporalScorer(KindScorer):
    """A 2D backbone over sampled frames, then a temporal head over the features (``backbone``: the extraction
    engine interface ``x -> (features, None)``; ``head``: raw features ``(W, L, D) -> (W, L, K)``, see
    :class:`~actionlab.predict.torch_nets.FeatureHead`; ``batch``: frames through the backbone at a time)."""

    kind = "temporal"
    batch = CPU_BACKBONE_BATCH

    def __init__(self, classes: list[str], card: dict[str, Any], timeline: Timeline, backbone: Any,
                 head: Net, batch: int | None = None) -> None:
        super().__init__(classes, card, timeline)
        self.batch = batch or self.batch
        self.preprocess = Preprocess.from_record(card["preprocessing"])
        s = card["sampler"]
        self.extract = ExtractConfig(sampler=s["name"], num_frames=s.get("num_frames", 25), stride=s.get("stride", 1),
                                     batch_size=self.batch)
        self.inference = InferenceConfig(**card["inference"])
        self.decode_size = self.preprocess.short_side
        self.backbone, self.head = backbone, head

    def whole_video(self, src: Any, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        _, feats = video_features(src, self.extract, self.preprocess.preprocess_array, self.backbone,
                                  timings)  # (T, D)
        t0 = perf_counter()
        logits = self.head(feats[window_indices(len(feats), self.inference)])  # (W, L, K)
        video, per_window = sequence_video_scores(logits, self.inference)
        timings["head"] = timings.get("head", 0.0) + perf_counter() - t0
        return video, per_window

    def plan(self, info: VideoInfo) -> WindowPlan:
        return self._clip_plan(info, self.inference.window)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(self.backbone(self.preprocess.preprocess_array(frames))[0], np.float32)  # (N, D)

    def combine(self, steps: np.ndarray) -> np.ndarray:
        logits = self.head(steps)  # (B, L, K)
        return np.stack([aggregate_steps(w, self.inference.step_weighting) for w in logits])


class VideoScorer(KindScorer):
    """A video network over clips: ``net (N, C, T, S, S) -> (N, K)``."""

    kind = "video"
    batch = 16

    def __init__(self, classes: list[str], card: dict[str, Any], timeline: Timeline, net: Net) -> None:
        super().__init__(classes, card, timeline)
        p = self.pre = card["preprocessing"]
        self.spread = p.get("sampling", "dense") == "spread"  # clips spread over a whole training video
        if timeline.window_s is not None and not self.spread:
            raise ValueError("a video network's window is its clip (clip_len x frame_interval frames); "
                             "set only the hop between windows")
        self.transform = ClipEval(size=p["size"], resize=p["resize"], crops=p["test_crops"],
                                  mean=tuple(p["mean"]), std=tuple(p["std"]),  # type: ignore[arg-type]
                                  keep_aspect=p.get("keep_aspect", True))
        self.decode_size = p["resize"] if p.get("keep_aspect", True) else (p["resize"], p["resize"])
        self.net = net

    def _clips(self, clips: list[np.ndarray], timings: dict[str, float]) -> np.ndarray:
        """Clips ``(T, H, W, 3)`` uint8 -> ``(len(clips), K)`` log-probs, crops averaged in log space."""
        t0 = perf_counter()
        x = np.concatenate([self.transform.array(c) for c in clips])  # (clips x crops, C, T, S, S)
        t1 = perf_counter()
        logp = log_softmax(self.net(x))
        timings["features"] = timings.get("features", 0.0) + t1 - t0
        timings["head"] = timings.get("head", 0.0) + perf_counter() - t1
        return logp

    def whole_video(self, src: Any, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        p = self.pre
        idx = sampling.clip_indices(src.info.num_frames, p["clip_len"], p["frame_interval"], p["test_clips"],
                                    sampling=p.get("sampling", "dense"))
        t0 = perf_counter()
        clips = [src.get_frames(row) for row in idx]
        timings["decode"] = timings.get("decode", 0.0) + perf_counter() - t0
        parts = self._clips(clips, timings)  # (clips x crops, K), clip-major as the evaluation's items
        return aggregate_clips(parts, np.zeros(len(parts), dtype=np.int64), 1)[0], parts

    def plan(self, info: VideoInfo) -> WindowPlan:
        if self.spread:  # a window as long as a training video, its clip_len frames evenly spaced
            return self._clip_plan(info, self.pre["clip_len"])
        stride, length = self.pre["frame_interval"], self.pre["clip_len"]
        return WindowPlan(stride, length, self._hop(info.fps or 25.0, stride, length))

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return frames  # a clip network needs the frames themselves (at the decode size)

    def combine(self, steps: np.ndarray) -> np.ndarray:
        logp = self._clips(list(steps), {})
        owner = np.repeat(np.arange(len(steps)), self.transform.crops)
        return aggregate_clips(logp, owner, len(steps))


class FrameScorer(KindScorer):
    """A 2D frame classifier: ``net (N, 3, S, S) -> (N, K)``; a video's score is its frames' mean probability."""

    kind = "frames"

    def __init__(self, classes: list[str], card: dict[str, Any], timeline: Timeline, net: Net) -> None:
        super().__init__(classes, card, timeline)
        p = self.pre = card["preprocessing"]
        self.transform = FrameEval(crop=p["crop"], resize=p["resize"], mean=tuple(p["mean"]),  # type: ignore[arg-type]
                                   std=tuple(p["std"]))  # type: ignore[arg-type]
        self.decode_size = p["resize"]
        self.net = net

    def embed(self, frames: np.ndarray) -> np.ndarray:
        x = self.transform.array(frames)  # (N, 3, S, S)
        return log_softmax(self.net(x)).astype(np.float32)  # (N, K)

    def whole_video(self, src: Any, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        idx = sampling.tsn_indices(src.info.num_frames, self.pre["test_per_video"], None)
        t0 = perf_counter()
        frames = src.get_frames(idx)
        t1 = perf_counter()
        parts = self.embed(frames)
        timings["decode"] = timings.get("decode", 0.0) + t1 - t0
        timings["head"] = timings.get("head", 0.0) + perf_counter() - t1
        return average_probabilities(parts, np.zeros(len(parts), dtype=np.int64), 1)[0], parts

    def plan(self, info: VideoInfo) -> WindowPlan:
        return self._clip_plan(info, self.pre["test_per_video"])

    def combine(self, steps: np.ndarray) -> np.ndarray:
        b, length, k = steps.shape
        return average_probabilities(steps.reshape(b * length, k), np.repeat(np.arange(b), length), b)
