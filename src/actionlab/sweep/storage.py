"""Where a sweep lives: its Optuna study, how processes and machines share it, and how it survives a crash.

:func:`actionlab.sweep.engine.run_sweep` keeps all of a sweep's state in one Optuna study; this module
is everything that touches that study as *storage* rather than as trials to run:

- **Storage.** An Optuna ``RDBStorage`` on the sweep's URL (default ``sqlite:///<study_dir>/study.db``;
  SQLite writers wait up to 120 s for the file lock, since several worker processes write it). A PostgreSQL
  URL lets several machines run the same sweep. Heartbeats are on: a trial silent for
  ``2 * heartbeat_interval`` seconds is failed and re-queued by Optuna (up to ``max_retries`` times).
- **Opening.** Each process opens the study twice over one storage (:class:`StudyHandles`): once with the sweep's
  sampler (``GridSampler`` / ``RandomSampler`` / ``TPESampler``; grid workers share one seed, random/TPE
  workers get distinct ones) to run trials, and once with a passive sampler to fail dead trials.
- **Resuming.** The study records what sweep it holds (:func:`sweep_identity`: settings, seeds, sampler, metric and
  the caller's ``context``, e.g. the base config and the data); a later call with anything different is refused
  naming the differences, instead of mixing two sweeps in one table or returning the old one.
- **Crash recovery.** Every running trial records its ``host:pid``. A RUNNING trial whose process on this
  host is gone is failed and re-queued at once (:func:`recover_dead`); other hosts' dead trials are left to
  the heartbeat. A re-queued trial is Optuna's WAITING copy of the failed one: same params, grid id and user
  attributes, so it keeps the seeds that had finished. Settings whose objective *raised* stay FAIL for the
  call and are re-queued at the start of the next one (:func:`requeue_failed`).

Only Optuna's public API is used. Optuna is imported inside the functions so that importing the sweep module
stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from actionlab.report.sweep_table import canonical_setting
from actionlab.sweep.spec import SweepSpec
from actionlab.utils import flatten_mapping, pid_alive

logger = logging.getLogger(__name__)

_TAG = "actionlab_sweep"
"""Study user attribute holding the sweep's :func:`sweep_identity`."""


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Heartbeats and retries are stable in practice but still flagged experimental by Optuna."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _retry_callback(max_retry: int | None = None) -> Any:
    """Optuna's callback that queues a WAITING copy of a failed trial (params, grid id, user attrs)."""
    import optuna

    # Optuna >= 4.9 calls it RetryHeartbeatStaleTrialCallback; RetryFailedTrialCallback is the older name.
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with _quiet_experimental():
        return cls(max_retry=max_retry)


def storage_url(url: str) -> str:
    """``url`` with a PostgreSQL driver that is installed: SQLAlchemy 2 reads a bare ``postgresql://`` as psycopg
    (version 3); with only psycopg2 (actionlab's ``postgres`` extra) it becomes ``postgresql+psycopg2://``."""
    import importlib.util

    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _make_storage(spec: SweepSpec) -> Any:
    import optuna
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    if spec.storage.startswith("sqlite"):
        # Several processes write the same file: wait for the lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    for attempt in range(10):
        try:
            with _quiet_experimental():
                return optuna.storages.RDBStorage(storage_url(spec.storage), heartbeat_interval=spec.heartbeat_interval,
                                                  grace_period=2 * spec.heartbeat_interval,
                                                  heartbeat_stale_trial_callback=_retry_callback(spec.max_retries),
                                                  **kwargs)
        except sqlalchemy.exc.OperationalError as exc:
            shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", spec.storage)  # never print a password
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
            raise ValueError(f"--storage {shown}: cannot open the sweep database ({reason}); check the URL, that the "
                             "server runs and accepts this user, or drop --storage for SQLite in the sweep "
                             "directory") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Workers starting together on a new database race to create Optuna's tables ("duplicate key ...
            # pg_type", "relation already exists"); the loser finds them made on its next try.
            if attempt == 9 or "already exists" not in str(exc) and "duplicate key" not in str(exc):
                raise
            logger.debug("storage schema being created by another worker; retrying (%s)", exc)
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _make_sampler(spec: SweepSpec, worker: int) -> Any:
    import optuna

    if spec.sampler == "grid":
        assert spec.settings is not None
        # Every worker needs the SAME seed: GridSampler shuffles its grid with it, and grid ids index that order.
        return optuna.samplers.GridSampler({"setting": list(range(len(spec.settings)))}, seed=spec.sampler_seed)
    seed = spec.sampler_seed + worker  # random/TPE workers must not draw the same sequence
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


@dataclass(frozen=True)
class StudyHandles:
    """One connection to the sweep's Optuna study, seen through two samplers."""

    study: Any
    """With the sweep's sampler: asks for and runs trials."""
    clerk: Any
    """With a passive ``RandomSampler``: fails trials of dead processes. Telling FAIL through ``study`` would
    run ``GridSampler.after_trial``, which calls ``study.stop()`` (an error outside ``optimize``) once the grid
    is covered."""


