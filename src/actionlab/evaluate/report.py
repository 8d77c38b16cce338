"""One self-contained HTML report (inline CSS, JS and SVG; no network) and a Markdown summary.

The report shows, for each run: learning curves from ``metrics.jsonl``, the confusion matrix as a heatmap,
per-class accuracy bars, the most confused pairs and the run's config; across runs: a comparison table
(e.g. single-frame vs temporal, seed 001), the classes a run improved or hurt most against a baseline, and
sweep tables with the best setting highlighted (seed 000).

Every string that comes from a dataset or a config (class names, file names, overrides) is HTML-escaped.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.evaluate.metrics import class_changes, confusion_matrix, summarize
from actionlab.evaluate.predictions import Predictions, load_predictions
from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["RunData", "load_run", "markdown_summary", "render_html", "write_report"]

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included, safe inside attributes)."""
    return html.escape(str(value), quote=True)


# ----------------------------------------------------------------------------------- run data


@dataclass
class RunData:
    """What the report needs from one run directory (see :func:`load_run`)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved config (nested dict from ``config.yaml``)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per epoch from ``metrics.jsonl`` (``epoch``, ``train_loss``, ``val_top1``, ...)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Final evaluation, as :func:`actionlab.evaluate.metrics.summarize` returns it."""
    classes: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    """``(K, K)`` counts, rows = true class."""
    predictions: Predictions | None = None
    """Video-level test predictions, used to compare runs class by class."""

    @property
    def model(self) -> str:
        model = self.config.get("model", {})
        return str(model.get("name", "?")) if isinstance(model, Mapping) else str(model)

    def preds_and_labels(self) -> tuple[list[str] | None, np.ndarray, np.ndarray] | None:
        """``(keys or None, labels, preds)`` of the labelled test videos, if known."""
        if self.predictions is not None:
            p = self.predictions.labelled()
            return p.keys.tolist(), p.labels, p.preds
        if "predictions" in self.metrics and "labels" in self.metrics:
            return None, np.asarray(self.metrics["labels"]), np.asarray(self.metrics["predictions"])
        return None


def _pick_metrics(data: Mapping[str, Any], split: str) -> dict[str, Any]:
    """``metrics.json`` may be a summary or ``{"test": summary, ...}``; return the summary."""
    if "top1" in data or "confusion_matrix" in data:
        return dict(data)
    for key in (split, "test", "eval"):
        if isinstance(data.get(key), Mapping):
            return dict(data[key])
    return dict(data)


def load_run(run_dir: str | Path, split: str = "test", name: str | None = None) -> RunData:
    """Read ``config.yaml``, ``metrics.jsonl``, ``metrics.json`` and ``predictions_<split>.npz`` (all optional
    except that at least one must exist). Missing metrics are recomputed from the predictions."""
    import yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    files = {n: run_dir / n for n in ("config.yaml", "metrics.jsonl", "metrics.json", f"predictions_{split}.npz",
                                      "labels.txt")}
    if not any(files[n].is_file() for n in list(files)[:4]):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml, metrics.jsonl, metrics.json or "
                                f"predictions_{split}.npz); train or evaluate into it first")
    run = RunData(name=name or run_dir.name)
    if files["config.yaml"].is_file():
        run.config = yaml.safe_load(files["config.yaml"].read_text()) or {}
    if files["metrics.jsonl"].is_file():
        for i, line in enumerate(files["metrics.jsonl"].read_text().splitlines()):
            if line.strip():
                try:
                    run.history.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("%s line %d is not JSON (a crash mid-write?); skipped", files["metrics.jsonl"], i + 1)
    if files["metrics.json"].is_file():
        run.metrics = _pick_metrics(json.loads(files["metrics.json"].read_text()), split)
    if files[f"predictions_{split}.npz"].is_file():
        run.predictions = load_predictions(files[f"predictions_{split}.npz"])
        run.classes = list(run.predictions.classes)
        labelled = run.predictions.labelled()
        if "confusion_matrix" not in run.metrics and labelled.num_videos:
            run.metrics = {**summarize(labelled.scores, labelled.labels, run.classes), **run.metrics}
    if not run.classes:
        run.classes = list(run.metrics.get("classes") or [])
    if not run.classes and files["labels.txt"].is_file():
        run.classes = [c for c in files["labels.txt"].read_text().splitlines() if c]
    if "confusion_matrix" in run.metrics:
        run.confusion = np.asarray(run.metrics["confusion_matrix"], dtype=np.int64)
    return run


