"""What the dataset layouts share: the parse result, finding files on disk, and group-aware splits.

The reader side (``Entry``, ``Parsed``, ``Resolver``, scanning, the seeded group hashes) serves every layout's
``read``; the synth side at the end (``SynthClass``, ``SynthVideo``) is what the layouts' writers receive from
:func:`actionlab.synth.families.make_synthetic_dataset`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from actionlab.data.manifest import ManifestError, resolve_class_names

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")
DEFAULT_VAL_FRACTION = 0.1
"""The validation share actionlab makes when a dataset ships no val split (of train groups for UCF-101 and
HMDB-51, of all groups for the self-split layouts)."""
DEFAULT_TEST_FRACTION = 0.15
"""The test share of the self-split layouts (ucf11, folders)."""
DEFAULT_FRACTIONS = (0.75, DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION)
"""train / val / test fractions of the self-split layouts (ucf11, folders)."""


class DatasetLayoutError(ValueError):
    """The dataset on disk does not match its layout; the message names the file (and line) and the fix."""


@dataclass
class Entry:
    """One video a layout lists."""

    listed: str
    label: str
    split: str
    group: str
    path: str | None = None
    """Resolved path relative to the manifest root; None = missing."""


@dataclass
class Parsed:
    """What a layout's ``read`` returns: the videos it lists, before probing."""

    root: Path
    """The manifest root (the folder the video paths are relative to)."""
    classes: list[str]
    entries: list[Entry]
    source: str
    """The files the entries come from, for messages."""
    unlisted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    misplaced: list[tuple[str, str]] = field(default_factory=list)
    """``(listed, found)``: a listed video found only in another class's folder (indexed with its listed label,
    and a defect: the file or the list is wrong)."""
    skipped: list[str] = field(default_factory=list)
    """Listed rows left out because they cannot be used (a Kinetics row without a label)."""


# ----------------------------------------------------------------------------------- group-aware splits


def unit_hash(seed: int, group: str) -> float:
    """A uniform number in [0, 1) that depends only on ``(seed, group)``."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
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
    f_train, f_val, _ = check_fractions(fractions)
    out = {}
    for g in set(groups):
        u = unit_hash(seed, g)
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
    return set(sorted(unique, key=lambda g: (unit_hash(seed, g), g))[:k])


# ----------------------------------------------------------------------------------- file-system helpers


def is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")


def subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def has_video(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and is_video(e.name) for e in it)
    except OSError:
        return False


def scan_videos(root: Path, max_depth: int) -> list[str]:
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
            elif is_video(e.name):
                out.append(prefix + e.name)

    walk(root, "", 1)
    return sorted(out)


def unwrap(root: Path) -> Path:
    """Descend through single wrapper folders (``ROOT/dataset/<class>/...``) that hold no videos themselves."""
    while True:
        subs = subdirs(root)
        if len(subs) != 1 or has_video(root) or has_video(subs[0]):
            return root
        logger.info("descending into the single folder %s", subs[0])
        root = subs[0]


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty stripped lines with 1-based numbers; CRLF, BOM and trailing spaces tolerated."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


class Resolver:
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
        """Listed paths matched with another case or extension."""
        self.misplaced: list[tuple[str, str]] = []
        """``(listed, found)`` where the file lies in another top-level (class) folder than listed."""

    def resolve(self, listed: str) -> str | None:
        found = self._find(listed)
        if found is not None:
            self.used.add(found)
            if "/" in listed and listed.split("/", 1)[0].casefold() != found.split("/", 1)[0].casefold():
                self.misplaced.append((listed, found))
            elif found != listed:
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

    def unlisted(self, class_dirs: set[str] | None) -> list[str]:
        """Files no entry resolved to, inside the (casefolded) ``class_dirs`` or directly under the root."""
        out = []
        for f in sorted(self.files - self.used):
            top = f.split("/", 1)[0].casefold() if "/" in f else None
            if class_dirs is None or top is None or top in class_dirs:
                out.append(f)
        return out


def select_classes(all_classes: list[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    if not wanted:
        return list(all_classes)
    try:
        return resolve_class_names(wanted, all_classes, source=source)
    except ManifestError as exc:
        raise DatasetLayoutError(str(exc)) from None


def best_video_dir(candidates: list[Path], class_names: list[str]) -> Path | None:
    """The candidate folder holding the most class folders (case-insensitive), or None."""
    wanted = {c.casefold() for c in class_names}
    best, best_n = None, 0
    seen: set[Path] = set()
    for cand in candidates:
        if cand in seen or not cand.is_dir():
            continue
        seen.add(cand)
        n = sum(d.name.casefold() in wanted for d in subdirs(cand))
        if n > best_n:
            best, best_n = cand, n
    return best


def self_split(root: Path, files: list[str], group_of: Callable[[str], str], classes: Sequence[str] | None,
               fractions: Sequence[float], seed: int, source: str, layout: str) -> Parsed:
    """Class folders without split files: each group goes to train/val/test by :func:`assign_group_splits`."""
    notes: list[str] = []
    stray = [f for f in files if "/" not in f]
    if stray:
        notes.append(f"{len(stray)} video file(s) directly under {root} have no class folder; listed as unlisted")
    files = [f for f in files if "/" in f]
    all_classes = sorted({f.split("/", 1)[0] for f in files})
    if not all_classes:
        raise DatasetLayoutError(f"{root}: no videos ({', '.join(VIDEO_EXTENSIONS)}) in class folders "
                                 f"ROOT/<class>/ (layout {layout}); point ROOT at the folder holding the class folders")
    selected = select_classes(all_classes, classes, source=f"{layout} ({root})")
    keep = set(selected)
    files = [f for f in files if f.split("/", 1)[0] in keep]
    groups = {f: group_of(f) for f in files}
    assignment = assign_group_splits(set(groups.values()), fractions, seed)
    entries = [Entry(listed=f, label=f.split("/", 1)[0], split=assignment[groups[f]], group=groups[f], path=f)
               for f in files]
    return Parsed(root, selected, entries, source=source, unlisted=stray, notes=notes)


# ----------------------------------------------------------------------------------- synth side


@dataclass(frozen=True)
class SynthClass:
    """A generated class as the layouts' writers see it."""

    name: str
    """CamelCase name (``TurnClockwise``); each layout spells it its own way."""
    key: int
    """Random-stream key shared by the two classes of a time-order pair (draws that must match)."""
    index: int
    """Random-stream key of this class alone."""


@dataclass(frozen=True)
class SynthVideo:
    """One generated video (what ``synth_info.json`` lists)."""

    path: str
    """Relative to the dataset root returned by :func:`make_synthetic_dataset`."""
    label: str
    """Class name as the layout spells it."""
    synth_class: str
    """Name in the family's class list (:data:`actionlab.synth.families.SYNTH_CLASSES` for the demo's)."""
    group: int
    clip: int
    num_frames: int
    split: str
    """``train``/``val``/``test`` for kinetics, ``-`` for layouts with split files."""


def snake(name: str) -> str:
    """``TurnClockwise`` -> ``turn_clockwise``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
