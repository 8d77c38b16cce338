"""TensorBoard event files for a training run, in ``RUN/tensorboard/`` (so ``tensorboard --logdir runs/`` shows
every run): each ``metrics.jsonl`` row as scalars (``train/loss``, ``val/top1``, ``lr``...; step = epoch), the
final test metrics (``test/top1``...) and the test confusion matrix as an image.

Optional: without the ``tensorboard`` package :func:`open_tensorboard` says how to install it
(``pip install 'actionlab[tensorboard]'``) and training goes on without event files. The training loop stays
unaware of it: the writer is one more consumer of the loop's per-epoch ``log`` callback.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.rundir import RunDir

logger = logging.getLogger(__name__)

__all__ = ["INSTALL", "TensorBoardLog", "open_tensorboard", "scalar_tag", "tensorboard_available"]

INSTALL = "pip install 'actionlab[tensorboard]'"
TEST_SCALARS = ("top1", "top5", "top10", "mean_class_accuracy", "clip_top1")


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def scalar_tag(key: str) -> str:
    """``train_loss`` -> ``train/loss``, ``val_top1`` -> ``val/top1``; other keys (``lr``, ``seconds``) as they are."""
    prefix, _, rest = key.partition("_")
    return f"{prefix}/{rest}" if prefix in ("train", "val", "test") and rest else key


class TensorBoardLog:
    """An event-file writer for one run directory. A fresh ``RUN/tensorboard/`` first gets the epochs already in
    ``metrics.jsonl`` (a resumed run, or one trained without ``--tensorboard``), so it always holds them all."""

    def __init__(self, run_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "tensorboard"
        fresh = not any(self.dir.glob("events.out.tfevents.*"))
        self.writer = SummaryWriter(str(self.dir))
        self.last_epoch = -1
        history = RunDir(self.run_dir).history
        if fresh and history.is_file():
            for line in history.read_text().splitlines():
                if line.strip():
                    self.epoch(json.loads(line))

    def epoch(self, row: Mapping[str, Any]) -> None:
        """One ``metrics.jsonl`` row: every finite number but the epoch itself, at step ``row["epoch"]``."""
        step = int(row.get("epoch", self.last_epoch + 1))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(scalar_tag(key), value, step)
        self.last_epoch = max(self.last_epoch, step)
        self.writer.flush()

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """The final evaluation (``metrics.json``): test scalars and the confusion matrix image, then close."""
        from actionlab.evaluate.confusion_picture import confusion_picture

        step = max(self.last_epoch, 0)
        for key in TEST_SCALARS:
            if isinstance(metrics.get(key), (int, float)) and math.isfinite(metrics[key]):
                self.writer.add_scalar(f"test/{key}", metrics[key], step)
        cm, classes = metrics.get("confusion_matrix"), metrics.get("classes")
        if cm is not None and classes:
            image = np.asarray(confusion_picture(np.asarray(cm, dtype=np.int64), [str(c) for c in classes]))
            self.writer.add_image("test/confusion_matrix", image, step, dataformats="HWC")
        self.close()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(run_dir: str | Path) -> TensorBoardLog | None:
    """A :class:`TensorBoardLog` for ``run_dir``, or None (after saying how to install it) without TensorBoard."""
    if not tensorboard_available():
        logger.info(f"TensorBoard is not installed, so no event files are written for {run_dir}: {INSTALL}")
        return None
    board = TensorBoardLog(run_dir)
    logger.info(f"TensorBoard events: {board.dir} (tensorboard --logdir {Path(run_dir).parent})")
    return board
