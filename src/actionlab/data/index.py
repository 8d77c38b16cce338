"""Read a video dataset in its public layout into a :class:`~actionlab.data.manifest.Manifest` (``actionlab index``).

Layouts (``layout="auto"`` picks one and says why):

- ``ucf101``: ``ROOT/UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` (or ``ROOT/<Class>/...``) plus
  ``ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt}`` under ROOT or beside the video folder.
  Labels come from the list path's folder mapped through ``classInd.txt``, never from file names
  (``HandstandPushups/v_HandStandPushups_g01_c01.avi``). Group = ``gNN``.
- ``hmdb51``: ``ROOT/<class>/<video>.avi`` plus a folder of ``<class>_test_splitN.txt`` files
  (``name.avi 1``: 0 unused, 1 train, 2 test). Group = video stem.
- ``kinetics``: CSVs ``label,youtube_id,time_start,time_end,split[,...]`` under ROOT or ROOT/annotations; videos
  ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere up to three folders deep. Group = youtube_id.
- ``ucf11``: ``ROOT/<class>/v_<x>_NN/v_<x>_NN_MM.mpg``. Group = the ``v_<x>_NN`` folder.
- ``folders``: ``ROOT/<class>/[<sub>/]<video>``. Group = ``gNN`` from a ``_gNN_`` name, else the sub-folder,
  else the stem.

Official layouts (ucf101, hmdb51, kinetics) keep their train/test lists; ``val_fraction`` carves a group-aware
validation split out of train. ucf11 and folders get a seeded, hash-per-group train/val/test split that
does not depend on file-system order and keeps every existing group where it was when classes are added.

Videos listed but not on disk (``missing``) and videos whose probe failed (``unreadable``, with the reason)
stay out of the manifest and are always listed in the :class:`IndexReport`.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from actionlab.data.manifest import Manifest, ManifestError, resolve_class_names
from actionlab.types import SPLITS, VideoRecord

logger = logging.getLogger(__name__)

LAYOUTS = ("ucf101", "hmdb51", "kinetics", "ucf11", "folders")
OFFICIAL_LAYOUTS = ("ucf101", "hmdb51", "kinetics")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
"""train / val / test fractions of the self-split layouts (ucf11, folders)."""

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``, called as videos are probed."""


class DatasetLayoutError(ValueError):
    """The dataset on disk does not match its layout; the message names the file (and line) and the fix."""


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
    unlisted: list[str] = field(default_factory=list)
    """Video files on disk that no split file lists (or that lie outside any class folder)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Videos per split in the manifest."""
    notes: list[str] = field(default_factory=list)
    """Other things worth knowing (duplicates, case-corrected paths, skipped CSVs, empty splits)."""

    @property
    def ok(self) -> bool:
        """True when every listed video made it into the manifest."""
        return not self.missing and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "root": str(self.root), "detected": self.detected, "split": self.split,
                "listed": self.listed, "counts": dict(self.counts), "missing": list(self.missing),
                "unreadable": [list(x) for x in self.unreadable], "unlisted": list(self.unlisted),
                "notes": list(self.notes)}


# ----------------------------------------------------------------------------------- group-aware splits


def _unit_hash(seed: int, group: str) -> float:
    """A uniform number in [0, 1) that depends only on ``(seed, group)``."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test) summing to 1, "
                         f"got {tuple(fractions)}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def assign_group_splits(groups: Sequence[str] | set[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        seed: int = 0) -> dict[str, str]:
    """Map each group to ``train``/``val``/``test`` by a seeded hash of its name.

    Each group's split depends only on ``(seed, group)``: the result is independent of input order and a
    group keeps its split when other groups (new classes) are added. Fractions hold in expectation.
    """
    f_train, f_val, _ = _check_fractions(fractions)
    out = {}
    for g in set(groups):
        u = _unit_hash(seed, g)
        out[g] = "train" if u < f_train else "val" if u < f_train + f_val else "test"
    return out


def carve_validation(groups: Sequence[str] | set[str], fraction: float, seed: int = 0) -> set[str]:
    """The groups moved from train to val: ``round(fraction * n)`` groups (at least 1, at most n - 1) with the
    smallest seeded hashes. Order-independent; exact in count, which matters for UCF-101's 18-25 groups."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    unique = sorted(set(groups))
    if fraction == 0.0 or len(unique) < 2:
        return set()
    k = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    return set(sorted(unique, key=lambda g: (_unit_hash(seed, g), g))[:k])


