"""Sweeps of training settings on Optuna: grid / random / TPE, resumable, parallel, seed-averaged tables.

A *setting* is a dict of dotted config overrides (``{"model.num_layers": 2, "optim.weight_decay": 5e-4}``).
The caller supplies ``objective(overrides, seed, trial_dir) -> dict of metrics`` (the lead wires it to a
training run); :func:`run_sweep` runs every setting with several seeds and writes a table with one row per
setting and ``mean ± std`` over seeds of each metric as CSV, JSON and Markdown (the table itself is
:class:`actionlab.report.sweep_table.SweepResult`, which the report reads too). Named studies built on this
engine (e.g. the LSTM ablation study) live in :mod:`actionlab.sweep.studies`.

Design (why it looks like this):

- **Optuna is the engine**: storage, samplers (``GridSampler``, ``RandomSampler``, ``TPESampler``), trial
  states and heartbeats, used only through Optuna's public API. The default storage is
  ``sqlite:///<study_dir>/study.db``; pass a PostgreSQL URL and run the same call on several machines to share
  one sweep. ``load_if_exists=True``: calling :func:`run_sweep` again resumes: completed settings are not rerun.
- **One Optuna trial per setting, its seeds run inside the trial.** Each finished seed's metrics are saved on
  the trial (``user_attrs["seed_<s>"]``) at once, and a retried trial inherits them, so a killed sweep
  resumes seed by seed. The trial's value is the mean over seeds, which is what TPE should optimize (one seed
  is noise) and what the table reports. Parallelism is across settings.
- **Validation picks, test reports.** The trial value and the table's best row use ``metric`` (``val_top1`` by
  default); a ``test_*`` metric is refused, and an objective without the validation metric falls back to the
  train metric (``train_acc``), with a note in the table.
- **Crash recovery.** A trial left RUNNING by a process that died on this host (its ``host:pid`` is recorded)
  is marked FAIL and re-queued at once; on other hosts Optuna's heartbeat does the same after
  ``heartbeat_interval * 2`` seconds. A trial whose objective *raised* stays FAIL for this call (a
  deterministic bug must not loop) and is re-queued by the next :func:`run_sweep` call. Storage, study
  opening and this recovery live in :mod:`actionlab.sweep.storage`.
- **Processes, not threads**, for ``n_jobs > 1``: ``n_jobs`` worker processes (``spawn``, CUDA-safe) share the
  storage, so ``objective`` must be picklable (a module-level function).
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing as mp
import pickle
import re
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionlab.report.sweep_table import (
    SweepResult,
    SweepRow,
    canonical_setting,
    load_sweep,
    selection_metric,
)
from actionlab.sweep.spec import SweepSpec
from actionlab.sweep.storage import (
    StudyHandles,
    is_retry,
    open_study,
    recover_dead,
    resume_study,
    setting_of,
    worker_id,
)

logger = logging.getLogger(__name__)

__all__ = ["Float", "Int", "Objective", "SweepResult", "SweepRow", "expand_grid", "load_sweep", "run_sweep",
           "setting_labels"]

Objective = Callable[[dict[str, Any], int, Path], Mapping[str, float]]
"""``objective(overrides, seed, trial_dir) -> {"train_acc": .., "val_top1": .., "test_top1": .., ...}``."""
SAMPLERS = ("grid", "random", "tpe")

@dataclass(frozen=True)
class Float:
    """A continuous range for ``random``/``tpe`` sweeps: ``optim.lr: Float(1e-4, 1e-2, log=True)``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An integer range for ``random``/``tpe`` sweeps: ``sequence.seq_len: Int(8, 64, step=8)``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


