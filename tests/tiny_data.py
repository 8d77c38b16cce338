"""Helpers of the reliability tests (imported by them; pytest puts ``tests/`` on the path).

- ``tiny_manifest`` / ``tiny_store``: a 2-class dataset as a real manifest and a real HDF5 feature store, written
  through the store's own writer without decoding any video (4-d features whose first dimension rises or falls
  over time: an order-only task a tiny LSTM learns in a few epochs).
- ``run_process``: runs the ``actionlab`` CLI (or extraction) in a real child process and returns its exit code
  (``-9`` when it was SIGKILLed); ``kill_at`` sets ``ACTIONLAB_KILL_AT`` so the child kills itself at that named
  point (:func:`actionlab.utils.kill_point`). Children are forked from a multiprocessing *forkserver* that
  imported torch once, so a child costs a fork instead of a 3-second interpreter start; each child runs with
  one torch thread, so two runs of the same command compute the same bits.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.data.manifest import Manifest, write_manifest
from actionlab.features.parts import merge_parts, write_part
from actionlab.features.store import VideoFeatures
from actionlab.types import VideoRecord
from actionlab.utils import KILL_ENV

CLASSES = ["rising", "falling"]
DIM = 4
STEPS = 8
TRAIN_ARGS = ["--model", "lstm", "--epochs", "4", "--batch-size", "4", "--device", "cpu", "--seed", "0",
              "--set", "model.hidden_size=8", "--set", "model.input_proj=0", "--set", "sequence.seq_len=4",
              "--set", "inference.window=4", "--set", "optim.lr=0.01", "--set", "patience=0"]
"""A tiny LSTM run on :func:`tiny_store` (a fraction of a second per epoch)."""


def tiny_manifest(root: Path, per_class: int = 8, classes: Sequence[str] = CLASSES) -> Manifest:
    """``per_class`` videos per class: half train, a quarter val, a quarter test (one group each)."""
    records = []
    for label_index, label in enumerate(classes):
        for i in range(per_class):
            split = "train" if i < per_class // 2 else "val" if i < 3 * per_class // 4 else "test"
            records.append(VideoRecord(f"{label}/v_{label}_g{i:02d}_c01.avi", label, label_index, split,
                                       f"g{i:02d}", num_frames=STEPS * 4, fps=25.0, duration=STEPS * 4 / 25))
    return Manifest(root, list(classes), records, "folders")


def tiny_store(out: Path, manifest: Manifest, seed: int = 0, dead_feature: bool = True) -> Path:
    """A finished feature store of ``manifest``'s videos (``STEPS`` x ``DIM`` each); with ``dead_feature`` the
    third dimension is 0 everywhere (a feature whose train-set standard deviation is 0)."""
    rng = np.random.default_rng(seed)
    videos = []
    for rec in manifest.records:
        ramp = np.linspace(0, 1, STEPS) * (1 if rec.label_index == 0 else -1)
        x = rng.normal(0, 0.3, size=(STEPS, DIM)).astype(np.float32)
        x[:, 0] += ramp
        if dead_feature:
            x[:, 2] = 0.0
        videos.append(VideoFeatures(rec, x, np.arange(0, 4 * STEPS, 4, dtype=np.int64)))
    prov = {"backbone": "tiny", "weights": "none", "weights_sha256": "tensors:0", "preprocessing": {},
            "sampler": {"name": "uniform", "num_frames": STEPS}, "feature_dim": DIM, "dtype": "float32",
            "manifest_checksum": manifest.checksum(), "splits": manifest.splits(), "predictions": False,
            "num_videos": len(videos)}
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    write_part(parts / "part-000-000000.h5", prov, manifest.classes, videos)
    merge_parts([parts / "part-000-000000.h5"], out, prov, manifest.classes)
    (parts / "part-000-000000.h5").unlink()
    parts.rmdir()
    return out


def tiny_dataset(folder: Path, seed: int = 0, **kwargs: Any) -> tuple[Path, Path]:
    """``(manifest.csv, store.h5)`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    m = tiny_manifest(folder / "videos", **kwargs)
    return write_manifest(m, folder / "manifest.csv"), tiny_store(folder / "store.h5", m, seed=seed)


# ----------------------------------------------------------------------------------- child processes

_PRELOAD = ["numpy", "torch", "h5py", "optuna", "actionlab.cli.main", "actionlab.cli.text",
            "actionlab.runs.train", "actionlab.sweep.training", "actionlab.features.extract"]


def _context() -> Any:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _child(target: str, args: tuple[Any, ...], env: dict[str, str], log: str) -> None:
    os.environ.pop(KILL_ENV, None)
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch

    torch.set_num_threads(1)
    if target == "cli":
        from actionlab.cli.main import main

        code = main(list(args))
    else:  # "extract": (manifest, out, config dict, part_videos)
        import logging

        from actionlab.config import ExtractConfig, from_dict

        logging.basicConfig(level=logging.INFO)
        from actionlab.features.extract import extract_features

        manifest, out, cfg, part_videos = args
        extract_features(manifest, out, from_dict(ExtractConfig, cfg), part_videos=part_videos, device="cpu")
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def start_process(target: str, *args: Any, log: Path, kill_at: str | None = None,
                  env: dict[str, str] | None = None) -> Any:
    """Start ``target`` (``cli`` with argv, or ``extract``) in a child process, its output appended to ``log``;
    returns the ``multiprocessing.Process``."""
    child_env = dict(env or {})
    if kill_at:
        child_env[KILL_ENV] = kill_at
    args = tuple(str(a) if isinstance(a, Path) else a for a in args)
    proc = _context().Process(target=_child, args=(target, args, child_env, str(log)))
    proc.start()
    return proc


def run_process(target: str, *args: Any, log: Path, kill_at: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 300) -> int:
    """:func:`start_process` and wait: the exit code, ``-9`` when the child was SIGKILLed (by ``kill_at``)."""
    proc = start_process(target, *args, log=log, kill_at=kill_at, env=env)
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise AssertionError(f"{target} {args} timed out; its log:\n{_tail(log)}")
    return int(proc.exitcode or 0)


def _tail(log: Path, n: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-n:]
    return "(no log)"


def one_error_line(capsys: Any) -> str:
    """The one ``error:`` line a failed command printed (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
