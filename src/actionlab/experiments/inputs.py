"""What a training run reads, one class per input kind; :func:`actionlab.experiments.run.train_run` drives them.

- :class:`FeatureInputs`: cached feature sequences (an HDF5 store, or several aligned stores whose features are
  concatenated per step: early fusion of RGB and flow) for ``temporal`` models.
- :class:`ClipInputs`: clips decoded from the videos of a manifest for ``video`` networks.
- :class:`FlowClipInputs`: clips of quantised optical flow from a raw flow store for ``video`` networks built
  with ``in_channels=2L`` (:mod:`actionlab.experiments.flow_inputs`).
- :class:`FrameInputs`: single frames of a manifest's videos for ``frames`` classifiers (fine-tuning).

Each one knows its classes and splits, the extra builder arguments its models need (``input_dim``,
``clip_len``...), the preprocessing to record next to the weights, the training batches, and how to predict a
split with a model (through :mod:`actionlab.evaluate.inference`, the one inference path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab.config import TrainConfig, resolved_inference, to_dict
from actionlab.evaluate.inference import predict_clips, predict_frames, predict_sequences
from actionlab.evaluate.predictions import Predictions
from actionlab.models.registry import normalization_of
from actionlab.train.sampler import GlobalBatchSampler
from actionlab.types import VideoRecord
from actionlab.utils import available_memory

logger = logging.getLogger(__name__)

Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class RunInputs:
    """The shared part: splits, device and process placement, and the hooks every input kind fills in."""

    kind = ""
    what = ""
    """The source file, as users name it in messages."""
    classes: list[str]
    splits: list[str]

    def __init__(self, cfg: TrainConfig, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.cfg, self.device, self.rank, self.world = cfg, device, rank, world
        self.amp = cfg.amp and device.type == "cuda"
        self.steps_per_epoch: int | None = None
        self._eval: dict[str, Any] = {}

    # -- splits
    def validation_split(self, log: Callable[[str], Any]) -> str | None:
        if self.cfg.val_split in self.splits:
            return self.cfg.val_split
        log(f"no {self.cfg.val_split!r} split in {self.what}: no validation, so checkpoints/best.pt follows the "
            "training loss and there is no early stopping (carve one with `actionlab index --val-fraction 0.1`)")
        return None

    def evaluation_split(self) -> str:
        if self.cfg.eval_split in self.splits:
            return self.cfg.eval_split
        for alt in ("test", "val"):
            if alt in self.splits:
                logger.warning("no %r split in %s; evaluating on %r", self.cfg.eval_split, self.what, alt)
                return alt
        raise ValueError(f"{self.what} has no {self.cfg.eval_split!r}, 'test' or 'val' split to evaluate on; "
                         f"splits: {self.splits}")

    # -- hooks
    def builder_args(self) -> dict[str, Any]:
        """Arguments of the model's builder that come from the data (``input_dim``, ``clip_len``...)."""
        return {}

    def bind(self, model: nn.Module, val_split: str | None, log: Callable[[str], Any]) -> None:
        """Make the training data for ``model`` (with the preprocessing its weights expect)."""

    def train_batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def predict(self, model: nn.Module, split: str) -> Predictions:
        raise NotImplementedError

    def load_eval(self, split: str) -> Any:
        """The evaluation data of ``split`` (what :meth:`predict` reads)."""
        raise NotImplementedError

    def eval_data(self, split: str) -> Any:
        """:meth:`load_eval`, once per split: validation reads the same data every epoch."""
        if split not in self._eval:
            self._eval[split] = self.load_eval(split)
        return self._eval[split]

    def checkpoint_meta(self) -> dict[str, Any]:
        """What the checkpoint needs beyond the model to be used elsewhere: the preprocessing, above all."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """What ``config.yaml`` records about the data."""
        return {}

    def finish(self, run_dir: Path, best: nn.Module) -> dict[str, Any]:
        """Extra outputs of a finished run; returns entries for ``metrics.json``."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self) -> RunInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def median_seconds(records: Iterable[VideoRecord]) -> float | None:
    """Median duration of ``records`` in seconds (None when no record says): how long a "clip" is to the model,
    the window length of a prediction's timeline."""
    seconds = [r.duration if r.duration > 0 else r.num_frames / r.fps for r in records
               if r.duration > 0 or (r.num_frames > 0 and r.fps > 0)]
    return float(np.median(seconds)) if seconds else None


