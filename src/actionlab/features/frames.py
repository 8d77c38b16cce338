"""The frame pipeline shared by extraction and prediction: which frames, decoded how, through which backbone.

``extract`` runs it over a manifest in DataLoader workers (:class:`VideoFrames`) and batches frames across
videos; prediction runs it on one video (:func:`video_features`, a batch of frames at a time; :func:`file_features`
for a file of either modality). Both sample with :func:`sample_frame_indices`, decode and preprocess with the
modality's step (:class:`RgbStep`, or :class:`~actionlab.features.flow.FlowStep` for optical flow) and build the
backbone with :func:`build_backbone`, so a video's features at prediction time are the ones extraction would have
stored. :func:`build_pipeline` gathers the parts extraction needs for a modality (:class:`FramePipeline`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from actionlab._version import __version__
from actionlab.config import ExtractConfig, to_dict
from actionlab.data.manifest import Manifest
from actionlab.data.video.decode import DECODE_PROVENANCE, VideoDecodeError, VideoInfo, VideoReader
from actionlab.features import backbones
from actionlab.features.frame_sampling import sample_frame_indices, sampler_params
from actionlab.features.frame_sampling import video_features as _video_features
from actionlab.features.store import COMPAT_FIELDS
from actionlab.types import VideoRecord
from actionlab.utils import git_revision, kill_point

logger = logging.getLogger(__name__)


Step = Callable[..., tuple[np.ndarray, torch.Tensor, VideoInfo]]
"""``step(path, expected_frames=0) -> (indices (T,) int64, x, info)``: what a decoding worker makes of one video
(``x``: ``(T, C, S, S)`` float32 for the backbone, or ``(T, C, H, W)`` uint8 arrays stored as they are)."""


def video_features(source: Any, cfg: ExtractConfig, preprocess: Any, engine: Callable[..., Any],
                   timings: MutableMapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices (T,), features (T, D) float32)`` of one video, as extraction computes them, with the backbone's
    :class:`~actionlab.features.preprocess.Preprocess` (:func:`actionlab.features.frame_sampling.video_features`)."""
    return _video_features(source, cfg, preprocess.preprocess_batch, engine, timings)


def engine_features(x: torch.Tensor, engine: Callable[..., Any], batch_size: int) -> np.ndarray:
    """``(T, D) float32``: the backbone (``engine``) over a video's prepared inputs ``x`` (T, C, H, W), a batch of
    ``batch_size`` at a time (what a motion modality's ``file_features`` runs after its step)."""
    return np.concatenate([np.asarray(engine(x[s:s + batch_size])[0], np.float32)
                           for s in range(0, len(x), batch_size)])


def check_frame_count(path: str | Path, n: int, expected_frames: int) -> int:
    """``n``, the file's frame count; warns when the manifest's count (``expected_frames``, 0 = unknown) differs."""
    if expected_frames > 0 and expected_frames != n:
        logger.warning("%s: the manifest says %d frames, the file has %d; using %d (re-run "
                       "`actionlab index` to refresh the manifest)", path, expected_frames, n, n)
    return n


def decode_frames(path: str | Path, cfg: ExtractConfig, preprocess: Any, expected_frames: int = 0
                  ) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
    """``(indices (T,) int64, frames (T, 3, S, S) float32, info)``: the sampled frames of one video, decoded at
    the backbone's short side and preprocessed. ``expected_frames`` (the manifest's count, 0 = unknown) only
    warns when the file disagrees."""
    # One open: the reader demuxes once (exact frame count) and scales to the backbone's short side.
    with VideoReader(path, size=preprocess.short_side) as reader:
        info = reader.info
        n = check_frame_count(path, info.num_frames, expected_frames)
        indices = sample_frame_indices(n, cfg)
        frames = reader.get_frames(indices)  # (T, H, W, 3) uint8
    return np.asarray(indices, np.int64), preprocess.preprocess_batch(frames), info


class VideoFrames(Dataset):
    """Item ``i``: the sampled frames of ``records[i]``, decoded at the backbone's decode size and preprocessed.

    Runs in DataLoader workers, so decoding and preprocessing overlap inference in the main process. Returns
    ``dict(i, x=step's array, indices=(T,) int64, error=None)``; a video that cannot be decoded
    gives ``x=None`` and ``error=reason``, so the main process decides what to do with it.
    """

    def __init__(self, manifest: Manifest, records: Sequence[VideoRecord], step: Step) -> None:
        self.manifest, self.records, self.step = manifest, list(records), step

    def __len__(self) -> int:
        return len(self.records)

    def path(self, i: int) -> Path:
        return self.manifest.abspath(self.records[i])

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec, path = self.records[i], self.path(i)
        try:
            indices, x, _ = self.step(path, expected_frames=rec.num_frames)
            kill_point("extract:decode")
        except VideoDecodeError as e:
            return {"i": i, "x": None, "indices": None, "error": e.reason}
        except (OSError, ValueError, IndexError, RuntimeError) as e:
            return {"i": i, "x": None, "indices": None, "error": f"{type(e).__name__}: {e}"}
        return {"i": i, "x": x, "indices": indices, "error": None}


