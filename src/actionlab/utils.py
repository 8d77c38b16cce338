"""Small shared helpers: atomic writes that survive a full disk, the errors users can fix, output locks, a crash
test hook, checksums, devices, git revision. Imports no pipeline stage.

Reliability pieces every stage shares:

- :class:`FileError` (a file is damaged or is not what it should be) and :class:`DiskFullError`: messages of the
  form ``<path>: <what> (<fix>)`` that the CLI prints as one ``error:`` line (exit code 2).
- :func:`atomic_path` / :func:`atomic_file`: write a temporary file, then rename it. A crash leaves the old file
  or the new one; a full disk raises :class:`DiskFullError` naming the path and the space needed and leaves the
  old file. :class:`SpaceGuard` is the file object for writers that cannot take a failed ``write`` (HDF5
  segfaults after one; ``torch.save`` dies in its C++ writer): it swallows ENOSPC, lets the writer finish, and
  the error is raised once the writer is done.
- :func:`output_lock`: one writer per output; a second process is refused with the holder's pid and host, and
  a lock left by a dead process is taken over (the kernel drops ``flock`` locks of dead processes).
- :func:`kill_point`: the crash tests' hook (``ACTIONLAB_KILL_AT=name[@n]`` SIGKILLs the process at the n-th
  visit of a named point); a no-op otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- errors users can fix


class FileError(ValueError):
    """A file is damaged (truncated, corrupt) or is not what it should be; ``str()`` is ``<path>: <what> (<fix>)``."""

    def __init__(self, path: str | Path, what: str, fix: str = "") -> None:
        self.path, self.what, self.fix = str(path), what, fix
        super().__init__(f"{path}: {what}" + (f" ({fix})" if fix else ""))


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_free(path: str | Path) -> int | None:
    """Free bytes (for this user) on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


class DiskFullError(OSError):
    """No space left for ``path``: the message names the path, the space needed and what is free *now* (read
    when shown, after the partial file was removed), and says that the same command resumes."""

    def __init__(self, path: str | Path, need: int | None = None) -> None:
        super().__init__(errno.ENOSPC, "no space left on device", str(path))
        self.path, self.need = Path(path), need
        self.rerun = "rerun the same command"
        """How the command resumes (the CLI says ``rerun the same command with --resume`` for ``train``)."""

    def __str__(self) -> str:
        free = disk_free(self.path.parent)
        need = f"needs about {_size(self.need)}" if self.need else "needs more space"
        have = f", {_size(free)} free" if free is not None else ""
        return (f"{self.path}: no space left on device ({need}{have}; free some space or write elsewhere, then "
                f"{self.rerun}: finished work is kept and it resumes)")


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def check_space(path: str | Path, need: int) -> None:
    """Raise :class:`DiskFullError` before writing when ``need`` bytes clearly do not fit beside ``path``."""
    free = disk_free(Path(path).parent) if need > 0 else None
    if free is not None and need > free:
        raise DiskFullError(path, need)


# ----------------------------------------------------------------------------------- crash-test hook

KILL_ENV = "ACTIONLAB_KILL_AT"
_kill_visits: dict[str, int] = {}


