"""Sweeps of training settings on Optuna: grid / random / TPE, resumable, parallel, seed-averaged tables.

A *setting* is a dict of dotted config overrides (``{"model.num_layers": 2, "optim.weight_decay": 5e-4}``).
The caller supplies ``objective(overrides, seed, trial_dir) -> dict of metrics`` (the lead wires it to a
training run); :func:`run_sweep` runs every setting with several seeds and writes a table with one row per
setting and ``mean ± std`` over seeds of each metric (seed 000's tables) as CSV, JSON and Markdown.

Design (why it looks like this):

- **Optuna is the engine**: storage, samplers (``GridSampler``, ``RandomSampler``, ``TPESampler``), trial
  states and heartbeats. The default storage is ``sqlite:///<study_dir>/study.db``; pass a PostgreSQL URL
  and run the same call on several machines to share one sweep. ``load_if_exists=True``: calling
  :func:`run_sweep` again resumes: completed settings are not rerun.
- **One Optuna trial per setting, its seeds run inside the trial.** Each finished seed's metrics are saved on
  the trial (``user_attrs["seed_<s>"]``) at once, and a retried trial inherits them, so a killed sweep
  resumes seed by seed. The trial's value is the mean over seeds, which is what TPE should optimize (one seed
  is noise) and what the table reports. Parallelism is across settings.
- **Crash recovery.** A trial left RUNNING by a process that died on this host (its ``host:pid`` is recorded)
  is marked FAIL and re-queued at once; on other hosts Optuna's heartbeat does the same after
  ``heartbeat_interval * 2`` seconds. A trial whose objective *raised* stays FAIL for this call (a
  deterministic bug must not loop) and is re-queued by the next :func:`run_sweep` call.
- **Processes, not threads**, for ``n_jobs > 1``: ``n_jobs`` worker processes (``spawn``, CUDA-safe) share the
  storage, so ``objective`` must be picklable (a module-level function).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import pickle
import re
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "PRESETS",
    "Experiment",
    "Float",
    "Int",
    "SweepResult",
    "SweepRow",
    "expand_grid",
    "load_sweep",
    "run_experiments",
    "run_sweep",
    "seed000",
]

Objective = Callable[[dict[str, Any], int, Path], Mapping[str, float]]
SAMPLERS = ("grid", "random", "tpe")
# Columns first in tables (seed 000 reports train loss/accuracy, then test top-1/5/10); others follow sorted.
METRIC_ORDER = ("train_loss", "train_acc", "val_loss", "val_top1", "test_top1", "test_top5", "test_top10",
                "test_mean_class_accuracy")
_TAG = "actionlab_sweep"


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


def _canonical(overrides: Mapping[str, Any]) -> str:
    return json.dumps(dict(sorted(overrides.items())), sort_keys=True, default=str)


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


# ----------------------------------------------------------------------------------- results


@dataclass
class SweepRow:
    """One setting: its overrides and each metric's values over seeds (in ``seeds`` order)."""

    index: int
    label: str
    overrides: dict[str, Any]
    seeds: list[int]
    metrics: dict[str, list[float]]
    trial: int | None = None
    """Optuna trial number that produced the row (``None``: not finished)."""

    def mean(self, key: str) -> float:
        values = self.metrics.get(key, [])
        return statistics.fmean(values) if values else math.nan

    def std(self, key: str) -> float:
        """Sample standard deviation over seeds (``ddof=1``); 0 for a single seed."""
        values = self.metrics.get(key, [])
        return statistics.stdev(values) if len(values) > 1 else (0.0 if values else math.nan)


def _metric_columns(rows: Sequence[SweepRow]) -> list[str]:
    keys = {k for r in rows for k in r.metrics}
    return [k for k in METRIC_ORDER if k in keys] + sorted(keys - set(METRIC_ORDER))


