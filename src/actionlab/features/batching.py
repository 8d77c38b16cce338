"""Frames of consecutive videos packed into fixed-size batches for the feature network (extraction's hot loop).

A video's frames arrive as one tensor; :class:`Batcher` cuts and joins them so every forward pass but the last
has exactly ``batch_size`` frames, and hands back each :class:`Job` (video) once all its rows are filled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from actionlab.types import VideoRecord


@dataclass
class Job:
    """A video whose frames are being pushed through the engine."""

    record: VideoRecord
    indices: np.ndarray
    features: np.ndarray
    """(T, D) filled as batches come back (arrays stored as they are, e.g. raw flow: complete from the start)."""
    predictions: np.ndarray | None
    filled: int = 0


class Batcher:
    """Packs preprocessed frames of consecutive videos into batches of exactly ``batch_size`` (last: fewer)."""

    def __init__(self, run: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]], batch_size: int,
                 pin: bool = False) -> None:
        self.run, self.batch_size, self.pin = run, batch_size, pin
        self._pinned: torch.Tensor | None = None  # CUDA: batches are assembled in page-locked memory
        self.chunks: list[tuple[Job, torch.Tensor]] = []
        self.queued = 0

    def add(self, job: Job, x: torch.Tensor) -> list[Job]:
        """Queue ``x (T, C, H, W)`` of ``job``; returns the videos finished by the batches this triggered.
        Frames of another size than those queued (whole frames of videos of another aspect) first run what is
        queued, as a smaller batch."""
        finished: list[Job] = []
        if self.chunks and self.chunks[0][1].shape[1:] != x.shape[1:]:
            finished += self.flush()
        self.chunks.append((job, x))
        self.queued += x.shape[0]
        while self.queued >= self.batch_size:
            finished += self._step(self.batch_size)
        return finished

    def flush(self) -> list[Job]:
        finished: list[Job] = []
        while self.queued:
            finished += self._step(min(self.queued, self.batch_size))
        return finished

    def _step(self, n: int) -> list[Job]:
        take: list[tuple[Job, torch.Tensor]] = []
        need = n
        while need:
            job, x = self.chunks[0]
            if x.shape[0] <= need:
                take.append(self.chunks.pop(0))
                need -= x.shape[0]
            else:
                take.append((job, x[:need]))
                self.chunks[0] = (job, x[need:])
                need = 0
        self.queued -= n
        if self.pin:  # one copy into a reused pinned buffer; the engine then copies it with non_blocking=True
            shape = (self.batch_size, *take[0][1].shape[1:])
            if self._pinned is None or self._pinned.shape != shape:
                self._pinned = torch.empty(shape, dtype=take[0][1].dtype, pin_memory=True)
            batch = torch.cat([x for _, x in take], out=self._pinned[:n])
        else:
            batch = take[0][1] if len(take) == 1 else torch.cat([x for _, x in take])  # (n, 3, S, S)
        feats, logits = self.run(batch)
        finished, start = [], 0
        for job, x in take:
            m = x.shape[0]
            job.features[job.filled:job.filled + m] = feats[start:start + m]
            if logits is not None:
                if job.predictions is None:
                    job.predictions = np.empty((job.features.shape[0], logits.shape[1]), np.float32)
                job.predictions[job.filled:job.filled + m] = logits[start:start + m]
            job.filled += m
            start += m
            if job.filled == job.features.shape[0]:
                finished.append(job)
        return finished
