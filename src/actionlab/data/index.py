"""Read a video dataset in its public layout into a :class:`~actionlab.data.manifest.Manifest` (``actionlab index``).

The layouts themselves (file names, split files, what a group is) live in :mod:`actionlab.data.layouts`, one
module each: ``ucf101``, ``hmdb51``, ``kinetics``, ``ucf11``, ``folders`` (``layout="auto"`` picks one and
says why). This module runs one, makes the validation split, probes the videos and reports what it left out.

Validation is honest by default and never splits a group: UCF-101 and HMDB-51 keep their official
train/test lists and ``val_fraction`` (default 0.1) of the train groups move to ``val``; Kinetics keeps the
val split it ships; ucf11 and folders get a seeded, hash-per-group train/val/test split (``1 - val_fraction
- 0.15`` / ``val_fraction`` / 0.15) that does not depend on file-system order and keeps every existing group
where it was when classes are added.

Videos listed but not on disk (``missing``), videos whose probe failed (``unreadable``, with the reason) and
listed rows that cannot be used (``skipped``: a Kinetics row without a label) stay out of the manifest; a listed
video found only in another class's folder (``misplaced``) is indexed with its listed label. All four are
*defects*, always listed in the :class:`IndexReport` (``index --strict`` exits non-zero on any of them).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from actionlab.data.layouts import NAMES, Layout, detect_layout, get_layout
from actionlab.data.layouts.common import (
    DEFAULT_FRACTIONS,
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    VIDEO_EXTENSIONS,
    DatasetLayoutError,
    Entry,
    Parsed,
    assign_group_splits,
    carve_validation,
    check_fractions,
)
from actionlab.data.manifest import Manifest
from actionlab.types import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_FRACTIONS", "DEFAULT_VAL_FRACTION", "LAYOUTS", "OFFICIAL_LAYOUTS", "VIDEO_EXTENSIONS",
           "DatasetLayoutError", "IndexReport", "ProbeResult", "ProgressFn", "assign_group_splits", "carve_validation",
           "detect_layout", "index_dataset", "probe_videos"]

LAYOUTS = NAMES
"""Every layout ``index_dataset`` reads (``layout="auto"`` tries them in this order)."""
OFFICIAL_LAYOUTS = tuple(name for name in NAMES if get_layout(name).official_splits)
"""The layouts whose own files assign the splits."""

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``, called as videos are probed."""


@dataclass
class IndexReport:
    """What indexing found besides the manifest: nothing is dropped without being listed here."""

    layout: str
    root: Path
    """The manifest root (the folder the video paths are relative to)."""
    detected: str
    """Why this layout: ``requested`` or ``auto: <evidence>``."""
    split: int | None = None
    """Official split number used (UCF-101/HMDB-51), else None."""
    listed: int = 0
    """Videos the layout listed (after the class subset)."""
    missing: list[str] = field(default_factory=list)
    """Listed in a split file/CSV but not on disk (as listed)."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` of videos whose probe failed."""
    skipped: list[str] = field(default_factory=list)
    """Listed rows left out because they cannot be used (a Kinetics row without a label)."""
    misplaced: list[tuple[str, str]] = field(default_factory=list)
    """``(listed, found)``: listed videos found only in another class's folder (indexed with the listed label)."""
    unlisted: list[str] = field(default_factory=list)
    """Video files on disk that no split file lists (or that lie outside any class folder)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Videos per split in the manifest."""
    notes: list[str] = field(default_factory=list)
    """Other things worth knowing (duplicates, case-corrected paths, skipped CSVs, empty splits)."""

    @property
    def left_out(self) -> int:
        """Listed videos that are not in the manifest."""
        return len(self.missing) + len(self.unreadable) + len(self.skipped)

    @property
    def defects(self) -> int:
        """Listed videos missing, unreadable, skipped or misplaced (what ``index --strict`` fails on)."""
        return self.left_out + len(self.misplaced)

    @property
    def ok(self) -> bool:
        """True when every listed video made it into the manifest, each from its own class folder."""
        return self.defects == 0

    def defect_summary(self) -> str:
        """``3 of 120 listed videos left out (2 missing, 1 unreadable), 1 misplaced`` or ``no defects``."""
        parts = [f"{n} {what}" for n, what in ((len(self.missing), "missing"), (len(self.unreadable), "unreadable"),
                                               (len(self.skipped), "skipped")) if n]
        text = (f"{self.left_out} of {self.listed + len(self.skipped)} listed videos left out ({', '.join(parts)})"
                if parts else f"none of {self.listed + len(self.skipped)} listed videos left out")
        if self.misplaced:
            text += f"; {len(self.misplaced)} found in another class's folder"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "root": str(self.root), "detected": self.detected, "split": self.split,
                "listed": self.listed, "counts": dict(self.counts), "missing": list(self.missing),
                "unreadable": [list(x) for x in self.unreadable], "skipped": list(self.skipped),
                "misplaced": [list(x) for x in self.misplaced], "unlisted": list(self.unlisted),
                "notes": list(self.notes), "defects": self.defects}


