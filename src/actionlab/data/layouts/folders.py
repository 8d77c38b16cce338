"""Class folders: ``ROOT/<class>/[<sub>/]<video>``, the layout of any home-made dataset.

Group = ``gNN`` from a ``_gNN_`` name, else the sub-folder, else the file stem. No split files: groups go
to train/val/test by a seeded hash (:func:`~actionlab.data.layouts.common.assign_group_splits`). Single
wrapper folders above the class folders are descended into.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from actionlab.data.layouts.common import Parsed, SynthClass, SynthVideo, scan_videos, self_split, unwrap

_GROUP = re.compile(r"_g(\d+)_", re.IGNORECASE)


# ----------------------------------------------------------------------------------- reader


def detect(root: Path) -> str | None:
    base = unwrap(root)
    if any("/" in f for f in scan_videos(base, 3)):
        return f"found video files in class folders under {base}"
    return None


def group_of(path: str) -> str:
    """``wave/v_wave_g03_c01.avi`` -> ``g03``; ``wave/session1/a.mov`` -> ``session1``; else the stem."""
    m = _GROUP.search(PurePosixPath(path).stem)
    if m:
        return f"g{m.group(1)}"
    parts = path.split("/")
    return parts[1] if len(parts) == 3 else PurePosixPath(path).stem


def read(root: Path, classes: Sequence[str] | None, fractions: Sequence[float], seed: int, **_: Any) -> Parsed:
    base = unwrap(root)
    parsed = self_split(base, scan_videos(base, 3), group_of, classes, fractions, seed,
                        source="<class>/ folders", layout="folders")
    if base != root:
        parsed.notes.append(f"took {base.relative_to(root)} as a wrapper folder holding the class folders")
    return parsed


# ----------------------------------------------------------------------------------- writer (synth)


def synth_path(cls: SynthClass, group: int, clip: int, groups: int, seed: int, ext: str) -> tuple[str, str, str]:
    """``(path, label, split)`` of one generated video."""
    return f"{cls.name}/{cls.name}_g{group:02d}_c{clip:02d}.{ext}", cls.name, "-"


def write_splits(root: Path, classes: Sequence[SynthClass], videos: Sequence[SynthVideo], groups: int,
                 seed: int) -> None:
    """Nothing: the class folders are the whole layout."""