def expand_grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of ``{"a": [1, 2], "b": [x, y]}`` -> ``[{"a": 1, "b": x}, ...]`` (last key fastest)."""
    for key, values in space.items():
        if isinstance(values, (Float, Int)) or isinstance(values, str) or not isinstance(values, Sequence):
            raise ValueError(f"grid sweeps need a list of values for {key!r}, got {values!r}; "
                             "ranges (Float/Int) need sampler='random' or 'tpe'")
        if len(values) == 0:
            raise ValueError(f"no values given for {key!r}")
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting_labels(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Short row labels from the keys that differ between settings, e.g. ``num_layers=2, weight_decay=0.0005``."""
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({_fmt_value(s.get(k, "-")) for s in settings}) > 1] or keys
    labels = []
    for s in settings:
        parts = [f"{k.split('.')[-1]}={_fmt_value(s[k])}" for k in varying if k in s]
        labels.append(", ".join(parts) or "defaults")
    return labels


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:limit] or "setting"


def seed_run_dir(trial_dir: Path, seed: int) -> Path:
    """The directory one seed of a setting runs in (``objective``'s ``trial_dir``)."""
    return trial_dir / f"seed{seed}"


# ----------------------------------------------------------------------------------- the sweep engine


def _validate_keys(settings: Sequence[Mapping[str, Any]]) -> None:
    from actionlab.config import TrainConfig, flatten

    known = set(flatten(TrainConfig()))
    unknown = sorted({k for s in settings for k in s} - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown} in the sweep; fields look like 'optim.lr' or "
                         "'model.num_layers' (see actionlab.config), or pass validate=False")


def _has_work(study: Any, spec: SweepSpec) -> bool:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    originals = [t for t in trials if not is_retry(t) and t.state != TrialState.PRUNED]
    if spec.n_trials is not None and len(originals) >= spec.n_trials:
        return False
    if spec.sampler == "grid":
        assert spec.settings is not None
        started = {setting_of(t) for t in trials if t.state != TrialState.PRUNED}
        return any(i not in started for i in range(len(spec.settings)))
    return spec.n_trials is None or len(originals) < spec.n_trials


def _check_metrics(metrics: Any, spec: SweepSpec, where: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"objective must return a dict of metrics, got {type(metrics).__name__} ({where})")
    out = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} = {value!r} is not a number ({where})") from None
    return out


def _selection_key(metrics: Collection[str], spec: SweepSpec, where: str) -> str:
    """The one of ``metrics`` that scores the trial: ``spec.metric``, or its train fallback."""
    key, _ = selection_metric(spec.metric, metrics)
    if key not in metrics:
        raise KeyError(f"objective returned no {spec.metric!r} (got {sorted(metrics)}) ({where}); return it, "
                       "or pass metric= one of the validation or train metrics to run_sweep")
    return key


