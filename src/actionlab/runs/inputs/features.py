"""Cached feature sequences (an HDF5 store, or several aligned stores concatenated per step: early
fusion of RGB and flow) for ``temporal`` models."""


from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab.config import TrainConfig, resolved_inference
from actionlab.evaluate.inference import predict_sequences
from actionlab.evaluate.predictions import Predictions
from actionlab.runs.inputs.base import RunInputs, StorePaths, median_seconds, store_paths


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

    def bind(self, model: nn.Module, val_split: str | None) -> None:
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
        return Predictions(keys=paths, labels=y, scores=scores, classes=self.classes, part_scores=win_scores,
                           part_video=win_video)

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
        keep = ("modality", "backbone", "weights", "weights_sha256", "pool", "sampler", "feature_dim",
                "manifest_checksum", "dtype", "splits", "num_videos", "flow", "manifest_root")
        out: dict[str, Any] = {"kind": self.kind, "features": str(self.path),
                               "store_provenance": {k: self.store.provenance.get(k) for k in keep}}
        if len(self.stores) > 1:
            out["stores"] = [{"features": str(s.path), **{k: s.provenance.get(k) for k in keep}} for s in self.stores]
        return out

    def close(self) -> None:
        for store in self.stores:
            store.close()



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