def kill_point(name: str) -> None:
    """Crash tests' hook: with ``ACTIONLAB_KILL_AT=<name>[@<n>]`` in the environment, the n-th visit (default 1)
    of a point matching ``name`` (a trailing ``*`` matches any suffix: ``write:part-*``) SIGKILLs this process, so
    a test can crash a real run exactly there. Points: ``write:<file name>`` (an atomic write is complete on disk
    but not yet renamed), ``wrote:<file name>`` (just renamed into place), ``extract:decode``, ``extract:infer``,
    ``extract:merge`` (one video copied into the final store), ``train:step`` (an optimizer step),
    ``train:epoch`` (an epoch's results committed). A no-op otherwise."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name and not (target.endswith("*") and name.startswith(target[:-1])):
        return
    _kill_visits[target] = visits = _kill_visits.get(target, 0) + 1
    if visits >= int(nth or 1):
        logger.debug("%s=%s: killing process %d", KILL_ENV, spec, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask


def json_safe(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by ``None``, so ``json.dumps`` writes valid JSON.

    numpy scalars become Python numbers first."""
    if not isinstance(obj, (str, bytes)) and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # type: ignore[union-attr]
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def strict_json(obj: object, indent: int | None = None) -> str:
    """``json.dumps`` that ``jq`` and ``JSON.parse`` accept: NaN and infinities become ``null``."""
    return json.dumps(json_safe(obj), indent=indent, default=float, allow_nan=False)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", need: int = 0) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    A crash (even ``kill -9``) leaves either the old file or the new one, never half a file. The file gets the
    mode a plain ``open(path, "w")`` would (``0o666`` less the umask), not the temporary file's private 0600, so
    a shared results folder stays readable to the team. A full disk (``need`` bytes known not to fit, or a write
    failing with ENOSPC) raises :class:`DiskFullError` and leaves the old file.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_space(path, need)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        kill_point(f"write:{path.name}")
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as exc:
        if _is_disk_full(exc) and not isinstance(exc, DiskFullError):
            size = tmp_path.stat().st_size if tmp_path is not None and tmp_path.exists() else 0
            raise DiskFullError(path, max(need, size)) from exc
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    kill_point(f"wrote:{path.name}")


class SpaceGuard(io.RawIOBase):
    """A binary file for writers that cannot survive a failed ``write`` (HDF5 segfaults after ENOSPC, torch.save
    dies in its C++ writer): a write that finds the disk full is recorded and skipped, the writer finishes
    normally, and :meth:`check` then raises :class:`DiskFullError` with the size the file would have had.

    >>> with atomic_file("features.h5") as fh, h5py.File(fh, "w") as h5: ...
    """

    def __init__(self, path: str | Path, target: str | Path | None = None, raw: Any = None) -> None:
        super().__init__()
        self.path, self.target = Path(path), Path(target or path)
        self.raw = raw if raw is not None else open(self.path, "r+b", buffering=0)
        self.error: OSError | None = None
        self.extent = 0
        """The size the file would have: the end of the furthest write."""

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.raw.seek(pos, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b) or 0
        if self.error is not None and n < len(b):  # bytes we skipped read back as zeros
            b[n:] = bytes(len(b) - n)
            n = len(b)
        return n

    def write(self, b: Any) -> int:
        n = len(memoryview(b).cast("B"))
        start = self.raw.tell()
        if self.error is None:
            try:
                done = self.raw.write(b)
                while done is not None and done < n:  # short writes: go on until the disk refuses
                    done += self.raw.write(memoryview(b).cast("B")[done:])
            except OSError as exc:
                if not _is_disk_full(exc):
                    raise
                self.error = exc
        if self.error is not None:
            self.raw.seek(start + n)
        self.extent = max(self.extent, start + n)
        return n

    def truncate(self, size: int | None = None) -> int:
        return self.raw.truncate(size)

    def flush(self) -> None:
        if not self.raw.closed:
            self.raw.flush()

    def close(self) -> None:
        if not self.raw.closed:
            self.raw.close()
        super().close()

    def check(self) -> None:
        """Raise :class:`DiskFullError` if a write found the disk full."""
        if self.error is not None:
            raise DiskFullError(self.target, self.extent) from self.error


@contextlib.contextmanager
def atomic_file(path: str | Path, need: int = 0) -> Iterator[SpaceGuard]:
    """:func:`atomic_path` as an open binary :class:`SpaceGuard` (for ``h5py.File(fh)``, ``torch.save(obj, fh)``,
    ``np.savez(fh)``): a full disk is a :class:`DiskFullError` after the writer has finished, never a crash."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix, need=need) as tmp:
        guard = SpaceGuard(tmp, target=path)
        try:
            yield guard
        finally:
            guard.close()
        guard.check()


def atomic_write_text(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_path(path, need=len(data)) as tmp:
        tmp.write_bytes(data)


def read_json(path: str | Path, fix: str = "") -> Any:
    """The JSON in ``path``; a truncated or malformed file is a :class:`FileError` naming the file and ``fix``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileError(path, f"not valid JSON, truncated or damaged ({exc})", fix) from None


