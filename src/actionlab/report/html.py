"""One self-contained HTML report (inline CSS, JS and SVG; no network) and a Markdown summary beside it.

The report shows, for each run: train and validation learning curves side by side from ``metrics.jsonl``, a
warning when the run memorises (train accuracy far above validation), the confusion matrix as a heatmap (an
image with counts on hover beyond 30 classes), per-class accuracy bars, the most confused pairs, the test videos
it got most wrong as frame strips, and the run's config; across runs: a comparison table (e.g. single-frame vs
temporal), the classes a run improved or hurt most against a baseline and the videos it fixed, and sweep tables
with the best setting highlighted (chosen on validation, never on test: see :mod:`actionlab.report.sweep_table`).

The pieces live beside this file: :mod:`~actionlab.report.run_data` (reading run directories),
:mod:`~actionlab.report.charts` (SVG charts), :mod:`~actionlab.report.gallery` (the videos), :mod:`~actionlab.report.markdown` (the Markdown) and
:mod:`~actionlab.evaluate.diagnose` (warnings). Every string that comes from a dataset or a config (class
names, file names, overrides) is escaped (:mod:`~actionlab.report.escape`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.evaluate.compare import PairedComparison, format_p
from actionlab.evaluate.diagnose import best_epoch_accuracies, memorisation_warning
from actionlab.report import gallery
from actionlab.report.charts import RASTER_CSS, RASTER_JS, class_bars, confusion_matrix, line_chart
from actionlab.report.escape import esc
from actionlab.report.gallery import Gallery, build_gallery, gallery_html
from actionlab.report.markdown import markdown_summary
from actionlab.report.run_data import RunData, changes_against, comparison_against, load_run, resolve_baseline
from actionlab.report.sweep_table import SweepResult, as_sweep_result
from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["RunData", "esc", "load_run", "markdown_summary", "render_html", "write_report"]


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
.verdict{background:#f1f5f9;border-left:4px solid var(--accent);border-radius:6px;padding:8px 12px;margin:6px 0 12px}
.verdict.clear{border-left-color:var(--good)} .ci{color:var(--muted);font-size:12.5px}
details{margin-top:10px} summary{cursor:pointer;color:var(--accent);font-weight:560}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;font-size:12.5px;max-height:420px}
.empty{color:var(--muted);font-style:italic;padding:8px 0}
.warn{background:#fff7ed;border:1px solid #fed7aa;border-left:4px solid #ea580c;border-radius:8px;padding:10px 14px;
margin:4px 0 14px;color:#7c2d12} .warn b{color:#9a3412} .warn p{margin:4px 0 0}
code{background:rgba(15,23,42,.06);padding:1px 5px;border-radius:4px;font-size:.92em}
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
    """Train next to validation: accuracy charts in one row, loss charts in the next; each pair shares its
    y axis, so the gap between them reads at a glance."""
    h = run.history
    if not h:
        return '<div class="empty">no learning curves (metrics.jsonl missing or empty)</div>'
    xs = [float(r.get("epoch", i + 1)) for i, r in enumerate(h)]

    def col(key: str) -> list[float | None]:
        return [float(r[key]) if isinstance(r.get(key), (int, float)) else None for r in h]

    rows = []
    for quantity, pair in (("accuracy", (("Train accuracy", "train_acc", 0), ("Validation accuracy (top-1)",
                                                                              "val_top1", 1))),
                           ("loss", (("Train loss", "train_loss", 0), ("Validation loss", "val_loss", 1)))):
        present = [(title, key, color) for title, key, color in pair if any(v is not None for v in col(key))]
        values = [v for _, key, _ in present for v in col(key) if v is not None and math.isfinite(v)]
        if not values:
            continue
        shared = (min(values), max(values))
        rows.append('<div class="grid2">' + "".join(
            line_chart([(key, xs, col(key))], title, quantity, y_range=shared, first_color=color)
            for title, key, color in present) + "</div>")
    return "".join(rows) or '<div class="empty">no train or validation curves in metrics.jsonl</div>'


def _warning_card(run: RunData) -> str:
    accuracies = best_epoch_accuracies(run.history, run.metrics)
    warning = memorisation_warning(*accuracies) if accuracies else None
    if warning is None:
        return ""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(warning))  # after escaping: only our own tags
    return f'<div class="warn" role="alert"><b>Memorisation</b><p>{text}</p></div>'


def _kpis(metrics: Mapping[str, Any]) -> str:
    items = [(k, metrics.get(k)) for k in ("top1", "top5", "top10", "mean_class_accuracy")]
    names = {"top1": "top-1", "top5": "top-5", "top10": "top-10", "mean_class_accuracy": "mean class acc"}
    cells = [f'<div class="kpi"><b>{_fmt(v, 3)}</b><span>{names[k]}</span></div>' for k, v in items if v is not None]
    if metrics.get("num_videos") is not None:
        cells.append(f'<div class="kpi"><b>{int(metrics["num_videos"])}</b><span>test videos</span></div>')
    return '<div class="kpis">' + "".join(cells) + "</div>"


def _run_section(run: RunData, anchor: str, videos: Gallery | None = None) -> str:
    import yaml

    parts = [f'<section id="{anchor}"><h2>{esc(run.name)} <span class="muted">· {esc(run.model)}</span></h2>',
             _kpis(run.metrics), _warning_card(run), "<h3>Learning curves</h3>", _curves(run)]
    if run.confusion is not None and len(run.classes) == run.confusion.shape[0]:
        acc = run.metrics.get("per_class_accuracy") or [
            (float(run.confusion[i, i] / s) if s else None) for i, s in enumerate(run.confusion.sum(axis=1))]
        support = [int(s) for s in run.confusion.sum(axis=1)]
        correct = [int(run.confusion[i, i]) for i in range(len(run.classes))]
        parts += ['<div class="grid2"><div><h3>Confusion matrix <span class="muted">(rows: true class; colour: share '
                  'of the row)</span></h3>', confusion_matrix(run.confusion, run.classes), "</div>",
                  "<div><h3>Per-class accuracy <span class=\"muted\">(worst first)</span></h3>",
                  class_bars(acc, support, run.classes, correct), "</div></div>"]
        pairs = run.metrics.get("most_confused") or []
        if pairs:
            rows = [[p["true"], p["predicted"], p["count"], f"{p['fraction']:.0%}"] for p in pairs]
            parts += ["<h3>Most confused pairs</h3>", _table(["true class", "predicted as", "videos", "share of class"],
                                                             rows, cls="sortable compact")]
    else:
        parts.append('<div class="empty">no confusion matrix (metrics.json / predictions missing)</div>')
    if videos is not None:
        parts += ["<h3>Test videos it got most wrong</h3>",
                  gallery_html(videos.wrong, run.classes, videos, "no misclassified test video")]
    if run.config:
        parts.append(f"<details><summary>Config</summary><pre>{esc(yaml.safe_dump(run.config, sort_keys=False))}"
                     "</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _delta_cell(d: float, c: PairedComparison | None) -> _Raw:
    """A top-1 difference, with its paired 95% interval and p-value beside it (the sentence on hover)."""
    if math.isnan(d):
        return _Raw("–")
    shown = f'<span class="{"up" if d > 0 else "down" if d < 0 else "muted"}">{d:+.4f}</span>'
    if c is None:
        return _Raw(shown)
    low, high = c.ci95
    return _Raw(f'<span data-tip="{esc(c.verdict)}">{shown} <span class="ci">[{low:+.3f}, {high:+.3f}] '
                f"{esc(format_p(c.mcnemar_p))}</span></span>")


def _verdict(c: PairedComparison) -> str:
    """The plain sentence of a comparison, as a paragraph."""
    return f'<p class="verdict{" clear" if c.clear else ""}">{esc(c.verdict)}</p>'


def _comparison_section(runs: Sequence[RunData], base: RunData | None,
                        paired: Mapping[int, PairedComparison | None] | None = None) -> str:
    """The table of runs; against ``base``, each run's top-1 difference with its paired interval and p-value
    (``paired``: by ``id(run)``, from :func:`comparison_against`) and the sentences below the table."""
    paired = paired or {}
    keys = ("top1", "top5", "top10", "mean_class_accuracy")
    header = ["run", "model", "top-1", "top-5", "top-10", "mean class acc", "epochs"]
    if base is not None:
        header.append(f"Δ top-1 vs {base.name} [95% interval] p")
    rows, scores, sentences = [], [], []
    for run in runs:
        row: list[Any] = [run.name, run.model, *[run.metrics.get(k) for k in keys], len(run.history) or "–"]
        if base is not None:
            c = paired.get(id(run)) if run is not base else None
            # the paired difference is on the videos both runs predicted: the one its interval belongs to
            d = c.difference if c is not None else (run.metrics.get("top1") or math.nan) - (
                base.metrics.get("top1") or math.nan)
            row.append(_Raw("–") if run is base else _delta_cell(d, c))
            if c is not None:
                sentences.append(_verdict(c))
        rows.append(row)
        scores.append(run.metrics.get("top1") if run.metrics.get("top1") is not None else -1.0)
    best = int(np.argmax(scores)) if scores and max(scores) >= 0 else None
    note = ('<p class="muted">Δ: paired on the same test videos; the interval is a bootstrap over videos, p is '
            "McNemar's exact test on the videos one run gets right and the other wrong.</p>" if sentences else "")
    return ('<section id="compare"><h2>Runs compared</h2>'
            + _table(header, rows, best) + note + "".join(sentences) + "</section>")


def _changes_section(run: RunData, base: RunData, n: int, videos: Gallery | None = None,
                     paired: PairedComparison | None = None) -> str:
    ch = changes_against(run, base, n)
    title = f"{esc(run.name)} vs {esc(base.name)}: which classes changed"
    if ch is None:
        return (f"<section><h2>{title}</h2><div class=\"empty\">cannot compare: the runs need predictions on the "
                "same videos and classes</div></section>")
    per_class = {c["index"]: c for c in paired.per_class} if paired is not None else {}

    def counts(index: int) -> _Raw:
        c = per_class.get(index)
        if c is None:
            return _Raw("–")
        flag = (' <span class="muted" data-tip="fewer than 5 videos changed: a video or two either way">'
                "⚑ few videos</span>" if c["few_videos"] else "")
        return _Raw(f'<span class="up">+{c["b_right_a_wrong"]}</span> / '
                    f'<span class="down">−{c["a_right_b_wrong"]}</span>{flag}')

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
                             f'{it["new_accuracy"]:.0%}</span>'), bar, counts(it["index"]), conf[0], conf[1]])
        return out

    header = ["class", "videos", base.name, run.name, "change", "videos fixed / broken",
              f"most confused with ({base.name})", f"most confused with ({run.name})"]
    parts = [f"<section><h2>{title}</h2>", _verdict(paired) if paired is not None else "",
             f'<p class="muted">{ch["num_improved"]} classes improved, {ch["num_hurt"]} got worse, '
             f'{len(ch["unchanged"])} unchanged. Per class, "fixed" counts the videos {esc(run.name)} gets right '
             f"and {esc(base.name)} wrong, \"broken\" the reverse; ⚑ marks a change that rests on fewer than 5 "
             "videos.</p>"]
    parts += ["<h3>Improved most</h3>", _table(header, rows(ch["improved"])) if ch["improved"] else
              '<div class="empty">none</div>']
    parts += ["<h3>Hurt most</h3>", _table(header, rows(ch["hurt"])) if ch["hurt"] else '<div class="empty">none</div>']
    zero = [u["class"] for u in ch["unchanged"] if u["accuracy"] == 0]
    if zero:
        parts.append(f'<p class="muted">Still at 0%: {esc(", ".join(zero))}</p>')
    if videos is not None:
        parts += [f"<h3>Videos {esc(run.name)} fixed <span class=\"muted\">(wrong in {esc(base.name)}, right now; "
                  "largest gain first)</span></h3>",
                  gallery_html(videos.fixed, run.classes, videos, f"no test video that {base.name} got wrong and "
                                                                  f"{run.name} right")]
    parts.append("</section>")
    return "".join(parts)


def _sweep_section(sweeps: Sequence[SweepResult]) -> str:
    parts = ['<section id="sweeps"><h2>Sweeps</h2>',
             '<p class="muted">mean ± std over seeds; ★ marks the best setting, picked on validation numbers '
             '(train ones where a sweep has none, as its note says), never on test numbers. "vs best": each '
             "setting's validation top-1 minus the best's, paired over videos and seeds, with its 95% interval "
             "and p-value; \"within chance\" means the data cannot tell them apart.</p>"]
    for s in sweeps:
        picked = f' <span class="muted">· best by {esc(s.selected_by)}</span>' if s.best is not None else ""
        parts += [f"<h3>{esc(s.title or s.name)}{picked}</h3>", _table(s.header(), s.formatted_rows(), s.best)]
        parts += [f'<p class="muted">{esc(note)}</p>' for note in s.all_notes()]
    parts.append("</section>")
    return "".join(parts)


def render_html(runs: Sequence[RunData], sweeps: Sequence[Any] = (), baseline: RunData | str | None = None,
                title: str = "actionlab report", num_changes: int = 10,
                galleries: Sequence[Gallery | None] | None = None) -> str:
    """The report as one HTML string (see :func:`write_report`); ``galleries``: one per run (its videos)."""
    base = resolve_baseline(runs, baseline)
    shown = list(galleries) if galleries is not None else [None] * len(runs)
    tables = [as_sweep_result(s) for s in sweeps]
    anchors = [f"run-{i}" for i in range(len(runs))]
    nav = "".join(f'<a href="#{a}">{esc(r.name)}</a>' for a, r in zip(anchors, runs))
    if tables:
        nav += '<a href="#sweeps">sweeps</a>'
    body = []
    paired = {id(run): comparison_against(run, base) for run in runs if run is not base} if base is not None else {}
    if runs:
        body.append(_comparison_section(runs, base, paired))
    if base is not None:
        body += [_changes_section(run, base, num_changes, g, paired[id(run)])
                 for run, g in zip(runs, shown) if run is not base]
    body += [_run_section(run, a, g) for run, a, g in zip(runs, anchors, shown)]
    if tables:
        body.append(_sweep_section(tables))
    if not body:
        body.append('<section><div class="empty">nothing to report</div></section>')
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}{RASTER_CSS}{gallery.CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{len(runs)} run(s), {len(tables)} sweep table(s) · generated {stamp}</p>"
            f"<nav>{nav}</nav></header><main>{''.join(body)}"
            "<footer>actionlab · self-contained report (no network)</footer></main>"
            f'<div id="tip" role="tooltip"></div>{gallery.LIGHTBOX}<script>{JS}{RASTER_JS}{gallery.JS}</script>'
            "</body></html>\n")


def write_report(out_html: str | Path, runs: Sequence[RunData], sweeps: Sequence[Any] = (),
                 baseline: RunData | str | None = None, title: str = "actionlab report",
                 markdown: bool = True, videos: int = 6,
                 saliency: Callable[[RunData], gallery.StripMaker | None] | None = None) -> Path:
    """Write ONE self-contained HTML file (and ``<same name>.md`` with :func:`markdown_summary` when asked).

    ``runs``: :class:`RunData` (see :func:`load_run`); ``sweeps``: ``SweepResult`` objects or their
    ``results.json`` paths (a file or its study directory) or parsed dicts; ``baseline``: a run (or a run's name)
    to compare the others against class by class (e.g. the single-frame model). ``videos``: how many test videos
    each run shows as frame strips, most wrong and (against the baseline) fixed (0: none); ``saliency``: per run,
    what draws a strip with heat maps (see :func:`~actionlab.report.gallery.build_gallery`), or None.
    """
    out_html = Path(out_html)
    base = resolve_baseline(runs, baseline)
    galleries = None
    if videos > 0:
        galleries = [build_gallery(run, base, videos, saliency=saliency(run) if saliency else None) for run in runs]
    atomic_write_text(out_html, render_html(runs, sweeps, base, title, galleries=galleries))
    if markdown:
        atomic_write_text(out_html.with_suffix(".md"), markdown_summary(runs, sweeps, baseline, title))
    logger.info("wrote report %s", out_html)
    return out_html
