"""The HDF5 feature store: schema, provenance, streaming statistics, compatibility checks, reader."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from actionlab.features.parts import RunningStats, merge_parts, part_contents, write_part
from actionlab.features.store import (
    FORMAT,
    VERSION,
    FeatureStore,
    IncompatibleStoreError,
    VideoFeatures,
    video_key,
)
from actionlab.types import VideoRecord

CLASSES = ["Jump", "Run", "Wave"]
DIM = 6
PROV = {
    "backbone": "mobilenet_v2", "weights": "mobilenet_v2-b0353104.pth", "weights_sha256": "b0353104" + "0" * 56,
    "preprocessing": {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "sampler": {"name": "uniform", "num_frames": 5}, "feature_dim": DIM, "dtype": "float16",
    "manifest_checksum": "abc123", "splits": ["test", "train"], "predictions": False,
}


def _videos(rng: np.random.Generator, n: int = 7, offset: float = 0.0, with_pred: bool = False) -> list[VideoFeatures]:
    out = []
    for i in range(n):
        split = "train" if i % 3 != 2 else "test"
        t = 3 + i % 4
        label = i % len(CLASSES)
        rec = VideoRecord(f"{CLASSES[label]}/v_{CLASSES[label]}_g{i:02d}_c01.avi", CLASSES[label], label, split,
                          f"g{i:02d}", num_frames=40 + i, fps=25.0, duration=(40 + i) / 25)
        feats = (offset + rng.normal(0, 1 + i, size=(t, DIM))).astype(np.float32)
        feats[:, 0] = 0.0  # a dead ReLU unit: std 0
        pred = rng.normal(size=(t, 10)).astype(np.float32) if with_pred else None
        out.append(VideoFeatures(rec, feats, np.linspace(0, 39, t).astype(np.int64), pred))
    return out


def _store(tmp_path: Path, videos: list[VideoFeatures], prov: dict | None = None, **kw) -> Path:
    prov = dict(prov or PROV)
    write_part(tmp_path / "part-000-000000.h5", prov, CLASSES, videos[:4])
    write_part(tmp_path / "part-001-000000.h5", prov, CLASSES, videos[3:])  # video 3 twice: copied once
    out = tmp_path / "features.h5"
    merge_parts(sorted(tmp_path.glob("part-*.h5")), out, prov, CLASSES, **kw)
    return out


def test_schema_and_provenance_round_trip(tmp_path: Path) -> None:
    videos = _videos(np.random.default_rng(0), with_pred=True)
    out = _store(tmp_path, videos, skipped=[("Run/broken.avi", "VideoDecodeError: no frames")])
    with h5py.File(out, "r") as h5:
        assert h5.attrs["format"] == FORMAT and int(h5.attrs["version"]) == VERSION
        assert json.loads(h5.attrs["provenance"]) == PROV
        assert json.loads(h5.attrs["skipped"]) == [["Run/broken.avi", "VideoDecodeError: no frames"]]
        assert [c.decode() for c in h5["classes"][()]] == CLASSES
        g = h5["videos"][video_key(videos[1].record.path)]
        assert g["features"].dtype == np.float16 and g["features"].shape == (4, DIM)
        assert g["frame_indices"].dtype == np.int64
        assert g["predictions"].shape == (4, 10)
        assert g.attrs["label"] == "Run" and int(g.attrs["label_index"]) == 1 and g.attrs["split"] == "train"
        assert h5["stats/mean"].dtype == np.float64 and h5["stats/std"].shape == (DIM,)
        assert len(h5["videos"]) == len(videos)
    with FeatureStore(out) as fs:
        assert fs.provenance == PROV and fs.classes == CLASSES
        assert fs.skipped == [("Run/broken.avi", "VideoDecodeError: no frames")]
        assert len(fs) == len(videos) and fs.feature_dim == DIM
        for v in videos:
            k = video_key(v.record.path)
            assert fs.record(k) == v.record
            np.testing.assert_array_equal(fs.frame_indices(k), v.frame_indices)
            np.testing.assert_array_equal(fs.features(k, normalize=False), v.features.astype(np.float16))
            np.testing.assert_array_equal(fs.predictions(k), v.predictions)
        assert fs.keys("test") == [video_key(v.record.path) for v in videos if v.record.split == "test"]
        with pytest.raises(KeyError, match="not in"):
            fs.features("nope")


def test_stats_equal_numpy_over_train_split(tmp_path: Path) -> None:
    # Large offset, small spread: a naive sum-of-squares in float32 would lose the variance.
    videos = _videos(np.random.default_rng(1), n=20, offset=3000.0)
    prov = {**PROV, "dtype": "float32"}
    out = _store(tmp_path, videos, prov)
    train = np.concatenate([v.features for v in videos if v.record.split == "train"]).astype(np.float64)
    with FeatureStore(out) as fs:
        assert fs.stats_split == "train"
        np.testing.assert_allclose(fs.mean, train.mean(axis=0), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(fs.std, train.std(axis=0), rtol=1e-9, atol=1e-9)
        k = fs.keys("train")[0]
        raw = fs.features(k, normalize=False)
        safe = np.where(fs.std < 1e-6, 1.0, fs.std)
        np.testing.assert_allclose(fs.features(k), (raw - fs.mean) / safe, rtol=1e-4, atol=1e-4)
        seqs, labels, keys = fs.load_split("train")
        assert all(s.dtype == np.float16 for s in seqs) and labels.dtype == np.int64
        assert keys == fs.keys("train") and list(labels) == [fs.record(k).label_index for k in keys]
        z = np.concatenate([s.astype(np.float64) for s in seqs])
        assert np.isfinite(z).all()  # the dead unit (std 0) does not divide by zero
        np.testing.assert_allclose(z[:, 1:].mean(axis=0), 0.0, atol=5e-3)
        np.testing.assert_allclose(z[:, 1:].std(axis=0), 1.0, atol=5e-3)


def test_running_stats_chunked_equals_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(1e4, 1e-2, size=(1000, 3))
    rs = RunningStats(3)
    for chunk in np.array_split(x, [1, 2, 10, 500, 999]):
        rs.update(chunk)
    assert rs.count == 1000
    np.testing.assert_allclose(rs.mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(rs.std, x.std(axis=0), rtol=1e-7)


def test_stats_fall_back_to_all_videos_without_train(tmp_path: Path) -> None:
    videos = [v for v in _videos(np.random.default_rng(3)) if v.record.split == "test"]
    out = tmp_path / "f.h5"
    write_part(tmp_path / "p.h5", PROV, CLASSES, videos)
    merge_parts([tmp_path / "p.h5"], out, PROV, CLASSES)
    allx = np.concatenate([v.features.astype(np.float16) for v in videos]).astype(np.float64)
    with FeatureStore(out) as fs:
        assert fs.stats_split == "all" and fs.keys("train") == []
        np.testing.assert_allclose(fs.mean, allx.mean(axis=0), rtol=1e-12)


def test_check_compatible_names_mismatching_fields(tmp_path: Path) -> None:
    out = _store(tmp_path, _videos(np.random.default_rng(4)))
    with FeatureStore(out) as fs:
        fs.check_compatible(PROV)
        fs.check_compatible({"backbone": "mobilenet_v2"})  # a partial expectation is fine
        other = {**PROV, "weights": "finetuned.pt",
                 "preprocessing": {**PROV["preprocessing"], "mean": [0.5, 0.5, 0.5]},
                 "sampler": {"name": "stride", "stride": 2}, "manifest_checksum": "zzz"}
        with pytest.raises(IncompatibleStoreError) as e:
            fs.check_compatible(other)
        msg = str(e.value)
        for name in ("weights", "preprocessing.mean", "sampler.name", "sampler.stride", "manifest_checksum"):
            assert name in msg
        assert "backbone" not in msg and "preprocessing.crop" not in msg and str(out) in msg


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="actionlab extract"):
        FeatureStore(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.attrs["format"] = "something-else"
    with pytest.raises(ValueError, match="not an actionlab feature store"):
        FeatureStore(tmp_path / "other.h5")
    write_part(tmp_path / "part.h5", PROV, CLASSES, _videos(np.random.default_rng(5), n=2))
    with pytest.raises(ValueError, match="unfinished"):
        FeatureStore(tmp_path / "part.h5")
    prov, keys, failed = part_contents(tmp_path / "part.h5")
    assert prov == PROV and len(keys) == 2 and failed == []
    with pytest.raises(RuntimeError, match="missing"):
        merge_parts([tmp_path / "part.h5"], tmp_path / "x.h5", PROV, CLASSES, keys=[*keys, "ghost"])
    assert not (tmp_path / "x.h5").exists()


class _FeatureDataset(Dataset):
    def __init__(self, fs: FeatureStore) -> None:
        self.fs, self.keys = fs, fs.keys()

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.fs.features(self.keys[i])).sum()


def test_store_is_safe_in_dataloader_workers(tmp_path: Path) -> None:
    out = _store(tmp_path, _videos(np.random.default_rng(6)))
    fs = FeatureStore(out)
    expected = [float(torch.from_numpy(fs.features(k)).sum()) for k in fs.keys()]  # opens in this process
    clone = pickle.loads(pickle.dumps(fs))
    assert clone._h5 is None  # the handle never crosses a process boundary
    got = [float(x) for x in DataLoader(_FeatureDataset(fs), batch_size=None, num_workers=2)]
    assert got == pytest.approx(expected)
    fs.close()
