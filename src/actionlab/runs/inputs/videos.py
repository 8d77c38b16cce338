"""Clips (for ``video`` networks) and single frames (for ``frames`` classifiers) decoded from the videos
of a manifest."""


from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from actionlab.config import TrainConfig, to_dict
from actionlab.data.video.decode import DECODE_PROVENANCE
from actionlab.evaluate.inference import predict_clips, predict_frames
from actionlab.evaluate.predictions import Predictions
from actionlab.models.registry import normalization_of
from actionlab.rundir import RunDir
from actionlab.runs.inputs.base import DatasetInputs, median_seconds
from actionlab.utils import available_memory

logger = logging.getLogger(__name__)


class _ManifestInputs(DatasetInputs):
    """Inputs decoded from the videos of a manifest."""

    def __init__(self, manifest_path: str | Path, cfg: TrainConfig, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        from actionlab.data.manifest import read_manifest

        super().__init__(cfg, device, rank, world)
        self.path = Path(manifest_path)
        self.what = str(self.path)
        self.manifest = read_manifest(self.path)
        self.classes = list(self.manifest.classes)
        self.splits = list(self.manifest.splits())
        self.norm: dict[str, tuple[float, ...]] = {}

    def provenance(self) -> dict[str, Any]:
        return {"kind": self.kind, "manifest": str(self.path), "manifest_checksum": self.manifest.checksum(),
                "decode": dict(DECODE_PROVENANCE)}  # frames upright at the displayed size (rotation, flips, SAR)


class ClipInputs(_ManifestInputs):
    """Clips of ``clip.clip_len`` frames, ``clip.frame_interval`` apart, cropped to ``clip.size``."""

    kind = "video"

    def builder_args(self) -> dict[str, Any]:
        return {"clip_len": self.cfg.clip.clip_len, "size": self.cfg.clip.size}

    def make_dataset(self, split: str, train: bool) -> Any:
        from actionlab.data.datasets import ClipDataset

        return ClipDataset.from_config(self.manifest, split, self.cfg.clip, train=train, seed=self.cfg.seed,
                                       mean=self.norm["mean"], std=self.norm["std"])

    def bind(self, model: nn.Module, val_split: str | None) -> None:
        self.norm = normalization_of(model)
        self.train_ds = self.make_dataset("train", train=True)
        self.sampler = self._sampler()
        if self.cfg.clip.cache_frames:
            self._prepare_cache([val_split] if val_split else [])

    def _prepare_cache(self, splits: Sequence[str]) -> None:
        """``clip.cache_frames``: refuse a cache that would not fit, fill it before DataLoader workers fork."""
        datasets = [self.train_ds, *(self.eval_data(s) for s in splits)]
        need, free = sum(ds.cache_estimate() for ds in datasets), available_memory()
        if free is not None and need > free // 2:
            raise ValueError(f"clip.cache_frames would hold about {need / 2**30:.1f} GiB of decoded frames (short "
                             f"side clip.resize={self.cfg.clip.resize}), more than half of the "
                             f"{free / 2**30:.1f} GiB available: set clip.cache_frames=false (frames are then "
                             "decoded every epoch) or lower clip.resize")
        if self.cfg.num_workers > 0:  # decode before the workers fork, or each fills a copy of its own every epoch
            held = sum(ds.fill_cache() for ds in datasets)
            logger.info(f"decoded {sum(ds.num_videos for ds in datasets)} videos into memory: {held / 2**20:.0f} MiB")

    def predict(self, model: nn.Module, split: str) -> Predictions:
        ds = self.eval_data(split)
        return self._predictions([r.path for r in ds.records], ds, predict_clips(
            model, ds, self.cfg.batch_size, self.device, self.cfg.num_workers, self.amp))

    def checkpoint_meta(self) -> dict[str, Any]:
        clip = self.cfg.clip
        pre = {"mean": list(self.norm["mean"]), "std": list(self.norm["std"]), "resize": clip.resize,
               "size": clip.size, "clip_len": clip.clip_len, "frame_interval": clip.frame_interval,
               "sampling": clip.sampling, "keep_aspect": clip.keep_aspect,
               "test_clips": clip.test_clips, "test_crops": clip.test_crops}
        return {"clip": to_dict(clip), "preprocessing": pre}


class FrameInputs(_ManifestInputs):
    """Single frames: ``frames.per_video`` random frames (one per segment) in training, segment centres at test."""

    kind = "frames"

    def bind(self, model: nn.Module, val_split: str | None) -> None:
        from actionlab.features.backbones import get_backbone_spec

        self.norm = normalization_of(model)
        pre = get_backbone_spec(self.cfg.model.backbone).preprocess
        crop = self.cfg.frames.crop or pre.crop
        self.crop, self.resize = crop, (pre.resize if crop == pre.crop else round(crop * pre.resize / pre.crop))
        self.train_ds = self.make_dataset("train", train=True)
        self.sampler = self._sampler()

    def make_dataset(self, split: str, train: bool) -> Any:
        from actionlab.data.datasets import FrameDataset
        from actionlab.data.transforms import FrameEvalTransform, FrameTrainTransform

        mean, std = self.norm["mean"], self.norm["std"]
        if train:
            tf: Any = FrameTrainTransform(crop=self.crop, resize=self.resize, flip=self.cfg.frames.flip,
                                          mean=mean, std=std)  # type: ignore[arg-type]
        else:
            tf = FrameEvalTransform(crop=self.crop, resize=self.resize, mean=mean, std=std)  # type: ignore[arg-type]
        per_video = self.cfg.frames.per_video if train else self.cfg.frames.test_per_video
        return FrameDataset(self.manifest, split, per_video, tf, seed=self.cfg.seed, train=train,
                            decode_size=self.resize)

    def predict(self, model: nn.Module, split: str) -> Predictions:
        ds = self.eval_data(split)
        return self._predictions([r.path for r in ds.records], ds, predict_frames(
            model, ds, self.cfg.batch_size, self.device, self.cfg.num_workers, self.amp))

    def checkpoint_meta(self) -> dict[str, Any]:
        pre = {"mean": list(self.norm["mean"]), "std": list(self.norm["std"]), "resize": self.resize,
               "crop": self.crop, "test_per_video": self.cfg.frames.test_per_video}
        # "backbone" lets checkpoints/best.pt serve as extraction weights, like backbone.pt
        return {"backbone": self.cfg.model.backbone, "train_layers": self.cfg.model.train_layers,
                "preprocessing": pre, "clip_seconds": median_seconds(self.manifest.split("train"))}

    def finish(self, run_dir: Path, best: nn.Module) -> dict[str, Any]:
        """Write ``backbone.pt``: the fine-tuned backbone, usable as ``extract --weights RUN/backbone.pt``."""
        from actionlab.features.weights import save_backbone_checkpoint

        path = save_backbone_checkpoint(
            RunDir(run_dir).backbone, backbone=self.cfg.model.backbone, state_dict=best.state_dict(),
            num_classes=len(self.classes), classes=self.classes, base_weights=str(getattr(best, "weights_id", "")),
            extra={"train_layers": self.cfg.model.train_layers, "crop": self.crop, "resize": self.resize})
        return {"backbone": self.cfg.model.backbone, "backbone_checkpoint": str(path)}
