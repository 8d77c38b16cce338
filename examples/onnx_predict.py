"""Use an ``actionlab export`` with nothing but ONNX Runtime, PyAV and numpy (no actionlab, no torch).

It follows ``manifest.json`` step by step, so it doubles as the specification of an export:

    python examples/onnx_predict.py lstm.actionlab clip.mp4 other.avi       # top-5 labels of each video

The numbers match ``actionlab predict`` and ``evaluate`` on the same videos (tests/test_predictor.py checks it).
Only the video-level score is computed here; the timeline is the Predictor's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort


class Export:
    """An export directory: its manifest and one ONNX Runtime session per graph."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.card = json.loads((self.dir / "manifest.json").read_text())
        if self.card["format"] != "actionlab-export v1" or self.card["engine"] != "onnx":
            raise ValueError(f"{directory}: not an ONNX actionlab export")
        self.sessions = {name: ort.InferenceSession(str(self.dir / file), providers=["CPUExecutionProvider"])
                         for name, file in self.card["graphs"].items()}

    def run(self, graph: str, x: np.ndarray) -> np.ndarray:
        session = self.sessions[graph]
        name, batch = session.get_inputs()[0].name, session.get_inputs()[0].shape[0]
        x = np.ascontiguousarray(x, np.float32)
        if isinstance(batch, int) and batch != len(x):  # a graph exported for one item at a time
            return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
        return session.run(None, {name: x})[0]

    def __call__(self, video: str | Path) -> np.ndarray:
        """``(K,)`` log-probabilities of one video file."""
        kind, pre = self.card["kind"], self.card["preprocessing"]
        n = count_frames(video)
        if kind == "temporal":
            idx = sampled_frames(n, self.card["sampler"])
            if pre.get("view", "centre") == "full":  # the whole frame, short side `crop`, nothing cut off
                x = crop_normalize(decode(video, idx, pre["crop"]), 0, pre["mean"], pre["std"])
            else:
                x = crop_normalize(decode(video, idx, pre["resize"]), pre["crop"], pre["mean"], pre["std"])
            feats = np.concatenate([self.run("backbone", x[i:i + 32]) for i in range(0, len(x), 32)])  # (T, D)
            inf = self.card["inference"]
            logits = self.run("head", feats[window_steps(len(feats), inf)])  # (W, L, K); normalizes inside
            per_window = weighted_steps(log_softmax(logits), inf["step_weighting"])  # (W, K)
            return vote(per_window) if inf["mode"] == "vote" else log_softmax(per_window.mean(0))
        if kind == "video":
            span = (pre["clip_len"] - 1) * pre["frame_interval"] + 1
            c, t = pre["test_clips"], pre["clip_len"]
            if pre.get("sampling", "dense") == "spread":  # clip j: the point (j + 0.5) / c of each of t segments
                k, j = np.arange(t)[None], np.arange(c)[:, None]
                idx = ((2 * k * c + 2 * j + 1) * n) // (2 * t * c)
            elif n >= span:
                starts = np.array([(n - span) // 2]) if c == 1 else np.arange(c) * (n - span) // (c - 1)
                idx = starts[:, None] + np.arange(t) * pre["frame_interval"]
            else:  # a short video: its frames evenly from the first to the last, in every clip
                idx = np.repeat(np.floor(np.linspace(0, n - 1, t) + 0.5).astype(int)[None], c, 0)
            # keep_aspect=false: the whole frame squeezed to resize x resize by the decoder, then centre crops
            size = pre["resize"] if pre.get("keep_aspect", True) else (pre["resize"], pre["resize"])
            frames = decode(video, idx.reshape(-1), size)
            crops = [crop_normalize(frames, pre["size"], pre["mean"], pre["std"], k, pre["test_crops"])
                     for k in range(pre["test_crops"])]  # each (c * T, 3, S, S)
            clips = np.stack([c_.reshape(c, t, 3, pre["size"], pre["size"]) for c_ in crops], 1)
            clips = clips.reshape(-1, t, 3, pre["size"], pre["size"]).transpose(0, 2, 1, 3, 4)
            return log_softmax(log_softmax(self.run("model", clips)).mean(0))  # clips x crops, log space
        idx = (2 * np.arange(pre["test_per_video"]) + 1) * n // (2 * pre["test_per_video"])
        probs = np.exp(log_softmax(self.run("model", crop_normalize(decode(video, idx, pre["resize"]), pre["crop"],
                                                                    pre["mean"], pre["std"]))))
        return np.log(probs.mean(0))  # frames: the mean probability


def count_frames(video: str | Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def decode(video: str | Path, indices: np.ndarray, short: int | tuple[int, int]) -> np.ndarray:
    """Frames ``indices`` (the i-th picture a sequential decode outputs), short side ``short`` (FFmpeg's
    bilinear scaler, long side rounded) or exactly ``(H, W)``: ``(N, H, W, 3)`` uint8 RGB."""
    wanted, out = set(np.asarray(indices).tolist()), {}
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                h, w = frame.height, frame.width
                if isinstance(short, tuple):
                    size = short
                else:
                    size = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
                out[i] = frame.reformat(width=size[1], height=size[0], format="rgb24",
                                        interpolation="BILINEAR").to_ndarray()
    return np.stack([out[i] for i in np.asarray(indices).tolist()])


def crop_normalize(frames: np.ndarray, crop: int, mean: list[float], std: list[float], k: int = 0,
                   crops: int = 1) -> np.ndarray:
    """Centre crop (``crops=3``: crop ``k`` of left/centre/right along the long side; ``crop=0``: none),
    ``(x / 255 - mean) / std``, ``(N, 3, crop, crop)`` (or ``(N, 3, H, W)``) float32."""
    h, w = frames.shape[1:3]
    if crop:
        top, left = int(round((h - crop) / 2)), int(round((w - crop) / 2))
        if crops == 3 and k != 1:
            if w >= h:
                left = 0 if k == 0 else w - crop
            else:
                top = 0 if k == 0 else h - crop
        frames = frames[:, top:top + crop, left:left + crop]
    x = frames.astype(np.float32) / 255
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def sampled_frames(n: int, sampler: dict) -> np.ndarray:
    """The frames extraction used: ``uniform`` segment centres, every ``stride``-th, or ``all``."""
    if sampler["name"] == "uniform":
        t = sampler["num_frames"]
        return (2 * np.arange(t) + 1) * n // (2 * t)
    return np.arange(0, n, sampler.get("stride", 1) if sampler["name"] == "stride" else 1)


def window_steps(t: int, inf: dict) -> np.ndarray:
    """``(W, L)`` steps the head reads: ``full`` all, ``spread`` L evenly spaced, ``windows``/``vote`` strided
    windows (the last one aligned to the end; a short sequence stretched in time order)."""
    window = inf["window"]
    if inf["mode"] == "full":
        return np.arange(t)[None]
    if inf["mode"] == "spread":
        return ((2 * np.arange(window) + 1) * t // (2 * window))[None]
    if t <= window:
        return (np.arange(window) * t // window)[None]
    starts = list(range(0, t - window + 1, inf["stride"]))
    if starts[-1] != t - window:
        starts.append(t - window)
    return np.array(starts)[:, None] + np.arange(window)[None]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def weighted_steps(logp: np.ndarray, weighting: str) -> np.ndarray:
    """``(W, L, K)`` step log-probs -> ``(W, K)``: steps averaged with ``uniform``/``linear``/``last`` weights."""
    length = logp.shape[1]
    w = {"uniform": np.ones(length), "linear": np.arange(1.0, length + 1), "last": np.eye(length)[-1]}[weighting]
    keep = w > 0
    return log_softmax(np.einsum("wtk,t->wk", logp[:, keep], w[keep] / w.sum()))


def vote(per_window: np.ndarray) -> np.ndarray:
    """Majority vote of the windows, ties broken by their mean (``actionlab.evaluate.aggregate``)."""
    w, k = per_window.shape
    votes = np.bincount(per_window.argmax(1), minlength=k).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(votes), log_softmax(per_window.mean(0)) + np.log(0.5)) - np.log(w + 0.5)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    model = Export(sys.argv[1])
    for path in sys.argv[2:]:
        logp = model(path)
        order = np.argsort(-logp)[:5]
        print(path, "  ".join(f"{model.card['classes'][i]} {np.exp(logp[i]):.1%}" for i in order))