# ----------------------------------------------------------------------------------- feature sequences


StorePaths = str | Path | Sequence[str | Path]
"""One feature store, or several aligned ones (same videos and sampled frames) read side by side."""


def store_paths(features: StorePaths) -> list[Path]:
    return [Path(features)] if isinstance(features, str | Path) else [Path(p) for p in features]


class FeatureInputs(RunInputs):
    """Cached per-frame features of an HDF5 store (``actionlab extract``), normalized with train-set statistics.

    Several stores (e.g. RGB and optical flow features of one manifest and sampler) are read side by side, each
    step's features concatenated in the order given (early fusion); stores of other manifests, samplers or
    splits are refused, naming the fields that differ."""

    kind = "temporal"

    def __init__(self, features: StorePaths, cfg: TrainConfig, device: torch.device, rank: int = 0,
                 world: int = 1, manifest: str | Path | None = None) -> None:
        from actionlab.features.store import FeatureStore

        super().__init__(cfg, device, rank, world)
        paths = store_paths(features)
        self.path = paths[0]
        self.what = " + ".join(map(str, paths))
        self.stores = [FeatureStore(p) for p in paths]
        for store in self.stores:
            if store.content != "features":
                raise ValueError(f"{store.path} holds raw optical flow fields for video networks, not per-step "
                                 f"features for model {cfg.model.name!r}: extract flow features (extract "
                                 "--modality flow, the default --flow-output features) or train a video network "
                                 "on it (e.g. --model r2plus1d_18)")
            self.stores[0].check_aligned(store)
            if manifest is not None:
                check_store_manifest(store, manifest)
        self.store = self.stores[0]
        self.classes = list(self.store.classes)
        self.splits = sorted({self.store.record(k).split for k in self.store.keys()})
        self._batches: Any = None

    def builder_args(self) -> dict[str, Any]:
        return {"input_dim": sum(int(s.feature_dim) for s in self.stores)}

    def load_split(self, split: str, dtype: Any = np.float16) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
        """Normalized ``(sequences [(T_i, D)], labels (N,), keys)`` of ``split``, stores concatenated per step."""
        x, y, keys = self.store.load_split(split, dtype=dtype)
        for other in self.stores[1:]:
            ox, _, okeys = other.load_split(split, dtype=dtype)
            bad = [k for k, a, b in zip(keys, x, ox) if len(a) != len(b)]
            if okeys != keys or bad:
                raise ValueError(f"{self.store.path} and {other.path} differ in the steps of video {bad[:1] or keys}; "
                                 "extract both with the same sampler")
            x = [np.concatenate([a, b], axis=1) for a, b in zip(x, ox)]
        return x, y, keys

    def bind(self, model: nn.Module, val_split: str | None, log: Callable[[str], Any]) -> None:
        from actionlab.train.sequences import SequenceBatches

        train_x, train_y, _ = self.load_split("train")
        if not train_x:
            raise ValueError(f"{self.path} has no training videos (splits: {self.splits})")
        seq = self.cfg.sequence
        self._batches = SequenceBatches(train_x, train_y, self.cfg.batch_size, seq.seq_len, seed=self.cfg.seed,
                                        policy=seq.short_policy, sampling=seq.sampling, rank=self.rank,
                                        world_size=self.world,
                                        device=self.device)
        self.steps_per_epoch = len(self._batches)

    def train_batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(epoch)

    def load_eval(self, split: str) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
        x, y, keys = self.load_split(split, dtype=np.float32)
        # Keys are manifest paths, as in clip runs, so any two runs on one dataset compare video by video.
        return x, np.asarray(y), [self.store.record(k).path for k in keys]

    def predict(self, model: nn.Module, split: str) -> Predictions:
        x, y, paths = self.eval_data(split)
        scores, win_scores, win_video = predict_sequences(model, x, resolved_inference(self.cfg), self.device)
        return Predictions(keys=paths, labels=y, scores=scores, classes=self.classes, clip_scores=win_scores,
                           clip_video=win_video)

    def checkpoint_meta(self) -> dict[str, Any]:
        """The first store's extraction and preprocessing (what ``predict`` recomputes), and the concatenated
        train-set feature statistics; with several stores, each one's under ``stores`` (in input order)."""
        prov = self.store.provenance
        meta: dict[str, Any] = {
            "extract": prov.get("extract_config", {}), "preprocessing": prov.get("preprocessing", {}),
            "feature_mean": [float(v) for s in self.stores for v in s.mean],
            "feature_std": [float(v) for s in self.stores for v in s.norm_std],  # floored: a constant feature stays 0
            "clip_seconds": median_seconds(self.store.record(k) for k in self.store.keys("train"))}
        if len(self.stores) > 1:
            meta["stores"] = [{"extract": s.provenance.get("extract_config", {}), "feature_dim": s.feature_dim,
                               "preprocessing": s.provenance.get("preprocessing", {})} for s in self.stores]
        return meta

    def provenance(self) -> dict[str, Any]:
        keep = ("modality", "backbone", "weights", "weights_sha256", "sampler", "feature_dim", "manifest_checksum",
                "dtype", "splits", "num_videos", "flow", "manifest_root")
        out: dict[str, Any] = {"kind": self.kind, "features": str(self.path),
                               "store_provenance": {k: self.store.provenance.get(k) for k in keep}}
        if len(self.stores) > 1:
            out["stores"] = [{"features": str(s.path), **{k: s.provenance.get(k) for k in keep}} for s in self.stores]
        return out

    def close(self) -> None:
        for store in self.stores:
            store.close()