def _pm(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if n <= 1 else f"{mean:.4f} ± {std:.4f}"


@dataclass
class SweepResult:
    """The table of a sweep: one :class:`SweepRow` per setting; ``best`` indexes ``rows``."""

    name: str
    metric: str
    direction: str
    seeds: list[int]
    rows: list[SweepRow]
    title: str = ""
    study_dir: str = ""
    best: int | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.best is None:
            self.best = self._find_best()

    def _find_best(self) -> int | None:
        scored = [(r.mean(self.metric), i) for i, r in enumerate(self.rows) if not math.isnan(r.mean(self.metric))]
        if not scored:
            return None
        sign = -1.0 if self.direction == "maximize" else 1.0
        return min(scored, key=lambda t: (sign * t[0], t[1]))[1]

    @property
    def columns(self) -> list[str]:
        return _metric_columns(self.rows)

    def table(self) -> list[dict[str, Any]]:
        """Flat rows: ``setting``, ``n_seeds``, then ``<metric>_mean`` / ``<metric>_std`` per metric."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {"setting": r.label, "n_seeds": len(next(iter(r.metrics.values()), []))}
            for key in self.columns:
                row[f"{key}_mean"] = r.mean(key)
                row[f"{key}_std"] = r.std(key)
            row["overrides"] = _canonical(r.overrides)
            out.append(row)
        return out

    def to_csv(self) -> str:
        table = self.table()
        buf = io.StringIO()
        fields = list(table[0]) if table else ["setting", "n_seeds", "overrides"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """Seed 000's table: one row per setting, ``mean ± std`` over seeds, the best row in bold."""
        cols = self.columns
        head = ["setting", "seeds", *cols]
        lines = []
        if self.title:
            lines += [f"### {self.title}", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(cols)) + "|"]
        for i, r in enumerate(self.rows):
            n = len(r.metrics.get(self.metric, []))
            cells = [r.label.replace("|", "\\|"), str(n)]
            cells += [_pm(r.mean(k), r.std(k), len(r.metrics.get(k, []))) for k in cols]
            if i == self.best:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        if self.best is not None:
            lines += ["", f"Best by {self.metric} ({self.direction}): **{self.rows[self.best].label}**"]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "metric": self.metric, "direction": self.direction,
            "seeds": self.seeds, "best": self.best, "study_dir": self.study_dir, "notes": self.notes,
            "rows": [{"index": r.index, "label": r.label, "overrides": r.overrides, "seeds": r.seeds,
                      "metrics": r.metrics, "trial": r.trial} for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepResult:
        rows = [SweepRow(index=r["index"], label=r["label"], overrides=r["overrides"], seeds=r["seeds"],
                         metrics={k: [float(x) for x in v] for k, v in r["metrics"].items()}, trial=r.get("trial"))
                for r in data["rows"]]
        return cls(name=data["name"], metric=data["metric"], direction=data["direction"], seeds=data["seeds"],
                   rows=rows, title=data.get("title", ""), study_dir=data.get("study_dir", ""),
                   best=data.get("best"), notes=list(data.get("notes", [])))

    def write(self, out_dir: str | Path, stem: str = "results") -> dict[str, Path]:
        """Write ``<stem>.csv``, ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
        out_dir = Path(out_dir)
        paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("csv", "json", "md")}
        atomic_write_text(paths["csv"], self.to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_json(), indent=1, default=str))
        atomic_write_text(paths["md"], self.to_markdown())
        return paths


def load_sweep(path: str | Path) -> SweepResult:
    """Read a sweep table from ``results.json`` (or a study directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sweep results; run the sweep first (it writes results.json)")
    return SweepResult.from_json(json.loads(path.read_text()))


# ----------------------------------------------------------------------------------- the sweep engine


@dataclass(frozen=True)
class _Spec:
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


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Heartbeats and retries are stable in practice but still flagged experimental by Optuna."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _make_storage(spec: _Spec) -> Any:
    import optuna

    kwargs: dict[str, Any] = {}
    if spec.storage.startswith("sqlite"):
        # Several processes write the same file: wait for the lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    with _quiet_experimental():
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retries)
        return optuna.storages.RDBStorage(spec.storage, heartbeat_interval=spec.heartbeat_interval,
                                          grace_period=2 * spec.heartbeat_interval,
                                          heartbeat_stale_trial_callback=callback, **kwargs)


def _make_sampler(spec: _Spec, worker: int) -> Any:
    import optuna

    if spec.sampler == "grid":
        assert spec.settings is not None
        # Every worker needs the SAME seed: GridSampler shuffles its grid with it, and grid ids index that order.
        return optuna.samplers.GridSampler({"setting": list(range(len(spec.settings)))}, seed=spec.sampler_seed)
    seed = spec.sampler_seed + worker  # random/TPE workers must not draw the same sequence
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _identity(spec: _Spec) -> dict[str, Any]:
    """What must match for a study directory to be resumed."""
    return {"sampler": spec.sampler, "metric": spec.metric, "seeds": list(spec.seeds),
            "settings": [_canonical(s) for s in spec.settings] if spec.settings is not None else None,
            "params": {k: repr(v) for k, v in spec.params.items()} if spec.params is not None else None}


def _open_study(spec: _Spec, worker: int) -> Any:
    import optuna

    return optuna.create_study(study_name=spec.study_name, storage=_make_storage(spec),
                               sampler=_make_sampler(spec, worker), direction=spec.direction, load_if_exists=True)


def _validate_keys(settings: Sequence[Mapping[str, Any]]) -> None:
    from actionlab.config import TrainConfig, flatten

    known = set(flatten(TrainConfig()))
    unknown = sorted({k for s in settings for k in s} - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown} in the sweep; fields look like 'optim.lr' or "
                         "'model.num_layers' (see actionlab.config), or pass validate=False")


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _retry(study: Any, trial: Any) -> None:
    """Queue a WAITING copy of a failed trial (params, grid id and finished seeds), as Optuna's heartbeat does."""
    import optuna

    with _quiet_experimental():
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, trial)


