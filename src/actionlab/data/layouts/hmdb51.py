"""HMDB-51: ``ROOT/<class>/<video>.avi`` plus a folder of ``<class>_test_splitN.txt`` files.

Split file lines are ``name.avi C`` (C: 0 unused, 1 train, 2 test). Video names are
``<source>_<class>_<body part>_<camera motion>_<people>_<viewpoint>_<quality>_<clip>.avi``
(``April_09_brush_hair_u_nm_np1_ba_goo_0.avi``); the official splits keep all clips cut from one source
video on one side, so the group is the source video: the name without its last six ``_`` fields
(``April_09_brush_hair``). A name not in that form is a group of its own (its stem).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from actionlab.data.layouts.common import (
    DatasetLayoutError,
    Entry,
    Parsed,
    Resolver,
    SynthClass,
    SynthVideo,
    best_video_dir,
    read_lines,
    scan_videos,
    select_classes,
    snake,
    subdirs,
)

_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
_CODES = {"0": "unused", "1": "train", "2": "test"}
# the six trailing fields: visible body part, camera motion, number of people, viewpoint, quality, clip number
_ATTRIBUTES = re.compile(r"^(?P<source>.+)_[fhlu]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:bad|med|goo)_\d+$",
                         re.IGNORECASE)


# ----------------------------------------------------------------------------------- reader


def group_of(name: str) -> str | None:
    """The source video of an HMDB-51 clip: ``April_09_brush_hair_u_nm_np1_ba_goo_0.avi`` -> ``April_09_brush_hair``;
    None when the name does not end in the six attribute fields."""
    m = _ATTRIBUTES.match(PurePosixPath(name).stem)
    return m["source"] if m else None


def _split_files_in(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_file() and _SPLIT_FILE.match(e.name))
    except OSError:
        return []


def find_splits(root: Path) -> Path | None:
    """The folder holding ``<class>_test_splitN.txt`` files: ROOT, ROOT/testTrainMulti_7030_splits, one down."""
    candidates = [root, root / "testTrainMulti_7030_splits", *subdirs(root),
                  root.parent / "testTrainMulti_7030_splits"]
    for cand in candidates:
        if _split_files_in(cand):
            return cand
    return None


def detect(root: Path) -> str | None:
    splits = find_splits(root)
    return f"found *_test_split*.txt in {splits}" if splits is not None else None


def read(root: Path, split: int, classes: Sequence[str] | None, **_: Any) -> Parsed:
    folder = find_splits(root)
    if folder is None:
        raise DatasetLayoutError(
            f"{root}: no <class>_test_splitN.txt files under ROOT or one folder down; unpack "
            "test_train_splits.rar (testTrainMulti_7030_splits/) into ROOT")
    by_class: dict[str, Path] = {}
    numbers: set[int] = set()
    for p in _split_files_in(folder):
        m = _SPLIT_FILE.match(p.name)
        assert m is not None
        numbers.add(int(m["n"]))
        if int(m["n"]) == split:
            by_class[m["cls"]] = p
    if not by_class:
        raise DatasetLayoutError(f"{folder}: no *_test_split{split}.txt files; splits present: "
                                 f"{sorted(numbers)} (pass --split with one of them)")
    all_classes = sorted(by_class)
    selected = select_classes(all_classes, classes, source=f"HMDB-51 ({folder})")
    video_dir = best_video_dir([root, root / "hmdb51_org", root / "hmdb51", *subdirs(root)], all_classes) or root
    resolver = Resolver(scan_videos(video_dir, 2))
    notes: list[str] = []
    entries: list[Entry] = []
    odd_names = 0
    for label in selected:
        list_path = by_class[label]
        seen: set[str] = set()
        for lineno, line in read_lines(list_path):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in _CODES:
                raise DatasetLayoutError(f"{list_path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
            name = parts[0]
            if name in seen:
                notes.append(f"{list_path.name}:{lineno}: {name} listed twice; kept the first")
                continue
            seen.add(name)
            group = group_of(name)
            if group is None:
                odd_names += 1
                group = PurePosixPath(name).stem
            entries.append(Entry(listed=f"{label}/{name}", label=label, split=_CODES[parts[1]], group=group))
    for e in entries:
        e.path = resolver.resolve(e.listed)
    if resolver.fixed:
        notes.append(f"{resolver.fixed} listed video(s) found with another case or extension")
    if odd_names:
        notes.append(f"{odd_names} video name(s) without HMDB-51's _<body>_<camera>_<people>_<view>_<quality>_<n> "
                     "ending; each is a group of its own")
    sides: dict[str, set[str]] = {}
    for e in entries:
        if e.split != "unused":
            sides.setdefault(e.group, set()).add(e.split)
    straddling = sorted(g for g, s in sides.items() if len(s) > 1)
    if straddling:
        notes.append(f"{len(straddling)} source video(s) have clips in both train and test in the split files "
                     f"(e.g. {straddling[0]})")
    return Parsed(video_dir, selected, entries, source=f"{folder}/*_test_split{split}.txt",
                  unlisted=resolver.unlisted({c.casefold() for c in selected}), notes=notes,
                  misplaced=resolver.misplaced)


# ----------------------------------------------------------------------------------- writer (synth)


def class_name(name: str) -> str:
    """``TurnClockwise`` -> ``turn_clockwise`` (HMDB-51 spells classes in lower snake case)."""
    return snake(name)


def split_codes(seed: int, index: int, groups: int, split: int) -> dict[int, int]:
    """HMDB-51 split codes per group of the class with random key ``index``: 1 train, 2 test, 0 unused
    (about 70/30; one unused group from 10 groups on)."""
    rng = np.random.default_rng([seed, index, split, 15485863])
    order = [int(g) + 1 for g in rng.permutation(groups)]
    n_test = max(1, round(0.3 * groups))
    n_unused = 1 if groups >= 10 else 0
    codes = {}
    for i, g in enumerate(order):
        codes[g] = 2 if i < n_test else (0 if i < n_test + n_unused else 1)
    return codes


def synth_path(cls: SynthClass, group: int, clip: int, groups: int, seed: int, ext: str) -> tuple[str, str, str]:
    """``(path, label, split)`` of one generated video, named like HMDB-51's clips of one source video."""
    label = class_name(cls.name)
    return f"{label}/Synth{cls.name}Scene{group:02d}_{label}_f_nm_np1_fr_goo_{clip - 1}.{ext}", label, "-"


def write_splits(root: Path, classes: Sequence[SynthClass], videos: Sequence[SynthVideo], groups: int,
                 seed: int) -> None:
    """``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`` with ``name.avi C `` lines."""
    d = root / "testTrainMulti_7030_splits"
    d.mkdir(parents=True, exist_ok=True)
    for cls in classes:
        label = class_name(cls.name)
        mine = [v for v in videos if v.synth_class == cls.name]
        for split in (1, 2, 3):
            codes = split_codes(seed, cls.index, groups, split)
            text = "".join(f"{Path(v.path).name} {codes[v.group]} \n" for v in mine)
            (d / f"{label}_test_split{split}.txt").write_text(text)
