"""Part files: what extraction writes as it goes (the store's layout without ``/stats`` and ``/index``, see
:mod:`actionlab.features.store`), and their merge into a finished store with train-split statistics.

Every write is atomic (:func:`actionlab.utils.atomic_file`), checked against the free disk space first, so a
crash or a full disk leaves the finished part files as they were and never half a file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from actionlab.features.store import FORMAT, STR_DTYPE, VERSION, VideoFeatures, h5_reason, json_attr
from actionlab.types import VideoRecord
from actionlab.utils import FileError, atomic_file, kill_point

logger = logging.getLogger(__name__)


class RunningStats:
    """Streaming per-dimension mean/variance in float64 (Chan et al.'s parallel combination of Welford sums)."""

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros(dim, np.float64)
        self.m2 = np.zeros(dim, np.float64)

    def update(self, x: np.ndarray) -> None:
        """Add rows ``x (N, D)``."""
        x = np.asarray(x, np.float64).reshape(-1, self.mean.shape[0])
        n = x.shape[0]
        if n == 0:
            return
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """(D,) population standard deviation (``ddof=0``)."""
        return np.sqrt(self.m2 / max(self.count, 1))


def _write_header(h5: h5py.File, provenance: Mapping[str, Any], classes: Sequence[str],
                  skipped: Sequence[tuple[str, str]] = ()) -> None:
    h5.attrs["format"] = FORMAT
    h5.attrs["version"] = VERSION
    h5.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
    h5.attrs["skipped"] = json.dumps([list(s) for s in skipped])
    h5.create_dataset("classes", data=np.array(list(classes), dtype=object), dtype=STR_DTYPE)
    h5.require_group("videos")


def _row_stats(feats: np.ndarray, dim: int) -> np.ndarray:
    """Rows ``(N, dim)`` to take statistics over: features as they are, arrays ``(T, C, H, W)`` per channel."""
    return feats if feats.ndim == 2 else np.moveaxis(feats, 1, -1).reshape(-1, dim)


def _write_video(videos: h5py.Group, v: VideoFeatures, dtype: np.dtype) -> None:
    g = videos.create_group(v.key)
    for name, value in asdict(v.record).items():
        g.attrs[name] = value
    g.create_dataset("features", data=np.asarray(v.features, dtype))
    g.create_dataset("frame_indices", data=np.asarray(v.frame_indices, np.int64))
    if v.predictions is not None:
        g.create_dataset("predictions", data=np.asarray(v.predictions, np.float32))


def _record_from_attrs(attrs: Mapping[str, Any]) -> VideoRecord:
    kw: dict[str, Any] = {}
    for f in fields(VideoRecord):
        if f.name in attrs:
            value = attrs[f.name]
            kw[f.name] = value.item() if isinstance(value, np.generic) else value
    return VideoRecord(**kw)


def write_part(path: str | Path, provenance: Mapping[str, Any], classes: Sequence[str],
               videos: Sequence[VideoFeatures], failed: Sequence[tuple[str, str]] = ()) -> None:
    """Atomically write a part file (store layout without stats): finished videos plus bad ones (``failed``)."""
    dtype = np.dtype(provenance.get("dtype", "float32"))
    need = sum(v.features.size * dtype.itemsize + v.frame_indices.size * 8  # the data alone: a lower bound
               + (v.predictions.size * 4 if v.predictions is not None else 0) for v in videos)
    with atomic_file(path, need=need) as fh, h5py.File(fh, "w") as h5:
        _write_header(h5, provenance, classes, failed)
        for v in videos:
            _write_video(h5["videos"], v, dtype)


def part_contents(path: str | Path) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """``(provenance, keys, failed)`` of a part file (or a finished store); a file that cannot be read is a
    ``FileError`` naming it."""
    try:
        with h5py.File(path, "r") as h5:
            prov = json_attr(h5, "provenance", "null", path)
            failed = [tuple(x) for x in json_attr(h5, "skipped", "[]", path)]
            if not isinstance(prov, dict) or "videos" not in h5:
                raise FileError(path, "not an actionlab part file (no provenance or /videos)",
                                "delete it and rerun `actionlab extract`")
            return prov, list(h5["videos"].keys()), failed  # type: ignore[return-value]
    except (OSError, KeyError) as exc:
        raise FileError(path, f"unreadable HDF5 file, truncated or damaged ({h5_reason(exc)})",
                        "delete it and rerun `actionlab extract`") from None


def merge_parts(parts: Sequence[str | Path], out_path: str | Path, provenance: Mapping[str, Any],
                classes: Sequence[str], skipped: Sequence[tuple[str, str]] = (),
                keys: Iterable[str] | None = None) -> int:
    """Copy the videos of ``parts`` into a new store at ``out_path`` (atomic), with train statistics.

    A key found in several parts is copied once. ``keys`` (optional) restricts and orders the output; a key
    in ``keys`` missing from every part is an error. Returns the number of videos written.
    """
    where: dict[str, Path] = {}
    for p in sorted(map(Path, parts)):
        for k in part_contents(p)[1]:
            where.setdefault(k, p)
    order = sorted(where) if keys is None else list(keys)
    missing = [k for k in order if k not in where]
    if missing:
        raise RuntimeError(f"cannot finalize {out_path}: {len(missing)} video(s) missing from the part files "
                           f"(e.g. {missing[:3]}); rerun the extraction to finish them")
    dim = int(provenance["feature_dim"])
    train, everything = RunningStats(dim), RunningStats(dim)
    index: list[dict[str, Any]] = []
    handles: dict[Path, h5py.File] = {}
    need = _data_bytes(where, set(order))  # checked before copying anything: the store needs at least this
    try:
        with atomic_file(out_path, need=need) as fh, h5py.File(fh, "w") as out:
            _write_header(out, provenance, classes, skipped)
            videos = out["videos"]
            for k in order:
                src_file = handles.get(where[k])
                if src_file is None:
                    src_file = handles[where[k]] = h5py.File(where[k], "r")
                src = src_file["videos"][k]
                out.copy(src, videos, name=k)
                feats = src["features"][()]
                if feats.ndim not in (2, 4) or feats.shape[1] != dim:
                    raise RuntimeError(f"{where[k]}: video {k} has features {feats.shape}, expected (T, {dim}) "
                                       f"or (T, {dim}, H, W)")
                record = _record_from_attrs(src.attrs)
                index.append({"key": k, **asdict(record)})
                rows = _row_stats(feats, dim)
                everything.update(rows)
                if record.split == "train":
                    train.update(rows)
                kill_point("extract:merge")
            stats = train if train.count else everything
            g = out.create_group("stats")
            g.attrs["split"] = "train" if train.count else "all"
            g.attrs["count"] = stats.count
            g.create_dataset("mean", data=stats.mean)
            g.create_dataset("std", data=stats.std)
            out.create_dataset("index", data=json.dumps(index), dtype=STR_DTYPE)
    finally:
        for h in handles.values():
            h.close()
    logger.info("wrote %s: %d videos, stats over %d %s frames", out_path, len(order), stats.count,
                "train" if train.count else "(no train split) all")
    return len(order)


def _data_bytes(where: Mapping[str, Path], keys: set[str]) -> int:
    """Bytes of the arrays of ``keys`` in the part files (metadata only; nothing is read)."""
    total = 0
    for part in set(where.values()):
        with h5py.File(part, "r") as h5:
            for k, g in h5["videos"].items():
                if k in keys and where[k] == part:
                    total += sum(d.nbytes for d in g.values() if isinstance(d, h5py.Dataset))
    return total
