"""SIGKILL at named points of real ``extract``, ``train`` and ``sweep`` processes, then the same command again:
the result equals an uninterrupted run with the same seed (stores array for array, metrics and predictions
equal), with no video, epoch or trial missing or done twice.

Each process kills itself exactly where ``ACTIONLAB_KILL_AT`` says (:func:`actionlab.utils.kill_point`), so the
tests are exact and need no sleeps. ``write:<file>`` is inside an atomic write (the temporary file is complete,
not yet renamed), ``wrote:<file>`` right after it; a run is killed at several points in a row, resuming between.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from actionlab.evaluate.predictions import load_predictions
from actionlab.models.checkpoint import load_checkpoint
from tiny_data import TRAIN_ARGS, run_process, tiny_dataset

KILLED = -9


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _committed(run: Path) -> int:
    """Epochs committed: last.pt's epoch + 1 (0 before the first)."""
    last = run / "checkpoints" / "last.pt"
    return load_checkpoint(last)["epoch"] + 1 if last.exists() else 0


def _assert_same_run(a: Path, b: Path) -> None:
    assert _rows(a) == _rows(b)
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    pa, pb = load_predictions(a / "predictions_test.npz"), load_predictions(b / "predictions_test.npz")
    np.testing.assert_array_equal(pa.scores, pb.scores)
    assert list(pa.keys) == list(pb.keys)
    ba, bb = (load_checkpoint(r / "checkpoints" / "best.pt") for r in (a, b))
    assert ba["epoch"] == bb["epoch"]
    for name, tensor in ba["model"].items():
        assert bool((tensor == bb["model"][name]).all()), name


def test_train_killed_at_each_commit_point_resumes_to_the_same_run(tmp_path: Path) -> None:
    _, store = tiny_dataset(tmp_path / "data")
    log = tmp_path / "log.txt"
    reference, run = tmp_path / "reference", tmp_path / "run"
    args = ("train", "--features", store, *TRAIN_ARGS, "--epochs", "5")
    assert run_process("cli", *args, "--run", reference, log=log) == 0
    epochs = len(_rows(reference))
    losses = [r["val_loss"] for r in _rows(reference)]
    best = [e for e in range(epochs) if losses[e] < min(losses[:e], default=np.inf)]  # epochs that write best.pt
    assert any(1 <= e <= epochs - 3 for e in best), losses  # room for the kills below
    args = (*args, "--run", run)

    def kill(point: str, resume: bool = True) -> None:
        code = run_process("cli", *args, *(["--resume"] if resume else []), log=log, kill_at=point)
        assert code == KILLED, f"{point} was not reached (exit {code})"

    kill("train:step@3", resume=False)  # mid-epoch 1: epoch 0 is committed
    assert _committed(run) == 1
    start = _committed(run)
    kill("wrote:best.pt@1")  # best.pt of an epoch not yet committed
    assert _committed(run) == start
    next_best = next(e for e in best if e >= start)
    kill(f"wrote:last.pt@{next_best - start + 1}")  # the best epoch committed: before this change, best.pt lagged
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == next_best
    kill("write:last.pt@1")  # killed inside the checkpoint write
    kill("wrote:metrics.jsonl@1")  # the history of an epoch not yet committed
    start = _committed(run)
    kill(f"wrote:last.pt@{epochs - start}")  # the final epoch committed, before evaluation
    assert len(_rows(run)) == epochs  # every row is there (before this change: one short)
    kill("write:predictions_test.npz@1")  # inside the evaluation's writes
    assert run_process("cli", *args, "--resume", log=log) == 0
    _assert_same_run(reference, run)