def _recover_dead(study: Any) -> int:
    """FAIL + re-queue RUNNING trials whose process on this host is gone; then Optuna's heartbeat check."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get("worker", ""))
        name, _, pid = owner.rpartition(":")
        if name != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                logger.warning("trial %d (%s) was left running by dead process %s; retrying it",
                               t.number, t.user_attrs.get("label", "?"), owner)
                _retry(study, study._storage.get_trial(t._trial_id))
                count += 1
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    with _quiet_experimental():
        optuna.storages.fail_stale_trials(study)
    return count


def _setting_of(trial: Any) -> int | None:
    value = trial.params.get("setting")
    return int(value) if value is not None else None


def _has_work(study: Any, spec: _Spec) -> bool:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    originals = [t for t in trials if "failed_trial" not in t.system_attrs and t.state != TrialState.PRUNED]
    if spec.n_trials is not None and len(originals) >= spec.n_trials:
        return False
    if spec.sampler == "grid":
        assert spec.settings is not None
        started = {_setting_of(t) for t in trials if t.state != TrialState.PRUNED}
        return any(i not in started for i in range(len(spec.settings)))
    return spec.n_trials is None or len(originals) < spec.n_trials


def _check_metrics(metrics: Any, spec: _Spec, where: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"objective must return a dict of metrics, got {type(metrics).__name__} ({where})")
    out = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} = {value!r} is not a number ({where})") from None
    if spec.metric not in out:
        raise KeyError(f"objective returned no {spec.metric!r} (got {sorted(out)}) ({where}); "
                       f"pass metric= one of those to run_sweep")
    return out


def _run_trial(trial: Any, spec: _Spec, objective: Objective) -> float:
    import optuna
    from optuna.trial import TrialState

    trial.set_user_attr("worker", _worker_id())
    finished: dict[str, Any] = {k: v for k, v in trial.user_attrs.items() if k.startswith("seed_")}
    if spec.settings is not None:
        index = trial.suggest_categorical("setting", list(range(len(spec.settings))))
        overrides, label = dict(spec.settings[index]), spec.labels[index]
        # Two grid workers can race onto one point: the later trial steps aside (PRUNED is never tabled).
        # Random/TPE may propose a finished setting again: it reuses those results instead of rerunning.
        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number < trial.number and _setting_of(other) == index:
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
    values = []
    for seed in spec.seeds:
        done = finished.get(f"seed_{seed}")
        if done is None:
            where = f"setting {label!r}, seed {seed}"
            logger.info("sweep %s: running %s", spec.study_name, where)
            seed_dir = trial_dir / f"seed{seed}"
            seed_dir.mkdir(parents=True, exist_ok=True)
            done = _check_metrics(objective(dict(overrides), seed, seed_dir), spec, where)
        trial.set_user_attr(f"seed_{seed}", done)  # persisted now: a retry skips this seed
        values.append(done[spec.metric])
    return float(statistics.fmean(values))


def _worker(spec: _Spec, objective: Objective, worker: int, quiet: bool = False, study: Any = None) -> None:
    """Run trials until the sweep has no unstarted work left (a worker process's main)."""
    import functools

    import optuna

    if quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study if study is not None else _open_study(spec, worker)
    from optuna.trial import TrialState

    func = functools.partial(_run_trial, spec=spec, objective=objective)
    idle = 0
    states: list[Any] = []  # state of each trial this worker ran
    while True:
        _recover_dead(study)
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


def _requeue_failed(study: Any, spec: _Spec) -> int:
    """At the start of a call: re-queue FAILed settings that have no finished, running or queued trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if spec.settings is None:
        return 0
    covered = {_setting_of(t) for t in trials
               if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)}
    count = 0
    for t in reversed(trials):  # the latest failure of a setting carries the most finished seeds
        setting = _setting_of(t)
        if t.state == TrialState.FAIL and setting is not None and setting not in covered:
            _retry(study, t)
            covered.add(setting)
            count += 1
    return count


def _collect(study: Any, spec: _Spec, name: str) -> SweepResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_key: dict[str, Any] = {}
    for t in trials:  # first completed trial of each setting; unfinished ones keep their finished seeds
        if "overrides" not in t.user_attrs:
            continue
        key = _canonical(t.user_attrs["overrides"])
        prev = by_key.get(key)
        rank = {TrialState.COMPLETE: 2, TrialState.FAIL: 1, TrialState.RUNNING: 1}.get(t.state, 0)
        if rank and (prev is None or rank > prev[0]):
            by_key[key] = (rank, t)
    if spec.settings is not None:
        order = [(_canonical(s), dict(s), spec.labels[i], i) for i, s in enumerate(spec.settings)]
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
        rows.append(SweepRow(index=index, label=label, overrides=dict(overrides), seeds=done, metrics=metrics,
                             trial=entry[1].number if entry is not None and entry[0] == 2 else None))
    done_keys = {k for k, v in by_key.items() if v[0] == 2}
    failed = [t for t in trials if t.state == TrialState.FAIL
              and _canonical(t.user_attrs.get("overrides", {})) not in done_keys]
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
    metric: str = "test_top1",
    study_name: str | None = None,
    labels: Sequence[str] | None = None,
    heartbeat_interval: int = 30,
    max_retries: int = 3,
    sampler_seed: int = 0,
    title: str = "",
    validate: bool = True,
) -> SweepResult:
    """Run (or resume) a sweep and write ``results.{csv,json,md}`` to ``study_dir``.

    Args:
        space: a list of settings (dicts of dotted overrides, run as given), or ``{key: [values]}`` (the
            Cartesian grid; with ``random``/``tpe`` each key is sampled, and values may be :class:`Float`/:class:`Int`).
        objective: ``objective(overrides, seed, trial_dir) -> {"train_loss": .., "test_top1": .., ...}``;
            ``trial_dir`` is ``study_dir/trials/<setting>/seed<seed>`` (created; a retry gets the same one).
        n_trials: settings to try; ``None`` = every grid setting (required for ``random``/``tpe`` over ranges).
        seeds: each setting runs once per seed; tables report ``mean ± std`` over them.
        sampler: ``grid`` (``optuna.samplers.GridSampler``), ``random`` or ``tpe``.
        storage: an Optuna RDB URL; default ``sqlite:///<study_dir>/study.db``. A PostgreSQL URL shares the sweep.
        n_jobs: worker processes (``spawn``); 1 runs in this process.
        direction, metric: what "best" means (the trial value is the mean of ``metric`` over seeds).
        labels: row labels for an explicit list of settings (default: the keys that differ).
        heartbeat_interval: seconds between Optuna heartbeats; a trial silent for twice that is retried.
        max_retries: how often a trial lost to a dead process is retried.
        validate: check every override key is a field of ``actionlab.config.TrainConfig`` before running
            (a typo fails fast instead of in every trial); turn off for objectives with their own keys.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    study_dir = Path(study_dir).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)

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
    if settings is not None:
        if not settings:
            raise ValueError("the sweep has no settings")
        keys = [_canonical(s) for s in settings]
        if len(set(keys)) != len(keys):
            raise ValueError("the sweep lists the same setting twice")
        if labels is not None and len(labels) != len(settings):
            raise ValueError(f"{len(labels)} labels for {len(settings)} settings")
        labels = tuple(labels) if labels is not None else tuple(setting_labels(settings))
        if sampler != "grid":  # a sampled setting already done is skipped, so cap at the number of settings
            n_trials = len(settings) if n_trials is None else min(n_trials, len(settings))
    spec = _Spec(study_name=study_name or study_dir.name, storage=storage or f"sqlite:///{study_dir / 'study.db'}",
                 study_dir=str(study_dir), sampler=sampler, direction=direction, metric=metric, seeds=seeds,
                 settings=settings, params=params, labels=tuple(labels or ()), n_trials=n_trials,
                 heartbeat_interval=heartbeat_interval, max_retries=max_retries, sampler_seed=sampler_seed)

    study = _open_study(spec, worker=0)
    identity = _identity(spec)
    previous = study.user_attrs.get(_TAG)
    if previous is None:
        study.set_user_attr(_TAG, identity)
    elif previous != identity:
        raise ValueError(f"{study_dir}: this study holds a different sweep (settings, seeds, sampler or metric "
                         "changed); use a new study_dir (or study_name) or the original arguments to resume it")
    recovered = _recover_dead(study)
    requeued = _requeue_failed(study, spec)
    if recovered or requeued:
        logger.info("sweep %s: resuming; %d dead and %d failed trial(s) re-queued", spec.study_name,
                    recovered, requeued)

    if n_jobs > 1:
        try:
            pickle.dumps(objective)
        except Exception as err:
            raise TypeError(f"n_jobs={n_jobs} runs the objective in worker processes, so it must be picklable "
                            f"(a module-level function, not a lambda or closure): {err}") from err
    if n_jobs == 1:
        _worker(spec, objective, worker=0, study=study)
    else:
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
        _worker(spec, objective, worker=n_jobs, study=study)  # picks up trials of crashed workers, if any
    result = _collect(study, spec, name=spec.study_name)
    result.title = title
    paths = result.write(study_dir)
    logger.info("sweep %s: %d settings; table in %s", spec.study_name, len(result.rows), paths["md"])
    return result


