"""``actionlab explain RUN VIDEO``: where in space and time a trained run's prediction for a video comes from.

Each run kind is explained with what it can show (maps from :mod:`actionlab.evaluate.saliency`):

- ``video`` (3D networks, LRCN, fusion): Grad-CAM over space and time of every test clip (centre crop); the
  per-frame weight is each frame's share of the heat.
- ``temporal`` (two-stage: a 2D backbone's cached features, then a temporal model): per-frame Grad-CAM of the
  backbone named in the checkpoint, back-propagated through the feature normalization and the temporal model,
  so the maps show what moved the *action* score; the per-step weight is occlusion: how much the target's
  log-probability drops when that step is replaced by the train-set mean feature.
- ``frames`` (a fine-tuned 2D CNN whose frame probabilities are averaged): per-frame Grad-CAM; the per-frame
  weight is that frame's probability of the target class.

Frames are decoded and preprocessed as the run's checkpoint records (the preprocessing that travels with the
weights), so the maps are drawn on what the model saw. :func:`write_explanation` writes ``<video>.png`` (a
strip of frames with the heat maps and the per-step curve), ``<video>.mp4`` and ``<video>.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import recorded_extract, resolved_inference
from actionlab.data import sampling
from actionlab.data.video.decode import VideoReader
from actionlab.evaluate.inference import window_indices
from actionlab.evaluate.saliency import cam_layer, grad_cam, step_occlusion, temporal_video_logprobs
from actionlab.evaluate.video_scores import top_labels
from actionlab.models.checkpoint import load_model_from_checkpoint
from actionlab.report.strips import curve_panel, frame_strip, overlay, resize_frames, write_mp4
from actionlab.rundir import RunDir
from actionlab.utils import atomic_path, atomic_write_text, select_device, strict_json

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["Explanation", "RunExplainer", "explanation_strip", "strip_maker", "write_explanation"]


@dataclass
class Explanation:
    """What a run's prediction for one video rests on."""

    video: str
    classes: list[str]
    log_probs: np.ndarray
    """``(K,)`` the video's log-probabilities, computed along the path the maps were taken from."""
    target: int
    """The class explained (the predicted one unless asked otherwise)."""
    frames: np.ndarray
    """``(N, S, S, 3)`` uint8: the frames as the model saw them (centre crop, un-normalized), in time order, each
    once (a frame that overlapping clips share gets their mean heat map and the sum of their weights)."""
    frame_index: np.ndarray
    """``(N,)`` int64: each frame's number in the video."""
    heat: np.ndarray
    """``(N, S, S)`` float32 in ``[0, 1]``: the heat map over each frame."""
    steps: np.ndarray
    """``(N,)`` float32: how much the prediction rests on each frame (see ``step_method``)."""
    map_method: str
    step_method: str
    part: np.ndarray | None = None
    """``(N,)`` int64: the clip each frame came from (video runs; a frame clips share goes to the first)."""

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.log_probs))

    def probs(self) -> np.ndarray:
        """``(K,)`` class probabilities."""
        p = np.exp(self.log_probs - self.log_probs.max())
        return p / p.sum()

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the classes, the methods and the per-frame weights (no pixels)."""
        return {"video": self.video, "target": self.classes[self.target],
                "predicted": self.classes[self.predicted], "top": top_labels(self.log_probs, self.classes, 5),
                "map": self.map_method, "steps": self.step_method,
                "frames": [int(i) for i in self.frame_index], "weights": [float(w) for w in self.steps],
                "heat_per_frame": [float(h) for h in self.heat.mean(axis=(1, 2))]}


def _to_uint8(x: torch.Tensor, mean: Any, std: Any) -> np.ndarray:
    """Normalized ``(N, 3, S, S)`` -> ``(N, S, S, 3)`` uint8 (the inverse of the run's normalization)."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x.detach().float().cpu() * s + m) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _FeatureChain(nn.Module):
    """A two-stage run as one differentiable model: frames ``(U, 3, S, S)`` -> backbone features -> train-set
    normalization -> the temporal model over the run's windows -> video log-probabilities ``(1, K)``.

    ``used`` are the positions (among the ``T`` extracted frames) that the windows read; only those frames go
    through the backbone, the others are never read."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 inf: Any, num_steps: int, used: np.ndarray) -> None:
        super().__init__()
        self.backbone, self.head, self.inf = backbone, head, inf
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("used", torch.from_numpy(used))
        self.num_steps = num_steps

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(U, 3, S, S) -> (T, D)`` normalized features (rows not in ``used`` are zero: never read)."""
        f = (self.backbone.forward_features(frames) - self.mean) / self.std  # (U, D)
        return f.new_zeros(self.num_steps, f.shape[1]).index_copy(0, self.used, f)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return temporal_video_logprobs(self.head, self.features(frames)[None], self.inf)


class _FrameAverage(nn.Module):
    """A frame classifier's video score: the log of the mean frame probability, ``(N, 3, S, S) -> (1, K)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.model(frames).float(), -1)  # (N, K)
        return (torch.logsumexp(logp, 0) - np.log(len(logp)))[None]


class RunExplainer:
    """A trained run, loaded once, that explains video files: ``explainer(path, target=None) -> Explanation``.

    ``layer`` names the module Grad-CAM reads (default: found by
    :func:`~actionlab.evaluate.saliency.cam_layer`); ``target`` a class name or index (default: the
    predicted class).
    """

    def __init__(self, run_dir: str | Path, device: str = "cpu", layer: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        if RunDir(self.run_dir).is_fused():
            raise ValueError(f"{self.run_dir} is a fused two-stream run: explain one of its member runs (fusion.json "
                             "names them)")
        self.device = select_device(device)
        self.model, self.meta = load_model_from_checkpoint(RunDir(self.run_dir).checkpoint(), map_location=self.device)
        if (self.meta.get("stores") or (self.meta.get("extract") or {}).get("modality", "rgb") != "rgb"
                or (self.meta.get("preprocessing") or {}).get("input") == "optical flow"):
            raise ValueError(f"{self.run_dir} reads optical flow or frame-difference features: explain draws heat "
                             "maps over RGB frames; explain the RGB run of the pair instead")
        self.classes = list(self.meta["classes"])
        self.kind = self.meta.get("kind", "temporal")
        self.pre = dict(self.meta.get("preprocessing") or {})
        self.layer = layer
        if self.kind == "temporal":
            from actionlab.features.modalities import build_backbone

            self.extract = recorded_extract(self.meta.get("extract"))
            self.spec, self.backbone = build_backbone(self.extract)
            self.backbone.to(self.device)
            self.inference = resolved_inference(RunDir(self.run_dir).train_config())
        elif "mean" not in self.pre:
            raise ValueError(f"{self.run_dir}: its checkpoint records no preprocessing (trained by an older "
                             "actionlab); retrain it, or resume it once with this version")

    def target_index(self, target: str | int | None, log_probs: np.ndarray) -> int:
        if target is None:
            return int(np.argmax(log_probs))
        if isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        if isinstance(target, int) and 0 <= target < len(self.classes):
            return target
        raise ValueError(f"--target {target!r} is not a class of {self.run_dir} ({', '.join(self.classes[:10])}"
                         f"{', ...' if len(self.classes) > 10 else ''})")

    def __call__(self, path: str | Path, target: str | int | None = None) -> Explanation:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such video file")
        if self.kind == "temporal":
            return self._temporal(path, target)
        if self.kind == "frames":
            return self._frames(path, target)
        return self._clips(path, target)

    def _clips(self, path: Path, target: str | int | None) -> Explanation:
        from actionlab.data.transforms import ClipEvalTransform

        p = self.pre
        tf = ClipEvalTransform(size=p["size"], resize=p["resize"], crops=1, mean=tuple(p["mean"]),
                               std=tuple(p["std"]))
        with VideoReader(path, size=p["resize"]) as reader:
            idx = sampling.clip_indices(reader.info.num_frames, p["clip_len"], p["frame_interval"], p["test_clips"])
            clips = torch.stack([tf(reader.get_frames(row))[0] for row in idx]).to(self.device)  # (W, 3, T, S, S)
        with torch.no_grad():
            per_clip = F.log_softmax(self.model(clips).float(), -1)  # (W, K)
            log_probs = F.log_softmax(per_clip.mean(0), -1).cpu().numpy()  # clips averaged in log space
        tgt = self.target_index(target, log_probs)
        heat, layer = grad_cam(self.model, clips, tgt, self.layer)  # (W, T, S, S) in [0, 1]
        mass = heat.sum(axis=(2, 3)).reshape(-1)  # (W*T,)
        steps = mass / max(float(mass.sum()), 1e-12)
        frames = _to_uint8(clips.transpose(1, 2).reshape(-1, 3, *clips.shape[3:]), p["mean"], p["std"])  # (W*T, ...)
        return _per_frame(Explanation(str(path), self.classes, log_probs, tgt, frames, idx.reshape(-1),
                                      heat.reshape(-1, *heat.shape[2:]), steps.astype(np.float32),
                                      f"Grad-CAM of {type(self.model).__name__}.{layer}, {len(idx)} clip(s)",
                                      "share of the heat in each frame (a line per clip)",
                                      np.repeat(np.arange(len(idx)), idx.shape[1])))

    def _frames(self, path: Path, target: str | int | None) -> Explanation:
        from actionlab.data.transforms import FrameEvalTransform

        p = self.pre
        tf = FrameEvalTransform(crop=p["crop"], resize=p["resize"], mean=tuple(p["mean"]), std=tuple(p["std"]))
        with VideoReader(path, size=p["resize"]) as reader:
            idx = sampling.tsn_indices(reader.info.num_frames, p["test_per_video"], None)
            x = torch.stack([tf(f, None) for f in reader.get_frames(idx)]).to(self.device)  # (N, 3, S, S)
        chain = _FrameAverage(self.model).eval()
        with torch.no_grad():
            per_frame = F.log_softmax(self.model(x).float(), -1)  # (N, K)
            log_probs = chain(x)[0].cpu().numpy()
        tgt = self.target_index(target, log_probs)
        heat, layer = grad_cam(chain, x, tgt, self.layer)
        return Explanation(str(path), self.classes, log_probs, tgt, _to_uint8(x, p["mean"], p["std"]),
                           np.asarray(idx, np.int64), heat, per_frame[:, tgt].exp().cpu().numpy(),
                           f"Grad-CAM of the frame classifier's {layer}, per frame",
                           "the frame's probability of the class (the video averages them)")

    def _temporal(self, path: Path, target: str | int | None) -> Explanation:
        from actionlab.features.frames import decode_frames

        pre = self.spec.preprocess
        indices, x, _ = decode_frames(path, self.extract, pre)  # (T,), (T, 3, S, S)
        used = np.unique(window_indices(len(indices), self.inference))
        frames = x[used].to(self.device)
        mean = torch.as_tensor(np.asarray(self.meta["feature_mean"], np.float32), device=self.device)
        std = torch.as_tensor(np.asarray(self.meta["feature_std"], np.float32), device=self.device)
        chain = _FeatureChain(self.backbone, self.model, mean, std, self.inference, len(indices), used).eval()
        with torch.no_grad():
            feats = chain.features(frames)  # (T, D)
            log_probs = temporal_video_logprobs(self.model, feats[None], self.inference)[0].cpu().numpy()
        tgt = self.target_index(target, log_probs)
        # a layer of the backbone (found on the backbone alone: the chain needs all its frames at once)
        name = self.layer.removeprefix("backbone.") if self.layer else cam_layer(self.backbone, frames)[0]
        heat, layer = grad_cam(chain, frames, tgt, "backbone." + name)  # (U, S, S)
        steps = step_occlusion(lambda z: temporal_video_logprobs(self.model, z, self.inference), feats, tgt)
        return Explanation(str(path), self.classes, log_probs, tgt, _to_uint8(frames, pre.mean, pre.std),
                           np.asarray(indices[used], np.int64), heat, steps[used].astype(np.float32),
                           f"Grad-CAM of the {self.extract.backbone} backbone ({layer}) through "
                           f"{self.meta['model_name']}, per frame",
                           "occlusion: drop of log p(class) with the step replaced by the train-set mean feature")


def _per_frame(e: Explanation) -> Explanation:
    """Frames of overlapping clips in time order, once each: a frame several clips read gets the mean of their
    heat maps and the sum of their shares."""
    index, first, owner = np.unique(e.frame_index, return_index=True, return_inverse=True)
    counts = np.bincount(owner).astype(np.float32)
    heat = np.zeros((len(index), *e.heat.shape[1:]), np.float32)
    np.add.at(heat, owner, e.heat)
    e.heat = heat / counts[:, None, None]
    e.steps = np.bincount(owner, weights=e.steps).astype(np.float32)
    e.frames, e.frame_index = e.frames[first], index.astype(np.int64)
    e.part = e.part[first] if e.part is not None else None
    return e


def explanation_strip(e: Explanation, tiles: int = 8, height: int = 128, title: bool = True) -> Image.Image:
    """The picture of an explanation (a PIL image): up to ``tiles`` evenly spaced frames (the hottest among
    them) with their heat maps, and the per-frame weights as a curve under them."""
    pick = np.unique(np.linspace(0, len(e.frames) - 1, min(tiles, len(e.frames))).round().astype(int))
    hottest = int(np.argmax(e.heat.sum(axis=(1, 2))))
    if hottest not in pick:  # the frame the map rests on most is always shown, in place of its nearest neighbour
        pick[np.argmin(np.abs(pick - hottest))] = hottest
        pick = np.unique(pick)
    shown = overlay(resize_frames(e.frames[pick], height), e.heat[pick])
    p = e.probs()
    head = (f"predicted {e.classes[e.predicted]} ({p[e.predicted]:.0%}) · explaining {e.classes[e.target]} · "
            f"{e.map_method}") if title else ""
    width = len(pick) * (shown.shape[2] + 4) - 4
    curve = curve_panel(width, 90, e.frame_index, e.steps, f"per frame: {e.step_method}",
                        marks=e.frame_index[pick].tolist(), groups=e.part)
    return frame_strip(shown, [f"frame {int(i)}" for i in e.frame_index[pick]], head, curve)


def write_explanation(e: Explanation, out_dir: str | Path, fps: int = 4, size: int = 256) -> dict[str, Path]:
    """``out_dir/<video stem>.png`` (:func:`explanation_strip`), ``.mp4`` (every frame with its heat map, the
    curve with a cursor under it; ``fps`` frames a second) and ``.json`` (:meth:`Explanation.summary`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(e.video).stem
    paths = {"png": out / f"{stem}.png", "mp4": out / f"{stem}.mp4", "json": out / f"{stem}.json"}
    with atomic_path(paths["png"]) as tmp:
        explanation_strip(e).save(tmp, "PNG")
    big = overlay(resize_frames(e.frames, size, size), e.heat)
    movie = []
    for i in range(len(big)):
        curve = curve_panel(size, 96, e.frame_index, e.steps, "per-frame weight", cursor=float(e.frame_index[i]),
                            groups=e.part)
        movie.append(np.concatenate([big[i], np.asarray(curve)], axis=0))
    write_mp4(paths["mp4"], np.stack(movie), fps=fps)
    atomic_write_text(paths["json"], strict_json(e.summary(), indent=2) + "\n")
    logger.info("explained %s -> %s", e.video, paths["png"])
    return paths


def strip_maker(run: Any) -> Callable[[Path, int], Image.Image] | None:
    """For the report: ``(video, class) -> strip with heat maps`` of a run (a ``RunData`` read from a run
    directory), or None when the run has no checkpoint to explain with."""
    run_dir = getattr(run, "path", None)
    if run_dir is None or not RunDir(run_dir).is_trained():
        return None
    try:
        explainer = RunExplainer(run_dir)
    except (OSError, ValueError, KeyError) as err:
        logger.warning("%s: no heat maps in the report (%s)", run_dir, err)
        return None

    def draw(video: Path, target: int) -> Image.Image:
        return explanation_strip(explainer(video, target), tiles=6, height=112, title=False)

    return draw