# ----------------------------------------------------------------------------------- probing


class ProbeResult(NamedTuple):
    """What probing tells about one video (``error`` None when it read)."""

    num_frames: int
    fps: float
    duration: float
    width: int
    """Displayed width (after rotation and sample aspect ratio), as the decoder outputs it."""
    height: int
    error: str | None = None


_UNPROBED = ProbeResult(-1, 0.0, 0.0, 0, 0)


def _probe_one(path: str) -> ProbeResult:
    """Frame count, rate, duration and displayed size of one video; never raises (runs in worker processes)."""
    from actionlab.data.video.decode import probe

    try:
        info = probe(path)
    except Exception as exc:  # every failure is reported with its reason, whatever the decoder raised
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return _UNPROBED._replace(error=f"{type(exc).__name__}: {reason}")
    if info.num_frames < 1:
        return _UNPROBED._replace(error="no decodable frames")
    return ProbeResult(int(info.num_frames), float(info.fps), float(info.duration), int(info.width),
                       int(info.height))


def probe_videos(paths: Sequence[str], workers: int = 2, progress: ProgressFn | None = None
                 ) -> list[ProbeResult]:
    """Probe videos in a pool of ``workers`` processes (0/1: in this process), results in input order.

    A decoder that crashes its worker process marks only the video that crashed it as unreadable.
    """
    try:
        from actionlab.data.video.decode import probe  # noqa: F401  (fail once, clearly, before starting a pool)
    except ImportError as exc:
        raise RuntimeError(f"probing videos needs actionlab.data.video.decode ({exc}); index with probe=False "
                           "(--no-probe) to skip frame counts") from None
    total = len(paths)
    results: list[ProbeResult | None] = [None] * total
    done = 0

    def tick() -> None:
        if progress is not None:
            progress(done, total)

    if workers <= 1 or total < 2:
        for i, p in enumerate(paths):
            results[i] = _probe_one(p)
            done += 1
            tick()
        return [r for r in results if r is not None]

    ctx = multiprocessing.get_context("spawn")  # fork after torch/av threads exist can deadlock
    workers = min(workers, total)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_probe_one, p) for p in paths]
            for i, fut in enumerate(futures):
                results[i] = fut.result()
                done += 1
                tick()
    except BrokenProcessPool:
        pending = [i for i, r in enumerate(results) if r is None]
        logger.warning("a video decoder crashed its worker; probing the %d remaining videos one by one",
                       len(pending))
        for i in pending:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as one:
                try:
                    results[i] = one.submit(_probe_one, paths[i]).result()
                except BrokenProcessPool:
                    results[i] = _UNPROBED._replace(error="the decoder crashed its process")
            done += 1
            tick()
    return [r for r in results if r is not None]


# ----------------------------------------------------------------------------------- entry point