def torch_load(path: str | Path, what: str, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, never code. A file holding pickled
    objects (a crafted ``.pt``), a truncated file or one of another format is a :class:`FileError` saying which,
    without PyTorch's multi-line text."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "please file an issue" notes about pickle protocols of foreign files
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if wanted or any("global" in line for line in lines):
            asks = f"; it asks for {wanted.group(1)}" if wanted else ""
            raise FileError(path, f"{what} holds pickled Python objects, which are never loaded (only tensors and "
                            f"plain data are{asks})", fix) from None
        reason = next((line for line in lines if line.startswith(("Unsupported", "Unpickler"))), lines[-1][:100])
        raise FileError(path, f"{what} is not a PyTorch file ({reason})", fix) from None
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, ValueError, KeyError, IndexError, AttributeError, TypeError, OSError) as exc:
        text = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        with open(path, "rb") as fh:
            head = fh.read(4)
        damaged = head.startswith((b"PK\x03\x04", b"\x80")) or isinstance(exc, EOFError)  # a zip or pickle start
        why = "truncated or damaged" if damaged else "not a PyTorch file"
        raise FileError(path, f"{what} is {why} ({type(exc).__name__}: {text[:100]})", fix) from None


# ----------------------------------------------------------------------------------- one writer per output


def flatten_mapping(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten_mapping(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class LockedError(RuntimeError):
    """Another process is writing the same output; the message names it (pid, host, command, start time)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def output_lock(target: str | Path, lock_path: str | Path | None = None) -> Iterator[None]:
    """Hold the lock of an output (a store, a run directory) while writing it; default lock file
    ``<target>.lock`` beside it (a directory's is ``<dir>/.lock``).

    A second process is refused with :class:`LockedError` naming the holder. The lock is an ``flock`` on the
    file, which the kernel drops when its holder dies, so a lock left by a killed process (``kill -9``, a crash,
    a reboot) is simply taken over, with a note. The lock file is removed on release.
    """
    import fcntl

    target = Path(target)
    path = Path(lock_path) if lock_path else (target / ".lock" if target.is_dir() else
                                              target.with_name(target.name + ".lock"))
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(
                f"{target} is being written by another process: pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} since {holder.get('started', '?')} ({holder.get('command', '?')}); "
                f"wait for it to finish or stop it, then rerun (its lock: {path})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: try again
    previous = _read_holder(fd)
    if previous.get("pid") and previous.get("pid") != me["pid"]:
        alive = previous.get("host") == me["host"] and pid_alive(int(previous["pid"]))
        logger.warning("%s: taking over the lock of pid %s on host %s, which is %s", target, previous["pid"],
                       previous.get("host", "?"), "no longer running" if not alive else "not holding it")
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still holding the lock: a waiter that opened the old file retries (inode check)
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_revision(cwd: str | Path | None = None) -> str:
    """The current git commit (with ``-dirty``), or ``unknown`` outside a checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_threads() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_context() -> Any:
    """A ``multiprocessing`` context for worker pools that need only importable functions: ``fork`` (no
    ``__main__`` guard needed in users' scripts) when this process runs no other Python thread, ``spawn``
    otherwise. A thread may hold a lock (stdout's buffer, a logger's) at the moment of a fork, and the child then
    waits for it forever: seen as a hang of the generators' pools inside a pytest-xdist worker, whose execnet
    threads write while tests run."""
    import multiprocessing as mp
    import threading

    forkable = "fork" in mp.get_all_start_methods() and threading.active_count() == 1
    return mp.get_context("fork" if forkable else "spawn")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return device


def distributed_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` otherwise."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``); ``None`` where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
