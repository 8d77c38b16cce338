"""Kinetics: CSVs ``label,youtube_id,time_start,time_end,split[,...]`` under ROOT or ROOT/annotations.

Videos are ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere up to three folders deep (usually
``<split>/<label>/``). Group = youtube_id. Kinetics ships its own val split, so no validation is carved.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from actionlab.data.layouts.common import (
    DatasetLayoutError,
    Entry,
    Parsed,
    SynthClass,
    SynthVideo,
    scan_videos,
    select_classes,
    snake,
)

_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validate": "val",
           "validation": "val", "test": "test", "testing": "test"}
_ANNOTATION_DIRS = ("annotations", "annotation", "labels", "splits", "lists")


# ----------------------------------------------------------------------------------- reader


def csv_header(path: Path) -> list[str]:
    """The casefolded header row of a CSV ([] when it cannot be read)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [h.strip().casefold() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def find_csvs(root: Path) -> list[Path]:
    """CSVs with ``youtube_id`` in the header under ROOT or ROOT/annotations (else ROOT/../annotations)."""
    found: list[Path] = []
    for folder in (root, *(root / d for d in _ANNOTATION_DIRS)):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.csv") if "youtube_id" in csv_header(p))
    if not found:
        folder = root.parent / "annotations"
        if folder.is_dir():
            found = sorted(p for p in folder.glob("*.csv") if "youtube_id" in csv_header(p))
    return found


def detect(root: Path) -> str | None:
    csvs = find_csvs(root)
    if csvs and any("label" in csv_header(p) for p in csvs):
        return f"found {', '.join(str(p) for p in csvs)} with label,youtube_id columns"
    return None


def _read_rows(csvs: list[Path], notes: list[str], skipped: list[str]) -> list[tuple[str, str, int, int, str]]:
    """``(label, youtube_id, start, end, split)`` of every labeled row, first of duplicates kept; rows without a
    label in a labeled CSV go to ``skipped`` (``file:line``)."""
    rows: list[tuple[str, str, int, int, str]] = []
    keys: set[str] = set()
    dupes = 0
    for path in csvs:
        header = csv_header(path)
        if "label" not in header:
            notes.append(f"{path.name}: no label column (e.g. the unlabeled test set); skipped")
            continue
        for col in ("time_start", "time_end"):
            if col not in header:
                raise DatasetLayoutError(f"{path}:1: missing column {col!r}; expected "
                                         "label,youtube_id,time_start,time_end,split")
        file_split = _SPLITS.get(path.stem.casefold().split("_")[-1].split("-")[-1])
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
                    skipped.append(f"{path.name}:{lineno}: {yid} (no label)")
                    continue
                raw_split = row[col["split"]].strip().casefold() if "split" in col else ""
                split = _SPLITS.get(raw_split) if raw_split else file_split
                if split is None:
                    raise DatasetLayoutError(
                        f"{path}:{lineno}: split {raw_split or '(none)'!r} is not one of "
                        f"{sorted(_SPLITS)}; fix the split column or name the CSV train/val/test.csv")
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
    return rows


def read(root: Path, classes: Sequence[str] | None, **_: Any) -> Parsed:
    csvs = find_csvs(root)
    if not csvs:
        raise DatasetLayoutError(f"{root}: no CSV with label,youtube_id,time_start,time_end,split columns under "
                                 "ROOT or ROOT/annotations; put the Kinetics annotation CSVs there")
    notes: list[str] = []
    skipped: list[str] = []
    rows = _read_rows(csvs, notes, skipped)
    if not rows:
        raise DatasetLayoutError(f"{', '.join(map(str, csvs))}: no labeled rows; use CSVs with a label column")
    all_classes = sorted({r[0] for r in rows})
    selected = select_classes(all_classes, classes, source=f"Kinetics ({', '.join(p.name for p in csvs)})")
    keep = set(selected)

    files = scan_videos(root, 4)  # [wrapper/][split/][label/]<clip>
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(PurePosixPath(f).stem, []).append(f)
    used: set[str] = set()
    entries: list[Entry] = []
    misplaced: list[tuple[str, str]] = []
    folder_class = {v: c for c in all_classes for v in (c.casefold(), c.replace(" ", "_").casefold())}
    ambiguous = 0
    for label, yid, start, end, split in rows:
        if label not in keep:
            continue
        key = f"{yid}_{start:06d}_{end:06d}"
        cands = by_stem.get(key) or by_stem.get(yid) or []
        if len(cands) > 1:
            # the same clip in several folders: prefer the one under its split and label folders
            hints = {split, label.casefold(), label.replace(" ", "_").casefold()} | {
                k for k, v in _SPLITS.items() if v == split}

            def score(p: str, hints: set[str] = hints) -> tuple[int, str]:
                return (-sum(part.casefold() in hints for part in PurePosixPath(p).parts[:-1]), p)

            cands = sorted(cands, key=score)
            ambiguous += 1
        path = next((c for c in cands if c not in used), None)
        listed = f"{key} ({label}, {split})"
        if path is not None:
            used.add(path)
            other = {folder_class.get(part.casefold()) for part in PurePosixPath(path).parts[:-1]} - {None, label}
            if other:  # in the folder of another class: the file or the CSV is wrong
                misplaced.append((listed, path))
        entries.append(Entry(listed=listed, label=label, split=split, group=yid, path=path))
    if ambiguous:
        notes.append(f"{ambiguous} clip(s) found in several folders; took the one under its split/label folder")
    unlisted = sorted(set(files) - used) if not classes else []
    return Parsed(root, selected, entries, source=", ".join(p.name for p in csvs), unlisted=unlisted, notes=notes,
                  misplaced=misplaced, skipped=skipped)


# ----------------------------------------------------------------------------------- writer (synth)


def class_name(name: str) -> str:
    """``TurnClockwise`` -> ``turn clockwise`` (Kinetics labels are lower case with spaces)."""
    return snake(name).replace("_", " ")


def _youtube_id(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 11))