def index_dataset(
    root: str | Path,
    layout: str = "auto",
    split: int = 1,
    classes: Sequence[str] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    probe: bool = True,
    workers: int = 2,
    progress: ProgressFn | None = None,
    fractions: Sequence[float] | None = None,
) -> tuple[Manifest, IndexReport]:
    """Index the dataset under ``root`` into a manifest plus a report of everything left out.

    Args:
        layout: ``auto``, ``ucf101``, ``hmdb51``, ``kinetics``, ``ucf11`` or ``folders``.
        split: official split number 1..3 (UCF-101, HMDB-51).
        classes: keep only these classes, indexed 0..K-1 in the given order (an LRCN student report's 7 UCF-101 classes).
        val_fraction: the validation share for layouts that ship no val split, never splitting a group:
            UCF-101/HMDB-51: the fraction of train groups moved to ``val``; ucf11/folders: the ``val``
            fraction of the train/val/test split (test stays 0.15) unless ``fractions`` is given; Kinetics
            keeps its own val split. 0 makes no validation split.
        seed: seeds every group-aware split.
        probe: read exact frame counts and displayed sizes with :func:`actionlab.data.video.decode.probe`
            (else ``num_frames=-1`` and sizes 0).
        workers: probing processes.
        progress: ``progress(done, total)`` while probing.
        fractions: ``(train, val, test)`` for ucf11/folders (default from ``val_fraction``: 0.75/0.1/0.15).
    """
    root, classes, fractions = _check_arguments(root, layout, classes, val_fraction, fractions)
    if layout == "auto":
        layout, evidence = detect_layout(root)
        detected = f"auto: {evidence}"
        logger.info("layout %s (%s)", layout, evidence)
    else:
        detected = "requested"
    lay = get_layout(layout)
    parsed = lay.read(root, split=split, classes=classes, fractions=fractions, seed=seed)
    notes = list(parsed.notes)
    entries = parsed.entries
    carved = bool(lay.official_splits) and not lay.ships_val and val_fraction > 0
    if carved:
        notes.append(_carve_validation(entries, val_fraction, seed))
    elif lay.ships_val and val_fraction > 0:
        notes.append(f"val: the {layout} val split as shipped (none is carved from train)")

    missing = [e.listed for e in entries if e.path is None]
    if entries and len(missing) == len(entries):
        raise DatasetLayoutError(
            f"none of the {len(entries)} videos listed by {parsed.source} were found under {parsed.root} "
            f"(e.g. {missing[0]}); point ROOT at the folder that holds the videos")
    present = _first_of_each_path(entries, notes)
    records, unreadable = _records(parsed.root, present, parsed.classes, probe, workers, progress)
    manifest = Manifest(parsed.root, parsed.classes, records, layout)
    counts = {s: len(manifest.split(s)) for s in SPLITS if manifest.split(s)}
    notes += _coverage_notes(parsed, lay, records, counts, carved=carved, val_fraction=val_fraction, fractions=fractions)
    misplaced = [m for m in parsed.misplaced if m[1] in {e.path for e in present}]
    report = IndexReport(layout=layout, root=parsed.root, detected=detected, split=split if lay.numbered else None,
                         listed=len(entries), missing=missing, unreadable=unreadable, unlisted=parsed.unlisted,
                         counts=counts, notes=notes, skipped=list(parsed.skipped), misplaced=misplaced)
    _log_outcome(report, len(records), len(parsed.classes))
    return manifest, report


