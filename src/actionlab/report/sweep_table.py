"""The table of a sweep: one row per setting, ``mean ± std`` over seeds of each metric, the best row marked.

The sweep engine (:mod:`actionlab.sweep.engine`) fills it and writes ``results.{csv,json,md}``; the report
(:mod:`actionlab.report.html`) reads ``results.json`` back and renders the same table, so both show the
same columns, numbers and best row.

**The test split never picks the best row.** Tables show ``test_*`` numbers, but the best setting is chosen by
a validation metric (``val_top1`` by default); a ``test_*`` metric asked for is replaced by its ``val_*``
counterpart, and when the results have no validation metric the train metric is used with a note saying so
(see :func:`selection_metric`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actionlab.report.escape import md_escape
from actionlab.utils import atomic_write_text

__all__ = [
    "METRIC_ORDER",
    "SweepResult",
    "SweepRow",
    "as_sweep_result",
    "canonical_setting",
    "format_mean_std",
    "load_sweep",
    "selection_metric",
]

METRIC_ORDER = ("train_loss", "train_acc", "val_loss", "val_top1", "test_top1", "test_top5", "test_top10",
                "test_mean_class_accuracy")
"""Columns first in tables (train loss/accuracy, validation, then test top-1/5/10 and mean class accuracy);
other metrics follow, sorted."""

TRAIN_FALLBACK = {"val_top1": "train_acc", "val_loss": "train_loss"}
"""The train metric that picks the best setting when the results have no such validation metric."""


def canonical_setting(overrides: Mapping[str, Any]) -> str:
    """One string per setting (sorted keys), to compare settings and store them in tables."""
    return json.dumps(dict(sorted(overrides.items())), sort_keys=True, default=str)


def format_mean_std(mean: float, std: float, n: int) -> str:
    """``0.6800 ± 0.0283`` over ``n`` seeds, ``0.6800`` for one seed, ``–`` for none."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if n <= 1 else f"{mean:.4f} ± {std:.4f}"


def selection_metric(requested: str, available: Collection[str]) -> tuple[str, str | None]:
    """The metric that picks the best setting, and a note when it is not ``requested`` (``None`` when it is).

    - ``test_*`` becomes ``val_*``: a setting chosen on the test split makes its test numbers optimistic.
    - A ``val_*`` metric missing from ``available`` falls back to the train metric (``val_top1`` ->
      ``train_acc``, ``val_loss`` -> ``train_loss``), when that one is there.
    """
    metric, notes = requested, []
    if metric.startswith("test_"):
        metric = "val_" + metric.removeprefix("test_")
        notes.append(f"Picked by {metric}, not {requested}: the test split never picks a setting.")
    if metric.startswith("val_") and metric not in available:
        fallback = TRAIN_FALLBACK.get(metric, "train_" + metric.removeprefix("val_"))
        if fallback in available:
            notes.append(f"The results have no {metric} (the objective returned no validation metric), so the "
                         f"best setting is picked by {fallback}, a training number that favours settings which "
                         f"memorise the training set; have the objective return {metric}.")
            metric = fallback
    return metric, " ".join(notes) or None


@dataclass
class SweepRow:
    """One setting: its overrides and each metric's values over seeds (in ``seeds`` order)."""

    index: int
    label: str
    overrides: dict[str, Any]
    seeds: list[int]
    """The seeds that finished."""
    metrics: dict[str, list[float]]
    trial: int | None = None
    """Optuna trial number that produced the row (``None``: not finished)."""

    def mean(self, key: str) -> float:
        values = self.metrics.get(key, [])
        return statistics.fmean(values) if values else math.nan

    def std(self, key: str) -> float:
        """Sample standard deviation over seeds (``ddof=1``); 0 for a single seed."""
        values = self.metrics.get(key, [])
        return statistics.stdev(values) if len(values) > 1 else (0.0 if values else math.nan)

    def mean_std(self, key: str) -> str:
        return format_mean_std(self.mean(key), self.std(key), len(self.metrics.get(key, [])))


