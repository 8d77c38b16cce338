"""Models that train on a raw optical flow store: video networks on flow clips (``train --features FLOW_RAW.h5
--model NAME``) and a 2D CNN fine-tuned on flow images (``finetune FLOW_RAW.h5``).

A raw flow store (``extract --modality flow --flow-output raw``) holds each video's quantised flow
``(N, 2L, H, W)`` uint8 at its sampled positions (``--sampler all --flow-stack 1``: the flow of every frame,
two channels, the I3D / S3D flow stream). The network is built with ``in_channels=2L`` (the registry adapts
its first convolution, :mod:`actionlab.models.registry`) and trains on clips of ``clip.clip_len`` positions
(:class:`~actionlab.data.flow_clips.FlowClipDataset`), held in memory as uint8.

A frozen ImageNet CNN reads flow images poorly: it was never trained on motion. TSN trains its flow stream
instead. :class:`FlowFrameInputs` fine-tunes the 2D backbone on single flow images of a raw store extracted
with the default sampler and stack (each image drawn as feature extraction draws it), and writes
``backbone.pt`` with the flow settings it was trained on; ``extract --modality flow --weights RUN/backbone.pt``
then caches features from it for the temporal models, and refuses other flow settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from actionlab.config import TrainConfig, to_dict
from actionlab.data.sampling import tsn_indices
from actionlab.evaluate.inference import predict_clips, predict_frames
from actionlab.evaluate.predictions import Predictions
from actionlab.features.flow import flow_image
from actionlab.features.preprocess import Preprocess
from actionlab.models.registry import model_entry, models_taking, normalization_of
from actionlab.rundir import RunDir
from actionlab.runs.inputs.base import DatasetInputs, StorePaths, store_paths
from actionlab.utils import available_memory

if TYPE_CHECKING:
    from actionlab.features.store import FeatureStore


class FlowClipInputs(DatasetInputs):
    """Clips of quantised optical flow from a raw flow store, for ``video`` networks."""

    kind = "video"

    def __init__(self, features: StorePaths, cfg: TrainConfig, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        super().__init__(cfg, device, rank, world)
        name = cfg.model.name
        self.store = _raw_flow_store(features, f"video network {name!r}")
        self.path = self.store.path
        self.what = str(self.path)
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

    def bind(self, model: nn.Module, val_split: str | None) -> None:
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
        return _store_provenance(self.kind, self.store)

    def close(self) -> None:
        self.store.close()


def _raw_flow_store(features: StorePaths, what: str) -> FeatureStore:
    """The one raw flow store ``what`` (a model, for messages) trains on, or an error that says what to pass."""
    from actionlab.features.store import FeatureStore

    paths = store_paths(features)
    if len(paths) != 1:
        raise ValueError(f"{what} reads one raw flow store, got {len(paths)} --features")
    store = FeatureStore(paths[0])
    if store.content != "flow_fields":
        raise ValueError(f"{what} trains on the videos of --manifest (RGB) or on a raw optical flow store (extract "
                         f"--modality flow --flow-output raw), but {store.path} holds per-step {store.describe()} "
                         "(for temporal models such as lstm)")
    return store


def _store_provenance(kind: str, store: FeatureStore) -> dict[str, Any]:
    keep = ("modality", "content", "flow", "sampler", "feature_dim", "manifest_checksum")
    return {"kind": kind, "features": str(store.path), "store_provenance": {k: store.provenance.get(k) for k in keep}}


# ----------------------------------------------------------------------------------- flow images, one at a time


class FlowFrameDataset(Dataset):
    """Flow images of a raw flow store's videos: ``(image (3, S, S) float32, label, video_index)``.

    Item ``i`` is stored position ``tsn_indices(N, per_video)[i % per_video]`` of video ``i // per_video``
    (random within its segment in training, the segment centre at test), drawn by
    :func:`~actionlab.features.flow.flow_image` exactly as extraction draws it: a ``(3, C, C)`` centre square,
    normalised with ``pre``. In training a random ``crop`` x ``crop`` square of it is taken, and with ``flip``
    half the items are mirrored (the x displacement negated with them). Rows are read one at a time, so the
    store never has to fit in memory; randomness comes from ``default_rng([seed, epoch, index])``.
    """

    def __init__(self, store: FeatureStore, keys: Sequence[str], labels: np.ndarray, per_video: int, bound: float,
                 pre: Preprocess, train: bool, crop: int, flip: bool = False, seed: int = 0) -> None:
        if per_video < 1 or not 1 <= crop <= pre.crop:
            raise ValueError(f"need per_video >= 1 and 1 <= crop <= {pre.crop}, got {per_video} and {crop}")
        self.store, self.keys, self.labels = store, list(keys), np.asarray(labels)
        self.rows = [store.num_rows(k) for k in self.keys]
        self.per_video, self.bound, self.pre, self.train = per_video, bound, pre, train
        self.crop, self.flip, self.seed, self.epoch = crop, flip, seed, 0

    @property
    def num_videos(self) -> int:
        return len(self.keys)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_videos * self.per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} flow images")
        v, k = divmod(index, self.per_video)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        row = tsn_indices(self.rows[v], self.per_video, rng if self.train else None)[k]
        x = flow_image(self.store.row(self.keys[v], row)[None], self.bound, self.pre)[0]
        if self.train:
            top, left = rng.integers(0, self.pre.crop - self.crop + 1, size=2)
            x = x[:, top:top + self.crop, left:left + self.crop]
            if self.flip and rng.random() < 0.5:  # mirror the image and the motion: x displacement c -> 1 - c
                x = x.flip(-1)
                x[0] = (1.0 - 2.0 * self.pre.mean[0]) / self.pre.std[0] - x[0]
        return x.contiguous(), int(self.labels[v]), v


class FlowFrameInputs(DatasetInputs):
    """Flow images from a raw flow store for ``frames`` classifiers: a 2D CNN fine-tuned on optical flow (TSN's
    flow stream), whose ``backbone.pt`` then extracts flow features (``extract --modality flow --weights``)."""

    kind = "frames"

    def __init__(self, features: StorePaths, cfg: TrainConfig, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        super().__init__(cfg, device, rank, world)
        self.store = _raw_flow_store(features, f"frame classifier {cfg.model.name!r}")
        self.path = self.store.path
        self.what = str(self.path)
        self.classes = list(self.store.classes)
        self.splits = sorted({self.store.record(k).split for k in self.store.keys()})
        self.flow = dict(self.store.provenance.get("flow") or {})
        self.pre: Preprocess | None = None
        self.crop = 0

    def bind(self, model: nn.Module, val_split: str | None) -> None:
        from actionlab.features.backbones import get_backbone_spec

        norm = normalization_of(model)
        spec = get_backbone_spec(self.cfg.model.backbone).preprocess
        self.pre = dataclasses.replace(spec, mean=norm["mean"], std=norm["std"])
        h, w = self.store.row(self.store.keys()[0], 0).shape[-2:]
        if min(h, w) < spec.crop:
            raise ValueError(f"{self.path} holds flow of {h}x{w}, smaller than {self.cfg.model.backbone}'s "
                             f"{spec.crop}px crop: extract the raw store at --flow-size {spec.resize}")
        self.crop = self.cfg.frames.crop or spec.crop * 7 // 8
        if self.crop > spec.crop:
            raise ValueError(f"frames.crop={self.cfg.frames.crop} is larger than the {spec.crop}px square flow "
                             f"features are extracted from; use at most {spec.crop} (0: {spec.crop * 7 // 8})")
        self.train_ds = self.make_dataset("train", train=True)
        self.sampler = self._sampler()

    def make_dataset(self, split: str, train: bool) -> FlowFrameDataset:
        keys = self.store.keys(split)
        if not keys:
            raise ValueError(f"{self.path} has no {split!r} videos (splits: {self.splits})")
        assert self.pre is not None, "bind() first"
        f = self.cfg.frames
        return FlowFrameDataset(self.store, keys, np.array([self.store.record(k).label_index for k in keys]),
                                f.per_video if train else f.test_per_video, float(self.flow["bound"]), self.pre,
                                train=train, crop=self.crop, flip=f.flip, seed=self.cfg.seed)

    def predict(self, model: nn.Module, split: str) -> Predictions:
        ds = self.eval_data(split)
        return self._predictions([self.store.record(k).path for k in ds.keys], ds, predict_frames(
            model, ds, self.cfg.batch_size, self.device, self.cfg.num_workers, self.amp))

    def flow_settings(self) -> dict[str, Any]:
        """The flow a backbone fine-tuned here reads: the store's settings, drawn as flow images."""
        return {**{k: v for k, v in self.flow.items() if k != "output"}, "encoding": "image"}

    def checkpoint_meta(self) -> dict[str, Any]:
        assert self.pre is not None, "bind() first"
        pre = {"input": "optical flow", "mean": list(self.pre.mean), "std": list(self.pre.std), "crop": self.pre.crop,
               "train_crop": self.crop, "test_per_video": self.cfg.frames.test_per_video, "flow": self.flow_settings()}
        return {"backbone": self.cfg.model.backbone, "train_layers": self.cfg.model.train_layers,
                "preprocessing": pre, "extract": self.store.provenance.get("extract_config", {})}

    def provenance(self) -> dict[str, Any]:
        return _store_provenance(self.kind, self.store)

    def finish(self, run_dir: Path, best: nn.Module) -> dict[str, Any]:
        """Write ``backbone.pt``: the backbone fine-tuned on flow, for ``extract --modality flow --weights``."""
        from actionlab.features.weights import save_backbone_checkpoint

        path = save_backbone_checkpoint(
            RunDir(run_dir).backbone, backbone=self.cfg.model.backbone, state_dict=best.state_dict(),
            num_classes=len(self.classes), classes=self.classes, base_weights=str(getattr(best, "weights_id", "")),
            extra={"input": "optical flow", "flow": self.flow_settings(), "train_layers": self.cfg.model.train_layers,
                   "crop": self.crop})
        return {"backbone": self.cfg.model.backbone, "backbone_checkpoint": str(path)}

    def close(self) -> None:
        self.store.close()