def load_backbone(cfg: ExtractConfig) -> tuple[Any, torch.nn.Module]:
    """``(spec, module in eval mode)`` of ``cfg.backbone`` with ``cfg.weights`` as an RGB network pooled by
    ``cfg.pool``, the same on every rank and run; each modality (:mod:`actionlab.features.modalities`) checks and adapts it."""
    spec = backbones.get_backbone_spec(cfg.backbone, cfg.pool)  # feature_dim: D of this pooling
    if cfg.resolved_view != spec.preprocess.view:
        spec = dataclasses.replace(spec, preprocess=dataclasses.replace(spec.preprocess, view=cfg.resolved_view))
    # Random weights ("none") must be identical on every rank and every rerun: seed their initialization.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = backbones.create_backbone(cfg.backbone, weights=cfg.weights, pool=cfg.pool)
    return spec, module.eval()


# ----------------------------------------------------------------------------------- provenance


def _weights_identity(module: torch.nn.Module, cfg: ExtractConfig) -> tuple[str, str]:
    """``(weights id, sha256)``: the weights file and its hash, or for ``none`` a hash of the seeded tensors."""
    wid = str(getattr(module, "weights_id", cfg.weights))
    if "@sha256:" in wid:  # "<file name>@sha256:<hex>" (actionlab.features.weights.weights_id)
        name, sha = wid.split("@sha256:", 1)
        return name, sha
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return wid, "tensors:" + h.hexdigest()


@dataclass(frozen=True)
class FramePipeline:
    """What extraction runs for one modality: the decoding workers' step and the network over its output."""

    step: Step
    spec: Any
    """The backbone's spec, or None when the step's arrays are stored as they are (raw flow)."""
    module: torch.nn.Module | None
    feature_dim: int
    """D of a stored row ``(T, D)``; for stored arrays ``(T, C, H, W)``, their channels C."""
    preprocessing: dict[str, Any]
    """What the rows are, for the store's provenance and the checkpoints of runs trained on it."""
    settings: dict[str, Any] | None = None
    """The modality's own settings two stores must share (optical flow: algorithm, bound, stack...)."""
    light_workers: bool = False
    """Decoding is a small share of the work (RGB: ~10%): on a CPU, its workers run at a lower priority and fill
    the network's idle cycles."""
    fresh_workers: bool = False
    """Decoding workers start fresh (spawn) rather than forked: OpenCV workers forked from a process whose
    OpenCV or FFmpeg threads have run can wait forever on a lock a parent thread held."""


def build_provenance(manifest: Manifest, cfg: ExtractConfig, pipeline: FramePipeline, splits: Sequence[str],
                     engine_name: str) -> dict[str, Any]:
    """The provenance a store made by this run carries (see :mod:`actionlab.features.store`)."""
    weights_id, weights_sha = (None, None) if pipeline.module is None else _weights_identity(pipeline.module, cfg)
    raw = pipeline.module is None
    return {
        "modality": cfg.modality,
        "content": "flow_fields" if raw else "features",
        "flow": pipeline.settings,
        "backbone": None if raw else cfg.backbone,
        "weights": weights_id,
        "weights_sha256": weights_sha,
        "preprocessing": pipeline.preprocessing,
        "pool": cfg.pool,  # how each frame's feature map became a vector
        "decode": dict(DECODE_PROVENANCE),  # frames upright at the displayed size (rotation, flips, SAR)
        "sampler": sampler_params(cfg),
        "feature_dim": int(pipeline.feature_dim),
        "dtype": "uint8" if raw else cfg.dtype,
        "manifest_checksum": manifest.checksum(),
        "manifest_root": str(Path(manifest.root).resolve()),  # where the videos are (the report shows them)
        "splits": sorted(splits),
        "predictions": bool(cfg.predictions),
        "num_classes": len(manifest.classes),
        "engine": engine_name,
        "extract_config": to_dict(cfg),
        "actionlab_version": __version__,
        "git_revision": git_revision(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def compat(provenance: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``provenance`` two runs must agree on (:data:`~actionlab.features.store.COMPAT_FIELDS`)."""
    return {k: provenance.get(k) for k in COMPAT_FIELDS}
