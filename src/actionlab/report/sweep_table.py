"""The table of a sweep: one row per setting, ``mean ± std`` over seeds of each metric, the best row marked.

The sweep engine (:mod:`actionlab.sweep.engine`) fills it and writes ``results.{csv,json,md}``; the report
(:mod:`actionlab.report.html`) reads ``results.json`` back and renders the same table, so both show the
same columns, numbers and best row.

**The test split never picks the best row.** Tables show ``test_*`` numbers, but the best setting is chosen by
a validation metric (``val_top1`` by default); a ``test_*`` metric asked for is replaced by its ``val_*``
counterpart, and when the results have no validation metric the train metric is used with a note saying so
(see :func:`selection_metric`).

**Differences from the best row are tested, not eyeballed.** When the trial runs kept their validation
predictions (``predictions_val.npz``), :meth:`SweepResult.compare_with_best` compares every row with the best
one video by video, each seed paired with the same seed (:func:`actionlab.evaluate.compare.
paired_seed_comparison`): the top-1 difference, its 95% interval and p-value, and whether it is more than chance.
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

from actionlab.evaluate.compare import format_p, paired_seed_comparison
from actionlab.evaluate.predictions import Predictions, load_predictions
from actionlab.report.escape import md_escape
from actionlab.rundir import RunDir
from actionlab.utils import atomic_write_text

__all__ = [
    "METRIC_ORDER",
    "SweepResult",
    "SweepRow",
    "as_sweep_result",
    "canonical_setting",
    "format_mean_std",
    "format_vs_best",
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
    run_dirs: list[str] = field(default_factory=list)
    """The run directory of each finished seed (in ``seeds`` order), when the objective trained runs there."""
    vs_best: dict[str, Any] | None = None
    """Paired comparison with the best row (:meth:`SweepResult.compare_with_best`): ``difference`` (this row -
    best, top-1), ``ci95``, ``p``, ``clear`` (more than chance), ``seeds``, ``videos``, ``split``, ``verdict``."""

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
    compared_with: int | None = None
    """The best row the rows' ``vs_best`` refer to (``None``: not compared)."""

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

    @property
    def compared(self) -> bool:
        """Whether the rows carry a comparison with the current best row."""
        return self.compared_with is not None and self.compared_with == self.best

    def header(self) -> list[str]:
        vs = [f"{self.comparison_split()} top-1 vs best"] if self.compared else []
        return ["setting", "seeds", *self.columns, *vs]

    def comparison_split(self) -> str:
        return next((r.vs_best["split"] for r in self.rows if r.vs_best), "val")

    def formatted_rows(self) -> list[list[str]]:
        """Unescaped cells under :meth:`header`: label, finished seeds, ``mean ± std`` of each metric, and the
        comparison with the best row when there is one."""
        cols = self.columns
        rows = [[r.label, str(len(r.seeds)), *(r.mean_std(k) for k in cols)] for r in self.rows]
        if self.compared:
            for i, (row, r) in enumerate(zip(rows, self.rows)):
                row.append("best" if i == self.best else format_vs_best(r.vs_best))
        return rows

    def all_notes(self) -> list[str]:
        """The run's notes, how the best row was chosen when that needs saying, and which rows differ from it by
        more than chance."""
        note = self.selection_note
        notes = [*self.notes, note] if note else list(self.notes)
        verdict = self.chance_note()
        return [*notes, verdict] if verdict else notes

    def differing(self) -> list[SweepRow]:
        """The rows that differ from the best row by more than chance (empty when not compared)."""
        return [r for r in self.rows if self.compared and r.vs_best and r.vs_best.get("clear")]

    def chance_note(self) -> str | None:
        """One sentence: which settings differ from the best by more than chance, or that none does."""
        if not self.compared or self.best is None:
            return None
        tested = [r for r in self.rows if r.vs_best]
        if not tested:
            return None
        best, split = self.rows[self.best].label, self.comparison_split()
        real = [f"{r.label} ({format_vs_best(r.vs_best)})" for r in self.differing()]
        if not real:
            return (f"No setting differs from the best ({best}) by more than chance on {split} top-1 (paired over "
                    "videos and seeds).")
        return (f"Differs from the best ({best}) by more than chance on {split} top-1 (paired over videos and "
                f"seeds): {'; '.join(real)}.")

    def compare_with_best(self, split: str = "val") -> None:
        """Compare every row with the best row on ``split`` (the rows' run directories' ``predictions_<split>.npz``),
        each seed paired with its own seed and each video with itself; fills ``vs_best`` of each row and
        :attr:`compared_with`. Rows without predictions (an objective that trains no runs) are left out."""
        self.compared_with = None
        for r in self.rows:
            r.vs_best = None
        best = self.best
        reference = _seed_predictions(self.rows[best], split) if best is not None else {}
        if best is None or not reference:
            return
        for i, row in enumerate(self.rows):
            if i != best:
                row.vs_best = _compare_rows(reference, _seed_predictions(row, split), self.rows[best].label,
                                            row.label, split)
        self.compared_with = best

    def table(self) -> list[dict[str, Any]]:
        """Flat rows: ``setting``, ``n_seeds``, then ``<metric>_mean`` / ``<metric>_std`` per metric."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {"setting": r.label, "n_seeds": len(r.seeds)}
            for key in self.columns:
                row[f"{key}_mean"] = r.mean(key)
                row[f"{key}_std"] = r.std(key)
            if self.compared and r.vs_best:
                low, high = r.vs_best["ci95"]
                row.update(vs_best_difference=r.vs_best["difference"], vs_best_low=low, vs_best_high=high,
                           vs_best_p=r.vs_best["p"], vs_best_clear=r.vs_best["clear"])
            row["overrides"] = canonical_setting(r.overrides)
            out.append(row)
        return out

    def to_csv(self) -> str:
        table = self.table()
        buf = io.StringIO()
        fields = list(table[0]) if table else ["setting", "n_seeds", "overrides"]
        fields = list(dict.fromkeys(k for row in table for k in row)) or fields  # vs_best only on some rows
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        return buf.getvalue()

    def to_markdown(self, heading: str = "###") -> str:
        """One row per setting, ``mean ± std`` over seeds, the best row in bold; ``heading`` marks the title."""
        lines = [f"{heading} {md_escape(self.title)}", ""] if self.title else []
        lines += ["| " + " | ".join(md_escape(h) for h in self.header()) + " |",
                  "|" + "|".join(["---"] * 2 + ["---:"] * (len(self.header()) - 2)) + "|"]
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
            "notes": self.notes, "compared_with": self.compared_with,
            "rows": [{"index": r.index, "label": r.label, "overrides": r.overrides, "seeds": r.seeds,
                      "metrics": r.metrics, "trial": r.trial, "run_dirs": r.run_dirs, "vs_best": r.vs_best}
                     for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepResult:
        """Read :meth:`to_json`'s dict; the best row is chosen again (a stored ``best`` is not trusted)."""
        rows = [SweepRow(index=r.get("index", i), label=r["label"], overrides=dict(r.get("overrides", {})),
                         seeds=list(r.get("seeds", [])),
                         metrics={k: [float(x) for x in v] for k, v in r["metrics"].items()}, trial=r.get("trial"),
                         run_dirs=[str(d) for d in r.get("run_dirs") or []], vs_best=r.get("vs_best"))
                for i, r in enumerate(data["rows"])]
        # the comparisons hold only against the best row they were made with (``compared`` checks it)
        return cls(name=data.get("name", "sweep"), metric=data.get("metric", "val_top1"),
                   direction=data.get("direction", "maximize"), seeds=list(data.get("seeds", [])), rows=rows,
                   title=data.get("title", ""), study_dir=data.get("study_dir", ""),
                   notes=list(data.get("notes", [])), compared_with=data.get("compared_with"))

    def write(self, out_dir: str | Path, stem: str = "results") -> dict[str, Path]:
        """Write ``<stem>.csv``, ``<stem>.json`` and ``<stem>.md`` atomically; returns their paths."""
        out_dir = Path(out_dir)
        paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("csv", "json", "md")}
        atomic_write_text(paths["csv"], self.to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_json(), indent=1, default=str))
        atomic_write_text(paths["md"], self.to_markdown())
        return paths


