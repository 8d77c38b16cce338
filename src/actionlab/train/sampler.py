"""Epoch orders and per-process batches that do not depend on the number of processes.

Every epoch has one order of the ``N`` items, a pure function of ``(seed, epoch)``. Consecutive slices of
``batch_size * world_size`` items are the *global* batches, and rank ``r`` takes the ``r``-th
``batch_size`` items of each. A 2-process DDP run therefore sees exactly the global batches of a
single process with twice the batch size (``torch.utils.data.DistributedSampler`` deals items round-robin
from its own permutation, so the two runs would differ).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

__all__ = ["GlobalBatchSampler", "epoch_order"]

_ORDER_KEY = (0x0DE5,)  # spawn key separating the shuffle stream from the per-item streams


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """``(n,)`` order of the items in ``epoch``: ``arange(n)`` without ``shuffle``."""
    if not shuffle:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch], spawn_key=_ORDER_KEY))
    return rng.permutation(n)


class GlobalBatchSampler(Sampler[list[int]]):
    """This process's batches of item indices, for ``DataLoader(batch_sampler=...)``; call ``set_epoch``.

    Args:
        n: items in the dataset.
        batch_size: items per batch *per process* (the global batch is ``batch_size * world_size``).
        seed: base of the shuffle order.
        shuffle: a new order every epoch; otherwise ``0..n-1``.
        drop_last: drop the last incomplete global batch (always done when ``world_size > 1`` so that ranks
            stay in step).
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:
        if n < 1 or batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad n={n}, batch_size={batch_size}, rank={rank}/{world_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last or world_size > 1
        self.epoch = 0
        if len(self) == 0:
            raise ValueError(f"{n} items make no full global batch of {batch_size} x {world_size} processes: "
                             f"lower the batch size")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        per_step = self.batch_size * self.world_size
        return self.n // per_step if self.drop_last else -(-self.n // per_step)

    def order(self, epoch: int) -> np.ndarray:
        """``(n,)`` item order of ``epoch`` (the same on every rank)."""
        return epoch_order(self.n, self.seed, epoch, self.shuffle)

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        """This rank's batches of ``epoch``."""
        order = self.order(epoch)
        per_step = self.batch_size * self.world_size
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for i in range(len(self)):
            yield order[i * per_step:(i + 1) * per_step][lo:hi]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches(self.epoch):
            yield batch.tolist()
