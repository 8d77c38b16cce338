"""The HDF5 feature store: one file holding per-frame backbone features for a whole dataset.

Schema (``format="actionlab-features"``, ``version=1``)::

    /                        attrs: format, version,
                                    provenance  (JSON, see below),
                                    skipped     (JSON list of [path, reason]: bad videos left out)
    /classes                 (K,) utf-8 strings, the manifest's class list
    /index                   scalar utf-8 JSON: [{key, path, label, label_index, split, group,
                             num_frames, fps, duration}, ...] in key order (a fast copy of the attrs below)
    /videos/<key>            group, attrs: path, label, label_index, split, group, num_frames, fps, duration
        features             (T, D) float16 | float32, raw (unnormalized) backbone features; in a raw flow
                             store (provenance ``content="flow_fields"``) (T, C, H, W) uint8 quantised flow
        frame_indices        (T,)   int64, the decoded frame of each row
        predictions          (T, K) float32, optional: the backbone head's logits
    /stats/mean, /stats/std  (D,) float64, over every stored frame of the train split
                             (attrs ``count`` frames, ``split``: ``train``, or ``all`` when nothing was in train)

``<key>`` is the manifest path with ``/`` replaced by ``|`` (:func:`video_key`), so a group name never nests.
``std`` is the population standard deviation (numpy's ``ddof=0``) of the *stored* values, computed in a
streaming float64 pass (Chan et al.'s parallel update of count/mean/M2), so it never holds the train set in
memory. Normalization on read is ``(x - mean) / std`` with ``std < 1e-6`` (dead ReLU units, a feature constant
over the train set) treated as 1: :attr:`FeatureStore.norm_std` / :func:`safe_std` is what every user of the
statistics divides by (training, evaluation, and the checkpoint's ``feature_std`` that ``predict`` applies).

Attributes are read as strings and JSON, never unpickled; a file whose attributes or layout are not what this
schema says is a ``FileError`` naming the file. Stores are written by :mod:`actionlab.features.parts` through
:func:`actionlab.utils.atomic_file`, so a full disk is a ``DiskFullError`` (HDF5 itself would crash the process)
and never leaves half a file.

``provenance`` records what made the features, so a cache built with other weights or preprocessing is never
mixed in silently: ``modality`` (``rgb`` or ``flow``; ``rgb`` when absent), ``content`` (``features``, or
``flow_fields`` for raw flow), ``flow`` (algorithm, parameters, bound, stack, size; None for RGB),
``backbone``, ``weights`` (id) + ``weights_sha256``, ``preprocessing`` (resize, crop, mean,
std), ``pool`` (how a frame's feature map became its vector, ``ExtractConfig.pool``; ``avg`` when absent),
``sampler`` (name + params), ``feature_dim``, ``dtype``, ``manifest_checksum``, ``manifest_root`` (the
dataset folder the manifest's paths are relative to), ``splits``,
``predictions``, ``num_classes``, ``num_videos``, ``skipped``, ``extract_config``, ``engine``,
``actionlab_version``, ``git_revision``, ``created``. :meth:`FeatureStore.check_compatible` compares the fields
a run passes (extraction passes :data:`COMPAT_FIELDS`; the rest is informative).

The reader opens the file read-only and lazily once per process (metadata is read eagerly then the handle is
closed), so a ``FeatureStore`` can be handed to DataLoader workers. Part files written during extraction
(:mod:`actionlab.features.parts`) use the same layout without ``/stats`` and ``/index``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from actionlab.config import recorded_flow
from actionlab.types import SPLITS, VideoRecord
from actionlab.utils import FileError, flatten_mapping

logger = logging.getLogger(__name__)

FORMAT = "actionlab-features"
VERSION = 1
COMPAT_FIELDS = ("modality", "content", "flow", "backbone", "weights", "weights_sha256", "preprocessing", "pool",
                 "decode", "sampler", "feature_dim", "dtype", "manifest_checksum", "splits", "predictions")
"""Provenance fields that must agree for two runs to share a store."""
ALIGN_FIELDS = ("manifest_checksum", "sampler", "splits")
"""Provenance fields that must agree for stores to be read side by side (early fusion of RGB and flow)."""
_DEFAULTS = {"modality": "rgb", "content": "features", "flow": None,  # stores made before optical flow
             "pool": "avg"}  # ... and before grid pooling
_STD_FLOOR = 1e-6
STR_DTYPE = h5py.string_dtype("utf-8")


def safe_std(std: np.ndarray) -> np.ndarray:
    """``std`` with entries below ``1e-6`` (a feature constant over the train set) replaced by 1, so dividing by it
    leaves such a feature at 0 instead of making it infinite or NaN."""
    std = np.asarray(std, dtype=np.float64)
    return np.where(std < _STD_FLOOR, 1.0, std)


class IncompatibleStoreError(ValueError):
    """A store was made with other backbone/weights/preprocessing/sampler/manifest than a run expects."""


def video_key(path: str) -> str:
    """The store key of a manifest path: ``ApplyEyeMakeup/v_x.avi`` -> ``ApplyEyeMakeup|v_x.avi``."""
    return str(path).replace("\\", "/").replace("/", "|")


@dataclass
class VideoFeatures:
    """Features of one video, as written to a store."""

    record: VideoRecord
    features: np.ndarray
    """(T, D) float."""
    frame_indices: np.ndarray
    """(T,) int64."""
    predictions: np.ndarray | None = None
    """(T, K) float32 or None."""

    @property
    def key(self) -> str:
        return video_key(self.record.path)


# ----------------------------------------------------------------------------------- reading


def as_compared(provenance: dict[str, Any]) -> dict[str, Any]:
    """A provenance as compared: fields added since a store was written take the value they then had."""
    out = {**_DEFAULTS, **provenance}
    return {**out, "flow": recorded_flow(out["flow"])}


def json_attr(h5: h5py.File, name: str, default: str, path: str | Path) -> Any:
    raw = h5.attrs.get(name, default)
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError):
        raise FileError(path, f"attribute {name!r} is not JSON (damaged, or not written by actionlab; attributes "
                        "are read as text, never unpickled)", "delete the file and rerun `actionlab extract`") from None


def h5_reason(exc: BaseException) -> str:
    """A short reason from an h5py error (its messages run on over several parenthesised lines)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for known in ("truncated file", "file signature not found", "bad object header", "wrong B-tree signature"):
        if known in text:
            return known
    return text.split(" (", 1)[0][:80]