def format_vs_best(vs: Mapping[str, Any] | None) -> str:
    """``-3.6 pts (-6.1 to -1.1), p = 0.004: worse`` or ``...: within chance``; ``–`` when not compared."""
    if not vs:
        return "–"
    low, high = vs["ci95"]
    judged = ("worse" if vs["difference"] < 0 else "better") if vs.get("clear") else "within chance"
    return (f"{100 * vs['difference']:+.1f} pts ({100 * low:+.1f} to {100 * high:+.1f}), {format_p(vs['p'])}: "
            f"{judged}")


def _seed_predictions(row: SweepRow, split: str) -> dict[int, Predictions]:
    """The labelled ``split`` predictions of each finished seed of ``row`` that has them."""
    out = {}
    for seed, run_dir in zip(row.seeds, row.run_dirs):
        path = RunDir(run_dir).predictions(split)
        if path.is_file():
            out[seed] = load_predictions(path).labelled()
    return out


def _compare_rows(best: dict[int, Predictions], row: dict[int, Predictions], best_label: str, label: str,
                  split: str) -> dict[str, Any] | None:
    """``row`` against ``best`` over their common seeds (seed paired with seed) and videos (by key)."""
    seeds = [s for s in best if s in row]
    if not seeds:
        return None
    reference = best[seeds[0]]
    keys = list(reference.keys)
    try:
        preds_best = [best[s].align(keys).preds for s in seeds]
        preds_row = [row[s].align(keys).preds for s in seeds]
    except KeyError:  # another split or manifest: not comparable video by video
        return None
    c = paired_seed_comparison(reference.labels, preds_best, preds_row, names=(best_label, label))
    return {"difference": c.difference, "ci95": list(c.ci95), "p": c.mcnemar_p, "clear": c.clear,
            "b_right_a_wrong": c.b_right_a_wrong, "a_right_b_wrong": c.a_right_b_wrong, "seeds": c.seeds,
            "videos": c.n_videos, "split": split, "verdict": c.verdict}


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
