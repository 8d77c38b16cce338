"""UCF-11 (YouTube Action): ``ROOT/<class>/v_<x>_NN/v_<x>_NN_MM.mpg``.

No split files: groups (the ``v_<x>_NN`` folders, one scene each) go to train/val/test by a seeded hash
(:func:`~actionlab.data.layouts.common.assign_group_splits`). The class folder name is the label (the
real quirk: ``basketball/`` holds ``v_shooting_NN`` groups).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from actionlab.data.layouts.common import (
    DatasetLayoutError,
    Parsed,
    has_video,
    scan_videos,
    self_split,
    subdirs,
)

_GROUP_DIR = re.compile(r"^v_.+_\d+$", re.IGNORECASE)


def _looks_ucf11(root: Path) -> bool:
    for cls in subdirs(root):
        for sub in subdirs(cls):
            if _GROUP_DIR.match(sub.name) and has_video(sub):
                return True
    return False


def find_root(root: Path) -> Path | None:
    """ROOT itself, or its single wrapper folder (``UCF11_updated_mpg/``), when it holds UCF-11 class folders."""
    if _looks_ucf11(root):
        return root
    subs = subdirs(root)
    if len(subs) == 1 and _looks_ucf11(subs[0]):
        return subs[0]
    return None


def detect(root: Path) -> str | None:
    base = find_root(root)
    return f"found <class>/v_<name>_NN/ video folders in {base}" if base is not None else None


def group_of(path: str) -> str:
    """``<class>/v_x_01/v_x_01_02.mpg`` -> ``v_x_01``; a video directly in its class folder is its own group."""
    parts = path.split("/")
    return parts[1] if len(parts) == 3 else PurePosixPath(path).stem


def read(root: Path, classes: Sequence[str] | None, fractions: Sequence[float], seed: int, **_: Any) -> Parsed:
    base = find_root(root)
    if base is None:
        raise DatasetLayoutError(f"{root}: no <class>/v_<name>_NN/ folders with videos; UCF-11 videos live in "
                                 "ROOT/<class>/v_<name>_NN/v_<name>_NN_MM.mpg")
    files = scan_videos(base, 3)  # <class>/<group>/<video> (and stray <class>/<video>)
    return self_split(base, files, group_of, classes, fractions, seed, source="<class>/v_<name>_NN/ folders",
                      layout="ucf11")
