"""A sweep shared through a real PostgreSQL server: two ``actionlab sweep`` workers on one study, one SIGKILLed
mid-trial; the survivor and a restarted worker finish it with every (setting, seed) trained exactly once.

The test starts its own throw-away cluster (Debian's ``postgresql`` package: ``initdb`` + ``pg_ctl`` run as the
``postgres`` user through ``runuser``, listening on a Unix socket in a temporary folder only) and skips, saying
why, where it cannot.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tiny_data import TRAIN_ARGS, start_process, tiny_dataset

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg2", reason="the PostgreSQL driver psycopg2 is not installed (pip install actionlab[postgres])")


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' user to run the server as (the server refuses to run as root)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a PostgreSQL cluster as user 'postgres' needs root and runuser")
    base = Path(tempfile.mkdtemp(prefix="actionlab-pg-"))
    os.chmod(base, 0o755)
    os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"

    def as_postgres(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], cwd=base, capture_output=True, text=True,
                              timeout=120)

    try:
        steps = [(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8"),
                 (str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60",
                  "-o", f"-k {base} -c listen_addresses='' -c fsync=off -c max_connections=50", "start"),
                 (str(bin_dir / "createdb"), "-h", str(base), "-U", "postgres", "actionlab")]
        for step in steps:
            proc = as_postgres(*step)
            if proc.returncode != 0:
                pytest.skip(f"could not start a PostgreSQL cluster ({Path(step[0]).name}: "
                            f"{(proc.stderr or proc.stdout).strip()[-300:]})")
        yield f"postgresql://postgres@/actionlab?host={base}"
    finally:
        if (data / "postmaster.pid").exists():
            as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_and_a_sigkill_finish_every_setting_and_seed_once(postgres_url: str, tmp_path: Path) -> None:
    _, store = tiny_dataset(tmp_path / "data")
    out = tmp_path / "sweep"  # one folder for all workers, as on a shared file system
    args = ("sweep", "--features", store, *TRAIN_ARGS, "--epochs", "2", "--grid", "model.hidden_size=4,8",
            "--seeds", "0,1", "--storage", postgres_url, "--out", out)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    victim = start_process("cli", *args, log=logs[0], kill_at="train:epoch@3")  # mid-trial: between two seeds' epochs
    # The second worker starts once the victim holds a setting: started together, a fast survivor could take both
    # settings before the victim's interpreter is up, and the victim would finish with nothing to do (no kill).
    deadline = time.monotonic() + 240
    while "sweep sweep: running" not in _text(logs[0]) and victim.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sweep sweep: running" in _text(logs[0]), _text(logs[0])[-2000:]
    survivor = start_process("cli", *args, log=logs[1])
    victim.join(300)
    assert victim.exitcode == -9, logs[0].read_text()[-2000:]
    restarted = start_process("cli", *args, log=logs[2])
    for proc, log in ((survivor, logs[1]), (restarted, logs[2])):
        proc.join(300)
        assert proc.exitcode == 0, log.read_text()[-3000:]

    from actionlab.sweep.storage import storage_url

    study = optuna.load_study(study_name="sweep", storage=storage_url(postgres_url))
    trials = study.get_trials()
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["setting"] for t in complete) == [0, 1]  # each setting completed once
    assert all({"seed_0", "seed_1"} <= set(t.user_attrs) for t in complete)
    assert any(t.state == optuna.trial.TrialState.FAIL for t in trials)  # the victim's trial, retried
    # every (setting, seed) trained to the end exactly once, across the three processes
    finished = Counter(re.findall(r"finished setting '([^']+)', seed (\d)", "".join(p.read_text() for p in logs)))
    assert sorted(finished) == [(f"hidden_size={h}", s) for h in (4, 8) for s in "01"], finished
    assert set(finished.values()) == {1}, finished
    assert "retrying it" in "".join(p.read_text() for p in logs[1:])  # recovered at once, not after a heartbeat


def _text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""
