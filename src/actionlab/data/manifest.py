"""The dataset manifest: one CSV row per video, the file every later stage starts from.

File format (UTF-8, ``\\n`` line ends)::

    # actionlab-manifest v1 {"root": "/data/UCF-101", "layout": "ucf101", "classes": ["ApplyEyeMakeup", ...]}
    path,label,label_index,split,group,num_frames,fps,duration
    ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi,ApplyEyeMakeup,0,train,g08,121,25.0,4.84
    ...

``path`` is relative to ``root`` (POSIX separators). A relative ``root`` in the header is taken relative to
the manifest file's folder, so a dataset and its manifest can move together.

Two optional columns may follow: ``width,height``, the displayed size of each video (after its rotation and
sample aspect ratio; 0 when unknown). ``actionlab index`` writes them when it probed the videos; a manifest
without them (written before they existed, or indexed with ``--no-probe``) reads as before, with sizes 0.
They are left out of :meth:`Manifest.checksum`, so adding them does not orphan the feature stores and runs
built from the manifest (what the decoder outputs is recorded in the stores' decode provenance).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from actionlab.types import SPLITS, VideoRecord
from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

MAGIC = "# actionlab-manifest v1 "
COLUMNS = ("path", "label", "label_index", "split", "group", "num_frames", "fps", "duration")
"""The columns every manifest has, in this order."""
SIZE_COLUMNS = ("width", "height")
"""Optional columns after :data:`COLUMNS`: the displayed size of each video (0: unknown)."""


class ManifestError(ValueError):
    """A manifest file (or a request against one) is malformed; the message names the file and the fix."""


def _normalize_name(name: str) -> str:
    # "Playing Guitar", "playing_guitar" and "playing guitar" all name one Kinetics class
    return " ".join(name.replace("_", " ").split()).casefold()


def resolve_class_names(requested: Iterable[str], available: Sequence[str], source: str = "the dataset") -> list[str]:
    """Map user-typed class names onto the dataset's spelling, keeping the requested order.

    Exact names win; otherwise a unique case/underscore/space-insensitive match is accepted
    (``playing_guitar`` -> ``playing guitar``). Unknown or duplicate names raise :class:`ManifestError`
    listing the valid names.
    """
    exact = set(available)
    loose: dict[str, list[str]] = {}
    for name in available:
        loose.setdefault(_normalize_name(name), []).append(name)
    out: list[str] = []
    unknown: list[str] = []
    for name in requested:
        name = name.strip()
        if name in exact:
            out.append(name)
            continue
        matches = loose.get(_normalize_name(name), [])
        if len(matches) == 1:
            out.append(matches[0])
        else:
            unknown.append(name)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        raise ManifestError(
            f"unknown class name(s) {', '.join(hints)} for {source}; valid names ({len(available)}): "
            f"{', '.join(available)}")
    dupes = [name for name, n in Counter(out).items() if n > 1]
    if dupes:
        raise ManifestError(f"class name(s) requested twice: {', '.join(dupes)}; list each class once")
    return out


@dataclass(frozen=True)
class Manifest:
    """A dataset as a list of :class:`~actionlab.types.VideoRecord` over a class list.

    ``records[i].label_index`` indexes ``classes``; ``records[i].path`` is relative to ``root``.
    """

    root: Path
    classes: list[str]
    records: list[VideoRecord]
    layout: str = "folders"
    """Where the manifest came from: ``ucf101``, ``hmdb51``, ``kinetics``, ``ucf11``, ``folders`` or ``synthetic``."""
    _by_split: dict[str, list[VideoRecord]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "classes", list(self.classes))
        object.__setattr__(self, "records", list(self.records))
        dupes = [c for c, n in Counter(self.classes).items() if n > 1]
        if dupes:
            raise ManifestError(f"duplicate class names in manifest: {', '.join(dupes)}")
        seen: set[str] = set()
        for rec in self.records:
            if not 0 <= rec.label_index < len(self.classes) or self.classes[rec.label_index] != rec.label:
                raise ManifestError(
                    f"record {rec.path}: label {rec.label!r} with label_index {rec.label_index} does not match "
                    f"the class list ({len(self.classes)} classes); rebuild the manifest with `actionlab index`")
            if rec.path in seen:
                raise ManifestError(f"record {rec.path} appears twice in the manifest; each video must be listed once")
            seen.add(rec.path)
        by_split: dict[str, list[VideoRecord]] = {s: [] for s in SPLITS}
        for rec in self.records:
            by_split[rec.split].append(rec)
        object.__setattr__(self, "_by_split", by_split)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> list[VideoRecord]:
        """The records of one split (``train``, ``val``, ``test`` or ``unused``), in manifest order."""
        if name not in SPLITS:
            raise ManifestError(f"unknown split {name!r}; choose one of {SPLITS}")
        return list(self._by_split[name])

    def splits(self) -> list[str]:
        """Names of the non-empty splits, in the order of :data:`actionlab.types.SPLITS`."""
        return [s for s in SPLITS if self._by_split[s]]

    def abspath(self, record: VideoRecord) -> Path:
        """Absolute path of a record's video (``root / record.path``; absolute record paths pass through)."""
        path = Path(record.path)
        return path if path.is_absolute() else self.root / path

    def checksum(self) -> str:
        """sha256 of the canonical CSV text (classes, layout and rows; ``root`` and the optional size columns
        left out, so moving a dataset or recording its sizes keeps its checksum while any change of label,
        split, group or frame count changes it)."""
        return hashlib.sha256(manifest_text(self, include_root=False, sizes=False).encode("utf-8")).hexdigest()

    @property
    def has_sizes(self) -> bool:
        """True when some record knows its displayed size (the manifest then writes the size columns)."""
        return any(r.width > 0 and r.height > 0 for r in self.records)

    def subset(self, classes: Sequence[str]) -> Manifest:
        """Keep only ``classes``, re-indexed ``0..K-1`` in the given order (names as in :attr:`classes`,
        case/underscore-insensitive matches accepted). Unknown names raise, listing the valid ones."""
        names = resolve_class_names(classes, self.classes, source=f"this manifest ({self.layout})")
        index = {name: i for i, name in enumerate(names)}
        records = [replace(r, label_index=index[r.label]) for r in self.records if r.label in index]
        return Manifest(self.root, names, records, self.layout)

    def summary(self) -> dict[str, Any]:
        """Data for printing: classes, videos per split, per-class counts per split, frame statistics."""
        per_class: dict[str, dict[str, int]] = {c: {s: 0 for s in self.splits()} for c in self.classes}
        for rec in self.records:
            per_class[rec.label][rec.split] += 1
        frames = [r.num_frames for r in self.records if r.num_frames >= 0]
        out: dict[str, Any] = {
            "root": str(self.root),
            "layout": self.layout,
            "num_classes": len(self.classes),
            "classes": list(self.classes),
            "num_videos": len(self.records),
            "videos_per_split": {s: len(self._by_split[s]) for s in self.splits()},
            "per_class": per_class,
            "groups_per_split": {s: len({r.group for r in self._by_split[s]}) for s in self.splits()},
        }
        if frames:
            out["frames"] = {"min": min(frames), "mean": sum(frames) / len(frames), "max": max(frames),
                             "known": len(frames)}
        return out