def _resolve_baseline(runs: Sequence[RunData], baseline: RunData | str | None) -> RunData | None:
    if baseline is None or isinstance(baseline, RunData):
        return baseline
    for run in runs:
        if run.name == baseline:
            return run
    raise KeyError(f"baseline {baseline!r} is not one of the runs ({[r.name for r in runs]})")


def _changes(run: RunData, base: RunData, n: int = 10) -> dict[str, Any] | None:
    """Class changes of ``run`` against ``base`` on the videos both predicted (matched by key when possible)."""
    a, b = run.preds_and_labels(), base.preds_and_labels()
    if a is None or b is None or list(run.classes) != list(base.classes):
        return None
    keys_a, labels_a, preds_a = a
    keys_b, labels_b, preds_b = b
    if keys_a is not None and keys_b is not None:
        index = {k: i for i, k in enumerate(keys_b)}
        common = [i for i, k in enumerate(keys_a) if k in index]
        if not common:
            return None
        other = [index[keys_a[i]] for i in common]
        labels_a, preds_a, preds_b = labels_a[common], preds_a[common], preds_b[other]
    elif len(labels_a) != len(labels_b) or not np.array_equal(labels_a, labels_b):
        return None
    return class_changes(labels_a, preds_b, preds_a, run.classes, n)


# ----------------------------------------------------------------------------------- sweeps (duck-typed)


def _sweep_table(sweep: Any) -> dict[str, Any]:
    """A sweep as ``{"title", "header", "rows": [[cell, ...]], "best", "metric"}`` from a ``SweepResult``, its
    ``results.json`` (path or dict), or an already generic table dict."""
    if isinstance(sweep, (str, Path)):
        path = Path(sweep)
        sweep = json.loads((path / "results.json" if path.is_dir() else path).read_text())
    if hasattr(sweep, "to_json"):
        sweep = sweep.to_json()
    if "header" in sweep:
        return dict(sweep)
    rows = sweep["rows"]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["metrics"] if k not in keys]
    order = ("train_loss", "train_acc", "val_loss", "val_top1", "test_top1", "test_top5", "test_top10")
    keys = [k for k in order if k in keys] + sorted(k for k in keys if k not in order)
    table_rows = []
    for r in rows:
        cells: list[Any] = [r["label"], len(r.get("seeds", []))]
        for k in keys:
            vals = [float(v) for v in r["metrics"].get(k, [])]
            if not vals:
                cells.append("–")
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            cells.append(f"{mean:.4f}" + (f" ± {std:.4f}" if len(vals) > 1 else ""))
        table_rows.append(cells)
    return {"title": sweep.get("title") or sweep.get("name", "sweep"), "header": ["setting", "seeds", *keys],
            "rows": table_rows, "best": sweep.get("best"), "metric": sweep.get("metric", "")}