def test_extract_killed_while_decoding_inferring_writing_and_merging_resumes(synth_ucf101: Path,
                                                                            tmp_path: Path) -> None:
    from dataclasses import asdict

    from actionlab.config import ExtractConfig
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import Manifest, write_manifest
    from actionlab.features.extract import parts_dir
    from actionlab.features.store import FeatureStore

    full, _ = index_dataset(synth_ucf101, workers=0)
    manifest = write_manifest(Manifest(full.root, full.classes, full.records[:6], full.layout),
                              tmp_path / "manifest.csv")
    cfg = asdict(ExtractConfig(num_frames=2, batch_size=2, workers=0, engine="torch"))  # a batch is one video
    log = tmp_path / "log.txt"
    reference, out = tmp_path / "reference.h5", tmp_path / "features.h5"
    assert run_process("extract", manifest, reference, cfg, 2, log=log) == 0
    for point in ("extract:decode@3", "extract:infer@2", "write:part-*@1", "extract:merge@2", "wrote:features.h5@1"):
        code = run_process("extract", manifest, out, cfg, 2, log=log, kill_at=point)
        assert code == KILLED, f"{point} was not reached (exit {code})"
        if point == "extract:merge@2":  # and a part file damaged from outside (a bad copy, a disk error)
            part = sorted(parts_dir(out).glob("part-*.h5"))[-1]
            part.write_bytes(part.read_bytes()[:3000])
        if point == "wrote:features.h5@1":
            assert out.exists() and parts_dir(out).exists()  # renamed, not yet cleaned up
    assert run_process("extract", manifest, out, cfg, 2, log=log) == 0
    assert not parts_dir(out).exists() and not list(tmp_path.glob(".features.h5.*"))
    with FeatureStore(reference) as a, FeatureStore(out) as b:
        assert a.keys() == b.keys() and len(a) == 6
        for k in a.keys():
            assert a.record(k) == b.record(k)
            np.testing.assert_array_equal(a.frame_indices(k), b.frame_indices(k))
            np.testing.assert_array_equal(a.features(k, normalize=False), b.features(k, normalize=False))
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.std, b.std)
    # what each rerun found finished: killed before a part was written, a video is extracted again; once in a
    # sound part file, never (the merge and the clean-up after it redo no video); the damaged part is redone
    text = log.read_text()
    assert re.findall(r"resuming \S+: (\d+) of 6 videos already extracted", text) == ["2", "2", "2", "4"]
    assert re.search(r"part-000-00000\d\.h5: deleted; its videos are extracted again", text)
    assert "is already complete" in text


def test_sweep_killed_mid_trial_and_between_seeds_resumes(tmp_path: Path) -> None:
    import optuna

    _, store = tiny_dataset(tmp_path / "data")
    log = tmp_path / "log.txt"
    base = ("sweep", "--features", store, *TRAIN_ARGS, "--epochs", "2", "--grid", "model.hidden_size=4,8",
            "--seeds", "0,1")
    reference, out = tmp_path / "reference", tmp_path / "sweep"
    assert run_process("cli", *base, "--out", reference, log=log) == 0

    def trained(root: Path) -> dict[Path, int]:
        """Finished trainings (every epoch committed) and when their last.pt was written."""
        return {p: p.stat().st_mtime_ns for p in root.glob("trials/*/seed*/checkpoints/last.pt")
                if load_checkpoint(p)["epoch"] == 1}

    done_before: dict[Path, int] = {}
    for point in ("train:step@3", "wrote:metrics.json@2", "train:epoch@3"):
        code = run_process("cli", *base, "--out", out, log=log, kill_at=point)
        assert code == KILLED, f"{point} was not reached (exit {code})"
        done_before.update({p: t for p, t in trained(out).items() if p not in done_before})
    assert done_before
    assert run_process("cli", *base, "--out", out, log=log) == 0
    assert {p: trained(out)[p] for p in done_before} == done_before  # a finished training never ran again
    a, b = (json.loads((d / "results.json").read_text()) for d in (reference, out))
    assert [r["metrics"] for r in a["rows"]] == [r["metrics"] for r in b["rows"]]
    assert all(r["seeds"] == [0, 1] for r in b["rows"])
    for seed_dir in out.glob("trials/*/seed*"):
        assert [r["epoch"] for r in _rows(seed_dir)] == [0, 1]
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    trials = optuna.load_study(study_name="sweep", storage=storage).get_trials()
    complete = [t.params["setting"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(complete) == [0, 1]  # each setting completed exactly once
