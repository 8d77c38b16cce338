"""In-memory batches of cached feature sequences for training temporal models.

All videos of a split live in one concatenated ``(sum T_i, D)`` float16 array. Every epoch, each video gets a
training sequence of ``seq_len`` steps: with ``sampling="spread"``, one step from each of ``seq_len`` equal
segments of the whole video, at a random place in its segment (TSN's segments; a short video repeats steps in
time order); with ``sampling="segment"``, ``fit_length``'s random contiguous segment of a long video (a short
one padded by ``policy``; the course project's recipe). The generator is derived from ``(seed, epoch, index)``: the
sample of a video depends on nothing else (not the batch size, the order, the rank or a resumed run). A
batch is gathered with one vectorized ``np.take`` into a preallocated buffer; no per-item Python beyond
drawing the indices.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from actionlab.data.sampling import fit_length, sliding_windows, tsn_indices
from actionlab.train.sampler import GlobalBatchSampler

logger = logging.getLogger(__name__)

__all__ = ["SequenceBatches", "fit_length", "item_rng", "sliding_windows"]


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of video ``index`` in ``epoch``: a pure function of the three numbers."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


class SequenceBatches:
    """``batches(epoch) -> iterator of (x (B, T, D) float32, y (B,) int64)``: a ``train_batches`` for ``fit``.

    Args:
        features: one ``(T_i, D)`` array per video (float16 from ``FeatureStore.load_split``; float32 kept).
        labels: ``(N,)`` class indices.
        batch_size: sequences per batch *per process*; under DDP the global batch is
            ``batch_size * world_size`` and rank ``r`` takes the ``r``-th slice of every global batch, so
            a 2-process run sees the same global batches as a single process with twice the batch size.
        seq_len: steps per sequence; 0 = whole videos, each batch padded (``policy``) to its longest video.
        seed: base of every random draw (shuffle order and segments).
        policy: padding of short videos with ``sampling="segment"``: ``stretch`` (in time order),
            ``reverse_repeat``, ``loop`` or ``last``.
        sampling: ``segment`` (a random contiguous run of ``seq_len`` steps) or ``spread`` (``seq_len`` steps
            spread over the whole video, jittered within their segments).
        shuffle: random order per epoch (derived from ``(seed, epoch)``).
        drop_last: drop the last incomplete batch (always done when ``world_size > 1``, so ranks stay in step).
        device: where batches go; on CUDA they are gathered in pinned memory, copied asynchronously as float16
            and converted to float32 on the GPU.
    """

    def __init__(self, features: Sequence[np.ndarray], labels: Sequence[int] | np.ndarray, batch_size: int,
                 seq_len: int, *, seed: int = 0, policy: str = "stretch", sampling: str = "segment",
                 shuffle: bool = True,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 device: str | torch.device | None = None) -> None:
        if len(features) == 0 or len(features) != len(labels):
            raise ValueError(f"need one label per video and at least one video; got {len(features)} feature "
                             f"arrays and {len(labels)} labels")
        if seq_len < 0:
            raise ValueError(f"bad seq_len={seq_len}")
        if sampling not in ("segment", "spread"):
            raise ValueError(f"sampling must be 'segment' or 'spread', got {sampling!r}")
        self.sampling = sampling
        dims = {f.shape[1] if f.ndim == 2 else -1 for f in features}
        if len(dims) != 1 or -1 in dims or min(len(f) for f in features) < 1:
            raise ValueError(f"every feature array must be (T_i >= 1, D) with one D; got dims {sorted(dims)}")
        self.lengths = np.array([len(f) for f in features], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        dtype = np.float32 if all(f.dtype == np.float32 for f in features) else np.float16
        self.data = np.empty((int(self.lengths.sum()), dims.pop()), dtype=dtype)  # (sum T_i, D)
        for off, f in zip(self.offsets, features):
            self.data[off:off + len(f)] = f
        self.labels = np.asarray(labels, dtype=np.int64)
        self.batch_size, self.seq_len, self.seed, self.policy = batch_size, seq_len, seed, policy
        self.sampler = GlobalBatchSampler(len(features), batch_size, seed=seed, shuffle=shuffle,
                                          drop_last=drop_last, rank=rank, world_size=world_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._ring: list[tuple[Tensor, Tensor, torch.cuda.Event | None]] = []  # pinned buffers (CUDA)
        self._buf: np.ndarray | None = None  # gather buffer (CPU)

    @property
    def feature_dim(self) -> int:
        return int(self.data.shape[1])

    def __len__(self) -> int:
        """Batches per epoch for this process."""
        return len(self.sampler)

    def order(self, epoch: int) -> np.ndarray:
        """``(N,)`` video order of ``epoch`` (the same on every rank)."""
        return self.sampler.order(epoch)

    def sample_indices(self, epoch: int, videos: np.ndarray, length: int | None = None) -> np.ndarray:
        """``(len(videos), L)`` frame positions (within each video) of their ``epoch`` training sequences."""
        length = length or self.seq_len
        out = np.empty((len(videos), length), dtype=np.int64)
        for row, v in enumerate(videos):
            n = int(self.lengths[v])
            if self.sampling == "spread":
                out[row] = tsn_indices(n, length, item_rng(self.seed, epoch, int(v)))
                continue
            rng = item_rng(self.seed, epoch, int(v)) if n > length else None  # only a longer video has a choice
            out[row] = fit_length(n, length, rng, policy=self.policy)
        return out

    def __call__(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for videos in self.sampler.batches(epoch):
            length = self.seq_len or int(self.lengths[videos].max())
            rows = self.offsets[videos, None] + self.sample_indices(epoch, videos, length)  # (B, L)
            yield self._collate(rows, self.labels[videos])

    def _collate(self, rows: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
        b, length = rows.shape
        shape = (self.batch_size, length, self.data.shape[1])
        if self.device.type != "cuda":
            if self._buf is None or self._buf.shape != shape:
                self._buf = np.empty(shape, dtype=self.data.dtype)
            np.take(self.data, rows, axis=0, out=self._buf[:b])  # (B, L, D), one vectorized gather
            x = np.empty((b, length, shape[2]), dtype=np.float32)  # fresh: callers may keep batches
            np.copyto(x, self._buf[:b])  # numpy's float16 -> float32 is ~3x faster than torch's on CPU
            return torch.from_numpy(x), torch.from_numpy(labels.copy())
        # CUDA: two pinned staging buffers; a buffer is refilled only after its last copy has finished.
        if len(self._ring) < 2 or tuple(self._ring[0][0].shape) != shape:
            self._ring = [(torch.empty(shape, dtype=torch.from_numpy(self.data[:0]).dtype).pin_memory(),
                           torch.empty(self.batch_size, dtype=torch.int64).pin_memory(), None)
                          for _ in range(2)]
        xs, ys, event = self._ring.pop(0)
        if event is not None:
            event.synchronize()
        np.take(self.data, rows, axis=0, out=xs.numpy()[:b])
        ys.numpy()[:b] = labels
        x = xs[:b].to(self.device, non_blocking=True).float()
        y = ys[:b].to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._ring.append((xs, ys, event))
        return x, y
