"""Inline charts for the HTML report: SVG line charts and confusion heatmaps, HTML per-class accuracy bars.

Every chart is a self-contained string (no network); hovering an element with ``data-tip`` shows its tooltip
through the report's one inline script. Class names and titles are HTML-escaped here. A confusion matrix of more
than :data:`RASTER_ABOVE` classes is a PNG (one pixel per cell) instead of one SVG ``<rect>`` per cell, with its
counts in a compact JSON array that the script reads on hover (:func:`confusion_raster`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from actionlab.evaluate.confusion_picture import RASTER_ABOVE, confusion_colors, heat_color
from actionlab.report.escape import esc, script_json

if TYPE_CHECKING:
    pass

__all__ = ["PALETTE", "RASTER_ABOVE", "class_bars", "confusion_colors", "confusion_heatmap", "confusion_matrix",
           "confusion_raster", "line_chart", "nice_ticks"]

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering ``[lo, hi]``."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):  # one value (e.g. a single epoch): a band around it
        pad = max(0.5, abs(lo) * 0.1)
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / n
    if not math.isfinite(raw) or raw <= 0:  # a range beyond float precision or range (a diverged run)
        return [lo, hi]
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 20:
        ticks.append(round(t, 10))
        t += step
    return ticks


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]], title: str, y_label: str,
               width: int = 440, height: int = 240, y_range: tuple[float, float] | None = None,
               first_color: int = 0) -> str:
    """Inline SVG line chart of ``(name, xs, ys)`` series with axes, legend and per-point tooltips.

    ``y_range`` fixes the y axis (charts shown side by side share one, so their heights compare);
    ``first_color`` indexes :data:`PALETTE` for the first series (train and val keep their colours apart).
    """
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return f'<div class="empty">{esc(title)}: no data</div>'
    left, right, top, bottom = 48, 12, 40, 36
    xs_all = [p[0] for p in pts]
    ys_all = [p[1] for p in pts]
    xt = nice_ticks(min(xs_all), max(xs_all), 6)
    yt = nice_ticks(*(y_range or (min(ys_all), max(ys_all))), 4)
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
        color = PALETTE[(first_color + i) % len(PALETTE)]
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




def confusion_matrix(cm: np.ndarray, classes: Sequence[str]) -> str:
    """The report's confusion matrix: SVG cells up to :data:`RASTER_ABOVE` classes, an image beyond."""
    return confusion_heatmap(cm, classes) if len(classes) <= RASTER_ABOVE else confusion_raster(cm, classes)


def confusion_raster(cm: np.ndarray, classes: Sequence[str]) -> str:
    """The confusion matrix as a PNG (one pixel per cell, scaled up without smoothing) and its counts as JSON.

    Hovering maps the mouse position to a cell: the report's script shows ``true → predicted: count of support
    (share)`` from ``cells``, the non-zero counts as flat ``[row * K + col, count, ...]`` pairs (at most one pair
    per test video, so a 400-class matrix stays small).
    """
    from PIL import Image

    from actionlab.report.strips import data_uri

    k = len(classes)
    rows, cols = np.nonzero(cm)
    cells = np.stack([rows * k + cols, cm[rows, cols]], 1).reshape(-1).astype(int).tolist()
    data = {"classes": list(map(str, classes)), "support": cm.sum(axis=1).astype(int).tolist(), "cells": cells}
    side = k * max(1, min(8, 720 // max(k, 1)))
    uri = data_uri(Image.fromarray(confusion_colors(cm)), "PNG")
    return (f'<div class="cmr"><img class="cmimg" src="{uri}" width="{max(side, 480)}" '
            f'height="{max(side, 480)}" alt="confusion matrix of {k} classes (hover a cell for its count)">'
            f'<script type="application/json" class="cmdata">{script_json(data)}</script>'
            f'<p class="muted">{k} classes in the order of the per-class list; rows: true class, columns: '
            "predicted. Hover a cell for its classes and count.</p></div>")


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
                       f'height="{cell}" fill="{heat_color(frac)}" data-tip="{esc(tip)}"/>')
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


RASTER_CSS = """
.cmr{max-width:100%} .cmimg{image-rendering:pixelated;image-rendering:crisp-edges;max-width:100%;height:auto;
border:1px solid var(--line);cursor:crosshair;display:block}
"""

# Hover on a raster confusion matrix: mouse position -> (row, col) -> count from the compact "cells" array.
RASTER_JS = """
(function(){
  var tip=document.getElementById('tip');
  document.querySelectorAll('.cmr').forEach(function(box){
    var img=box.querySelector('.cmimg'),d=JSON.parse(box.querySelector('.cmdata').textContent);
    var k=d.classes.length,counts=new Map();
    for(var i=0;i<d.cells.length;i+=2)counts.set(d.cells[i],d.cells[i+1]);
    img.addEventListener('mousemove',function(e){
      var r=img.getBoundingClientRect();
      var col=Math.min(k-1,Math.floor((e.clientX-r.left)/r.width*k)),row=Math.min(k-1,Math.floor((e.clientY-r.top)/r.height*k));
      if(row<0||col<0)return;
      var c=counts.get(row*k+col)||0,s=d.support[row];
      tip.textContent=d.classes[row]+' \\u2192 '+d.classes[col]+': '+c+' of '+s+' ('+(s?Math.round(100*c/s):0)+'%)';
      var x=e.clientX+14,y=e.clientY+14;
      if(x+tip.offsetWidth>window.innerWidth-8)x=e.clientX-tip.offsetWidth-10;
      tip.style.left=x+'px';tip.style.top=y+'px';tip.style.opacity=1;
    });
  });
})();
"""
