"""What a sweep is, as one picklable record that every worker process receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker process needs (picklable)."""

    study_name: str
    storage: str
    study_dir: str
    sampler: str
    direction: str
    metric: str
    seeds: tuple[int, ...]
    settings: tuple[dict[str, Any], ...] | None
    """Explicit settings (grid, or categorical choice for random/tpe)."""
    params: dict[str, Any] | None
    """``{key: list | Float | Int}`` for random/tpe over ranges."""
    labels: tuple[str, ...]
    n_trials: int | None
    heartbeat_interval: int
    max_retries: int
    sampler_seed: int
    context: dict[str, Any]
    """What else makes this sweep what it is (the base config, the data): part of the study's identity."""
