"""The public dataset layouts, one module each, and the dict that dispatches to them.

Each layout module has a reader (``detect(root) -> evidence | None`` and ``read(root, split=, classes=,
fractions=, seed=) -> Parsed``); the layouts that :mod:`actionlab.synth.families` writes also have a writer
(``synth_path(cls, group, clip, groups, seed, ext) -> (path, label, split)`` and ``write_splits(root, classes,
videos, groups, seed)``).

- ``ucf101``: ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` + ``ucfTrainTestlist/``; group ``gNN``.
- ``hmdb51``: ``<class>/<video>.avi`` + ``<class>_test_splitN.txt``; group = source video.
- ``kinetics``: annotation CSVs + ``<youtube_id>_<start>_<end>.mp4``; group = youtube id; ships a val split.
- ``ucf11``: ``<class>/v_<x>_NN/v_<x>_NN_MM.mpg``; group = the ``v_<x>_NN`` folder; self-split.
- ``folders``: ``<class>/[<sub>/]<video>``; group ``gNN``, sub-folder or stem; self-split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from actionlab.data.layouts import folders, hmdb51, kinetics, ucf11, ucf101
from actionlab.data.layouts.common import DatasetLayoutError, Parsed


@dataclass(frozen=True)
class Layout:
    """One layout's functions and what its files provide."""

    name: str
    detect: Callable[[Path], str | None]
    """Evidence that ``root`` holds this layout (for ``layout="auto"``), or None."""
    read: Callable[..., Parsed]
    official_splits: tuple[str, ...]
    """Splits the dataset's own files assign (empty: actionlab splits the groups itself)."""
    numbered: bool
    """The official splits come in numbered variants (``--split 1..3``)."""
    synth_path: Callable[..., tuple[str, str, str]] | None
    """``(cls, group, clip, groups, seed, ext) -> (path, label, split)`` where synth writes this layout."""
    write_splits: Callable[..., None] | None
    """``(root, classes, videos, groups, seed)``: the layout's split files for generated videos."""

    @property
    def ships_val(self) -> bool:
        """The dataset brings its own validation split, so none is carved from train."""
        return "val" in self.official_splits


def _layout(module: ModuleType, official_splits: tuple[str, ...], numbered: bool = False) -> Layout:
    name = module.__name__.rsplit(".", 1)[-1]
    return Layout(name, module.detect, module.read, official_splits, numbered,
                  getattr(module, "synth_path", None), getattr(module, "write_splits", None))


LAYOUTS: dict[str, Layout] = {
    # detection tries them in this order
    "ucf101": _layout(ucf101, ("train", "test"), numbered=True),
    "hmdb51": _layout(hmdb51, ("train", "test"), numbered=True),
    "kinetics": _layout(kinetics, ("train", "val")),
    "ucf11": _layout(ucf11, ()),
    "folders": _layout(folders, ()),
}
NAMES = tuple(LAYOUTS)
"""Every layout ``index_dataset`` reads."""
SYNTH_NAMES = tuple(name for name, lay in LAYOUTS.items() if lay.synth_path is not None)
"""The layouts ``make_synthetic_dataset`` writes."""


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"layout must be one of {NAMES}, got {name!r}")
    return LAYOUTS[name]


def detect_layout(root: str | Path) -> tuple[str, str]:
    """``(layout, evidence)`` for a dataset folder, checked in the order ucf101, hmdb51, kinetics, ucf11, folders."""
    root = Path(root)
    for name, lay in LAYOUTS.items():
        evidence = lay.detect(root)
        if evidence is not None:
            return name, evidence
    raise DatasetLayoutError(
        f"{root}: no recognizable dataset layout. Expected one of: UCF-101 (ucfTrainTestlist/classInd.txt + "
        "<Class>/*.avi), HMDB-51 (<class>_test_splitN.txt files + <class>/*.avi), Kinetics (CSV with "
        "label,youtube_id,time_start,time_end,split + <youtube_id>_<start>_<end>.mp4), UCF-11 "
        "(<class>/v_<name>_NN/*.mpg) or class folders (<class>/*.mp4). Check ROOT, or pass --layout")
