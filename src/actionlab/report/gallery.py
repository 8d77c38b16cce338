"""The test videos behind the numbers: for each run, the ones it got most wrong and the ones it fixed against
its baseline, as frame strips for the HTML report (JPEG data URIs; a click opens a larger view).

Videos are found through the run's ``config.yaml``: the manifest a video run trained from (``meta.manifest``),
or for a temporal run its feature store (``meta.features``), whose provenance records the dataset root
(``manifest_root``; for stores made before that, a manifest CSV beside the store with the store's
``manifest_checksum``). Predictions are keyed by manifest path, so ``root / key`` is the file. When the videos
are gone the gallery lists the cases by name and says why.

``saliency`` (optional) draws a case's strip with the run's heat maps instead of plain frames:
``(video path, class index) -> PIL image`` (see :mod:`actionlab.predict.explain`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.predictions import Predictions
from actionlab.report.escape import esc
from actionlab.report.run_data import RunData
from actionlab.report.strips import data_uri, frame_strip

logger = logging.getLogger(__name__)

__all__ = ["Case", "Gallery", "build_gallery", "gallery_html", "most_fixed", "most_wrong", "video_root"]

StripMaker = Callable[[Path, int], Any]


@dataclass
class Case:
    """One test video: its true and predicted class and how sure the run was."""

    key: str
    label: int
    pred: int
    p_label: float
    p_pred: float
    base_pred: int | None = None
    base_p_label: float | None = None
    image: str | None = None
    """Data URI of the strip; None when the video could not be read."""
    problem: str | None = None


@dataclass
class Gallery:
    """A run's cases for the report, with the reason when their videos cannot be shown."""

    wrong: list[Case] = field(default_factory=list)
    fixed: list[Case] = field(default_factory=list)
    base_name: str = ""
    note: str | None = None
    saliency: bool = False


def _probs(scores: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(scores))


def most_wrong(preds: Predictions, n: int) -> list[Case]:
    """The ``n`` misclassified labelled videos with the lowest probability on their true class."""
    p = preds.labelled()
    probs = _probs(p.scores)
    rows = np.arange(p.num_videos)
    p_label, pred = probs[rows, p.labels], p.preds
    wrong = np.flatnonzero(pred != p.labels)
    order = wrong[np.lexsort((wrong, p_label[wrong]))][:n]
    return [Case(str(p.keys[i]), int(p.labels[i]), int(pred[i]), float(p_label[i]), float(probs[i, pred[i]]))
            for i in order]


def most_fixed(preds: Predictions, base: Predictions, n: int) -> list[Case]:
    """The ``n`` videos the baseline got wrong and this run right, by the largest gain in the true class's
    log-probability. Only videos both runs predicted count."""
    p = preds.labelled()
    known = set(base.keys.tolist())
    keep = np.array([k in known for k in p.keys.tolist()], dtype=bool)
    if not keep.any():
        return []
    keys = p.keys[keep].tolist()
    b = base.align(keys)
    lp, lb = log_softmax(p.scores[keep]), log_softmax(b.scores)
    labels, rows = p.labels[keep], np.arange(len(keys))
    pred, bpred = lp.argmax(1), lb.argmax(1)
    fixed = np.flatnonzero((pred == labels) & (bpred != labels))
    gain = lp[rows, labels] - lb[rows, labels]
    order = fixed[np.lexsort((fixed, -gain[fixed]))][:n]
    return [Case(keys[i], int(labels[i]), int(pred[i]), float(np.exp(lp[i, labels[i]])),
                 float(np.exp(lp[i, pred[i]])), int(bpred[i]), float(np.exp(lb[i, labels[i]]))) for i in order]


def _manifest_beside(store: Path, checksum: str | None) -> Path | None:
    """A manifest CSV in the store's folder with the store's manifest checksum (stores made before the
    provenance recorded the dataset root)."""
    from actionlab.data.manifest import read_manifest

    if not checksum:
        return None
    for csv in sorted(store.parent.glob("*.csv")):
        try:
            if read_manifest(csv).checksum() == checksum:
                return csv
        except (OSError, ValueError):
            continue
    return None


