"""Shared helpers: atomic writes keep the umask's mode; metrics JSON stays valid when a run diverges."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from actionlab.utils import atomic_write_text, json_safe


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644  # readable to the team
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_json_safe_turns_nan_and_inf_into_null() -> None:
    data = {"loss": math.nan, "acc": np.float32(0.5), "curve": [1.0, math.inf, np.float64("nan")], "n": 3}
    text = json.dumps(json_safe(data), allow_nan=False)
    assert json.loads(text) == {"loss": None, "acc": 0.5, "curve": [1.0, None, None], "n": 3}


def test_worker_context_forks_only_without_other_threads() -> None:
    """A fork while another thread holds a lock hangs the child: pools fork only from a single-threaded process."""
    import multiprocessing as mp
    import threading

    from actionlab.utils import worker_context

    alone = worker_context().get_start_method()
    assert alone == ("fork" if threading.active_count() == 1 and "fork" in mp.get_all_start_methods() else "spawn")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert worker_context().get_start_method() == "spawn"
    finally:
        stop.set()
        other.join()
