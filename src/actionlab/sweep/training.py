"""Sweeps of training runs: the objective that trains one (setting, seed), and the entry point of ``sweep``.

The engine (Optuna, resumable, parallel, seed-averaged tables) is :mod:`actionlab.sweep.engine`; named
studies (``lstm_ablation``) are in :mod:`actionlab.sweep.studies`. Settings are chosen on validation
accuracy (``val_top1``); test numbers are only reported.

Before the first trial every setting is applied to the base config (a value of the wrong type or out of range,
or a field the model does not take, is an error naming it). The study records the base config and the data (the
store's provenance or the manifest's checksum), so rerunning into the same ``--out`` with other features, another
model or other settings is refused naming what changed, never answered with the old table.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.config import TrainConfig, apply_overrides, from_dict, to_dict
from actionlab.runs.inputs.base import StorePaths, store_paths
from actionlab.runs.train import train_run

logger = logging.getLogger(__name__)

SWEPT = {"train_loss": "train_loss", "train_acc": "train_acc", "val_top1": "val_top1", "top1": "test_top1",
         "top5": "test_top5", "top10": "test_top10", "mean_class_accuracy": "test_mean_class_accuracy"}
"""A run's headline metric -> its name in sweep tables (test numbers are reported, never used to choose)."""
ALWAYS = ("train_loss", "train_acc", "test_top1")
"""Reported even when unknown (NaN); the others only when the run has them (no validation split: no val_top1)."""


@contextlib.contextmanager
def quiet(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise logger ``name`` to ``level`` for the duration (warnings still show)."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(max(level, before))
    try:
        yield
    finally:
        log.setLevel(before)


def sweep_objective(base: dict[str, Any], features: str | list[str] | None, manifest: str | None,
                    overrides: dict[str, Any],
                    seed: int, trial_dir: Path) -> dict[str, float]:
    """One (setting, seed) of a sweep: a full training run in ``trial_dir``; returns its metrics."""
    cfg = apply_overrides(from_dict(TrainConfig, base), {**overrides, "seed": seed})
    with quiet("actionlab.runs"):  # a trial's epochs would drown the sweep's own progress
        metrics = train_run(cfg, trial_dir, features=features, manifest=manifest, resume=True)
    if metrics.get("diverged"):
        if metrics.get("top1") is None:
            raise RuntimeError(f"{trial_dir}: training diverged at epoch {metrics.get('diverged_epoch')} before any "
                               "finite epoch (lower optim.lr or set optim.grad_clip for this setting)")
        logger.warning("%s: training diverged at epoch %s; evaluated its best finite epoch", trial_dir,
                       metrics.get("diverged_epoch"))
    out = {name: math.nan if metrics.get(key) is None else float(metrics[key]) for key, name in SWEPT.items()}
    return {name: v for name, v in out.items() if name in ALWAYS or not math.isnan(v)}


def _median_length(features: StorePaths) -> int:
    from actionlab.features.store import FeatureStore

    with FeatureStore(store_paths(features)[0]) as store:
        return int(np.median([len(store.frame_indices(k)) for k in store.keys("train")]))


def parse_grid(grid: Sequence[str]) -> dict[str, list[str]]:
    """``["model.num_layers=1,2,3", ...]`` -> ``{"model.num_layers": ["1", "2", "3"], ...}``."""
    space: dict[str, list[str]] = {}
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid {item!r} must look like field=v1,v2 (e.g. model.num_layers=1,2,3)")
        space[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return space


def check_settings(cfg: TrainConfig, settings: Sequence[dict[str, Any]], where: str = "--grid") -> None:
    """Apply every setting to ``cfg`` before anything runs: a value of the wrong type or out of range, or a
    model field the model does not take, is an error naming the setting."""
    from actionlab.models.registry import model_entry
    from actionlab.runs.train import model_kwargs

    for setting in settings:
        try:
            resolved = apply_overrides(cfg, dict(setting))
            model_kwargs(resolved.model, model_entry(resolved.model.name), {})
        except (ValueError, KeyError) as exc:
            shown = ", ".join(f"{k}={v}" for k, v in setting.items())
            text = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{where} setting {shown}: {text} (fix it; nothing was run)") from None


def sweep_context(cfg: TrainConfig, features: StorePaths | None, manifest: str | Path | None,
                  swept: Sequence[str]) -> dict[str, Any]:
    """What a sweep's results depend on besides its settings: the base config (less the swept fields, the seed
    and where it runs) and the data (a store's provenance, a manifest's checksum)."""
    from actionlab.config import flatten

    ignore = {"seed", "device", "num_workers", *swept}
    config = {k: v for k, v in flatten(cfg).items() if k not in ignore}
    data: dict[str, Any] = {}
    if features is not None:
        from actionlab.features.store import COMPAT_FIELDS, FeatureStore

        stores = []
        for path in store_paths(features):
            with FeatureStore(path) as store:
                stores.append({k: store.provenance.get(k) for k in (*COMPAT_FIELDS, "num_videos")})
        data = {"store": stores[0] if len(stores) == 1 else stores}
    if manifest is not None:
        from actionlab.data.manifest import read_manifest

        data["manifest_checksum"] = read_manifest(manifest).checksum()
    return {"config": config, "data": data}


def sweep_run(cfg: TrainConfig, out: str | Path, features: StorePaths | None = None,
              manifest: str | Path | None = None, study: str | None = None, grid: Sequence[str] = (),
              seeds: Sequence[int] = (0,), sampler: str = "grid", n_trials: int | None = None, n_jobs: int = 1,
              storage: str | None = None, scale: float = 1.0) -> str:
    """Run a sweep (``grid``) or a named study (``study``, e.g. ``lstm_ablation``) on top of ``cfg``; returns
    its Markdown table(s)."""
    from actionlab.sweep.engine import run_sweep
    from actionlab.sweep.studies import get_study, run_experiments, study_summary

    stores = [str(p) for p in store_paths(features)] if features else None
    objective = functools.partial(sweep_objective, to_dict(cfg), stores[0] if stores and len(stores) == 1 else stores,
                                  str(manifest) if manifest else None)
    out = Path(out)
    if study:
        build = get_study(study)
        seq_scale = 1.0
        if features is not None:
            # the study's lengths (120-step sequences, 60-step windows) are for ~150-frame UCF-101 videos;
            # scale them to the store's videos so every setting is meaningful.
            seq_scale = min(1.0, _median_length(features) / 150)
        logger.info(f"{study}: epochs x{scale:g}, sequence lengths x{seq_scale:.2f}, seeds {list(seeds)}")
        experiments = build(scale=scale, seq_scale=seq_scale)
        settings = [s for exp in experiments for s in exp.resolved()]
        check_settings(cfg, settings, where=f"study {study}")
        context = sweep_context(cfg, features, manifest, sorted({k for s in settings for k in s}))
        results = run_experiments(experiments, objective, out, seeds=tuple(seeds), n_jobs=n_jobs, storage=storage,
                                  context=context)
        return study_summary(results)  # which knobs made a real difference, then the tables
    if not grid:
        raise ValueError("give --grid FIELD=V1,V2 (repeatable) or --study NAME")
    from actionlab.sweep.engine import expand_grid

    space = parse_grid(grid)
    check_settings(cfg, expand_grid(space) if sampler == "grid" else [{k: v} for k, vs in space.items() for v in vs])
    result = run_sweep(space, objective, out, n_trials=n_trials, seeds=tuple(seeds), sampler=sampler,
                       storage=storage, n_jobs=n_jobs, context=sweep_context(cfg, features, manifest, list(space)))
    return result.to_markdown()