def _val_groups(cls: SynthClass, groups: int, seed: int) -> set[int]:
    """The 1-based groups of a class in the val split (20%, at least one)."""
    rng = np.random.default_rng([seed, cls.key, 7919])
    n_val = max(1, round(0.2 * groups))
    return {int(g) + 1 for g in rng.permutation(groups)[:n_val]}


def synth_path(cls: SynthClass, group: int, clip: int, groups: int, seed: int, ext: str) -> tuple[str, str, str]:
    """``(path, label, split)`` of one generated video: one youtube id per group, 10-second clips of it."""
    label = class_name(cls.name)
    split = "val" if group in _val_groups(cls, groups, seed) else "train"
    yt = _youtube_id(np.random.default_rng([seed, cls.index, group, 104729]))
    start = 10 * (clip - 1) + int(np.random.default_rng([seed, cls.key, group, clip, 17]).integers(0, 5))
    return f"{split}/{label}/{yt}_{start:06d}_{start + 10:06d}.{ext}", label, split


def write_splits(root: Path, classes: Sequence[SynthClass], videos: Sequence[SynthVideo], groups: int,
                 seed: int) -> None:
    """``annotations/{train,val}.csv`` with ``label,youtube_id,time_start,time_end,split`` rows."""
    d = root / "annotations"
    d.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        rows = ["label,youtube_id,time_start,time_end,split\n"]
        for v in videos:
            if v.split != split:
                continue
            stem = Path(v.path).stem
            yt, start, end = stem[:11], int(stem[12:18]), int(stem[19:25])
            label = f'"{v.label}"' if "," in v.label else v.label
            rows.append(f"{label},{yt},{start},{end},{split}\n")
        (d / f"{split}.csv").write_text("".join(rows))