@dataclass
class SweepResult:
    """The table of a sweep: one :class:`SweepRow` per setting.

    ``metric``/``direction`` say what "best" means; the metric actually used is :attr:`selected_by` (never a
    test metric, see :func:`selection_metric`) and the best row is :attr:`best`, an index into ``rows``.
    """

    name: str
    metric: str
    direction: str
    seeds: list[int]
    rows: list[SweepRow]
    title: str = ""
    study_dir: str = ""
    notes: list[str] = field(default_factory=list)
    """What went wrong while running (unfinished seeds, failed trials)."""

    @property
    def columns(self) -> list[str]:
        keys = {k for r in self.rows for k in r.metrics}
        return [k for k in METRIC_ORDER if k in keys] + sorted(keys - set(METRIC_ORDER))

    def _selection(self) -> tuple[str, str | None]:
        return selection_metric(self.metric, set(self.columns))

    @property
    def selected_by(self) -> str:
        """The metric that picks the best row."""
        return self._selection()[0]

    @property
    def selection_note(self) -> str | None:
        """Why :attr:`selected_by` is not ``metric`` (``None`` when it is)."""
        return self._selection()[1]

    @property
    def best(self) -> int | None:
        """Index of the best row by :attr:`selected_by` (ties: the first), ``None`` if no row has it."""
        key = self.selected_by
        scored = [(r.mean(key), i) for i, r in enumerate(self.rows) if not math.isnan(r.mean(key))]
        if not scored:
            return None
        sign = -1.0 if self.direction == "maximize" else 1.0
        return min(scored, key=lambda t: (sign * t[0], t[1]))[1]

    def header(self) -> list[str]:
        return ["setting", "seeds", *self.columns]

    def formatted_rows(self) -> list[list[str]]:
        """Unescaped cells under :meth:`header`: label, finished seeds, ``mean ± std`` of each metric."""
        cols = self.columns
        return [[r.label, str(len(r.seeds)), *(r.mean_std(k) for k in cols)] for r in self.rows]

    def all_notes(self) -> list[str]:
        """The run's notes, then how the best row was chosen when that needs saying."""
        note = self.selection_note
        return [*self.notes, note] if note else list(self.notes)

    def table(self) -> list[dict[str, Any]]:
        """Flat rows: ``setting``, ``n_seeds``, then ``<metric>_mean`` / ``<metric>_std`` per metric."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {"setting": r.label, "n_seeds": len(r.seeds)}
            for key in self.columns:
                row[f"{key}_mean"] = r.mean(key)
                row[f"{key}_std"] = r.std(key)
            row["overrides"] = canonical_setting(r.overrides)
            out.append(row)
        return out

    def to_csv(self) -> str:
        table = self.table()
        buf = io.StringIO()
        fields = list(table[0]) if table else ["setting", "n_seeds", "overrides"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buf.getvalue()

    def to_markdown(self, heading: str = "###") -> str:
        """One row per setting, ``mean ± std`` over seeds, the best row in bold; ``heading`` marks the title."""
        cols = self.columns
        lines = [f"{heading} {md_escape(self.title)}", ""] if self.title else []
        lines += ["| " + " | ".join(md_escape(h) for h in self.header()) + " |",
                  "|" + "|".join(["---"] * 2 + ["---:"] * len(cols)) + "|"]
        best = self.best
        for i, cells in enumerate(self.formatted_rows()):
            cells = [md_escape(c) for c in cells]
            if i == best:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        if best is not None:
            lines += ["", f"Best by {self.selected_by} ({self.direction}): **{md_escape(self.rows[best].label)}**"]
        lines += [f"- {md_escape(note)}" for note in self.all_notes()]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "metric": self.metric, "direction": self.direction,
            "selected_by": self.selected_by, "seeds": self.seeds, "best": self.best, "study_dir": self.study_dir,
            "notes": self.notes,
            "rows": [{"index": r.index, "label": r.label, "overrides": r.overrides, "seeds": r.seeds,
                      "metrics": r.metrics, "trial": r.trial} for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepResult:
        """Read :meth:`to_json`'s dict; the best row is chosen again (a stored ``best`` is not trusted)."""
        rows = [SweepRow(index=r.get("index", i), label=r["label"], overrides=dict(r.get("overrides", {})),
                         seeds=list(r.get("seeds", [])),
                         metrics={k: [float(x) for x in v] for k, v in r["metrics"].items()}, trial=r.get("trial"))
                for i, r in enumerate(data["rows"])]
        return cls(name=data.get("name", "sweep"), metric=data.get("metric", "val_top1"),
                   direction=data.get("direction", "maximize"), seeds=list(data.get("seeds", [])), rows=rows,
                   title=data.get("title", ""), study_dir=data.get("study_dir", ""),
                   notes=list(data.get("notes", [])))

    def write(self, out_dir: str | Path, stem: str = "results") -> dict[str, Path]:
        """Write ``<stem>.csv``, ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
        out_dir = Path(out_dir)
        paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("csv", "json", "md")}
        atomic_write_text(paths["csv"], self.to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_json(), indent=1, default=str))
        atomic_write_text(paths["md"], self.to_markdown())
        return paths


def load_sweep(path: str | Path) -> SweepResult:
    """Read a sweep table from ``results.json`` (or a study directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sweep results; run the sweep first (it writes results.json)")
    return SweepResult.from_json(json.loads(path.read_text()))


def as_sweep_result(source: SweepResult | str | Path | Mapping[str, Any]) -> SweepResult:
    """A :class:`SweepResult` from itself, a ``results.json`` path (or its directory) or its parsed dict."""
    if isinstance(source, SweepResult):
        return source
    if isinstance(source, (str, Path)):
        return load_sweep(source)
    if isinstance(source, Mapping):
        return SweepResult.from_json(source)
    raise TypeError(f"a sweep must be a SweepResult, a results.json path or its dict, got {type(source).__name__}")
