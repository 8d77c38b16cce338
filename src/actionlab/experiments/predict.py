"""Labels for video files from a trained run, with the preprocessing recorded in its checkpoint.

A temporal run's videos go through the frame pipeline extraction used (:mod:`actionlab.features.frames`: same
frame sampler, decode size, backbone, weights and engine), then the train-set feature normalization and the
run's inference technique; a video network's through the clip sampler and the mean/std its weights expect; a
frame classifier's through its evenly spaced frames. Scores come from :mod:`actionlab.evaluate.inference`,
the path evaluation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actionlab.config import ExtractConfig, InferenceConfig, from_dict, resolved_inference
from actionlab.data import sampling
from actionlab.data.decode import VideoInfo, VideoReader
from actionlab.evaluate.aggregate import aggregate_clips
from actionlab.evaluate.inference import average_probabilities, sequence_video_scores, window_logits
from actionlab.experiments.run import saved_config
from actionlab.train.checkpoint import load_model_from_checkpoint
from actionlab.utils import select_device


def run_checkpoint(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{run_dir} has no checkpoints/best.pt or last.pt: train it first")


def top_labels(logp: np.ndarray, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one video's log-probabilities ``(K,)``."""
    probs = np.exp(logp - logp.max())
    probs = probs / probs.sum()
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": classes[i], "probability": float(probs[i])} for i in order]


class RunPredictor:
    """A trained run, loaded once, that scores video files: ``(video log-probs (K,), parts, spans, info)``."""

    def __init__(self, run_dir: str | Path, device: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        self.device = select_device(device)
        self.model, self.meta = load_model_from_checkpoint(run_checkpoint(self.run_dir), map_location=self.device)
        self.classes = list(self.meta["classes"])
        self.kind = self.meta.get("kind", "temporal")
        self.inference: InferenceConfig = resolved_inference(saved_config(self.run_dir))
        self.pre = dict(self.meta.get("preprocessing") or {})
        if self.kind == "temporal":
            from actionlab.features.engine import create_engine
            from actionlab.features.frames import build_backbone

            self.extract = from_dict(ExtractConfig, self.meta["extract"]) if self.meta.get("extract") else ExtractConfig()
            self.spec, module = build_backbone(self.extract)
            self.engine = create_engine(module, self.spec, device=self.device, engine=self.extract.engine)
            self.mean = np.asarray(self.meta["feature_mean"], dtype=np.float32)
            self.std = np.asarray(self.meta["feature_std"], dtype=np.float32)
        elif "mean" not in self.pre:
            raise ValueError(f"{self.run_dir}: its checkpoint records no preprocessing (trained by an older "
                             "actionlab); retrain it, or resume it once with this version")

    def __call__(self, path: str | Path) -> tuple[np.ndarray, list[np.ndarray], list[tuple[int, int]], VideoInfo]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such video file")
        if self.kind == "temporal":
            return self._features(path)
        if self.kind == "frames":
            return self._frames(path)
        return self._clips(path)

    def _features(self, path: Path) -> Any:
        from actionlab.features.frames import video_features

        indices, feats, info = video_features(path, self.extract, self.spec, self.engine)
        x = (feats - self.mean) / self.std  # (T, D) normalized with train-set statistics
        logits, starts = window_logits(self.model, x, self.inference, self.device)
        video, per_window = sequence_video_scores(logits, self.inference)
        length = logits.shape[1]
        spans = [(int(indices[s]), int(indices[min(s + length, len(indices)) - 1])) for s in starts]
        return video, list(per_window), spans, info

    def _clips(self, path: Path) -> Any:
        from actionlab.data.transforms import ClipEvalTransform

        p = self.pre
        tf = ClipEvalTransform(size=p["size"], resize=p["resize"], crops=1, mean=tuple(p["mean"]),
                               std=tuple(p["std"]), keep_aspect=p.get("keep_aspect", True))
        with VideoReader(path, size=p["resize"]) as reader:
            info = reader.info
            idx = sampling.clip_indices(info.num_frames, p["clip_len"], p["frame_interval"], p["test_clips"],
                                        sampling=p.get("sampling", "dense"))
            batch = torch.stack([tf(reader.get_frames(row))[0] for row in idx])  # (W, C, T, S, S)
        with torch.inference_mode():
            per = F.log_softmax(self.model(batch.to(self.device)).float(), -1).cpu().numpy()
        video = aggregate_clips(per, np.zeros(len(per), dtype=np.int64), 1)[0]
        return video, list(per), [(int(r[0]), int(r[-1])) for r in idx], info

    def _frames(self, path: Path) -> Any:
        from actionlab.data.transforms import FrameEvalTransform

        p = self.pre
        tf = FrameEvalTransform(crop=p["crop"], resize=p["resize"], mean=tuple(p["mean"]), std=tuple(p["std"]))
        with VideoReader(path, size=p["resize"]) as reader:
            info = reader.info
            idx = sampling.tsn_indices(info.num_frames, p["test_per_video"], None)
            frames = reader.get_frames(idx)
        x = torch.stack([tf(f, None) for f in frames])  # (N, 3, S, S)
        with torch.inference_mode():
            per = F.log_softmax(self.model(x.to(self.device)).float(), -1).cpu().numpy()
        video = average_probabilities(per, np.zeros(len(per), dtype=np.int64), 1)[0]
        return video, list(per), [(int(i), int(i)) for i in idx], info


def predict_videos(paths: Sequence[str | Path], run_dir: str | Path, top: int = 5, device: str = "auto"
                   ) -> list[dict[str, Any]]:
    """Top-``top`` labels for each video file, plus per-window labels along its timeline."""
    predictor = RunPredictor(run_dir, device)
    results = []
    for path in paths:
        video, parts, spans, info = predictor(path)
        fps = info.fps or 25.0
        windows = []
        for (a, b), w in zip(spans, parts):
            best = top_labels(w, predictor.classes, 1)[0]
            windows.append({"start_s": round(a / fps, 2), "end_s": round(b / fps, 2), "label": best["label"],
                            "probability": best["probability"]})
        results.append({"video": str(path), "frames": info.num_frames, "fps": info.fps, "duration": info.duration,
                        "top": top_labels(video, predictor.classes, top), "windows": windows})
    return results
