"""What every input kind of a training run shares: splits, device and process placement, the hooks
each kind fills in, and the batches of a torch dataset."""


from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab.config import TrainConfig
from actionlab.evaluate.predictions import Predictions
from actionlab.train.sampler import GlobalBatchSampler
from actionlab.types import VideoRecord

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
    def validation_split(self) -> str | None:
        if self.cfg.val_split in self.splits:
            return self.cfg.val_split
        logger.info(f"no {self.cfg.val_split!r} split in {self.what}: no validation, so checkpoints/best.pt follows the "
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

    def bind(self, model: nn.Module, val_split: str | None) -> None:
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
                           part_scores=part, part_video=owner)