def _check_arguments(root: str | Path, layout: str, classes: Sequence[str] | str | None, val_fraction: float,
                     fractions: Sequence[float] | None
                     ) -> tuple[Path, Sequence[str] | None, tuple[float, float, float]]:
    """The resolved dataset root, the class subset as a list and the checked ``(train, val, test)`` fractions."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset root {path} is not a folder; pass the folder holding the videos")
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if fractions is None:
        fractions = (1.0 - val_fraction - DEFAULT_TEST_FRACTION, val_fraction, DEFAULT_TEST_FRACTION)
    return path.resolve(), classes, check_fractions(fractions)


def _coverage_notes(parsed: Parsed, lay: Layout, records: list[VideoRecord], counts: dict[str, int], *,
                    carved: bool, val_fraction: float, fractions: Sequence[float]) -> list[str]:
    """Notes on classes without videos and on empty splits, worded by whether the layout's own files split."""
    notes: list[str] = []
    labels = {r.label for r in records}
    empty = [c for c in parsed.classes if c not in labels]
    if empty:
        notes.append(f"{len(empty)} class(es) without any video: {', '.join(empty[:10])}")
    if counts and lay.official_splits:  # messages about what this layout's own files say
        for s in (s for s in ("train", "test") if s in lay.official_splits and s not in counts):
            verb = "list" if "," in parsed.source else "lists"
            notes.append(f"no {s} videos: {parsed.source} {verb} none"
                         + (" (`actionlab train` needs a train split)" if s == "train" else ""))
        if carved and "val" not in counts and "train" in counts:
            notes.append(f"no val videos: too few train groups to carve val_fraction={val_fraction} of them")
    elif counts:
        for s, f in zip(("train", "val", "test"), fractions):
            if f > 0 and s not in counts:
                notes.append(f"split {s!r} is empty: too few groups for the {s} fraction {f:g}")
    if not counts:
        notes.append("the manifest is empty")
    return notes


def _log_outcome(report: IndexReport, num_videos: int, num_classes: int) -> None:
    """One warning per kind of defect (with an example), then the summary line."""
    for msg, items in (("missing", report.missing), ("unreadable", report.unreadable), ("skipped", report.skipped),
                       ("misplaced (in another class's folder)", report.misplaced)):
        if items:
            logger.warning("%d %s video(s), e.g. %s", len(items), msg, items[0])
    logger.info("indexed %s: %d videos, %d classes (%s)", report.root, num_videos, num_classes,
                ", ".join(f"{k} {v}" for k, v in report.counts.items()))


def _carve_validation(entries: list[Entry], val_fraction: float, seed: int) -> str:
    """Move whole train groups to ``val`` (in place); returns the note saying how many."""
    train_groups = {e.group for e in entries if e.split == "train"}
    val_groups = carve_validation(train_groups, val_fraction, seed)
    for e in entries:
        if e.split == "train" and e.group in val_groups:
            e.split = "val"
    return f"val: {len(val_groups)} of {len(train_groups)} train groups (val_fraction={val_fraction}, seed={seed})"


def _first_of_each_path(entries: list[Entry], notes: list[str]) -> list[Entry]:
    """The entries found on disk, each file once (two listed names may resolve to one file)."""
    present: list[Entry] = []
    seen: set[str] = set()
    for e in entries:
        if e.path is None:
            continue
        if e.path in seen:
            notes.append(f"{e.listed}: resolves to {e.path}, already listed; kept the first")
            continue
        seen.add(e.path)
        present.append(e)
    return present


def _records(root: Path, present: list[Entry], classes: list[str], probe: bool, workers: int,
             progress: ProgressFn | None) -> tuple[list[VideoRecord], list[tuple[str, str]]]:
    """Manifest records of the entries (probed when ``probe``), sorted by split and path, plus the unreadable."""
    unreadable: list[tuple[str, str]] = []
    index = {c: i for i, c in enumerate(classes)}
    records: list[VideoRecord] = []
    if probe:
        infos = probe_videos([str(root / e.path) for e in present if e.path], workers, progress)
    else:
        infos = [_UNPROBED] * len(present)
        if progress is not None:
            progress(len(present), len(present))
    for e, info in zip(present, infos):
        assert e.path is not None
        if info.error is not None:
            unreadable.append((e.path, info.error))
            continue
        records.append(VideoRecord(path=e.path, label=e.label, label_index=index[e.label], split=e.split,
                                   group=e.group, num_frames=info.num_frames, fps=info.fps, duration=info.duration,
                                   width=info.width, height=info.height))
    records.sort(key=lambda r: (SPLITS.index(r.split), r.path))
    return records, unreadable
