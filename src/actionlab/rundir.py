"""A run directory: every file a run keeps, named and read in this one place.

::

    RUN/
      config.yaml            the resolved TrainConfig (+ ``meta``: data provenance, git, fusion record)
      metrics.jsonl          one row per finished epoch (the training history)
      metrics.json           the evaluation of the test split (strict JSON: NaN -> null)
      labels.txt             the class names, one per line, in score order
      predictions_<split>.npz  the predictions of a split (format: :mod:`actionlab.evaluate.predictions`)
      checkpoints/best.pt    the best epoch's weights; checkpoints/last.pt the resumable state
      backbone.pt            a fine-tuned 2D CNN, for ``extract --weights``
      fusion.json            a fused two-stream run's members and weights (instead of checkpoints/)
      seeds.json             a seeded run's summary over its ``seed-<s>/`` runs
      tensorboard/           event files, when TensorBoard is installed

This module imports no training, prediction or report code: every stage that reads or writes a run goes
through :class:`RunDir`, so a file name is spelled once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actionlab.config_io import from_dict, read_yaml, to_dict
from actionlab.utils import FileError, atomic_write_text, read_json, strict_json

if TYPE_CHECKING:
    from actionlab.config import TrainConfig

logger = logging.getLogger(__name__)

RERUN = "rerun the same `actionlab train ... --resume` command: a finished run is evaluated again and rewrites it"


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (nothing is created until written)."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    # ------------------------------------------------------------------------------------------ names
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def history(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def labels(self) -> Path:
        return self.path / "labels.txt"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def backbone(self) -> Path:
        return self.path / "backbone.pt"

    @property
    def fusion(self) -> Path:
        return self.path / "fusion.json"

    @property
    def seeds(self) -> Path:
        return self.path / "seeds.json"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def predictions(self, split: str) -> Path:
        return self.path / f"predictions_{split}.npz"

    def seed(self, seed: int) -> RunDir:
        """The run of one seed of a seeded run (``train --seeds``)."""
        return RunDir(self.path / f"seed-{seed}")

    # ------------------------------------------------------------------------------------------ states
    def is_trained(self) -> bool:
        """Whether a training run wrote checkpoints here."""
        return self.checkpoints.is_dir()

    def is_fused(self) -> bool:
        """Whether this is a fused two-stream run (``actionlab fuse``)."""
        return self.fusion.is_file()

    def checkpoint(self) -> Path:
        """The weights to use: ``best.pt``, else ``last.pt``."""
        for path in (self.best, self.last):
            if path.is_file():
                return path
        raise FileNotFoundError(f"{self.path} has no checkpoints/best.pt or last.pt: train it first")

    # ------------------------------------------------------------------------------------------ reading
    def read_config(self) -> dict[str, Any]:
        """``config.yaml`` as a mapping (clear errors for a missing or broken file)."""
        return read_yaml(self.config)

    def train_config(self) -> TrainConfig:
        """The ``TrainConfig`` the run was trained with (sections added since keep their defaults)."""
        from actionlab.config import TrainConfig

        data = self.read_config()
        known = to_dict(TrainConfig())
        try:
            return from_dict(TrainConfig, {k: v for k, v in data.items() if k in known})
        except ValueError as exc:
            raise FileError(self.config, f"not a valid run config ({exc})",
                            "restore it, or train into a new --run") from None

    def meta(self) -> dict[str, Any]:
        """The ``meta`` section of ``config.yaml`` (data provenance), ``{}`` when there is none."""
        if not self.config.is_file():
            return {}
        meta = self.read_config().get("meta") or {}
        return meta if isinstance(meta, dict) else {}

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{}`` when absent)."""
        if not self.metrics.is_file():
            return {}
        data = read_json(self.metrics, RERUN)
        if not isinstance(data, dict):
            raise FileError(self.metrics, f"expected a JSON object, got {type(data).__name__}",
                            "rerun `actionlab train ... --resume` to rewrite it")
        return data

    def read_labels(self) -> list[str]:
        return [c for c in self.labels.read_text().splitlines() if c] if self.labels.is_file() else []

    def read_fusion(self) -> dict[str, Any] | None:
        """A fused run's record (``fusion.json``: members, weights), or None for any other run."""
        return read_json(self.fusion, "fuse the runs again (`actionlab fuse`)") if self.is_fused() else None

    def read_history(self) -> list[dict[str, Any]]:
        """The per-epoch rows of ``metrics.jsonl`` (``[]`` when absent); a line that is not JSON (a crash
        mid-write of an older version) is skipped with a warning."""
        if not self.history.is_file():
            return []
        rows = []
        for i, line in enumerate(self.history.read_text().splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("%s line %d is not JSON (a crash mid-write?); skipped", self.history, i + 1)
        return rows

    # ------------------------------------------------------------------------------------------ writing
    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.metrics, strict_json(metrics, indent=2) + "\n")

    def write_labels(self, classes: list[str]) -> None:
        atomic_write_text(self.labels, "".join(c + "\n" for c in classes))

    def write_fusion(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.fusion, strict_json(record, indent=2) + "\n")

    def write_seeds(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.seeds, strict_json(summary, indent=2) + "\n")
