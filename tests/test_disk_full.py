"""A disk that fills: one ``error:`` line naming the file and the space needed, the finished work kept, and the
same command resuming once there is space. The real tests run on a tiny tmpfs (``mount -t tmpfs``, needs root);
the guard that keeps HDF5 and ``torch.save`` from crashing on ENOSPC is also tested with an injected error."""

from __future__ import annotations

import errno
import io
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.utils import DiskFullError, SpaceGuard, atomic_file
from tiny_data import TRAIN_ARGS, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``resize("64k") -> mount point``: a tmpfs of that size (mounted on first call, resized on later ones)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = False

    def resize(size: str) -> Path:
        nonlocal mounted
        opts = f"size={size}" if not mounted else f"remount,size={size}"
        cmd = ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)] if not mounted else \
            ["mount", "-o", opts, str(where)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs to fill up (needs root and CAP_SYS_ADMIN): "
                        f"{proc.stderr.strip()}")
        mounted = True
        return where

    yield resize
    if mounted:
        subprocess.run(["umount", str(where)], check=False)


class _FullAfter(io.RawIOBase):
    """An in-memory file that fails with ENOSPC once it holds ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.buf, self.limit = io.BytesIO(), limit

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:
        if self.buf.tell() + len(b) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.buf.write(b)

    def readinto(self, b: bytearray) -> int:
        return self.buf.readinto(b)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.buf.seek(pos, whence)

    def tell(self) -> int:
        return self.buf.tell()

    def truncate(self, size: int | None = None) -> int:
        return self.buf.truncate(size)


def test_space_guard_turns_enospc_into_one_error_after_the_writer_finishes(tmp_path: Path) -> None:
    """HDF5 segfaults (exit 139) after a failed write; torch.save dies in its C++ writer. Through the guard both
    finish, and the error names the file and the size it would have had."""
    guard = SpaceGuard(tmp_path / "store.h5", raw=_FullAfter(50_000))
    with h5py.File(guard, "w") as h5:
        for i in range(8):
            h5.create_dataset(f"v{i}", data=np.ones((25, 1280), np.float16))
    with pytest.raises(DiskFullError, match=r"store\.h5: no space left on device \(needs about [45]\d\d\.\d KB"):
        guard.check()
    guard = SpaceGuard(tmp_path / "last.pt", raw=_FullAfter(10_000))
    torch.save({"w": torch.zeros(50_000)}, guard)
    with pytest.raises(DiskFullError, match=r"last\.pt: no space left on device \(needs about 20\d\.\d KB"):
        guard.check()


def test_hdf5_and_torch_on_a_really_full_disk(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("64k")
    with pytest.raises(DiskFullError) as info:
        with atomic_file(disk / "store.h5") as fh, h5py.File(fh, "w") as h5:
            for i in range(8):
                h5.create_dataset(f"v{i}", data=np.ones((25, 1280), np.float16))
    assert str(info.value).startswith(f"{disk}/store.h5: no space left on device (needs about ")
    with pytest.raises(DiskFullError, match=r"last\.pt: no space left on device"):
        with atomic_file(disk / "last.pt") as fh:
            torch.save({"w": torch.zeros(50_000)}, fh)
    assert not list(disk.iterdir())  # no half files, no temp files


def test_train_on_a_full_disk_stops_with_one_line_and_resumes(small_disk: Callable[[str], Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, store = tiny_dataset(tmp_path / "data")
    reference = tmp_path / "reference"
    assert main(["train", "--features", str(store), "--run", str(reference), *TRAIN_ARGS]) == 0
    run = small_disk("16k") / "run"
    args = ["train", "--features", str(store), "--run", str(run), *TRAIN_ARGS]
    assert main(args) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert "no space left on device (needs about" in line and "rerun the same command with --resume" in line
    assert f"{run}/" in line and "enforce fail" not in err and "Traceback" not in err
    small_disk("4m")
    assert main([*args, "--resume"]) == 0
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (reference, run))
    assert a["predictions"] == b["predictions"] and a["train_loss"] == b["train_loss"]


def test_report_on_a_full_disk(small_disk: Callable[[str], Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _, store = tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--features", str(store), "--run", str(run), *TRAIN_ARGS, "--epochs", "1"]) == 0
    out = small_disk("8k") / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 2
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("error: "))
    assert line.startswith(f"error: {out}: no space left on device (needs about ")
    assert "rerun the same command:" in line and "--resume" not in line  # report has no --resume
    assert not out.exists()


def test_extract_on_a_full_disk_keeps_its_parts_and_resumes(small_disk: Callable[[str], Path],
                                                            synth_ucf101: Path, tmp_path: Path) -> None:
    from actionlab.config import ExtractConfig
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import Manifest
    from actionlab.features.extract import extract_features, parts_dir
    from actionlab.features.parts import part_contents
    from actionlab.features.store import FeatureStore

    full, _ = index_dataset(synth_ucf101, workers=0)
    m = Manifest(full.root, full.classes, full.records[:6], full.layout)
    cfg = ExtractConfig(num_frames=2, batch_size=2, workers=0, engine="torch")
    reference = extract_features(m, tmp_path / "reference.h5", cfg, device="cpu").out_path
    out = small_disk("48k") / "features.h5"  # room for a part file or two (2 videos each), not for all
    with pytest.raises(DiskFullError) as info:
        extract_features(m, out, cfg, device="cpu", part_videos=2)
    assert str(info.value).startswith(f"{out}") and "no space left on device (needs about" in str(info.value)
    finished = {k for p in parts_dir(out).glob("part-*.h5") for k in part_contents(p)[1]}
    assert len(finished) >= 2 and not out.exists() and not list(parts_dir(out).glob(".*.tmp"))
    small_disk("1m")
    report = extract_features(m, out, cfg, device="cpu", part_videos=2)
    assert report.skipped == len(finished) and report.done == 6 - len(finished)  # nothing extracted twice
    with FeatureStore(reference) as a, FeatureStore(out) as b:
        assert a.keys() == b.keys()
        for k in a.keys():
            np.testing.assert_array_equal(a.features(k, normalize=False), b.features(k, normalize=False))