def open_study(spec: SweepSpec, worker: int) -> StudyHandles:
    import optuna

    storage = _make_storage(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "Using an existing study..." is not news to a user
    study = optuna.create_study(study_name=spec.study_name, storage=storage, sampler=_make_sampler(spec, worker),
                                direction=spec.direction, load_if_exists=True)
    clerk = optuna.load_study(study_name=spec.study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
    return StudyHandles(study, clerk)


def sweep_identity(spec: SweepSpec) -> dict[str, Any]:
    """What must match for a study directory to be resumed."""
    return {"sampler": spec.sampler, "metric": spec.metric, "seeds": list(spec.seeds),
            "settings": [canonical_setting(s) for s in spec.settings] if spec.settings is not None else None,
            "params": {k: repr(v) for k, v in spec.params.items()} if spec.params is not None else None,
            "context": dict(spec.context)}



def _differences(previous: Mapping[str, Any], identity: Mapping[str, Any]) -> list[str]:
    """``field: before=... now=...`` for what differs between two sweep identities."""
    previous = dict(previous)
    if "context" not in previous:  # a study from before contexts were recorded: nothing to compare it with
        previous["context"] = identity["context"]
    # A grid runs the same settings whatever the metric (the table picks its best row from the stored per-seed
    # metrics), so a grid started with another metric (test_top1 was the default once) still resumes.
    skip = {"metric"} if identity["sampler"] == "grid" else set()
    diffs = []
    for key in ("sampler", "metric", "seeds", "settings", "params"):
        if key not in skip and previous.get(key) != identity.get(key):
            before, now = previous.get(key), identity.get(key)
            if key == "settings" and before and now:
                gone = [s for s in before if s not in now]
                new = [s for s in now if s not in before]
                diffs.append(f"settings: {len(gone)} not swept now (e.g. {gone[:1]}), {len(new)} new "
                             f"(e.g. {new[:1]})")
            else:
                diffs.append(f"{key}: before={before!r} now={now!r}")
    a, b = flatten_mapping(previous["context"]), flatten_mapping(identity["context"])
    # a config field added by a newer actionlab (on one side only) is no difference; data that differs in kind is
    keys = (set(a) | set(b)) - {k for k in set(a) ^ set(b) if k.startswith("config.")}
    diffs += [f"{k}: before={a.get(k)!r} now={b.get(k)!r}" for k in sorted(keys) if a.get(k) != b.get(k)]
    return diffs


def resume_study(spec: SweepSpec) -> StudyHandles:
    """Open (or create) the sweep's study in this process, refuse a different sweep, re-queue lost trials."""
    handles = open_study(spec, worker=0)
    identity = sweep_identity(spec)
    previous = handles.study.user_attrs.get(_TAG)
    if previous is None:
        handles.study.set_user_attr(_TAG, identity)
    else:
        diffs = _differences(previous, identity)
        if diffs:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
            raise ValueError(f"{spec.study_dir}: study {spec.study_name!r} holds a different sweep ({shown}); rerun "
                             "with the original arguments to resume it, or sweep into a new --out")
        if "context" not in previous:
            handles.study.set_user_attr(_TAG, identity)
    recovered = recover_dead(handles)
    requeued = requeue_failed(handles.study, spec)
    if recovered or requeued:
        logger.info("sweep %s: resuming; %d dead and %d failed trial(s) re-queued", spec.study_name,
                    recovered, requeued)
    return handles


def worker_id() -> str:
    """``host:pid`` of this process, recorded on each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"



def setting_of(trial: Any) -> int | None:
    """The index of the explicit setting a trial runs (``None`` for random/TPE over ranges)."""
    value = trial.params.get("setting")
    return int(value) if value is not None else None


def is_retry(trial: Any) -> bool:
    with _quiet_experimental():
        return _retry_callback().retried_trial_number(trial) is not None


def _retry(study: Any, trial: Any) -> None:
    """Queue a WAITING copy of a failed trial (params, grid id and finished seeds), as Optuna's heartbeat does."""
    _retry_callback()(study, trial)


def recover_dead(handles: StudyHandles) -> int:
    """FAIL + re-queue RUNNING trials whose process on this host is gone; then Optuna's heartbeat check."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    count = 0
    for t in handles.clerk.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get("worker", ""))
        name, _, pid = owner.rpartition(":")
        if name != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            failed = handles.clerk.tell(t.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker finished it first ("Cannot tell a FAIL trial")
        logger.warning("trial %d (%s) was left running by dead process %s; retrying it",
                       t.number, t.user_attrs.get("label", "?"), owner)
        _retry(handles.clerk, failed)
        count += 1
    with _quiet_experimental():
        optuna.storages.fail_stale_trials(handles.clerk)
    return count


def requeue_failed(study: Any, spec: SweepSpec) -> int:
    """At the start of a call: re-queue FAILed settings that have no finished, running or queued trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if spec.settings is None:
        return 0
    covered = {setting_of(t) for t in trials
               if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)}
    count = 0
    for t in reversed(trials):  # the latest failure of a setting carries the most finished seeds
        setting = setting_of(t)
        if t.state == TrialState.FAIL and setting is not None and setting not in covered:
            _retry(study, t)
            covered.add(setting)
            count += 1
    return count