# ----------------------------------------------------------------------------------- decoded videos


class DatasetInputs(RunInputs):
    """Inputs read through a torch dataset of ``(x, label, video index)``: a batch sampler of one global order
    for any world size."""

    train_ds: Any = None
    sampler: GlobalBatchSampler

    def _sampler(self) -> GlobalBatchSampler:
        n = len(self.train_ds)
        if n == 0:
            raise ValueError(f"{self.path} has no training videos")
        # Per-process batches of one global order: 2 processes x B == 1 process x 2B, batch for batch; no
        # batch of 1 for the batch-norm layers being trained.
        sampler = GlobalBatchSampler(n, self.cfg.batch_size, seed=self.cfg.seed,
                                     drop_last=n > self.cfg.batch_size * self.world, rank=self.rank,
                                     world_size=self.world)
        self.steps_per_epoch = len(sampler)
        return sampler

    def train_batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        self.train_ds.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        loader = DataLoader(self.train_ds, batch_sampler=self.sampler, num_workers=self.cfg.num_workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
        return ((x, y) for x, y, _ in loader)

    def load_eval(self, split: str) -> Any:
        return self.make_dataset(split, train=False)  # built once: a validation set's frame cache lives on

    def make_dataset(self, split: str, train: bool) -> Any:
        raise NotImplementedError

    def _predictions(self, keys: Sequence[str], ds: Any, scores: tuple[np.ndarray, np.ndarray, np.ndarray]
                     ) -> Predictions:
        video, part, owner = scores
        return Predictions(keys=list(keys), labels=np.asarray(ds.labels), scores=video, classes=self.classes,
                           clip_scores=part, clip_video=owner)


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
        return {"kind": self.kind, "manifest": str(self.path), "manifest_checksum": self.manifest.checksum()}


class ClipInputs(_ManifestInputs):
    """Clips of ``clip.clip_len`` frames, ``clip.frame_interval`` apart, cropped to ``clip.size``."""

    kind = "video"

    def builder_args(self) -> dict[str, Any]:
        return {"clip_len": self.cfg.clip.clip_len, "size": self.cfg.clip.size}

    def make_dataset(self, split: str, train: bool) -> Any:
        from actionlab.data.datasets import ClipDataset

        return ClipDataset.from_config(self.manifest, split, self.cfg.clip, train=train, seed=self.cfg.seed,
                                       mean=self.norm["mean"], std=self.norm["std"])

    def bind(self, model: nn.Module, val_split: str | None, log: Callable[[str], Any]) -> None:
        self.norm = normalization_of(model)
        self.train_ds = self.make_dataset("train", train=True)
        self.sampler = self._sampler()
        if self.cfg.clip.cache_frames:
            self._prepare_cache([val_split] if val_split else [], log)

    def _prepare_cache(self, splits: Sequence[str], log: Callable[[str], Any]) -> None:
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
            log(f"decoded {sum(ds.num_videos for ds in datasets)} videos into memory: {held / 2**20:.0f} MiB")

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

    def bind(self, model: nn.Module, val_split: str | None, log: Callable[[str], Any]) -> None:
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
            run_dir / "backbone.pt", backbone=self.cfg.model.backbone, state_dict=best.state_dict(),
            num_classes=len(self.classes), classes=self.classes, base_weights=str(getattr(best, "weights_id", "")),
            extra={"train_layers": self.cfg.model.train_layers, "crop": self.crop, "resize": self.resize})
        return {"backbone": self.cfg.model.backbone, "backbone_checkpoint": str(path)}


