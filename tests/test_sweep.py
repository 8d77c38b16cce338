"""Sweeps on Optuna with a cheap fake objective: grid coverage, tables, kill-and-resume, 2 worker processes,
validation (never test) metrics picking the best setting, and the named studies."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from actionlab.presets import preset

optuna = pytest.importorskip("optuna")

from actionlab.sweep.engine import Float, load_sweep, run_sweep  # noqa: E402
from actionlab.sweep.studies import STUDIES, get_study, run_experiments  # noqa: E402

SPACE = {"model.num_layers": [1, 2, 3], "optim.weight_decay": [0.0, 5e-4]}


def fake_metrics(overrides: dict, seed: int) -> dict:
    """A pure function of the setting and seed, so tables can be checked exactly."""
    layers = overrides.get("model.num_layers", 1)
    wd = overrides.get("optim.weight_decay", 0.0)
    top1 = 0.5 + 0.05 * layers + 100 * wd + 0.01 * seed
    return {"train_loss": 1.0 / layers + 0.1 * seed, "train_acc": 0.9 + 0.01 * seed, "val_top1": top1 - 0.03,
            "test_top1": top1, "test_top5": min(1.0, top1 + 0.2), "test_top10": min(1.0, top1 + 0.3)}


def fake_objective(overrides: dict, seed: int, trial_dir: Path) -> dict:
    """Logs each finished (setting, seed, pid) to $SWEEP_LOG; can hang at $SWEEP_HANG (a kill point) or wait at
    $SWEEP_BARRIER until two processes are inside (proves parallel workers)."""
    assert trial_dir.is_dir()
    key = json.dumps(overrides, sort_keys=True)
    if os.environ.get("SWEEP_HANG") == f"{overrides.get('model.num_layers')}-{seed}":
        Path(os.environ["SWEEP_HANG_MARKER"]).write_text("hanging")
        time.sleep(120)  # killed here by the test
    if os.environ.get("SWEEP_FAIL") == str(overrides.get("model.num_layers")):
        raise RuntimeError("simulated crash in training")
    barrier = os.environ.get("SWEEP_BARRIER")
    if barrier:
        Path(barrier, str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while len(list(Path(barrier).iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    with open(os.environ["SWEEP_LOG"], "a") as fh:
        fh.write(json.dumps({"key": key, "seed": seed, "pid": os.getpid()}) + "\n")
    return fake_metrics(overrides, seed)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("SWEEP_LOG", str(path))
    for var in ("SWEEP_HANG", "SWEEP_BARRIER", "SWEEP_FAIL"):
        monkeypatch.delenv(var, raising=False)
    return path


def _assert_each_once(log_path: Path, settings: int, seeds: tuple) -> None:
    calls = [(c["key"], c["seed"]) for c in _log(log_path)]
    assert len(calls) == len(set(calls)), "a (setting, seed) ran twice"
    assert len(calls) == settings * len(seeds)


def test_grid_covers_all_settings_and_seeds_and_tables_are_right(tmp_path, log):
    seeds = (0, 1, 2)
    res = run_sweep(SPACE, fake_objective, tmp_path / "study", seeds=seeds)
    _assert_each_once(log, 6, seeds)
    assert len(res.rows) == 6
    for row in res.rows:
        expected = [fake_metrics(row.overrides, s)["test_top1"] for s in seeds]
        assert row.seeds == list(seeds)
        assert row.mean("test_top1") == pytest.approx(statistics.fmean(expected))
        assert row.std("test_top1") == pytest.approx(statistics.stdev(expected))
    best = res.rows[res.best]
    assert best.overrides == {"model.num_layers": 3, "optim.weight_decay": 5e-4}
    # files: CSV/JSON/Markdown, one row per setting
    study = tmp_path / "study"
    md = (study / "results.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 1 + 6 and "±" in md and "**num_layers=3, weight_decay=0.0005**" in md
    assert len((study / "results.csv").read_text().splitlines()) == 1 + 6
    back = load_sweep(study)
    assert back.best == res.best and back.rows[2].metrics == res.rows[2].metrics
    # a second call resumes a finished study: nothing reruns
    again = run_sweep(SPACE, fake_objective, study, seeds=seeds)
    _assert_each_once(log, 6, seeds)
    assert [r.mean("test_top1") for r in again.rows] == [r.mean("test_top1") for r in res.rows]
    # and a different sweep in the same directory is refused
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(SPACE, fake_objective, study, seeds=(0, 1))


def test_kill_and_resume_runs_every_setting_once_per_seed(tmp_path, log, monkeypatch):
    study = tmp_path / "study"
    marker = tmp_path / "hang"
    env = {**os.environ, "SWEEP_HANG": "2-1", "SWEEP_HANG_MARKER": str(marker)}
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from test_sweep import fake_objective, SPACE;"
            "from actionlab.sweep.engine import run_sweep;"
            "run_sweep({'model.num_layers': [1, 2, 3]}, fake_objective, sys.argv[2], seeds=(0, 1))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(study)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the sweep never reached the kill point"
    finally:
        proc.kill()
        proc.wait()
    before = _log(log)
    assert 1 <= len(before) < 6  # killed midway: some, not all, (setting, seed) pairs done
    res = run_sweep({"model.num_layers": [1, 2, 3]}, fake_objective, study, seeds=(0, 1))
    _assert_each_once(log, 3, (0, 1))
    assert all(r.seeds == [0, 1] for r in res.rows) and not res.notes
    storage = optuna.storages.RDBStorage(f"sqlite:///{study / 'study.db'}")
    trials = optuna.load_study(study_name="study", storage=storage).get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["overrides"]["model.num_layers"] == 2
    # the killed trial had finished seed 0 before seed 1 hung; its retry reused that result
    assert "seed_0" in failed[0].user_attrs


def test_a_dead_process_holding_the_last_grid_setting_is_recovered(tmp_path, log):
    """The killed trial is the grid's only setting: failing it must not trip GridSampler's stop()."""
    import socket

    study_dir = tmp_path / "study"
    study_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.create_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}",
                                sampler=optuna.samplers.GridSampler({"setting": [0]}, seed=0), direction="maximize")
    trial = study.ask()
    trial.suggest_categorical("setting", [0])
    overrides = {"model.num_layers": 2}
    for key, value in {"worker": f"{socket.gethostname()}:{dead.pid}", "overrides": overrides,
                       "label": "num_layers=2", "seed_0": fake_metrics(overrides, 0)}.items():
        trial.set_user_attr(key, value)  # as a worker that finished seed 0 and died in seed 1 leaves it
    res = run_sweep({"model.num_layers": [2]}, fake_objective, study_dir, seeds=(0, 1))
    assert [c["seed"] for c in _log(log)] == [1]  # seed 0 was inherited, not rerun
    assert res.rows[0].seeds == [0, 1] and not res.notes
    states = [t.state for t in optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}").trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


def test_two_worker_processes(tmp_path, log, monkeypatch):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("SWEEP_BARRIER", str(barrier))
    space = {"model.num_layers": [1, 2, 3]}
    res = run_sweep(space, fake_objective, tmp_path / "study", seeds=(0,), n_jobs=2)
    _assert_each_once(log, 3, (0,))
    pids = {c["pid"] for c in _log(log)}
    assert len(pids) == 2 and os.getpid() not in pids  # two separate worker processes did the work
    assert [r.label for r in res.rows] == [f"num_layers={n}" for n in (1, 2, 3)]


def test_random_and_tpe_samplers(tmp_path, log):
    space = {"optim.lr": Float(1e-4, 1e-2, log=True), "model.num_layers": [1, 2]}
    res = run_sweep(space, fake_objective, tmp_path / "tpe", n_trials=4, seeds=(0,), sampler="tpe")
    assert len(res.rows) == 4 and all(r.seeds == [0] for r in res.rows) and all(1e-4 <= r.overrides["optim.lr"] <= 1e-2 for r in res.rows)
    res = run_sweep([{"model.num_layers": n} for n in (1, 2, 3)], fake_objective, tmp_path / "rand",
                    seeds=(0,), sampler="random")
    # random choice among listed settings: repeats reuse results instead of rerunning
    calls = [c["key"] for c in _log(log)]
    assert len(calls) == len(set(calls)) == 4 + len(res.rows) and all(r.seeds == [0] for r in res.rows)
    with pytest.raises(ValueError, match="unknown config field"):
        run_sweep({"optim.lrr": [0.1]}, fake_objective, tmp_path / "typo")


def test_lstm_ablation_study_shares_the_baseline(tmp_path, log):
    experiments = STUDIES["lstm_ablation"](scale=0.04, seq_scale=0.1)
    names = [e.name for e in experiments]
    for factor in ("layers", "weight_decay", "batch_norm", "epochs", "grad_clip", "lr", "batch_size", "seq_len",
                   "dropout", "loss_weighting", "tbptt", "inference"):
        assert factor in names
    assert all(e.base["epochs"] == 1 for e in experiments)
    small = [e for e in experiments if e.name in ("layers", "weight_decay", "inference")]
    results = run_experiments(small, fake_objective, tmp_path / "lstm_ablation", seeds=(0, 1))
    # 3 + 2 + 3 settings, the baseline (layers=1, wd=0, windows) shared: 6 distinct settings run
    _assert_each_once(log, 6, (0, 1))
    assert [len(r.rows) for r in results] == [3, 2, 3]
    assert results[0].rows[0].metrics == results[1].rows[0].metrics  # same baseline run
    summary = (tmp_path / "lstm_ablation" / "summary.md").read_text()
    assert "1. Number of LSTM layers" in summary and "12. Inference technique" in summary
    assert (tmp_path / "lstm_ablation" / "experiments" / "layers.csv").is_file()


def test_studies_are_found_by_name_and_unknown_names_are_refused():
    expected = STUDIES["lstm_ablation"](scale=0.04)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_study("lstm_ablation")(scale=0.04) == expected
    for old in ("seed000", "seed001"):  # no aliases: a 0.1 that was never released has nothing to keep
        with pytest.raises(KeyError, match="unknown study"):
            get_study(old)
    with pytest.raises(KeyError, match="unknown preset"):
        preset("seed000")


def objective_with_test_reversed(overrides: dict, seed: int, trial_dir: Path) -> dict:
    """``fake_metrics`` with the test numbers turned upside down (best becomes worst); val/train unchanged."""
    metrics = fake_metrics(overrides, seed)
    return {**metrics, **{k: 2.0 - v for k, v in metrics.items() if k.startswith("test_")}}


def objective_without_validation(overrides: dict, seed: int, trial_dir: Path) -> dict:
    """No ``val_*`` at all: the train metric must pick the best setting (never test)."""
    metrics = fake_metrics(overrides, seed)
    return {"train_acc": 0.9 - 0.1 * overrides["model.num_layers"], "test_top1": metrics["test_top1"]}


def test_changing_only_test_numbers_does_not_change_the_best_setting(tmp_path):
    space = {"model.num_layers": [1, 2, 3]}
    res = run_sweep(space, fake_objective_silent, tmp_path / "a", seeds=(0,))
    flipped = run_sweep(space, objective_with_test_reversed, tmp_path / "b", seeds=(0,))
    assert res.selected_by == flipped.selected_by == "val_top1" and res.selection_note is None
    assert res.best == flipped.best and res.rows[res.best].overrides == {"model.num_layers": 3}
    assert [r.mean("test_top1") for r in res.rows] != [r.mean("test_top1") for r in flipped.rows]
    # Optuna's objective value (what TPE optimizes) is the validation mean, not the test mean
    for study_dir, result in ((tmp_path / "a", res), (tmp_path / "b", flipped)):
        study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
        values = {t.user_attrs["label"]: t.value for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
        assert values == {r.label: pytest.approx(r.mean("val_top1")) for r in result.rows}
    assert "Best by val_top1" in (tmp_path / "b" / "results.md").read_text()
    with pytest.raises(ValueError, match="test split never selects"):
        run_sweep(space, fake_objective_silent, tmp_path / "c", seeds=(0,), metric="test_top1")


def test_without_validation_metrics_the_train_metric_picks_with_a_note(tmp_path):
    res = run_sweep({"model.num_layers": [1, 2, 3]}, objective_without_validation, tmp_path / "s", seeds=(0,))
    assert res.selected_by == "train_acc" and res.rows[res.best].overrides == {"model.num_layers": 1}
    assert "no val_top1" in res.selection_note
    md = (tmp_path / "s" / "results.md").read_text()
    assert "Best by train_acc" in md and "no val_top1" in md and "memorise" in md


def fake_objective_silent(overrides: dict, seed: int, trial_dir: Path) -> dict:
    return fake_metrics(overrides, seed)


def test_failed_setting_is_reported_then_retried_on_the_next_call(tmp_path, log, monkeypatch):
    space = {"model.num_layers": [1, 2]}
    monkeypatch.setenv("SWEEP_FAIL", "2")
    res = run_sweep(space, fake_objective, tmp_path / "study", seeds=(0,))
    assert [r.seeds for r in res.rows] == [[0], []]
    assert any("failed" in note for note in res.notes)
    assert "num_layers=2: 0/1 seeds finished" in (tmp_path / "study" / "results.md").read_text()
    monkeypatch.delenv("SWEEP_FAIL")
    res = run_sweep(space, fake_objective, tmp_path / "study", seeds=(0,))
    assert [r.seeds for r in res.rows] == [[0], [0]] and not res.notes
    _assert_each_once(log, 2, (0,))