# ----------------------------------------------------------------------------------- SVG pieces


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 20:
        ticks.append(round(t, 10))
        t += step
    return ticks


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, y_label: str,
               width: int = 440, height: int = 240) -> str:
    """Inline SVG line chart of ``(name, xs, ys)`` series with axes, legend and per-point tooltips."""
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return f'<div class="empty">{esc(title)}: no data</div>'
    left, right, top, bottom = 48, 12, 40, 36
    xs_all = [p[0] for p in pts]
    ys_all = [p[1] for p in pts]
    xt = _nice_ticks(min(xs_all), max(xs_all), 6)
    yt = _nice_ticks(min(ys_all), max(ys_all), 4)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{esc(title)}">', f'<text class="ctitle" x="{left}" y="16">{esc(title)}</text>']
    for t in yt:
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in xt:
        out.append(f'<text class="tick" x="{sx(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}"/>')
    out.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">epoch</text>')
    out.append(f'<text class="tick" transform="translate(12 {top + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{esc(y_label)}</text>')
    for i, (name, xs, ys) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        p = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if not p:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(p))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in p:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}" '
                       f'data-tip="{esc(name)} · epoch {x:g}: {y:.4f}"/>')
        lx = left + i * 100  # legend row between the title and the plot
        out.append(f'<rect x="{lx}" y="{top - 14}" width="12" height="3" rx="1.5" fill="{color}"/>'
                   f'<text class="legend" x="{lx + 16}" y="{top - 9}">{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _heat_color(frac: float) -> str:
    """White -> deep blue, perceptually even enough for reading counts."""
    frac = min(max(frac, 0.0), 1.0)
    r = round(255 - frac * (255 - 30))
    g = round(255 - frac * (255 - 64))
    b = round(255 - frac * (255 - 175))
    return f"rgb({r},{g},{b})"


def confusion_heatmap(cm: np.ndarray, classes: Sequence[str]) -> str:
    """Inline SVG heatmap of ``cm (K, K)``; colour = share of the true class (row-normalized), K*K cells with
    tooltips ``true → predicted: count (share)``; class names on both axes."""
    k = len(classes)
    cell = max(4, min(36, 560 // max(k, 1)))
    label_w = min(170, 12 + 7 * max((len(c) for c in classes), default=4))
    show_labels = cell >= 9
    size = cell * k
    # rotated column labels lean right past the last column; the axis title sits below the grid
    width, height = label_w + size + (label_w // 2 if show_labels else 10), label_w + size + 24
    support = cm.sum(axis=1)
    out = [f'<svg class="heatmap" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="confusion matrix">']
    font = min(12, cell - 2)
    if show_labels:
        for i, name in enumerate(classes):
            short = name if len(name) <= 24 else name[:23] + "…"
            y = label_w + i * cell + cell / 2 + font / 3
            out.append(f'<text class="lab" x="{label_w - 4}" y="{y:.1f}" text-anchor="end" font-size="{font}">'
                       f'{esc(short)}</text>')
            x = label_w + i * cell + cell / 2 + font / 3
            out.append(f'<text class="lab" transform="translate({x:.1f} {label_w - 4}) rotate(-60)" '
                       f'font-size="{font}">{esc(short)}</text>')
    for i in range(k):
        for j in range(k):
            count = int(cm[i, j])
            frac = count / support[i] if support[i] else 0.0
            diag = " diag" if i == j else ""
            tip = f"{classes[i]} → {classes[j]}: {count} of {int(support[i])} ({frac:.0%})"
            out.append(f'<rect class="cell{diag}" x="{label_w + j * cell}" y="{label_w + i * cell}" width="{cell}" '
                       f'height="{cell}" fill="{_heat_color(frac)}" data-tip="{esc(tip)}"/>')
            if cell >= 22 and count:
                color = "#fff" if frac > 0.55 else "#1e293b"
                out.append(f'<text class="num" x="{label_w + j * cell + cell / 2}" y="{label_w + i * cell + cell / 2 + 4}" '
                           f'text-anchor="middle" fill="{color}">{count}</text>')
    out.append(f'<text class="axislab" x="{label_w + size / 2}" y="{height - 6}" text-anchor="middle">predicted</text>')
    out.append("</svg>")
    return "".join(out)


def _acc_color(a: float) -> str:
    """Red (0%) -> amber (50%) -> green (100%)."""
    stops = ((239, 68, 68), (245, 158, 11), (34, 197, 94))
    a = min(max(a, 0.0), 1.0) * 2
    lo, hi = stops[min(int(a), 1)], stops[min(int(a), 1) + 1]
    t = a - min(int(a), 1)
    return "rgb({},{},{})".format(*(round(x + (y - x) * t) for x, y in zip(lo, hi)))


def class_bars(acc: Sequence[float | None], support: Sequence[int], classes: Sequence[str],
               correct: Sequence[int] | None = None) -> str:
    """HTML bars of per-class accuracy, worst first, each with a ``correct / support`` tooltip."""
    order = sorted(range(len(classes)), key=lambda i: (acc[i] is None, acc[i] if acc[i] is not None else 0, i))
    rows = []
    for i in order:
        a = acc[i]
        if a is None:
            continue
        n_ok = correct[i] if correct is not None else round(a * support[i])
        tip = f"{classes[i]}: {n_ok} of {support[i]} correct ({a:.1%})"
        rows.append(f'<div class="bar" data-tip="{esc(tip)}"><span class="bname">{esc(classes[i])}</span>'
                    f'<span class="btrack"><span class="bfill" style="width:{a * 100:.1f}%;'
                    f'background:{_acc_color(a)}"></span></span><span class="bval">{a:.0%}</span></div>')
    return '<div class="bars">' + "".join(rows) + "</div>"


# ----------------------------------------------------------------------------------- HTML


CSS = """
:root{--bg:#f6f7fb;--card:#fff;--ink:#1e293b;--muted:#64748b;--line:#e2e8f0;--accent:#2563eb;--good:#16a34a;--bad:#dc2626}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
header{background:linear-gradient(120deg,#1e3a8a,#2563eb);color:#fff;padding:28px 40px 22px}
header h1{margin:0 0 4px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header p{margin:0;opacity:.85;font-size:14px}
nav{display:flex;gap:6px;flex-wrap:wrap;margin-top:14px}
nav a{color:#fff;text-decoration:none;background:rgba(255,255,255,.14);padding:4px 10px;border-radius:999px;font-size:13px}
nav a:hover{background:rgba(255,255,255,.28)}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 22px;margin:0 0 22px;
box-shadow:0 1px 2px rgba(15,23,42,.04);overflow-x:auto}
h2{font-size:19px;margin:0 0 12px;font-weight:640}
h3{font-size:15px;margin:18px 0 8px;color:#334155;font-weight:620}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:4px 0 12px}
.kpi{background:#f1f5f9;border-radius:10px;padding:8px 14px;min-width:110px}
.kpi b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.kpi span{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-weight:600;color:#475569;background:#f8fafc}
th:first-child,td:first-child{text-align:left;white-space:normal}
table.compact{width:auto;min-width:60%}
tr.best td{background:#ecfdf5;font-weight:600}
tr.best td:first-child::before{content:"★ ";color:var(--good)}
tbody tr:hover td{background:#f1f5f9}
.up{color:var(--good)} .down{color:var(--bad)} .muted{color:var(--muted)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px;align-items:start}
.chart,.heatmap{max-width:100%;height:auto;display:block}
.chart .grid{stroke:#eef2f7} .chart .axis{stroke:#94a3b8}
.chart .tick,.heatmap .lab,.heatmap .axislab{fill:#475569;font-size:11px}
.chart .ctitle{font-weight:600;font-size:13px;fill:var(--ink)}
.chart .legend{font-size:11px;fill:#334155}
.chart circle:hover{r:5}
.heatmap .cell{stroke:#fff;stroke-width:.5}
.heatmap .cell.diag{stroke:#0f172a;stroke-width:.6}
.heatmap .cell:hover{stroke:#f97316;stroke-width:2}
.heatmap .num{font-size:10px;pointer-events:none}
.bars{display:grid;gap:3px;max-height:520px;overflow:auto;padding-right:6px}
.bar{display:grid;grid-template-columns:minmax(90px,190px) 1fr 44px;gap:8px;align-items:center;font-size:13px}
.bname{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.btrack{background:#eef2f7;border-radius:4px;height:12px;overflow:hidden}
.bfill{display:block;height:100%;border-radius:4px}
.bval{text-align:right;color:#475569;font-variant-numeric:tabular-nums}
.delta{display:inline-block;height:10px;border-radius:3px;vertical-align:middle;margin-right:6px}
details{margin-top:10px} summary{cursor:pointer;color:var(--accent);font-weight:560}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;font-size:12.5px;max-height:420px}
.empty{color:var(--muted);font-style:italic;padding:8px 0}
#tip{position:fixed;pointer-events:none;background:#0f172a;color:#fff;font-size:12.5px;padding:6px 9px;border-radius:6px;
opacity:0;transition:opacity .08s;z-index:10;max-width:360px;box-shadow:0 4px 14px rgba(0,0,0,.18)}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:10px}
"""

JS = """
(function(){
  var tip=document.getElementById('tip');
  document.addEventListener('mousemove',function(e){
    var el=e.target.closest?e.target.closest('[data-tip]'):null;
    if(!el){tip.style.opacity=0;return;}
    tip.textContent=el.getAttribute('data-tip');
    var x=e.clientX+14,y=e.clientY+14,w=tip.offsetWidth,h=tip.offsetHeight;
    if(x+w>window.innerWidth-8)x=e.clientX-w-10;
    if(y+h>window.innerHeight-8)y=e.clientY-h-10;
    tip.style.left=x+'px';tip.style.top=y+'px';tip.style.opacity=1;
  });
  document.querySelectorAll('table.sortable th').forEach(function(th,idx){
    th.style.cursor='pointer';th.title='sort';
    th.addEventListener('click',function(){
      var tb=th.closest('table').tBodies[0],rows=Array.prototype.slice.call(tb.rows);
      var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
      rows.sort(function(a,b){
        var x=a.cells[idx].textContent,y=b.cells[idx].textContent,fx=parseFloat(x),fy=parseFloat(y);
        var r=(!isNaN(fx)&&!isNaN(fy))?fx-fy:x.localeCompare(y);return asc?r:-r;});
      rows.forEach(function(r){tb.appendChild(r);});
    });
  });
})();
"""


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return esc(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], best: int | None = None,
           cls: str = "sortable") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row)
        body.append(f'<tr class="best">{cells}</tr>' if i == best else f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class _Raw(str):
    """Already-safe HTML for a table cell."""


def _curves(run: RunData) -> str:
    h = run.history
    if not h:
        return '<div class="empty">no learning curves (metrics.jsonl missing or empty)</div>'
    xs = [float(r.get("epoch", i + 1)) for i, r in enumerate(h)]

    def col(key: str) -> list[float | None]:
        return [float(r[key]) if isinstance(r.get(key), (int, float)) else None for r in h]

    loss = [(k, xs, col(k)) for k in ("train_loss", "val_loss") if any(v is not None for v in col(k))]
    acc = [(k, xs, col(k)) for k in ("train_acc", "val_top1", "val_top5") if any(v is not None for v in col(k))]
    return ('<div class="grid2">' + line_chart(loss, "Loss", "loss") + line_chart(acc, "Accuracy", "accuracy")
            + "</div>")


def _kpis(metrics: Mapping[str, Any]) -> str:
    items = [(k, metrics.get(k)) for k in ("top1", "top5", "top10", "mean_class_accuracy")]
    names = {"top1": "top-1", "top5": "top-5", "top10": "top-10", "mean_class_accuracy": "mean class acc"}
    cells = [f'<div class="kpi"><b>{_fmt(v, 3)}</b><span>{names[k]}</span></div>' for k, v in items if v is not None]
    if metrics.get("num_videos") is not None:
        cells.append(f'<div class="kpi"><b>{int(metrics["num_videos"])}</b><span>test videos</span></div>')
    return '<div class="kpis">' + "".join(cells) + "</div>"


def _run_section(run: RunData, anchor: str) -> str:
    import yaml

    parts = [f'<section id="{anchor}"><h2>{esc(run.name)} <span class="muted">· {esc(run.model)}</span></h2>',
             _kpis(run.metrics), "<h3>Learning curves</h3>", _curves(run)]
    if run.confusion is not None and len(run.classes) == run.confusion.shape[0]:
        acc = run.metrics.get("per_class_accuracy") or [
            (float(run.confusion[i, i] / s) if s else None) for i, s in enumerate(run.confusion.sum(axis=1))]
        support = [int(s) for s in run.confusion.sum(axis=1)]
        correct = [int(run.confusion[i, i]) for i in range(len(run.classes))]
        parts += ['<div class="grid2"><div><h3>Confusion matrix <span class="muted">(rows: true class; colour: share '
                  'of the row)</span></h3>', confusion_heatmap(run.confusion, run.classes), "</div>",
                  "<div><h3>Per-class accuracy <span class=\"muted\">(worst first)</span></h3>",
                  class_bars(acc, support, run.classes, correct), "</div></div>"]
        pairs = run.metrics.get("most_confused") or []
        if pairs:
            rows = [[p["true"], p["predicted"], p["count"], f"{p['fraction']:.0%}"] for p in pairs]
            parts += ["<h3>Most confused pairs</h3>", _table(["true class", "predicted as", "videos", "share of class"],
                                                             rows, cls="sortable compact")]
    else:
        parts.append('<div class="empty">no confusion matrix (metrics.json / predictions missing)</div>')
    if run.config:
        parts.append(f"<details><summary>Config</summary><pre>{esc(yaml.safe_dump(run.config, sort_keys=False))}"
                     "</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _comparison_section(runs: Sequence[RunData], base: RunData | None) -> str:
    keys = ("top1", "top5", "top10", "mean_class_accuracy")
    header = ["run", "model", "top-1", "top-5", "top-10", "mean class acc", "epochs"]
    if base is not None:
        header.append(f"Δ top-1 vs {base.name}")
    rows, scores = [], []
    for run in runs:
        row: list[Any] = [run.name, run.model, *[run.metrics.get(k) for k in keys], len(run.history) or "–"]
        if base is not None:
            d = (run.metrics.get("top1") or math.nan) - (base.metrics.get("top1") or math.nan)
            row.append(_Raw("–") if math.isnan(d) or run is base else
                       _Raw(f'<span class="{"up" if d > 0 else "down" if d < 0 else "muted"}">{d:+.4f}</span>'))
        rows.append(row)
        scores.append(run.metrics.get("top1") if run.metrics.get("top1") is not None else -1.0)
    best = int(np.argmax(scores)) if scores and max(scores) >= 0 else None
    return ('<section id="compare"><h2>Runs compared</h2>'
            + _table(header, rows, best) + "</section>")


def _changes_section(run: RunData, base: RunData, n: int) -> str:
    ch = _changes(run, base, n)
    title = f"{esc(run.name)} vs {esc(base.name)}: which classes changed"
    if ch is None:
        return (f"<section><h2>{title}</h2><div class=\"empty\">cannot compare: the runs need predictions on the "
                "same videos and classes</div></section>")

    def rows(items: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        out = []
        for it in items:
            d = it["delta"]
            color = "var(--good)" if d > 0 else "var(--bad)"
            bar = _Raw(f'<span class="delta" style="width:{abs(d) * 80:.0f}px;background:{color}"></span>'
                       f'<span class="{"up" if d > 0 else "down"}">{d:+.0%}</span>')
            conf = []
            for key in ("base_confused_with", "new_confused_with"):
                c = it[key]
                conf.append(f"{c['class']} ({c['count']})" if c else "–")
            out.append([it["class"], it["support"],
                        _Raw(f'<span data-tip="{esc(it["base_correct"])} of {it["support"]} correct">'
                             f'{it["base_accuracy"]:.0%}</span>'),
                        _Raw(f'<span data-tip="{esc(it["new_correct"])} of {it["support"]} correct">'
                             f'{it["new_accuracy"]:.0%}</span>'), bar, conf[0], conf[1]])
        return out

    header = ["class", "videos", base.name, run.name, "change",
              f"most confused with ({base.name})", f"most confused with ({run.name})"]
    parts = [f"<section><h2>{title}</h2>",
             f'<p class="muted">{ch["num_improved"]} classes improved, {ch["num_hurt"]} got worse, '
             f'{len(ch["unchanged"])} unchanged.</p>']
    parts += ["<h3>Improved most</h3>", _table(header, rows(ch["improved"])) if ch["improved"] else
              '<div class="empty">none</div>']
    parts += ["<h3>Hurt most</h3>", _table(header, rows(ch["hurt"])) if ch["hurt"] else '<div class="empty">none</div>']
    zero = [u["class"] for u in ch["unchanged"] if u["accuracy"] == 0]
    if zero:
        parts.append(f'<p class="muted">Still at 0%: {esc(", ".join(zero))}</p>')
    parts.append("</section>")
    return "".join(parts)


def _sweep_section(tables: Sequence[dict[str, Any]]) -> str:
    parts = ['<section id="sweeps"><h2>Sweeps</h2>',
             '<p class="muted">mean ± std over seeds; ★ marks the best setting.</p>']
    for t in tables:
        metric = f' <span class="muted">· best by {esc(t["metric"])}</span>' if t.get("metric") else ""
        parts += [f"<h3>{esc(t['title'])}{metric}</h3>", _table(t["header"], t["rows"], t.get("best"))]
    parts.append("</section>")
    return "".join(parts)


def render_html(runs: Sequence[RunData], sweeps: Sequence[Any] = (), baseline: RunData | str | None = None,
                title: str = "actionlab report", num_changes: int = 10) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    base = _resolve_baseline(runs, baseline)
    tables = [_sweep_table(s) for s in sweeps]
    anchors = [f"run-{i}" for i in range(len(runs))]
    nav = "".join(f'<a href="#{a}">{esc(r.name)}</a>' for a, r in zip(anchors, runs))
    if tables:
        nav += '<a href="#sweeps">sweeps</a>'
    body = []
    if runs:
        body.append(_comparison_section(runs, base))
    if base is not None:
        body += [_changes_section(run, base, num_changes) for run in runs if run is not base]
    body += [_run_section(run, a) for run, a in zip(runs, anchors)]
    if tables:
        body.append(_sweep_section(tables))
    if not body:
        body.append('<section><div class="empty">nothing to report</div></section>')
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{len(runs)} run(s), {len(tables)} sweep table(s) · generated {stamp}</p>"
            f"<nav>{nav}</nav></header><main>{''.join(body)}"
            "<footer>actionlab · self-contained report (no network)</footer></main>"
            f'<div id="tip" role="tooltip"></div><script>{JS}</script></body></html>\n')


def write_report(out_html: str | Path, runs: Sequence[RunData], sweeps: Sequence[Any] = (),
                 baseline: RunData | str | None = None, title: str = "actionlab report",
                 markdown: bool = True) -> Path:
    """Write ONE self-contained HTML file (and ``<same name>.md`` with :func:`markdown_summary` when asked).

    ``runs``: :class:`RunData` (see :func:`load_run`); ``sweeps``: ``SweepResult`` objects, their
    ``results.json`` paths/dicts, or generic ``{"title", "header", "rows", "best"}`` tables; ``baseline``: a run
    (or a run's name) to compare the others against class by class (e.g. the single-frame model).
    """
    out_html = Path(out_html)
    atomic_write_text(out_html, render_html(runs, sweeps, baseline, title))
    if markdown:
        atomic_write_text(out_html.with_suffix(".md"), markdown_summary(runs, sweeps, baseline, title))
    logger.info("wrote report %s", out_html)
    return out_html


# ----------------------------------------------------------------------------------- Markdown


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], best: int | None = None) -> str:
    def cell(c: Any) -> str:
        return _md(f"{c:.4f}" if isinstance(c, float) else ("–" if c is None else c))

    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for i, row in enumerate(rows):
        cells = [cell(c) for c in row]
        if i == best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_summary(runs: Sequence[RunData], sweeps: Sequence[Any] = (), baseline: RunData | str | None = None,
                     title: str = "actionlab report", num_changes: int = 10) -> str:
    """The same findings as plain Markdown: the run table, most confused pairs, class changes and sweep tables."""
    base = _resolve_baseline(runs, baseline)
    out = [f"# {_md(title)}", ""]
    if runs:
        rows = [[r.name, r.model, r.metrics.get("top1"), r.metrics.get("top5"), r.metrics.get("top10"),
                 r.metrics.get("mean_class_accuracy")] for r in runs]
        out += ["## Runs", "", _md_table(["run", "model", "top-1", "top-5", "top-10", "mean class acc"], rows), ""]
    for r in runs:
        pairs = (r.metrics.get("most_confused") or [])[:5]
        if pairs:
            out += [f"### {_md(r.name)}: most confused", ""]
            out += [f"- {_md(p['true'])} → {_md(p['predicted'])}: {p['count']} ({p['fraction']:.0%})" for p in pairs]
            out.append("")
    if base is not None:
        for r in runs:
            if r is base:
                continue
            ch = _changes(r, base, num_changes)
            if ch is None:
                continue
            out += [f"## {_md(r.name)} vs {_md(base.name)}", ""]
            for kind in ("improved", "hurt"):
                out += [f"**{kind.capitalize()} most**", ""]
                for it in ch[kind]:
                    why = it["base_confused_with"] if kind == "improved" else it["new_confused_with"]
                    because = f"; confused with {_md(why['class'])} ({why['count']})" if why else ""
                    out.append(f"- {_md(it['class'])}: {it['base_accuracy']:.0%} → {it['new_accuracy']:.0%} "
                               f"({it['delta']:+.0%}, {it['support']} videos{because})")
                out.append("")
    for t in (_sweep_table(s) for s in sweeps):
        out += [f"## {_md(t['title'])}", "", _md_table(t["header"], t["rows"], t.get("best")), ""]
    return "\n".join(out) + "\n"


def confusion_from_predictions(predictions: Predictions) -> np.ndarray:
    """``(K, K)`` confusion counts of the labelled rows of ``predictions``."""
    p = predictions.labelled()
    return confusion_matrix(p.labels, p.preds, p.num_classes)