def check_store_manifest(store: Any, manifest: str | Path) -> None:
    """Refuse a feature store that was not extracted from ``manifest`` (another dataset, split or class list)."""
    from actionlab.data.manifest import read_manifest
    from actionlab.features.store import IncompatibleStoreError

    m = read_manifest(manifest)
    have = store.provenance.get("manifest_checksum")
    if have != m.checksum() or list(store.classes) != list(m.classes):
        diffs = [f"manifest_checksum: store={str(have)[:12]} manifest={m.checksum()[:12]}"]
        if list(store.classes) != list(m.classes):
            a, b = list(store.classes), list(m.classes)
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            shown = lambda names: repr(names[first]) if first < len(names) else "nothing"  # noqa: E731
            diffs.append(f"classes: store has {len(a)}, manifest {len(b)}; class {first} is {shown(a)} in the store, "
                         f"{shown(b)} in the manifest")
        raise IncompatibleStoreError(f"{store.path} was not extracted from {manifest} ({'; '.join(diffs)}); "
                                     f"extract it from this manifest (`actionlab extract {manifest} -o STORE.h5`) "
                                     "or pass the manifest it came from")


def open_inputs(kind: str, cfg: TrainConfig, device: torch.device, rank: int, world: int,
                features: StorePaths | None, manifest: str | Path | None) -> RunInputs:
    """The inputs of a ``kind`` model (``temporal``: feature store(s), checked against ``manifest`` when both are
    given; ``video``/``frames``: a manifest, or a raw optical flow store)."""
    name = cfg.model.name
    if kind == "temporal":
        if features is None:
            raise ValueError(f"model {name!r} is a temporal model over cached features: pass --features "
                             "STORE.h5 (make one with `actionlab extract`)")
        return FeatureInputs(features, cfg, device, rank, world, manifest=manifest)
    if features is not None:  # a raw optical flow store
        from actionlab.experiments.flow_inputs import FlowClipInputs, FlowFrameInputs

        if manifest is not None:
            raise ValueError(f"model {name!r} trains on the videos of --manifest or on a raw optical flow store "
                             f"(--features), not both: drop --manifest {manifest} or --features {features}")
        return (FlowClipInputs if kind == "video" else FlowFrameInputs)(features, cfg, device, rank, world)
    if manifest is None:
        what = "a video network trained on clips" if kind == "video" else "a frame classifier trained on frames"
        raise ValueError(f"model {name!r} is {what}: pass --manifest MANIFEST.csv (make one with "
                         "`actionlab index`)")
    return (ClipInputs if kind == "video" else FrameInputs)(manifest, cfg, device, rank, world)