# ----------------------------------------------------------------------------------- file-system helpers


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _scan_videos(root: Path, max_depth: int) -> list[str]:
    """Relative POSIX paths of video files under ``root`` at most ``max_depth`` levels down, sorted."""
    out: list[str] = []

    def walk(path: Path, prefix: str, depth: int) -> None:
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError as exc:
            logger.warning("cannot list %s: %s", path, exc)
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if depth < max_depth:
                    walk(Path(e.path), f"{prefix}{e.name}/", depth + 1)
            elif _is_video(e.name):
                out.append(prefix + e.name)

    walk(root, "", 1)
    return sorted(out)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty stripped lines with 1-based numbers; CRLF, BOM and trailing spaces tolerated."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


class _Resolver:
    """Find a listed video on disk: exact path, then case-insensitive, then another extension, then by name."""

    def __init__(self, files: list[str]) -> None:
        self.files = set(files)
        self.folded: dict[str, str] = {}
        self.by_stem_in_dir: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for f in files:
            p = PurePosixPath(f)
            self.folded.setdefault(f.casefold(), f)
            self.by_stem_in_dir.setdefault(f"{p.parent}/{p.stem}".casefold(), []).append(f)
            self.by_stem.setdefault(p.stem.casefold(), []).append(f)
        self.used: set[str] = set()
        self.fixed = 0

    def resolve(self, listed: str) -> str | None:
        found = self._find(listed)
        if found is not None:
            self.used.add(found)
            if found != listed:
                self.fixed += 1
        return found

    def _find(self, listed: str) -> str | None:
        if listed in self.files:
            return listed
        if (f := self.folded.get(listed.casefold())) is not None:
            return f
        p = PurePosixPath(listed)
        same_dir = self.by_stem_in_dir.get(f"{p.parent}/{p.stem}".casefold(), [])
        if len(same_dir) == 1:
            return same_dir[0]
        anywhere = self.by_stem.get(p.stem.casefold(), [])
        if len(anywhere) == 1:
            return anywhere[0]
        return None


@dataclass
class _Entry:
    listed: str
    label: str
    split: str
    group: str
    path: str | None = None
    """Resolved path relative to the manifest root; None = missing."""