def _locate(recorded: Any, run: RunData) -> Path:
    """A path recorded in ``config.yaml``: as it is, or (relative paths, recorded from wherever training ran)
    under the first folder above the run directory that has it."""
    path = Path(str(recorded))
    if path.is_absolute() or path.exists() or run.path is None:
        return path
    for parent in Path(run.path).resolve().parents:
        if (parent / path).exists():
            return parent / path
    return path


def video_root(run: RunData) -> tuple[Path | None, str | None]:
    """``(dataset root, None)`` where ``root / key`` is a test video of ``run``, or ``(None, why not)``."""
    from actionlab.data.manifest import read_manifest

    meta = run.config.get("meta") if isinstance(run.config.get("meta"), Mapping) else {}
    manifest = meta.get("manifest")
    if manifest is None and meta.get("features"):
        store = _locate(meta["features"], run)
        prov = dict(meta.get("store_provenance") or {})
        if not prov.get("manifest_root") and store.is_file():
            from actionlab.features.store import FeatureStore

            with FeatureStore(store) as fs:
                prov = fs.provenance
        if prov.get("manifest_root"):
            root = Path(str(prov["manifest_root"]))
            return (root, None) if root.is_dir() else (None, f"the dataset folder {root} is gone")
        if not store.is_file():
            return None, f"its feature store {store} is gone, and with it the way to the videos"
        manifest = _manifest_beside(store, prov.get("manifest_checksum"))
        if manifest is None:
            return None, f"the feature store {store} does not record where its videos are (made by an older actionlab)"
    if manifest is None:
        return None, "its config.yaml records no manifest or feature store"
    path = _locate(manifest, run)
    if not path.is_file():
        return None, f"its manifest {path} is gone"
    try:
        root = read_manifest(path).root
    except (OSError, ValueError) as err:
        return None, f"its manifest {path} cannot be read ({err})"
    return (root, None) if Path(root).is_dir() else (None, f"the dataset folder {root} is gone")


def plain_strip(path: Path, frames: int = 6, height: int = 112) -> Any:
    """``frames`` evenly spaced frames of a video side by side (a PIL image), decoded at short side ``height``."""
    from actionlab.data.sampling import uniform_indices
    from actionlab.data.video.decode import VideoReader

    with VideoReader(path, size=height) as reader:
        tiles = reader.get_frames(uniform_indices(reader.info.num_frames, frames))
    return frame_strip(tiles)


def _draw(cases: Sequence[Case], root: Path, saliency: StripMaker | None, frames: int, height: int) -> None:
    for case in cases:
        path = root / case.key
        if not path.is_file():
            case.problem = "video file missing"
            continue
        try:
            img = saliency(path, case.pred) if saliency is not None else plain_strip(path, frames, height)
            case.image = data_uri(img, "JPEG", quality=72)
        except (OSError, ValueError, RuntimeError) as err:
            logger.warning("%s: no strip for the report (%s)", path, err)
            case.problem = f"cannot be read: {type(err).__name__}"


def build_gallery(run: RunData, base: RunData | None, n: int = 6, frames: int = 6, height: int = 112,
                  saliency: StripMaker | None = None) -> Gallery:
    """The ``n`` most wrong test videos of ``run`` and the ``n`` it fixed against ``base``, with their strips."""
    g = Gallery(base_name=base.name if base is not None else "", saliency=saliency is not None)
    if run.predictions is None or n <= 0:
        g.note = None if n <= 0 else "no test predictions (predictions_test.npz) in the run directory"
        return g
    g.wrong = most_wrong(run.predictions, n)
    if base is not None and base is not run and base.predictions is not None \
            and list(base.classes) == list(run.classes):
        g.fixed = most_fixed(run.predictions, base.predictions, n)
    root, why = video_root(run)
    if root is None:
        g.note = f"The test videos cannot be shown: {why}."
        return g
    _draw(g.wrong + g.fixed, root, saliency, frames, height)
    return g


# ----------------------------------------------------------------------------------- HTML