# ----------------------------------------------------------------------------------- experiments and presets


@dataclass(frozen=True)
class Experiment:
    """One-factor-at-a-time experiment: ``settings`` vary one thing on top of ``base`` (seed 000's sections)."""

    name: str
    title: str
    settings: tuple[dict[str, Any], ...]
    base: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> list[dict[str, Any]]:
        return [{**self.base, **s} for s in self.settings]


def run_experiments(experiments: Sequence[Experiment], objective: Objective, study_dir: str | Path,
                    **sweep_kwargs: Any) -> list[SweepResult]:
    """Run several experiments as ONE grid sweep over their distinct settings, then split it into tables.

    Settings shared between experiments (the baseline appears in every seed-000 table) run once. Writes the
    combined table to ``study_dir/results.*``, one table per experiment to ``study_dir/experiments/<name>.*``,
    and all of them to ``study_dir/summary.md``. ``sweep_kwargs`` go to :func:`run_sweep` (``seeds``,
    ``n_jobs``, ``storage``, ``metric``, ...; the sampler is always ``grid``).
    """
    study_dir = Path(study_dir)
    unique: dict[str, dict[str, Any]] = {}
    for exp in experiments:
        for s in exp.resolved():
            unique.setdefault(_canonical(s), s)
    combined = run_sweep(list(unique.values()), objective, study_dir, sampler="grid", **sweep_kwargs)
    rows_by_key = {_canonical(r.overrides): r for r in combined.rows}
    results = []
    for exp in experiments:
        labels = setting_labels(list(exp.settings))
        rows = []
        for i, (s, label) in enumerate(zip(exp.resolved(), labels)):
            src = rows_by_key[_canonical(s)]
            rows.append(SweepRow(index=i, label=label, overrides=s, seeds=src.seeds, metrics=src.metrics,
                                 trial=src.trial))
        res = SweepResult(name=exp.name, title=exp.title, metric=combined.metric, direction=combined.direction,
                          seeds=combined.seeds, rows=rows, study_dir=str(study_dir))
        res.write(study_dir / "experiments", stem=exp.name)
        results.append(res)
    atomic_write_text(study_dir / "summary.md", "\n".join(r.to_markdown() for r in results))
    return results


