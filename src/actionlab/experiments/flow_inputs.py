"""Video networks on optical flow clips: the run inputs of ``train --features FLOW_RAW.h5 --model NAME``.

A raw flow store (``extract --modality flow --flow-output raw``) holds each video's quantised flow
``(N, 2L, H, W)`` uint8 at its sampled positions (``--sampler all --flow-stack 1``: the flow of every frame,
two channels, the I3D / S3D flow stream). The network is built with ``in_channels=2L`` (the registry adapts
its first convolution, :mod:`actionlab.models.registry`) and trains on clips of ``clip.clip_len`` positions
(:class:`~actionlab.data.flow_clips.FlowClipDataset`), held in memory as uint8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab.config import TrainConfig, to_dict
from actionlab.evaluate.inference import predict_clips
from actionlab.evaluate.predictions import Predictions
from actionlab.experiments.inputs import DatasetInputs, StorePaths, store_paths
from actionlab.models.registry import model_entry, models_taking
from actionlab.utils import available_memory


class FlowClipInputs(DatasetInputs):
    """Clips of quantised optical flow from a raw flow store, for ``video`` networks."""

    kind = "video"

    def __init__(self, features: StorePaths, cfg: TrainConfig, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        from actionlab.features.store import FeatureStore

        super().__init__(cfg, device, rank, world)
        paths = store_paths(features)
        name = cfg.model.name
        if len(paths) != 1:
            raise ValueError(f"video network {name!r} reads one raw flow store, got {len(paths)} --features")
        self.path = paths[0]
        self.what = str(self.path)
        self.store = FeatureStore(self.path)
        if self.store.content != "flow_fields":
            raise ValueError(f"model {name!r} is a video network: it trains on clips, from --manifest (RGB) or from "
                             f"a raw optical flow store (extract --modality flow --flow-output raw), but "
                             f"{self.path} holds per-step {self.store.describe()} (for temporal models such as lstm)")
        if "in_channels" not in model_entry(name).params:
            raise ValueError(f"model {name!r} cannot read {self.store.feature_dim}-channel flow clips; models that "
                             f"can: {', '.join(models_taking('in_channels'))}")
        clip = cfg.clip
        if clip.hue or clip.grayscale:
            raise ValueError(f"clip.hue={clip.hue} and clip.grayscale={clip.grayscale} jitter colour, which optical "
                             "flow does not have: set --set clip.hue=0 --set clip.grayscale=0")
        self.classes = list(self.store.classes)
        self.splits = sorted({self.store.record(k).split for k in self.store.keys()})
        self._paths: dict[str, list[str]] = {}  # manifest paths of each split's videos, in dataset order

    def builder_args(self) -> dict[str, Any]:
        return {"clip_len": self.cfg.clip.clip_len, "size": self.cfg.clip.size,
                "in_channels": int(self.store.feature_dim)}

    def _videos(self, split: str) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
        keys = self.store.keys(split)
        if not keys:
            raise ValueError(f"{self.path} has no {split!r} videos (splits: {self.splits})")
        return ([self.store.array(k) for k in keys], np.array([self.store.record(k).label_index for k in keys]),
                [self.store.record(k).path for k in keys])

    def make_dataset(self, split: str, train: bool) -> Any:
        from actionlab.data.flow_clips import FlowClipDataset

        videos, labels, self._paths[split] = self._videos(split)
        c = self.cfg.clip
        ds = FlowClipDataset(videos, labels, c.clip_len, c.frame_interval, c.size, c.resize, c.test_clips,
                             train=train, seed=self.cfg.seed, crops=c.test_crops, augment=c.augment, flip=c.flip)
        return ds

    def bind(self, model: nn.Module, val_split: str | None, log: Callable[[str], Any]) -> None:
        need = sum(self.store.nbytes(k) for s in ["train", *([val_split] if val_split else [])]
                   for k in self.store.keys(s))
        free = available_memory()
        if free is not None and need > free // 2:
            raise ValueError(f"the flow clips of {self.path} take {need / 2**30:.1f} GiB in memory, more than half of "
                             f"the {free / 2**30:.1f} GiB available: extract them at a smaller --flow-size or with "
                             "fewer frames (--sampler stride)")
        self.train_ds = self.make_dataset("train", train=True)
        self.sampler = self._sampler()

    def predict(self, model: nn.Module, split: str) -> Predictions:
        ds = self.eval_data(split)
        return self._predictions(self._paths[split], ds, predict_clips(model, ds, self.cfg.batch_size, self.device,
                                                             self.cfg.num_workers, self.amp))

    def checkpoint_meta(self) -> dict[str, Any]:
        clip, prov = self.cfg.clip, self.store.provenance
        channels = int(self.store.feature_dim)
        pre = {**prov.get("preprocessing", {}), "mean": [0.5] * channels, "std": [0.5] * channels,
               "resize": clip.resize,
               "size": clip.size, "clip_len": clip.clip_len, "frame_interval": clip.frame_interval,
               "test_clips": clip.test_clips, "test_crops": clip.test_crops,
               "flow_resize": prov.get("preprocessing", {}).get("resize")}
        return {"clip": to_dict(clip), "extract": prov.get("extract_config", {}), "preprocessing": pre}

    def provenance(self) -> dict[str, Any]:
        keep = ("modality", "content", "flow", "sampler", "feature_dim", "manifest_checksum")
        return {"kind": self.kind, "features": str(self.path),
                "store_provenance": {k: self.store.provenance.get(k) for k in keep}}

    def close(self) -> None:
        self.store.close()