def _earlier_trials(trial: Any, wait_s: float = 30.0) -> list[Any]:
    """The running and complete trials numbered before ``trial``, once each running one has recorded its
    setting: a trial is created a moment before its setting is stored, and a later trial that looked in that
    moment would miss the clash and run the same setting twice."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + wait_s
    while True:
        earlier = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
                   if t.number < trial.number]
        if all("setting" in t.params or t.state != TrialState.RUNNING for t in earlier) or time.monotonic() > deadline:
            return earlier
        time.sleep(0.1)


def _run_trial(trial: Any, spec: SweepSpec, objective: Objective) -> float:
    import optuna
    from optuna.trial import TrialState

    trial.set_user_attr("worker", worker_id())
    finished: dict[str, Any] = {k: v for k, v in trial.user_attrs.items() if k.startswith("seed_")}
    if spec.settings is not None:
        index = trial.suggest_categorical("setting", list(range(len(spec.settings))))
        overrides, label = dict(spec.settings[index]), spec.labels[index]
        # Two grid workers can race onto one point: the later trial steps aside (PRUNED is never tabled).
        # Random/TPE may propose a finished setting again: it reuses those results instead of rerunning.
        for other in _earlier_trials(trial):
            if other.number < trial.number and setting_of(other) == index:
                if spec.sampler != "grid" and other.state == TrialState.COMPLETE:
                    finished = {k: v for k, v in other.user_attrs.items() if k.startswith("seed_")}
                    trial.set_user_attr("reused_trial", other.number)
                    break
                raise optuna.TrialPruned(f"setting {index} is already done or running in trial {other.number}")
    else:
        assert spec.params is not None
        overrides = {}
        for key, dist in spec.params.items():
            if isinstance(dist, Float):
                overrides[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
            elif isinstance(dist, Int):
                overrides[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                overrides[key] = trial.suggest_categorical(key, list(dist))
        index = trial.number
        label = ", ".join(f"{k.split('.')[-1]}={_fmt_value(v)}" for k, v in overrides.items())
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("label", label)
    trial_dir = Path(spec.study_dir) / "trials" / _slug(f"{index:03d}-{label}")
    trial.set_user_attr("trial_dir", str(trial_dir))  # where the table finds the seeds' runs (paired comparisons)
    per_seed = []
    for seed in spec.seeds:
        done = finished.get(f"seed_{seed}")
        if done is None:
            where = f"setting {label!r}, seed {seed}"
            logger.info("sweep %s: running %s", spec.study_name, where)
            seed_dir = seed_run_dir(trial_dir, seed)
            seed_dir.mkdir(parents=True, exist_ok=True)
            done = _check_metrics(objective(dict(overrides), seed, seed_dir), spec, where)
            logger.info("sweep %s: finished %s", spec.study_name, where)
        trial.set_user_attr(f"seed_{seed}", done)  # persisted now: a retry skips this seed
        _selection_key(done, spec, f"setting {label!r}, seed {seed}")  # fail at the first seed, not the last
        per_seed.append(done)
    # The metric all seeds have (seeds finished before the objective learnt val_top1 fall back together).
    key = _selection_key(set.intersection(*(set(d) for d in per_seed)), spec, f"setting {label!r}")
    trial.set_user_attr("selected_by", key)
    return float(statistics.fmean(d[key] for d in per_seed))


def _worker(spec: SweepSpec, objective: Objective, worker: int, quiet: bool = False,
            handles: StudyHandles | None = None) -> None:
    """Run trials until the sweep has no unstarted work left (a worker process's main)."""
    import functools

    import optuna

    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.trial import TrialState

    handles = handles if handles is not None else open_study(spec, worker)
    study = handles.study

    func = functools.partial(_run_trial, spec=spec, objective=objective)
    idle = 0
    states: list[Any] = []  # state of each trial this worker ran
    while True:
        recover_dead(handles)
        if not _has_work(study, spec):
            return
        study.optimize(func, n_trials=1, catch=(Exception,), gc_after_trial=False,
                       callbacks=[lambda _study, frozen: states.append(frozen.state)])
        # A PRUNED trial means another worker holds that setting. If that keeps happening, the rest is in
        # other workers' hands: stop (the caller collects, and a rerun picks up anything they drop).
        idle = idle + 1 if states and states[-1] == TrialState.PRUNED else 0
        if idle > max(4, len(spec.settings or ())):
            return
        if idle:
            time.sleep(0.2 * idle)


def _collect(study: Any, spec: SweepSpec, name: str) -> SweepResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_key: dict[str, Any] = {}
    for t in trials:  # first completed trial of each setting; unfinished ones keep their finished seeds
        if "overrides" not in t.user_attrs:
            continue
        key = canonical_setting(t.user_attrs["overrides"])
        prev = by_key.get(key)
        rank = {TrialState.COMPLETE: 2, TrialState.FAIL: 1, TrialState.RUNNING: 1}.get(t.state, 0)
        if rank and (prev is None or rank > prev[0]):
            by_key[key] = (rank, t)
    if spec.settings is not None:
        order = [(canonical_setting(s), dict(s), spec.labels[i], i) for i, s in enumerate(spec.settings)]
    else:
        order = sorted(((k, v[1].user_attrs["overrides"], v[1].user_attrs.get("label", k), v[1].number)
                        for k, v in by_key.items()), key=lambda x: x[3])
    rows, notes = [], []
    for key, overrides, label, index in order:
        entry = by_key.get(key)
        if entry is None and spec.sampler != "grid":
            continue  # random/TPE over a list: settings never drawn are not rows
        per_seed = {}
        if entry is not None:
            per_seed = {s: entry[1].user_attrs[f"seed_{s}"] for s in spec.seeds if f"seed_{s}" in entry[1].user_attrs}
        metrics: dict[str, list[float]] = {}
        for s in spec.seeds:
            for k, v in per_seed.get(s, {}).items():
                metrics.setdefault(k, []).append(float(v))
        done = [s for s in spec.seeds if s in per_seed]
        if len(done) < len(spec.seeds):
            notes.append(f"{label}: {len(done)}/{len(spec.seeds)} seeds finished")
        trial_dir = entry[1].user_attrs.get("trial_dir") if entry is not None else None
        if trial_dir is None and entry is not None:  # a sweep run before trial_dir was recorded: where it ran
            trial_dir = str(Path(spec.study_dir) / "trials" / _slug(f"{index:03d}-{label}"))
        rows.append(SweepRow(index=index, label=label, overrides=dict(overrides), seeds=done, metrics=metrics,
                             trial=entry[1].number if entry is not None and entry[0] == 2 else None,
                             run_dirs=[str(seed_run_dir(Path(trial_dir), s)) for s in done] if trial_dir else []))
    done_keys = {k for k, v in by_key.items() if v[0] == 2}
    failed = [t for t in trials if t.state == TrialState.FAIL
              and canonical_setting(t.user_attrs.get("overrides", {})) not in done_keys]
    if failed:
        notes.append(f"{len(failed)} failed trial(s) without a finished retry; see the log, "
                     "run the sweep again to retry them")
    return SweepResult(name=name, metric=spec.metric, direction=spec.direction, seeds=list(spec.seeds),
                       rows=rows, study_dir=spec.study_dir, notes=notes)


def run_sweep(
    space: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    objective: Objective,
    study_dir: str | Path,
    n_trials: int | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    sampler: str = "grid",
    storage: str | None = None,
    n_jobs: int = 1,
    direction: str = "maximize",
    metric: str = "val_top1",
    study_name: str | None = None,
    labels: Sequence[str] | None = None,
    heartbeat_interval: int = 30,
    max_retries: int = 3,
    sampler_seed: int = 0,
    title: str = "",
    validate: bool = True,
    context: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep and write ``results.{csv,json,md}`` to ``study_dir``.

    Args:
        space: a list of settings (dicts of dotted overrides, run as given), or ``{key: [values]}`` (the
            Cartesian grid; with ``random``/``tpe`` each key is sampled, and values may be :class:`Float`/:class:`Int`).
        objective: ``objective(overrides, seed, trial_dir) -> {"train_acc": .., "val_top1": .., "test_top1": ..}``;
            ``trial_dir`` is ``study_dir/trials/<setting>/seed<seed>`` (created; a retry gets the same one).
        n_trials: settings to try; ``None`` = every grid setting (required for ``random``/``tpe`` over ranges).
        seeds: each setting runs once per seed; tables report ``mean ± std`` over them.
        sampler: ``grid`` (``optuna.samplers.GridSampler``), ``random`` or ``tpe``.
        storage: an Optuna RDB URL; default ``sqlite:///<study_dir>/study.db``. A PostgreSQL URL shares the sweep.
        n_jobs: worker processes (``spawn``); 1 runs in this process.
        direction, metric: what "best" means: the trial value (what TPE optimizes) is the mean of ``metric``
            over seeds, and the table's best row has the best mean. A validation metric (default
            ``val_top1``), never ``test_*``; an objective without it falls back to the train metric
            (``train_acc``), noted in the table.
        labels: row labels for an explicit list of settings (default: the keys that differ).
        heartbeat_interval: seconds between Optuna heartbeats; a trial silent for twice that is retried.
        max_retries: how often a trial lost to a dead process is retried.
        validate: check every override key is a field of ``actionlab.config.TrainConfig`` before running
            (a typo fails fast instead of in every trial); turn off for objectives with their own keys.
        context: JSON-able facts the objective depends on besides the setting (the base config, the data);
            resuming the study with another context is refused naming what changed.
    """
    _check_arguments(sampler, direction, n_jobs, metric, objective)
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    study_dir = Path(study_dir).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    settings, params, labels, n_trials = _resolve_space(space, sampler, n_trials, labels, validate)
    spec = SweepSpec(study_name=study_name or study_dir.name, storage=storage or f"sqlite:///{study_dir / 'study.db'}",
                     study_dir=str(study_dir), sampler=sampler, direction=direction, metric=metric, seeds=seeds,
                     settings=settings, params=params, labels=labels, n_trials=n_trials,
                     heartbeat_interval=heartbeat_interval, max_retries=max_retries, sampler_seed=sampler_seed,
                     context=json.loads(json.dumps(dict(context or {}), sort_keys=True, default=str)))

    handles = resume_study(spec)  # refuses a different sweep; re-queues dead and failed trials

    _run_workers(spec, objective, n_jobs, handles)
    result = _collect(handles.study, spec, name=spec.study_name)
    result.title = title
    result.compare_with_best()  # each setting against the best, paired, on the trial runs' val predictions
    if result.selection_note:
        logger.warning("sweep %s: %s", spec.study_name, result.selection_note)
    paths = result.write(study_dir)
    logger.info("sweep %s: %d settings; table in %s", spec.study_name, len(result.rows), paths["md"])
    return result


def _check_arguments(sampler: str, direction: str, n_jobs: int, metric: str, objective: Objective) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    if metric.startswith("test_"):
        raise ValueError(f"metric={metric!r}: the test split never selects a setting (its numbers would no longer "
                         f"estimate new data); use a validation metric such as {'val_' + metric[5:]!r}")
    if n_jobs > 1:
        try:
            pickle.dumps(objective)
        except Exception as err:
            raise TypeError(f"n_jobs={n_jobs} runs the objective in worker processes, so it must be picklable "
                            f"(a module-level function, not a lambda or closure): {err}") from err


def _resolve_space(space: Mapping[str, Any] | Sequence[Mapping[str, Any]], sampler: str, n_trials: int | None,
                   labels: Sequence[str] | None, validate: bool
                   ) -> tuple[tuple[dict[str, Any], ...] | None, dict[str, Any] | None, tuple[str, ...], int | None]:
    """``(settings, params, labels, n_trials)``: explicit settings (a list, or a grid expanded), or the ranges a
    random/TPE sampler draws from, checked (known keys, no setting twice, one label each)."""
    settings: tuple[dict[str, Any], ...] | None = None
    params: dict[str, Any] | None = None
    if isinstance(space, Mapping):
        if sampler == "grid":
            settings = tuple(expand_grid(space))
        else:
            params = dict(space)
            if n_trials is None:
                raise ValueError(f"sampler={sampler!r} needs n_trials (how many settings to sample)")
    else:
        settings = tuple(dict(s) for s in space)
    if validate:
        _validate_keys(settings if settings is not None else [dict.fromkeys(params or {})])
    if settings is None:
        return None, params, (), n_trials
    if not settings:
        raise ValueError("the sweep has no settings")
    keys = [canonical_setting(s) for s in settings]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep lists the same setting twice")
    if labels is not None and len(labels) != len(settings):
        raise ValueError(f"{len(labels)} labels for {len(settings)} settings")
    if sampler != "grid":  # a sampled setting already done is skipped, so cap at the number of settings
        n_trials = len(settings) if n_trials is None else min(n_trials, len(settings))
    return settings, None, tuple(labels) if labels is not None else tuple(setting_labels(settings)), n_trials


def _run_workers(spec: SweepSpec, objective: Objective, n_jobs: int, handles: Any) -> None:
    """Run the sweep's trials here (``n_jobs=1``) or in ``n_jobs`` spawned processes, then here once more to
    pick up the trials of any worker that crashed."""
    if n_jobs == 1:
        _worker(spec, objective, worker=0, handles=handles)
        return
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(spec, objective, w, True), name=f"sweep-worker-{w}")
             for w in range(n_jobs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        logger.warning("sweep %s: %d worker(s) exited abnormally (codes %s); finishing their work here",
                       spec.study_name, len(bad), bad)
    _worker(spec, objective, worker=n_jobs, handles=handles)
