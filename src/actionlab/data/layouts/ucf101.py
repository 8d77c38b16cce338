"""UCF-101: ``ROOT/UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` plus ``ucfTrainTestlist/``.

``ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt}`` lie under ROOT or beside the video folder.
Labels come from the list path's folder mapped through ``classInd.txt``, never from file names
(``HandstandPushups/v_HandStandPushups_g01_c01.avi``). Group = ``gNN`` (the 25 groups of one actor/scene each);
split N tests groups ``7(N-1)+1 .. 7N``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

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
    subdirs,
)

_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


# ----------------------------------------------------------------------------------- reader


def find_lists(root: Path) -> Path | None:
    """The folder holding ``classInd.txt``: ROOT/ucfTrainTestlist, ROOT, one folder down, or beside ROOT."""
    candidates = [root / "ucfTrainTestlist", root]
    candidates += [d / "ucfTrainTestlist" for d in subdirs(root)]
    candidates.append(root.parent / "ucfTrainTestlist")
    for cand in candidates:
        if (cand / "classInd.txt").is_file():
            return cand
    return None


def detect(root: Path) -> str | None:
    lists = find_lists(root)
    return f"found {lists / 'classInd.txt'}" if lists is not None else None


def group_of(name: str) -> str | None:
    """``v_YoYo_g08_c01.avi`` -> ``g08``; None without a ``_gNN_cNN`` part."""
    m = _GROUP.search(name)
    return f"g{m.group(1)}" if m else None


def _read_class_ind(class_ind: Path) -> list[str]:
    all_classes: list[str] = []
    for lineno, line in read_lines(class_ind):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetLayoutError(f"{class_ind}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(all_classes) + 1:
            raise DatasetLayoutError(f"{class_ind}:{lineno}: class indices must run 1, 2, 3, ...; expected "
                                     f"{len(all_classes) + 1}, got {parts[0]} (restore the original classInd.txt)")
        all_classes.append(parts[1])
    if not all_classes:
        raise DatasetLayoutError(f"{class_ind} lists no classes; restore the original file")
    return all_classes


def read(root: Path, split: int, classes: Sequence[str] | None, **_: Any) -> Parsed:
    lists = find_lists(root)
    if lists is None:
        raise DatasetLayoutError(
            f"{root}: no ucfTrainTestlist/classInd.txt under ROOT, beside it or one folder down; unpack "
            "UCF101TrainTestSplits-RecognitionTask.zip next to the UCF-101 video folder")
    if split not in (1, 2, 3):
        raise DatasetLayoutError(f"UCF-101 has official splits 1, 2 and 3; got split={split}")
    class_ind = lists / "classInd.txt"
    all_classes = _read_class_ind(class_ind)
    exact = {c: c for c in all_classes}
    folded = {c.casefold(): c for c in all_classes}
    selected = select_classes(all_classes, classes, source=f"UCF-101 ({class_ind})")
    keep = set(selected)

    video_dir = best_video_dir([root / "UCF-101", root / "UCF101", root, lists.parent, *subdirs(root)],
                               all_classes) or root
    resolver = Resolver(scan_videos(video_dir, 2))
    notes: list[str] = []
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for kind, fname in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        list_path = lists / fname
        if not list_path.is_file():
            raise DatasetLayoutError(f"{list_path} not found; the ucfTrainTestlist folder needs {fname} for "
                                     f"split {split} (unpack the official split archive again)")
        for lineno, line in read_lines(list_path):
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
            group = group_of(name)
            if group is None:
                group = PurePosixPath(name).stem
                notes.append(f"{rel}: no _gNN_cNN_ in the name; its group is the file stem")
            entries.append(Entry(listed=rel, label=label, split=kind, group=group))
    for e in entries:
        e.path = resolver.resolve(e.listed)
    if resolver.fixed:
        notes.append(f"{resolver.fixed} listed path(s) matched a file with other case or extension")
    return Parsed(video_dir, selected, entries, source=f"{lists}/classInd.txt",
                  unlisted=resolver.unlisted({c.casefold() for c in selected}), notes=notes,
                  misplaced=resolver.misplaced)


# ----------------------------------------------------------------------------------- writer (synth)


def scaled_test_groups(groups: int, split: int) -> list[int]:
    """1-based groups in the test set of ``split`` (1..3), UCF-101's rule scaled to ``groups`` groups.

    UCF-101 has 25 groups: split 1 tests groups 1-7, split 2 groups 8-14, split 3 groups 15-21, and 22-25
    are always training. With ``groups`` groups the boundaries are ``round(k * 7 * groups / 25)``; fewer
    than 4 groups test one group per split (cycling).
    """
    if groups < 2:
        raise ValueError(f"the UCF-101 layout needs at least 2 groups per class, got {groups}")
    if groups < 4:
        return [(split - 1) % groups + 1]
    bounds = [0]
    for k in range(1, 4):
        b = max(bounds[-1] + 1, round(k * 7 * groups / 25))
        bounds.append(min(b, groups - (3 - k) - 1) if k < 3 else min(b, groups - 1))
    return list(range(bounds[split - 1] + 1, bounds[split] + 1))


def synth_path(cls: SynthClass, group: int, clip: int, groups: int, seed: int, ext: str) -> tuple[str, str, str]:
    """``(path, label, split)`` of one generated video."""
    name = cls.name
    return f"UCF-101/{name}/v_{name}_g{group:02d}_c{clip:02d}.{ext}", name, "-"


def write_splits(root: Path, classes: Sequence[SynthClass], videos: Sequence[SynthVideo], groups: int,
                 seed: int) -> None:
    """``ucfTrainTestlist/`` as distributed: CRLF lines, train lines with the 1-based class index."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {c.name}{crlf}" for i, c in enumerate(classes, 1)).encode())
    index = {c.name: i for i, c in enumerate(classes, 1)}
    for split in (1, 2, 3):
        test = set(scaled_test_groups(groups, split))
        train_lines, test_lines = [], []
        for v in videos:
            rel = v.path.split("/", 1)[1]  # relative to UCF-101/
            if v.group in test:
                test_lines.append(f"{rel}{crlf}")
            else:
                train_lines.append(f"{rel} {index[v.synth_class]}{crlf}")
        (lists / f"trainlist{split:02d}.txt").write_bytes("".join(train_lines).encode())
        (lists / f"testlist{split:02d}.txt").write_bytes("".join(test_lines).encode())