def _case_html(c: Case, classes: Sequence[str], base_name: str) -> str:
    true, pred = esc(classes[c.label]), esc(classes[c.pred])
    lines = [f'<b>{true}</b> <span class="muted">true</span> → <b class="{"up" if c.pred == c.label else "down"}">'
             f'{pred}</b> {c.p_pred:.0%}']
    if c.base_pred is not None:
        lines.append(f'<span class="muted">{esc(base_name)} said {esc(classes[c.base_pred])} '
                     f'(true class {c.base_p_label:.0%}, now {c.p_label:.0%})</span>')
    elif c.pred != c.label:
        lines.append(f'<span class="muted">true class {c.p_label:.0%}</span>')
    lines.append(f'<span class="key">{esc(c.key)}</span>')
    caption = "<br>".join(lines)
    if c.image is None:
        problem = f'<div class="vmissing">{esc(c.problem or "no video")}</div>'
        return f'<figure class="vcase">{problem}<figcaption>{caption}</figcaption></figure>'
    alt = f"frames of {c.key}: true {classes[c.label]}, predicted {classes[c.pred]}"
    return (f'<figure class="vcase" tabindex="0" role="button" aria-label="{esc("enlarge " + c.key)}">'
            f'<img src="{c.image}" alt="{esc(alt)}"><figcaption>{caption}</figcaption></figure>')


def gallery_html(cases: Sequence[Case], classes: Sequence[str], g: Gallery, empty: str) -> str:
    """A grid of case figures (or the note and a list of names when the videos cannot be shown)."""
    if not cases:
        return f'<div class="empty">{esc(empty)}</div>'
    note = f'<p class="muted">{esc(g.note)}</p>' if g.note else ""
    hint = " Heat maps: where the run's score for the predicted class comes from." if g.saliency else ""
    head = f'<p class="muted">Frames evenly spaced through each video; click to enlarge.{hint}</p>' \
        if not g.note else ""
    return note + head + '<div class="vgrid">' + "".join(_case_html(c, classes, g.base_name) for c in cases) + \
        "</div>"


CSS = """
.vgrid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px;margin:6px 0 4px}
.vcase{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fbfcfe;font-size:12.5px;line-height:1.35}
.vcase[role=button]{cursor:zoom-in} .vcase[role=button]:hover,.vcase:focus{border-color:var(--accent);outline:none}
.vcase img{width:100%;height:auto;display:block;border-radius:4px}
.vcase figcaption{margin-top:5px;overflow-wrap:anywhere} .vcase .key{color:var(--muted);font-size:11.5px}
.vmissing{padding:18px 8px;text-align:center;color:var(--muted);background:#f1f5f9;border-radius:4px}
#lightbox{position:fixed;inset:0;background:rgba(15,23,42,.82);display:flex;align-items:center;justify-content:center;
z-index:20;padding:24px} #lightbox[hidden]{display:none}
#lightbox figure{margin:0;background:#fff;border-radius:10px;padding:12px;max-width:96vw;max-height:94vh;overflow:auto}
#lightbox img{display:block;width:min(92vw,calc(var(--w) * 2px));height:auto;image-rendering:auto}
#lightbox figcaption{margin-top:8px;font-size:14px} #lightbox .key{color:var(--muted)}
#lightbox button{position:fixed;top:14px;right:18px;font-size:26px;line-height:1;background:none;border:0;color:#fff;cursor:pointer}
"""

LIGHTBOX = ('<div id="lightbox" hidden role="dialog" aria-modal="true" aria-label="video frames">'
            '<button type="button" aria-label="close">×</button><figure><img alt=""><figcaption></figcaption>'
            "</figure></div>")

# A click (or Enter) on a case opens its strip at up to twice its size; a click outside it or Escape closes.
JS = """
(function(){
  var box=document.getElementById('lightbox');if(!box)return;
  var img=box.querySelector('img'),cap=box.querySelector('figcaption');
  function open(fig){var src=fig.querySelector('img');img.src=src.src;img.alt=src.alt;
    box.style.setProperty('--w',src.naturalWidth||600);cap.innerHTML=fig.querySelector('figcaption').innerHTML;
    box.hidden=false;box.querySelector('button').focus();}
  function close(){box.hidden=true;img.removeAttribute('src');}
  document.querySelectorAll('.vcase[role=button]').forEach(function(fig){
    fig.addEventListener('click',function(){open(fig);});
    fig.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();open(fig);}});
  });
  box.addEventListener('click',function(e){if(e.target===box||e.target.tagName==='BUTTON')close();});
  document.addEventListener('keydown',function(e){if(e.key==='Escape'&&!box.hidden)close();});
})();
"""