def _norm(v: Any) -> Any:
    # JSON round-trips tuples as lists and floats exactly; compare in that form.
    return json.loads(json.dumps(v, sort_keys=True))


def compare_provenance(have: Mapping[str, Any], expected: Mapping[str, Any],
                       fields_: Iterable[str] | None = None, labels: tuple[str, str] = ("store", "run")) -> list[str]:
    """Human-readable differences ``field: store=... run=...`` over ``fields_`` (default: those in ``expected``);
    ``labels`` are what ``have`` and ``expected`` are called in them."""
    names = list(expected) if fields_ is None else [f for f in fields_ if f in expected]
    diffs = []
    for name in names:
        a, b = _norm(have.get(name)), _norm(expected[name])
        if isinstance(a, dict) and isinstance(b, dict):
            fa, fb = flatten_mapping(a, f"{name}."), flatten_mapping(b, f"{name}.")
            diffs += [f"{k}: {labels[0]}={fa.get(k)!r} {labels[1]}={fb.get(k)!r}" for k in sorted(set(fa) | set(fb))
                      if fa.get(k) != fb.get(k)]
        elif a != b:
            diffs.append(f"{name}: {labels[0]}={a!r} {labels[1]}={b!r}")
    return diffs


class FeatureStore:
    """Read-only view of a feature store (see the module docstring for the schema).

    >>> with FeatureStore("features.h5") as fs:
    ...     seqs, labels, keys = fs.load_split("train")   # list of (T_i, D) float16, (N,) int64
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"feature store {self.path} not found; create it with `actionlab extract`")
        self._h5: h5py.File | None = None
        self._pid = -1
        rebuild = "delete it and rerun `actionlab extract`"
        try:
            with h5py.File(self.path, "r") as h5:
                if h5.attrs.get("format") != FORMAT:
                    raise FileError(self.path, f"not an actionlab feature store (format={h5.attrs.get('format')!r})",
                                    "rebuild it with `actionlab extract`")
                if int(h5.attrs["version"]) > VERSION:
                    raise FileError(self.path, f"store version {int(h5.attrs['version'])} is newer than this "
                                    f"actionlab reads ({VERSION})", "upgrade actionlab")
                if "stats" not in h5 or "index" not in h5:
                    raise FileError(self.path, "an unfinished store (no /stats or /index)",
                                    "rerun `actionlab extract` to finish it")
                self.provenance: dict[str, Any] = json_attr(h5, "provenance", "null", self.path)
                self.skipped: list[tuple[str, str]] = [tuple(x) for x in json_attr(h5, "skipped", "[]", self.path)]
                self.classes: list[str] = [c.decode() if isinstance(c, bytes) else str(c) for c in h5["classes"][()]]
                raw_index = h5["index"][()]
                index = json.loads(raw_index.decode() if isinstance(raw_index, bytes) else raw_index)
                if not isinstance(self.provenance, dict) or not isinstance(index, list):
                    raise FileError(self.path, "its provenance or index is not what actionlab writes", rebuild)
                self.mean: np.ndarray = h5["stats/mean"][()]
                self.std: np.ndarray = h5["stats/std"][()]
                self.stats_split: str = str(h5["stats"].attrs.get("split", "train"))
        except FileError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise FileError(self.path, f"unreadable feature store, truncated or damaged ({h5_reason(e)})",
                            rebuild) from None
        self._records: dict[str, VideoRecord] = {}
        try:
            for item in index:
                key = item.pop("key")
                self._records[key] = VideoRecord(**item)
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise FileError(self.path, f"its video index is damaged ({e})", rebuild) from None
        self._safe_std = safe_std(self.std)

    # --- lifecycle: one handle per process, opened on first data access
    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, -1
        return state

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    # --- metadata
    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def norm_std(self) -> np.ndarray:
        """``(D,)`` the standard deviation normalization divides by: :func:`safe_std` of the train statistics."""
        return self._safe_std

    @property
    def content(self) -> str:
        """``features`` (rows ``(T, D)``) or ``flow_fields`` (raw quantised flow ``(T, C, H, W)`` uint8)."""
        return str(self.provenance.get("content", "features"))

    def describe(self) -> str:
        """``rgb features`` / ``flow features`` / ``flow fields``, for messages."""
        return "flow fields" if self.content == "flow_fields" else f"{self.provenance.get('modality', 'rgb')} features"

    def keys(self, split: str | None = None) -> list[str]:
        """Video keys in store order, optionally only those of ``split``."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return [k for k, r in self._records.items() if split is None or r.split == split]

    def record(self, key: str) -> VideoRecord:
        try:
            return self._records[key]
        except KeyError:
            raise KeyError(f"video {key!r} is not in {self.path}") from None

    def check_compatible(self, expected: Mapping[str, Any]) -> None:
        """Raise :class:`IncompatibleStoreError` naming every field of ``expected`` that differs.

        ``expected`` is a (partial) provenance dict, e.g. ``{"backbone": "mobilenet_v2", "weights": ...}``;
        nested dicts (``preprocessing``, ``sampler``) are compared field by field.
        """
        diffs = compare_provenance(as_compared(self.provenance), expected)
        if diffs:
            raise IncompatibleStoreError(
                f"feature store {self.path} does not match this run: " + "; ".join(diffs)
                + ". Re-extract (actionlab extract --overwrite) or point the run at a matching store.")

    # --- data
    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as float32 for ``x (..., D)``."""
        return ((np.asarray(x, np.float32) - self.mean.astype(np.float32)) / self._safe_std.astype(np.float32))

    def features(self, key: str, normalize: bool = True) -> np.ndarray:
        """``(T, D) float32`` features of one video, normalized with the train statistics by default."""
        x = self._read(key, "features")
        return self.normalize(x) if normalize else x.astype(np.float32)

    def _read(self, key: str, name: str, index: Any = ()) -> np.ndarray:
        """One array of one video (``index``: only those rows); a damaged file is a ``FileError`` naming the store
        and the video."""
        try:
            return self._file()["videos"][self._check(key)][name][index]
        except (OSError, KeyError) as e:
            if isinstance(e, KeyError) and key not in self._records:
                raise
            raise FileError(self.path, f"video {key!r}: {name} unreadable, the store is truncated or damaged "
                            f"({h5_reason(e)})", "delete it and rerun `actionlab extract`") from None

    def nbytes(self, key: str) -> int:
        """Bytes of one video's stored rows (read from the file's metadata, not the data)."""
        d = self._file()["videos"][self._check(key)]["features"]
        return int(d.size * d.dtype.itemsize)

    def array(self, key: str) -> np.ndarray:
        """The stored rows of one video as they are (``(T, D)`` features or ``(T, C, H, W)`` uint8 flow)."""
        return self._read(key, "features")

    def row(self, key: str, index: int) -> np.ndarray:
        """Stored row ``index`` of one video, read alone (``(C, H, W)`` uint8 of a raw flow store)."""
        return self._read(key, "features", int(index))

    def num_rows(self, key: str) -> int:
        """How many rows (sampled positions) one video has, read from the file's metadata."""
        return int(self._file()["videos"][self._check(key)]["features"].shape[0])

    def frame_indices(self, key: str) -> np.ndarray:
        """``(T,) int64``: which decoded frame each feature row came from."""
        return self._read(key, "frame_indices")

    def predictions(self, key: str) -> np.ndarray | None:
        """``(T, K) float32`` backbone-head logits, or None when the store was built without them."""
        g = self._file()["videos"][self._check(key)]
        return g["predictions"][()] if "predictions" in g else None

    def load_split(self, split: str, normalize: bool = True, dtype: Any = np.float16
                   ) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
        """All videos of ``split`` in memory: ``(sequences [(T_i, D)] of dtype, labels (N,) int64, keys)``."""
        if self.content != "features":
            raise ValueError(f"{self.path} holds raw optical flow (T, C, H, W) for video networks, not per-step "
                             "features; for temporal models extract flow features (extract --modality flow "
                             "--flow-output features)")
        keys = self.keys(split)
        seqs = []
        for k in keys:
            x = self._read(k, "features")
            seqs.append((self.normalize(x) if normalize else x).astype(dtype, copy=False))
        labels = np.array([self._records[k].label_index for k in keys], dtype=np.int64)
        return seqs, labels, keys

    def check_aligned(self, other: FeatureStore) -> None:
        """Raise :class:`IncompatibleStoreError` unless ``other`` holds the same videos at the same sampled
        positions (same manifest, sampler and splits), naming the fields that differ: stores read side by side
        (e.g. RGB and flow features concatenated per step)."""
        diffs = compare_provenance(self.provenance, other.provenance, ALIGN_FIELDS,
                                   labels=(self.path.name, other.path.name))
        if not diffs and self.keys() != other.keys():
            mine, theirs = set(self.keys()), set(other.keys())
            diffs.append(f"videos: {len(mine - theirs)} only in {self.path.name}, {len(theirs - mine)} only in "
                         f"{other.path.name} (e.g. {sorted(mine ^ theirs)[:2]}; videos skipped as bad?)")
        if diffs:
            raise IncompatibleStoreError(f"feature stores {self.path} and {other.path} do not hold the same "
                                         f"videos at the same frames: {'; '.join(diffs)}. Extract both from one "
                                         "manifest with the same --sampler/--num-frames/--stride and --splits")

    def _check(self, key: str) -> str:
        if key not in self._records:
            raise KeyError(f"video {key!r} is not in {self.path}")
        return key

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.path)!r}, videos={len(self)}, dim={self.feature_dim}, "
                f"backbone={self.provenance.get('backbone')!r})")