def seed000(scale: float = 1.0, seq_scale: float = 1.0) -> list[Experiment]:
    """Seed 000's study of an LSTM over per-frame CNN features, one factor at a time.

    The baseline is the seed's reference column (MomentumSGD, lr 5e-4, 1 layer, batch norm, dropout 0.5, clip 5,
    sequence 120 with TBPTT 30, loss scaled toward later steps, strided-window inference). ``scale`` multiplies
    epochs (25/50/100 at 1.0) and ``seq_scale`` sequence/window/TBPTT lengths (120 steps at 1.0), so the same
    study runs on a tiny feature store, e.g. ``seed000(scale=0.08, seq_scale=0.1)``.
    """
    def ep(n: int) -> int:
        return max(1, round(n * scale))

    def steps(n: int) -> int:
        return max(1, round(n * seq_scale))

    base = {"model.name": "lstm", "model.num_layers": 1, "model.batch_norm": True, "model.dropout": 0.5,
            "optim.name": "sgd", "optim.lr": 5e-4, "optim.weight_decay": 0.0, "optim.grad_clip": 5.0,
            "epochs": ep(25), "batch_size": 32, "sequence.seq_len": steps(120), "sequence.tbptt": steps(30),
            "sequence.loss_weighting": "linear", "inference.mode": "windows", "inference.window": steps(60),
            "inference.stride": steps(30)}

    def exp(name: str, title: str, key: str, values: Sequence[Any]) -> Experiment:
        # dict.fromkeys dedupes values that collapse after scaling (e.g. tiny seq_scale)
        return Experiment(name, title, tuple({key: v} for v in dict.fromkeys(values)), base)

    return [
        exp("layers", "1. Number of LSTM layers", "model.num_layers", [1, 2, 3]),
        exp("weight_decay", "2. Weight decay", "optim.weight_decay", [0.0, 5e-4]),
        exp("batch_norm", "3. Batch normalization", "model.batch_norm", [True, False]),
        exp("optimizer", "4. Optimizer", "optim.name", ["sgd", "adam", "rmsprop"]),
        exp("lr", "5. Learning rate", "optim.lr", [3e-4, 5e-4, 7e-4, 9e-4, 1e-3]),
        exp("epochs", "6. Number of epochs", "epochs", [ep(25), ep(50), ep(100)]),
        exp("grad_clip", "7. Gradient clipping", "optim.grad_clip", [5.0, 7.0, 9.0, 11.0]),
        exp("seq_len", "8. Sequence length", "sequence.seq_len", [steps(n) for n in (30, 60, 120, 150, 180)]),
        exp("dropout", "9. Dropout", "model.dropout", [0.2, 0.3, 0.4, 0.5, 0.6]),
        exp("batch_size", "Batch size", "batch_size", [16, 32, 64]),
        exp("loss_weighting", "10. Loss scaling", "sequence.loss_weighting", ["uniform", "linear", "last"]),
        exp("tbptt", "11. Truncated BPTT", "sequence.tbptt", [steps(n) for n in (30, 50, 80, 120)]),
        exp("inference", "12. Inference technique", "inference.mode", ["full", "windows", "vote"]),
    ]


PRESETS: dict[str, Callable[..., list[Experiment]]] = {"seed000": seed000}
"""Named studies: ``run_experiments(PRESETS["seed000"](scale=0.1), objective, "sweeps/seed000")``."""
