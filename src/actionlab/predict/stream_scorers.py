"""Scorers of the motion runs: temporal models over optical flow (or RGB and flow stores side by side), and two
runs fused late (``actionlab fuse``).

Optical flow is computed by OpenCV between consecutive decoded frames of a file, so these scorers read video
files (not frame arrays) and score each video the way evaluation does; their timeline is the evaluation's own
windows (a flow window cannot be streamed frame by frame like an RGB one). They have no export: the flow step is
OpenCV code, not a graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from actionlab.config import ExtractConfig, InferenceConfig
from actionlab.evaluate.inference import sequence_video_scores, window_indices
from actionlab.evaluate.two_stream import fused_video_scores
from actionlab.features.modalities import stacked_video_features
from actionlab.predict.graphs import Net
from actionlab.predict.scorers import Video, VideoScores

FeaturePart = tuple[ExtractConfig, Any, Any]
"""``(extraction config, backbone spec, engine)`` of one store a run was trained on."""


def _video_file(video: Video, what: str) -> Path:
    if isinstance(video, np.ndarray):
        raise ValueError(f"{what} reads optical flow from a video file (OpenCV, between decoded frames): pass the "
                         "file's path, not an array of frames")
    path = Path(os.fspath(video))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    return path


class FileFeatureScorer:
    """A temporal model over per-step features computed from a file by each store's pipeline (flow, or RGB and
    flow concatenated per step), normalized and scored by ``head`` (raw features ``(W, L, D) -> (W, L, K)``)."""

    kind = "temporal"

    def __init__(self, classes: list[str], card: dict[str, Any], parts: list[FeaturePart], head: Net) -> None:
        self.classes, self.card, self.parts, self.head = list(classes), card, parts, head
        self.inference = InferenceConfig(**card["inference"])

    def describe(self) -> dict[str, Any]:
        return self.card

    def score(self, video: Video, fps: float | None = None) -> VideoScores:
        path = _video_file(video, f"run {self.card['run']!r} ({self.card['modality']})")
        timings: dict[str, float] = {}
        t0 = perf_counter()
        indices, feats, info = stacked_video_features(path, self.parts)  # (T,), (T, D)
        t1 = perf_counter()
        rows = window_indices(len(feats), self.inference)  # (W, L)
        logits = self.head(feats[rows])  # (W, L, K)
        whole, per_window = sequence_video_scores(logits, self.inference)
        timings.update(features=t1 - t0, head=perf_counter() - t1)
        spans = np.array([[indices[r[0]], indices[r[-1]]] for r in rows], dtype=np.int64)
        return VideoScores(whole, np.asarray(per_window), np.asarray(per_window), spans, info, timings)


class FusedScorer:
    """Two runs fused late: each scores the video, the fused log-probs are ``log_softmax(w1 logp1 + w2 logp2)``
    with the weights ``fuse`` chose on the validation split (``fusion.json``)."""

    kind = "two_stream"

    def __init__(self, card: dict[str, Any], members: list[Any], record: dict[str, Any]) -> None:
        classes = [list(m.classes) for m in members]
        if classes[0] != classes[1]:
            raise ValueError(f"fused run {card['run']!r}: its members have other classes; fuse them again")
        self.classes, self.card, self.members, self.record = classes[0], card, members, record

    def describe(self) -> dict[str, Any]:
        return self.card

    def score(self, video: Video, fps: float | None = None) -> VideoScores:
        if isinstance(video, np.ndarray) and any(isinstance(m, FileFeatureScorer) for m in self.members):
            _video_file(video, f"fused run {self.card['run']!r}")
        scores = [m.score(video, fps) for m in self.members]
        whole = fused_video_scores([s.video for s in scores], self.record)
        a, b = scores
        if a.spans.shape == b.spans.shape and np.array_equal(a.spans, b.spans):
            windows, spans = [fused_video_scores([x, y], self.record) for x, y in zip(a.windows, b.windows)], a.spans
        else:  # the streams cut the video differently: the timeline is the whole video
            n = a.info.num_frames
            windows, spans = [whole], np.array([[0, max(n - 1, 0)]], dtype=np.int64)
        timings: dict[str, float] = {}
        for s in scores:
            for k, v in s.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        return VideoScores(whole, whole[None], np.asarray(windows), spans, a.info, timings)


def stream_parts(meta: dict[str, Any], device: Any, engine: str | None) -> list[FeaturePart] | None:
    """The per-store pipelines of a temporal run that needs files (optical flow, or several stores), else None."""
    from actionlab.config import from_dict
    from actionlab.features.engine import create_engine
    from actionlab.features.modalities import build_pipeline

    stores = meta.get("stores") or ([{"extract": meta["extract"]}] if meta.get("extract") else [])
    configs = [from_dict(ExtractConfig, s["extract"]) for s in stores]
    if not configs or (len(configs) == 1 and configs[0].modality == "rgb"):
        return None
    parts: list[FeaturePart] = []
    for cfg in configs:
        pipeline = build_pipeline(cfg)
        parts.append((cfg, pipeline.spec, create_engine(pipeline.module, pipeline.spec, device=device,
                                                        engine=engine or cfg.engine)))
    return parts


def fused_card(run_dir: Path, members: list[Any], record: dict[str, Any]) -> dict[str, Any]:
    return {"run": run_dir.resolve().name, "model": "two_stream", "kind": "two_stream",
            "classes": list(members[0].classes), "weights": list(record["weights"]),
            "members": [m.describe() for m in members]}


__all__ = ["FileFeatureScorer", "FusedScorer", "fused_card", "stream_parts"]
