"""State on disk met by other inputs: a run resumed on another store, a store checked against another manifest,
a sweep rerun into its directory with other data or settings, a grid value of the wrong type, and two processes
writing one output (the second is refused naming the first; a dead holder's lock is taken over)."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from actionlab.cli import main
from actionlab.utils import LockedError, output_lock
from tiny_data import CLASSES, TRAIN_ARGS, one_error_line, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stale")
    m1, s1 = tiny_dataset(folder / "one")
    m2, s2 = tiny_dataset(folder / "two", per_class=6)  # another manifest (fewer videos)
    return {"m1": m1, "s1": s1, "m2": m2, "s2": s2}


def test_resume_on_another_store_is_refused_naming_the_fields(two_datasets: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = [*TRAIN_ARGS, "--epochs", "1", "--run", str(run)]
    assert main(["train", "--features", str(two_datasets["s1"]), *args]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["train", "--features", str(two_datasets["s2"]), *args, "--resume"]) == 2
    line = one_error_line(capsys)
    assert f"{run} was trained on other data (" in line and "store_provenance.manifest_checksum: run=" in line
    assert "store_provenance.num_videos: run=16 now=12" in line and str(two_datasets["s1"]) in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing overwritten
    assert main(["train", "--features", str(two_datasets["s1"]), *args, "--resume"]) == 0  # its own store: fine


def test_a_store_from_another_manifest_is_refused(two_datasets: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--features", str(two_datasets["s1"]), *TRAIN_ARGS, "--epochs", "1"]
    assert main([*args, "--manifest", str(two_datasets["m2"]), "--run", str(tmp_path / "a")]) == 2
    line = one_error_line(capsys)
    assert f"{two_datasets['s1']} was not extracted from {two_datasets['m2']} (manifest_checksum: store=" in line
    assert main([*args, "--manifest", str(two_datasets["m1"]), "--run", str(tmp_path / "b")]) == 0


def test_sweep_rerun_with_other_data_or_settings_is_refused(two_datasets: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    base = ["sweep", "--model", "lstm", "--out", str(out), *TRAIN_ARGS[2:], "--epochs", "1",
            "--grid", "model.hidden_size=4,8", "--seeds", "0"]
    assert main([*base, "--features", str(two_datasets["s1"])]) == 0
    table = (out / "results.md").read_text()
    for extra, expected in ((["--features", str(two_datasets["s2"])], "data.store.manifest_checksum: before="),
                            (["--features", str(two_datasets["s1"]), "--set", "optim.lr=0.5"],
                             "config.optim.lr: before=0.01 now=0.5"),
                            (["--features", str(two_datasets["s1"]), "--model", "gru"],
                             "config.model.name: before='lstm' now='gru'")):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        line = one_error_line(capsys)
        assert f"{out}: study 'sweep' holds a different sweep (" in line and expected in line, line
    assert (out / "results.md").read_text() == table


def test_a_grid_value_of_the_wrong_type_fails_before_the_first_trial(two_datasets: dict[str, Path],
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    for grid, expected in (("model.hidden_size=8,eight", "model.hidden_size: expected an integer, got 'eight'"),
                           ("optim.grad_clip=1,nan", "optim.grad_clip: expected a finite number, got 'nan'"),
                           ("model.width=0.5", "model.width=0.5 does not apply to 'lstm'")):
        assert main(["sweep", "--features", str(two_datasets["s1"]), "--model", "lstm", "--out", str(out),
                     "--grid", grid]) == 2
        line = one_error_line(capsys)
        assert line.startswith("error: --grid setting ") and expected in line and "nothing was run" in line
        assert not out.exists()


# ----------------------------------------------------------------------------------- one writer per output


def test_a_second_writer_is_refused_naming_the_holder(two_datasets: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    store = tmp_path / "features.h5"
    with output_lock(run, run / ".lock"), output_lock(store):
        assert main(["train", "--features", str(two_datasets["s1"]), "--run", str(run), *TRAIN_ARGS]) == 2
        line = one_error_line(capsys)
        assert f"{run} is being written by another process: pid {os.getpid()} on host {socket.gethostname()}" in line
        assert main(["extract", str(two_datasets["m1"]), "-o", str(store)]) == 2
        assert f"{store} is being written by another process: pid {os.getpid()}" in one_error_line(capsys)
        with pytest.raises(LockedError):
            with output_lock(run, run / ".lock"):
                pass
    assert not (run / ".lock").exists() and not Path(f"{store}.lock").exists()  # released and removed


def test_a_lock_left_by_a_dead_process_is_taken_over(two_datasets: dict[str, Path], tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(),
                                           "command": "actionlab train", "started": "yesterday"}))
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--features", str(two_datasets["s1"]), "--run", str(run), *TRAIN_ARGS,
                     "--epochs", "1"]) == 0
    assert f"taking over the lock of pid {2**22 + 12345}" in caplog.text and "no longer running" in caplog.text
    assert (run / "metrics.json").is_file() and CLASSES