# ----------------------------------------------------------------------------------- (de)serialization


def _fmt_float(x: float) -> str:
    return repr(float(x))  # shortest text that round-trips exactly


def manifest_text(manifest: Manifest, include_root: bool = True, sizes: bool | None = None) -> str:
    """The CSV text of a manifest as :func:`write_manifest` writes it.

    ``sizes``: write the ``width,height`` columns (``None``: when some record knows its size, so a manifest
    without sizes is written exactly as before the columns existed).
    """
    if sizes is None:
        sizes = manifest.has_sizes
    meta: dict[str, Any] = {"root": str(manifest.root)} if include_root else {}
    meta.update(layout=manifest.layout, classes=manifest.classes)
    buf = io.StringIO()
    buf.write(MAGIC + json.dumps(meta, ensure_ascii=False) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS + SIZE_COLUMNS if sizes else COLUMNS)
    for r in manifest.records:
        row: list[Any] = [Path(r.path).as_posix(), r.label, r.label_index, r.split, r.group, r.num_frames,
                          _fmt_float(r.fps), _fmt_float(r.duration)]
        writer.writerow(row + [r.width, r.height] if sizes else row)
    return buf.getvalue()


def write_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write ``manifest`` to ``path`` atomically (a crash leaves the old file or the new one)."""
    path = Path(path)
    atomic_write_text(path, manifest_text(manifest))
    logger.info("wrote manifest %s (%d videos, %d classes)", path, len(manifest), manifest.num_classes)
    return path


def _header_line(first: str) -> str:
    """The ``# actionlab-manifest`` line, also after a spreadsheet re-saved the file: it split the line at its
    commas into cells (quoted, quotes doubled, maybe padded with empty cells); joining the cells restores it."""
    if first.startswith(MAGIC.rstrip()) or not first.startswith('"'):
        return first
    cells = next(csv.reader([first]), [])
    while cells and not cells[-1]:
        cells.pop()
    return ",".join(cells)


def _cells(row: list[str], width: int = len(COLUMNS)) -> list[str]:
    """A row without the empty cells a spreadsheet pads rows with (beyond the ``width`` columns of the header)."""
    while len(row) > width and not row[-1].strip():
        row = row[:-1]
    return row


def _check_header(got: tuple[str, ...], source: str) -> tuple[str, ...]:
    """The columns of the header line ``got``: :data:`COLUMNS`, optionally followed by :data:`SIZE_COLUMNS`.

    Anything else (a missing, unknown or moved column, one size column without the other) is an error.
    """
    allowed = COLUMNS + SIZE_COLUMNS
    if got in (COLUMNS, allowed):
        return got
    wanted = allowed if set(SIZE_COLUMNS) & set(got) else COLUMNS
    if set(wanted) - set(got):
        what = f"missing column(s) {', '.join(c for c in wanted if c not in got)}"
    elif set(got) - set(allowed):
        what = f"unknown column(s) {', '.join(c for c in got if c not in allowed)}"
    else:
        what = "the columns are in another order"
    raise ManifestError(f"{source}:2: {what}: expected the header {','.join(COLUMNS)} (optionally followed by "
                        f"{','.join(SIZE_COLUMNS)}), got {','.join(got)}; restore the header line (or rebuild the "
                        "manifest with `actionlab index`)")


def parse_manifest(text: str, source: str = "<text>", base: Path | None = None) -> Manifest:
    """Parse manifest CSV text; ``base`` resolves a relative ``root`` (the manifest file's folder).

    A file re-saved by a spreadsheet is read: a UTF-8 byte-order mark, CRLF line ends, a quoted first line and
    empty padding cells are undone. Anything else that is off is a :class:`ManifestError` naming the file, the
    line and the column.
    """
    text = text.removeprefix("\ufeff")
    first, _, rest = text.partition("\n")
    first = _header_line(first.rstrip("\r"))
    if not first.startswith(MAGIC.rstrip()):
        shown = first[:60] + ("..." if len(first) > 60 else "")
        raise ManifestError(
            f"{source}:1: not an actionlab manifest: the first line must start with {MAGIC.strip()!r}, it is "
            f"{shown!r}; create one with `actionlab index ROOT -o manifest.csv`")
    try:
        meta = json.loads(first[len(MAGIC.rstrip()):])
        classes = [str(c) for c in meta["classes"]]
        layout = str(meta.get("layout", "folders"))
        root = Path(meta.get("root", "."))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"{source}:1: malformed manifest header ({exc}); rebuild it with `actionlab index`") from None
    if not root.is_absolute() and base is not None:
        root = base / root
    reader = csv.reader(io.StringIO(rest))
    header = next(reader, None)
    columns = _check_header(tuple(h.strip() for h in _cells(header or [], 0)), source)
    records = []
    index = {c: i for i, c in enumerate(classes)}
    for lineno, row in enumerate(reader, start=3):
        row = _cells(row, len(columns))
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise ManifestError(f"{source}:{lineno}: expected {len(columns)} fields "
                                f"({','.join(columns)}), got {len(row)}: {row}")
        records.append(_record(dict(zip(columns, row)), source, lineno, index))
    try:
        return Manifest(root, classes, records, layout)
    except ManifestError as exc:
        raise ManifestError(f"{source}: {exc}") from None


def _record(row: dict[str, str], source: str, lineno: int, index: dict[str, int]) -> VideoRecord:
    """One manifest row (column -> cell); a bad value is an error naming the file, line and column."""
    def value(column: str, kind: type, what: str) -> Any:
        if column not in row:
            return kind(0)  # an optional column this manifest does not have: unknown
        text = row[column].strip()
        try:
            if kind is int and not text.lstrip("-").isdigit() and float(text).is_integer():
                return int(float(text))  # "121.0": a spreadsheet's rendering of 121
            number = kind(text)
            if kind is float and number != number:
                raise ValueError
            return number
        except ValueError:
            raise ManifestError(f"{source}:{lineno}: column {column!r}: expected {what}, got {text!r}; fix the "
                                "value (or rebuild the manifest with `actionlab index`)") from None

    label, split = row["label"], row["split"].strip()
    label_index = value("label_index", int, "an integer class index")
    if split not in SPLITS:
        raise ManifestError(f"{source}:{lineno}: column 'split': expected one of {', '.join(SPLITS)}, got {split!r}")
    if label not in index:
        raise ManifestError(f"{source}:{lineno}: column 'label': {label!r} is not in the header's class list "
                            f"({len(index)} classes); fix the label or the class list in line 1")
    if index[label] != label_index:
        raise ManifestError(f"{source}:{lineno}: column 'label_index': {label_index} does not match label "
                            f"{label!r}, which is class {index[label]} in line 1")
    size = "a whole number of pixels (0: unknown)"
    width, height = value("width", int, size), value("height", int, size)
    if width < 0 or height < 0:
        raise ManifestError(f"{source}:{lineno}: columns 'width','height': {width}x{height} is negative; use 0 "
                            "for an unknown size (or rebuild the manifest with `actionlab index`)")
    return VideoRecord(path=row["path"], label=label, label_index=label_index, split=split, group=row["group"],
                       num_frames=value("num_frames", int, "an integer frame count (-1: unknown)"),
                       fps=value("fps", float, "a number"), duration=value("duration", float, "a number of seconds"),
                       width=width, height=height)


def read_manifest(path: str | Path, root: str | Path | None = None) -> Manifest:
    """Read a manifest written by :func:`write_manifest`; ``root`` overrides the stored dataset root
    (for a dataset that moved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found; create it with `actionlab index ROOT -o {path}`")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV") from None
    manifest = parse_manifest(text, source=str(path), base=path.resolve().parent)
    if root is not None:
        manifest = Manifest(Path(root), manifest.classes, manifest.records, manifest.layout)
    return manifest