@dataclass
class _Parsed:
    root: Path
    classes: list[str]
    entries: list[_Entry]
    source: str
    unlisted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _select_classes(all_classes: list[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    if not wanted:
        return list(all_classes)
    try:
        return resolve_class_names(wanted, all_classes, source=source)
    except ManifestError as exc:
        raise DatasetLayoutError(str(exc)) from None


def _best_video_dir(candidates: list[Path], class_names: list[str]) -> Path | None:
    """The candidate folder holding the most class folders (case-insensitive), or None."""
    wanted = {c.casefold() for c in class_names}
    best, best_n = None, 0
    seen: set[Path] = set()
    for cand in candidates:
        if cand in seen or not cand.is_dir():
            continue
        seen.add(cand)
        n = sum(d.name.casefold() in wanted for d in _subdirs(cand))
        if n > best_n:
            best, best_n = cand, n
    return best


def _unlisted_in(resolver: _Resolver, class_dirs: set[str] | None) -> list[str]:
    out = []
    for f in sorted(resolver.files - resolver.used):
        top = f.split("/", 1)[0].casefold() if "/" in f else None
        if class_dirs is None or top is None or top in class_dirs:
            out.append(f)
    return out


# ----------------------------------------------------------------------------------- UCF-101

_UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def _find_ucf_lists(root: Path) -> Path | None:
    candidates = [root / "ucfTrainTestlist", root]
    candidates += [d / "ucfTrainTestlist" for d in _subdirs(root)]
    candidates.append(root.parent / "ucfTrainTestlist")
    for cand in candidates:
        if (cand / "classInd.txt").is_file():
            return cand
    return None


def _ucf_group(name: str) -> str | None:
    m = _UCF_GROUP.search(name)
    return f"g{m.group(1)}" if m else None


def _parse_ucf101(root: Path, split: int, classes: Sequence[str] | None, **_: Any) -> _Parsed:
    lists = _find_ucf_lists(root)
    if lists is None:
        raise DatasetLayoutError(
            f"{root}: no ucfTrainTestlist/classInd.txt under ROOT, beside it or one folder down; unpack "
            "UCF101TrainTestSplits-RecognitionTask.zip next to the UCF-101 video folder")
    if split not in (1, 2, 3):
        raise DatasetLayoutError(f"UCF-101 has official splits 1, 2 and 3; got split={split}")
    class_ind = lists / "classInd.txt"
    all_classes: list[str] = []
    for lineno, line in _read_lines(class_ind):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetLayoutError(f"{class_ind}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(all_classes) + 1:
            raise DatasetLayoutError(f"{class_ind}:{lineno}: class indices must run 1, 2, 3, ...; expected "
                                     f"{len(all_classes) + 1}, got {parts[0]} (restore the original classInd.txt)")
        all_classes.append(parts[1])
    if not all_classes:
        raise DatasetLayoutError(f"{class_ind} lists no classes; restore the original file")
    exact = {c: c for c in all_classes}
    folded = {c.casefold(): c for c in all_classes}
    selected = _select_classes(all_classes, classes, source=f"UCF-101 ({class_ind})")
    keep = set(selected)

    video_dir = _best_video_dir([root / "UCF-101", root / "UCF101", root, lists.parent, *_subdirs(root)],
                                all_classes) or root
    resolver = _Resolver(_scan_videos(video_dir, 2))
    notes: list[str] = []
    entries: list[_Entry] = []
    seen: dict[str, str] = {}
    for kind, fname in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        list_path = lists / fname
        if not list_path.is_file():
            raise DatasetLayoutError(f"{list_path} not found; the ucfTrainTestlist folder needs {fname} for "
                                     f"split {split} (unpack the official split archive again)")
        for lineno, line in _read_lines(list_path):
            parts = line.split()
            rel = parts[0].replace("\\", "/")
            if "/" not in rel or len(parts) > 2:
                raise DatasetLayoutError(f"{list_path}:{lineno}: expected '<Class>/<video>.avi[ <label>]', "
                                         f"got {line!r}")
            folder = rel.split("/", 1)[0]
            label = exact.get(folder) or folded.get(folder.casefold())
            if label is None:
                raise DatasetLayoutError(
                    f"{list_path}:{lineno}: folder {folder!r} is not a class of {class_ind}; fix the line or "
                    "use the classInd.txt that came with these lists")
            if len(parts) == 2:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(all_classes) \
                        or all_classes[int(parts[1]) - 1] != label:
                    raise DatasetLayoutError(
                        f"{list_path}:{lineno}: label {parts[1]} disagrees with folder {folder!r} "
                        f"(classInd.txt gives {label!r} index {all_classes.index(label) + 1}); restore the "
                        "original list files")
            if rel in seen:
                notes.append(f"{rel} is listed twice ({seen[rel]} and {kind}); kept the first")
                continue
            seen[rel] = kind
            if label not in keep:
                continue
            name = PurePosixPath(rel).name
            group = _ucf_group(name)
            if group is None:
                group = PurePosixPath(name).stem
                notes.append(f"{rel}: no _gNN_cNN_ in the name; its group is the file stem")
            entries.append(_Entry(listed=rel, label=label, split=kind, group=group))
    for e in entries:
        e.path = resolver.resolve(e.listed)
    if resolver.fixed:
        notes.append(f"{resolver.fixed} listed path(s) matched a file with other case or extension")
    class_dirs = {c.casefold() for c in selected}
    return _Parsed(video_dir, selected, entries, source=f"{lists}/classInd.txt",
                   unlisted=_unlisted_in(resolver, class_dirs), notes=notes)


# ----------------------------------------------------------------------------------- HMDB-51

_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
_HMDB_CODES = {"0": "unused", "1": "train", "2": "test"}


def _split_files_in(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_file() and _HMDB_SPLIT.match(e.name))
    except OSError:
        return []


def _find_hmdb_splits(root: Path) -> Path | None:
    candidates = [root, root / "testTrainMulti_7030_splits", *_subdirs(root),
                  root.parent / "testTrainMulti_7030_splits"]
    for cand in candidates:
        if _split_files_in(cand):
            return cand
    return None


def _parse_hmdb51(root: Path, split: int, classes: Sequence[str] | None, **_: Any) -> _Parsed:
    folder = _find_hmdb_splits(root)
    if folder is None:
        raise DatasetLayoutError(
            f"{root}: no <class>_test_splitN.txt files under ROOT or one folder down; unpack "
            "test_train_splits.rar (testTrainMulti_7030_splits/) into ROOT")
    by_class: dict[str, Path] = {}
    numbers: set[int] = set()
    for p in _split_files_in(folder):
        m = _HMDB_SPLIT.match(p.name)
        assert m is not None
        numbers.add(int(m["n"]))
        if int(m["n"]) == split:
            by_class[m["cls"]] = p
    if not by_class:
        raise DatasetLayoutError(f"{folder}: no *_test_split{split}.txt files; splits present: "
                                 f"{sorted(numbers)} (pass --split with one of them)")
    all_classes = sorted(by_class)
    selected = _select_classes(all_classes, classes, source=f"HMDB-51 ({folder})")
    video_dir = _best_video_dir([root, root / "hmdb51_org", root / "hmdb51", *_subdirs(root)], all_classes) or root
    resolver = _Resolver(_scan_videos(video_dir, 2))
    notes: list[str] = []
    entries: list[_Entry] = []
    for label in selected:
        list_path = by_class[label]
        seen: set[str] = set()
        for lineno, line in _read_lines(list_path):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in _HMDB_CODES:
                raise DatasetLayoutError(f"{list_path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
            name = parts[0]
            if name in seen:
                notes.append(f"{list_path.name}:{lineno}: {name} listed twice; kept the first")
                continue
            seen.add(name)
            entries.append(_Entry(listed=f"{label}/{name}", label=label, split=_HMDB_CODES[parts[1]],
                                  group=PurePosixPath(name).stem))
    for e in entries:
        e.path = resolver.resolve(e.listed)
    if resolver.fixed:
        notes.append(f"{resolver.fixed} listed video(s) found under another folder, case or extension")
    return _Parsed(video_dir, selected, entries, source=f"{folder}/*_test_split{split}.txt",
                   unlisted=_unlisted_in(resolver, {c.casefold() for c in selected}), notes=notes)


# ----------------------------------------------------------------------------------- Kinetics

_KINETICS_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validate": "val",
                    "validation": "val", "test": "test", "testing": "test"}
_ANNOTATION_DIRS = ("annotations", "annotation", "labels", "splits", "lists")


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [h.strip().casefold() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _find_kinetics_csvs(root: Path) -> list[Path]:
    """CSVs with ``youtube_id`` in the header under ROOT or ROOT/annotations (else ROOT/../annotations)."""
    found: list[Path] = []
    for folder in (root, *(root / d for d in _ANNOTATION_DIRS)):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.csv") if "youtube_id" in _csv_header(p))
    if not found:
        folder = root.parent / "annotations"
        if folder.is_dir():
            found = sorted(p for p in folder.glob("*.csv") if "youtube_id" in _csv_header(p))
    return found


def _parse_kinetics(root: Path, classes: Sequence[str] | None, **_: Any) -> _Parsed:
    csvs = _find_kinetics_csvs(root)
    if not csvs:
        raise DatasetLayoutError(f"{root}: no CSV with label,youtube_id,time_start,time_end,split columns under "
                                 "ROOT or ROOT/annotations; put the Kinetics annotation CSVs there")
    notes: list[str] = []
    rows: list[tuple[str, str, int, int, str]] = []
    keys: set[str] = set()
    dupes = unlabeled = 0
    for path in csvs:
        header = _csv_header(path)
        if "label" not in header:
            notes.append(f"{path.name}: no label column (e.g. the unlabeled test set); skipped")
            continue
        for col in ("time_start", "time_end"):
            if col not in header:
                raise DatasetLayoutError(f"{path}:1: missing column {col!r}; expected "
                                         "label,youtube_id,time_start,time_end,split")
        file_split = _KINETICS_SPLITS.get(path.stem.casefold().split("_")[-1].split("-")[-1])
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            next(reader)
            col = {h: i for i, h in enumerate(header)}
            for lineno, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) < len(header):
                    raise DatasetLayoutError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}: {row}")
                label = row[col["label"]].strip()
                yid = row[col["youtube_id"]].strip()
                if not label:
                    unlabeled += 1
                    continue
                raw_split = row[col["split"]].strip().casefold() if "split" in col else ""
                split = _KINETICS_SPLITS.get(raw_split) if raw_split else file_split
                if split is None:
                    raise DatasetLayoutError(
                        f"{path}:{lineno}: split {raw_split or '(none)'!r} is not one of "
                        f"{sorted(_KINETICS_SPLITS)}; fix the split column or name the CSV train/val/test.csv")
                try:
                    start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
                except ValueError:
                    raise DatasetLayoutError(f"{path}:{lineno}: time_start/time_end must be numbers, got "
                                             f"{row[col['time_start']]!r}, {row[col['time_end']]!r}") from None
                key = f"{yid}_{start:06d}_{end:06d}"
                if key in keys:
                    dupes += 1
                    continue
                keys.add(key)
                rows.append((label, yid, start, end, split))
    if dupes:
        notes.append(f"{dupes} duplicate CSV row(s) (same youtube_id and times); kept the first")
    if unlabeled:
        notes.append(f"{unlabeled} CSV row(s) without a label skipped")
    if not rows:
        raise DatasetLayoutError(f"{', '.join(map(str, csvs))}: no labeled rows; use CSVs with a label column")
    all_classes = sorted({r[0] for r in rows})
    selected = _select_classes(all_classes, classes, source=f"Kinetics ({', '.join(p.name for p in csvs)})")
    keep = set(selected)

    files = _scan_videos(root, 4)  # [wrapper/][split/][label/]<clip>
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(PurePosixPath(f).stem, []).append(f)
    used: set[str] = set()
    entries: list[_Entry] = []
    ambiguous = 0
    for label, yid, start, end, split in rows:
        if label not in keep:
            continue
        key = f"{yid}_{start:06d}_{end:06d}"
        cands = by_stem.get(key) or by_stem.get(yid) or []
        if len(cands) > 1:
            # the same clip in several folders: prefer the one under its split and label folders
            hints = {split, label.casefold(), label.replace(" ", "_").casefold()} | {
                k for k, v in _KINETICS_SPLITS.items() if v == split}

            def score(p: str, hints: set[str] = hints) -> tuple[int, str]:
                return (-sum(part.casefold() in hints for part in PurePosixPath(p).parts[:-1]), p)

            cands = sorted(cands, key=score)
            ambiguous += 1
        path = next((c for c in cands if c not in used), None)
        if path is not None:
            used.add(path)
        entries.append(_Entry(listed=f"{key} ({label}, {split})", label=label, split=split, group=yid, path=path))
    if ambiguous:
        notes.append(f"{ambiguous} clip(s) found in several folders; took the one under its split/label folder")
    unlisted = sorted(set(files) - used) if not classes else []
    return _Parsed(root, selected, entries, source=", ".join(p.name for p in csvs), unlisted=unlisted, notes=notes)


# ----------------------------------------------------------------------------------- UCF-11 and folders

_UCF11_GROUP = re.compile(r"^v_.+_\d+$", re.IGNORECASE)
_FOLDER_GROUP = re.compile(r"_g(\d+)_", re.IGNORECASE)


def _has_video(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and _is_video(e.name) for e in it)
    except OSError:
        return False


def _looks_ucf11(root: Path) -> bool:
    for cls in _subdirs(root):
        for sub in _subdirs(cls):
            if _UCF11_GROUP.match(sub.name) and _has_video(sub):
                return True
    return False


def _ucf11_root(root: Path) -> Path | None:
    if _looks_ucf11(root):
        return root
    subs = _subdirs(root)
    if len(subs) == 1 and _looks_ucf11(subs[0]):  # a wrapper such as UCF11_updated_mpg/
        return subs[0]
    return None


def _unwrap(root: Path) -> Path:
    """Descend through single wrapper folders (``ROOT/dataset/<class>/...``) that hold no videos themselves."""
    while True:
        subs = _subdirs(root)
        if len(subs) != 1 or _has_video(root) or _has_video(subs[0]):
            return root
        logger.info("descending into the single folder %s", subs[0])
        root = subs[0]


def _self_split(root: Path, files: list[str], group_of: Callable[[str], str], classes: Sequence[str] | None,
                fractions: Sequence[float], seed: int, source: str, layout: str) -> _Parsed:
    notes: list[str] = []
    stray = [f for f in files if "/" not in f]
    if stray:
        notes.append(f"{len(stray)} video file(s) directly under {root} have no class folder; listed as unlisted")
    files = [f for f in files if "/" in f]
    all_classes = sorted({f.split("/", 1)[0] for f in files})
    if not all_classes:
        raise DatasetLayoutError(f"{root}: no videos ({', '.join(VIDEO_EXTENSIONS)}) in class folders "
                                 f"ROOT/<class>/ (layout {layout}); point ROOT at the folder holding the class folders")
    selected = _select_classes(all_classes, classes, source=f"{layout} ({root})")
    keep = set(selected)
    files = [f for f in files if f.split("/", 1)[0] in keep]
    groups = {f: group_of(f) for f in files}
    assignment = assign_group_splits(set(groups.values()), fractions, seed)
    entries = [_Entry(listed=f, label=f.split("/", 1)[0], split=assignment[groups[f]], group=groups[f], path=f)
               for f in files]
    return _Parsed(root, selected, entries, source=source, unlisted=stray, notes=notes)


def _parse_ucf11(root: Path, classes: Sequence[str] | None, fractions: Sequence[float], seed: int,
                 **_: Any) -> _Parsed:
    base = _ucf11_root(root)
    if base is None:
        raise DatasetLayoutError(f"{root}: no <class>/v_<name>_NN/ folders with videos; UCF-11 videos live in "
                                 "ROOT/<class>/v_<name>_NN/v_<name>_NN_MM.mpg")
    files = _scan_videos(base, 3)  # <class>/<group>/<video> (and stray <class>/<video>)

    def group_of(f: str) -> str:
        parts = f.split("/")
        return parts[1] if len(parts) == 3 else PurePosixPath(f).stem

    return _self_split(base, files, group_of, classes, fractions, seed, source="<class>/v_<name>_NN/ folders",
                       layout="ucf11")


def _parse_folders(root: Path, classes: Sequence[str] | None, fractions: Sequence[float], seed: int,
                   **_: Any) -> _Parsed:
    base = _unwrap(root)

    def group_of(f: str) -> str:
        parts = f.split("/")
        m = _FOLDER_GROUP.search(PurePosixPath(f).stem)
        if m:
            return f"g{m.group(1)}"
        return parts[1] if len(parts) == 3 else PurePosixPath(f).stem

    parsed = _self_split(base, _scan_videos(base, 3), group_of, classes, fractions, seed,
                         source="<class>/ folders", layout="folders")
    if base != root:
        parsed.notes.append(f"took {base.relative_to(root)} as a wrapper folder holding the class folders")
    return parsed


_PARSERS: dict[str, Callable[..., _Parsed]] = {
    "ucf101": _parse_ucf101, "hmdb51": _parse_hmdb51, "kinetics": _parse_kinetics,
    "ucf11": _parse_ucf11, "folders": _parse_folders,
}


def detect_layout(root: str | Path) -> tuple[str, str]:
    """``(layout, evidence)`` for a dataset folder, checked in the order ucf101, hmdb51, kinetics, ucf11, folders."""
    root = Path(root)
    if (lists := _find_ucf_lists(root)) is not None:
        return "ucf101", f"found {lists / 'classInd.txt'}"
    if (splits := _find_hmdb_splits(root)) is not None:
        return "hmdb51", f"found *_test_split*.txt in {splits}"
    if csvs := _find_kinetics_csvs(root):
        if any("label" in _csv_header(p) for p in csvs):
            return "kinetics", f"found {', '.join(str(p) for p in csvs)} with label,youtube_id columns"
    if (base := _ucf11_root(root)) is not None:
        return "ucf11", f"found <class>/v_<name>_NN/ video folders in {base}"
    base = _unwrap(root)
    if any("/" in f for f in _scan_videos(base, 3)):
        return "folders", f"found video files in class folders under {base}"
    raise DatasetLayoutError(
        f"{root}: no recognizable dataset layout. Expected one of: UCF-101 (ucfTrainTestlist/classInd.txt + "
        "<Class>/*.avi), HMDB-51 (<class>_test_splitN.txt files + <class>/*.avi), Kinetics (CSV with "
        "label,youtube_id,time_start,time_end,split + <youtube_id>_<start>_<end>.mp4), UCF-11 "
        "(<class>/v_<name>_NN/*.mpg) or class folders (<class>/*.mp4). Check ROOT, or pass --layout")


# ----------------------------------------------------------------------------------- probing


def _probe_one(path: str) -> tuple[int, float, float, str | None]:
    """``(num_frames, fps, duration, error)`` of one video; never raises (runs in worker processes)."""
    from actionlab.data.decode import probe

    try:
        info = probe(path)
    except Exception as exc:  # every failure is reported with its reason, whatever the decoder raised
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return -1, 0.0, 0.0, f"{type(exc).__name__}: {reason}"
    if info.num_frames < 1:
        return -1, 0.0, 0.0, "no decodable frames"
    return int(info.num_frames), float(info.fps), float(info.duration), None


def probe_videos(paths: Sequence[str], workers: int = 2, progress: ProgressFn | None = None
                 ) -> list[tuple[int, float, float, str | None]]:
    """Probe videos in a pool of ``workers`` processes (0/1: in this process), results in input order.

    A decoder that crashes its worker process marks only the video that crashed it as unreadable.
    """
    try:
        from actionlab.data.decode import probe  # noqa: F401  (fail once, clearly, before starting a pool)
    except ImportError as exc:
        raise RuntimeError(f"probing videos needs actionlab.data.decode ({exc}); index with probe=False "
                           "(--no-probe) to skip frame counts") from None
    total = len(paths)
    results: list[tuple[int, float, float, str | None] | None] = [None] * total
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
                    results[i] = (-1, 0.0, 0.0, "the decoder crashed its process")
            done += 1
            tick()
    return [r for r in results if r is not None]


# ----------------------------------------------------------------------------------- entry point


def index_dataset(
    root: str | Path,
    layout: str = "auto",
    split: int = 1,
    classes: Sequence[str] | None = None,
    val_fraction: float = 0.0,
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
        classes: keep only these classes, indexed 0..K-1 in the given order (seed 003's 7 UCF-101 classes).
        val_fraction: official layouts: the fraction of train groups moved to ``val``; ucf11/folders: the
            ``val`` fraction of the train/val/test split (test stays 0.15) unless ``fractions`` is given.
        seed: seeds every group-aware split.
        probe: read exact frame counts with :func:`actionlab.data.decode.probe` (else ``num_frames=-1``).
        workers: probing processes.
        progress: ``progress(done, total)`` while probing.
        fractions: ``(train, val, test)`` for ucf11/folders (default 0.7/0.15/0.15).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder; pass the folder holding the videos")
    root = root.resolve()
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if fractions is None:
        test = DEFAULT_FRACTIONS[2]
        fractions = (1.0 - val_fraction - test, val_fraction, test) if val_fraction > 0 else DEFAULT_FRACTIONS
    fractions = _check_fractions(fractions)

    if layout == "auto":
        layout, evidence = detect_layout(root)
        detected = f"auto: {evidence}"
        logger.info("layout %s (%s)", layout, evidence)
    else:
        detected = "requested"
    parsed = _PARSERS[layout](root, split=split, classes=classes, fractions=fractions, seed=seed)
    notes = list(parsed.notes)
    entries = parsed.entries

    if layout in OFFICIAL_LAYOUTS and val_fraction > 0:
        train_groups = {e.group for e in entries if e.split == "train"}
        val_groups = carve_validation(train_groups, val_fraction, seed)
        for e in entries:
            if e.split == "train" and e.group in val_groups:
                e.split = "val"
        notes.append(f"val: {len(val_groups)} of {len(train_groups)} train groups (val_fraction={val_fraction}, "
                     f"seed={seed})")

    missing = [e.listed for e in entries if e.path is None]
    if entries and len(missing) == len(entries):
        raise DatasetLayoutError(
            f"none of the {len(entries)} videos listed by {parsed.source} were found under {parsed.root} "
            f"(e.g. {missing[0]}); point ROOT at the folder that holds the videos")
    present: list[_Entry] = []
    seen: set[str] = set()
    for e in entries:
        if e.path is None:
            continue
        if e.path in seen:
            notes.append(f"{e.listed}: resolves to {e.path}, already listed; kept the first")
            continue
        seen.add(e.path)
        present.append(e)

    unreadable: list[tuple[str, str]] = []
    index = {c: i for i, c in enumerate(parsed.classes)}
    records: list[VideoRecord] = []
    if probe:
        infos = probe_videos([str(parsed.root / e.path) for e in present if e.path], workers, progress)
    else:
        infos = [(-1, 0.0, 0.0, None)] * len(present)
        if progress is not None:
            progress(len(present), len(present))
    for e, (frames, fps, duration, error) in zip(present, infos):
        assert e.path is not None
        if error is not None:
            unreadable.append((e.path, error))
            continue
        records.append(VideoRecord(path=e.path, label=e.label, label_index=index[e.label], split=e.split,
                                   group=e.group, num_frames=frames, fps=fps, duration=duration))
    records.sort(key=lambda r: (SPLITS.index(r.split), r.path))
    manifest = Manifest(parsed.root, parsed.classes, records, layout)

    counts = {s: len(manifest.split(s)) for s in SPLITS if manifest.split(s)}
    empty = [c for c in parsed.classes if not any(r.label == c for r in records)]
    if empty:
        notes.append(f"{len(empty)} class(es) without any video: {', '.join(empty[:10])}")
    if layout in OFFICIAL_LAYOUTS:
        expected = ["train"] + (["test"] if layout != "kinetics" else []) + (["val"] if val_fraction > 0 else [])
    else:
        expected = [s for s, f in zip(("train", "val", "test"), fractions) if f > 0]
    for s in expected:
        if records and s not in counts:
            notes.append(f"split {s!r} is empty (too few groups for the requested fractions?)")
    if not records:
        notes.append("the manifest is empty")
    report = IndexReport(layout=layout, root=parsed.root, detected=detected,
                         split=split if layout in ("ucf101", "hmdb51") else None, listed=len(entries),
                         missing=missing, unreadable=unreadable, unlisted=parsed.unlisted, counts=counts,
                         notes=notes)
    for msg, items in (("missing", missing), ("unreadable", unreadable)):
        if items:
            logger.warning("%d %s video(s), e.g. %s", len(items), msg, items[0])
    logger.info("indexed %s: %d videos, %d classes (%s)", parsed.root, len(records), len(parsed.classes),
                ", ".join(f"{k} {v}" for k, v in counts.items()))
    return manifest, report


def format_report(manifest: Manifest, report: IndexReport, max_items: int = 10, max_classes: int = 30) -> str:
    """The human summary ``actionlab index`` prints."""
    summary = manifest.summary()
    lines = [f"layout:   {report.layout} ({report.detected})" + (f", split {report.split}" if report.split else ""),
             f"root:     {report.root}",
             f"classes:  {summary['num_classes']}",
             f"videos:   {summary['num_videos']} of {report.listed} listed ("
             + ", ".join(f"{s} {n}" for s, n in summary["videos_per_split"].items()) + ")"]
    if "groups_per_split" in summary and summary["groups_per_split"]:
        lines.append("groups:   " + ", ".join(f"{s} {n}" for s, n in summary["groups_per_split"].items()))
    if "frames" in summary:
        f = summary["frames"]
        lines.append(f"frames:   min {f['min']}, mean {f['mean']:.1f}, max {f['max']}")
    for title, items in (("missing (listed, not on disk)", report.missing),
                         ("unreadable", [f"{p}: {why}" for p, why in report.unreadable]),
                         ("unlisted (on disk, in no split list)", report.unlisted)):
        lines.append(f"{title}: {len(items)}")
        lines += [f"  {x}" for x in items[:max_items]]
        if len(items) > max_items:
            lines.append(f"  ... and {len(items) - max_items} more")
    splits = list(summary["videos_per_split"])
    per_class = summary["per_class"]
    if per_class and len(per_class) <= max_classes:
        width = max(len(c) for c in per_class)
        lines.append(f"per class ({'/'.join(splits)}):")
        lines += [f"  {c:<{width}}  " + "/".join(str(n[s]) for s in splits) for c, n in per_class.items()]
    elif per_class:
        totals = {c: sum(n.values()) for c, n in per_class.items()}
        lo, hi = min(totals, key=totals.__getitem__), max(totals, key=totals.__getitem__)
        lines.append(f"per class: min {totals[lo]} ({lo}), max {totals[hi]} ({hi})")
    lines += [f"note: {n}" for n in report.notes[:max_items]]
    if len(report.notes) > max_items:
        lines.append(f"note: ... and {len(report.notes) - max_items} more")
    return "\n".join(lines)
