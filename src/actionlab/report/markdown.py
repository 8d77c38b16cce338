"""The report's findings as plain Markdown (``report.md`` beside ``report.html``).

Class names, run names and sweep labels come from datasets and configs: every one goes through
:func:`~actionlab.report.escape.md_escape`, so a class called ``<script>alert(1)</script>`` stays text when
the Markdown is rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actionlab.evaluate.diagnose import best_epoch_accuracies, memorisation_warning
from actionlab.report.escape import md_escape
from actionlab.report.run_data import RunData, changes_against, comparison_against, resolve_baseline
from actionlab.report.sweep_table import as_sweep_result

__all__ = ["markdown_summary"]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(c: Any) -> str:
        return md_escape(f"{c:.4f}" if isinstance(c, float) else ("–" if c is None else c))

    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _run_notes(run: RunData) -> list[str]:
    """The run's divergence and memorisation warnings and its most confused pairs, as Markdown lines."""
    out = []
    if run.metrics.get("diverged"):
        out += [f"> **Warning ({md_escape(run.name)}):** training diverged at epoch "
                f"{md_escape(run.metrics.get('diverged_epoch', '?'))} (NaN or infinite loss or weights); its numbers "
                "are those of the best finite epoch, if any.", ""]
    accuracies = best_epoch_accuracies(run.history, run.metrics)
    warning = memorisation_warning(*accuracies) if accuracies else None
    if warning:
        out += [f"> **Warning ({md_escape(run.name)}):** {md_escape(warning)}", ""]
    pairs = (run.metrics.get("most_confused") or [])[:5]
    if pairs:
        out += [f"### {md_escape(run.name)}: most confused", ""]
        out += [f"- {md_escape(p['true'])} → {md_escape(p['predicted'])}: {p['count']} ({p['fraction']:.0%})"
                for p in pairs]
        out.append("")
    return out


def _changes(run: RunData, base: RunData, num_changes: int) -> list[str]:
    ch = changes_against(run, base, num_changes)
    if ch is None:
        return []
    out = [f"## {md_escape(run.name)} vs {md_escape(base.name)}", ""]
    paired = comparison_against(run, base)
    per_class = {c["index"]: c for c in paired.per_class} if paired is not None else {}
    if paired is not None:  # the sentence carries the difference, its interval and McNemar's p-value
        out += [f"{md_escape(paired.verdict)}.", ""]
    for kind in ("improved", "hurt"):
        out += [f"**{kind.capitalize()} most**", ""]
        for it in ch[kind]:
            why = it["base_confused_with"] if kind == "improved" else it["new_confused_with"]
            because = f"; confused with {md_escape(why['class'])} ({why['count']})" if why else ""
            c = per_class.get(it["index"])
            moved = (f"; {c['b_right_a_wrong']} fixed, {c['a_right_b_wrong']} broken"
                     + (", rests on fewer than 5 videos" if c["few_videos"] else "")) if c else ""
            out.append(f"- {md_escape(it['class'])}: {it['base_accuracy']:.0%} → {it['new_accuracy']:.0%} "
                       f"({it['delta']:+.0%}, {it['support']} videos{because}{moved})")
        out.append("")
    return out


def markdown_summary(runs: Sequence[RunData], sweeps: Sequence[Any] = (), baseline: RunData | str | None = None,
                     title: str = "actionlab report", num_changes: int = 10) -> str:
    """The same findings as plain Markdown: the run table, warnings, most confused pairs, class changes against
    ``baseline`` and the sweep tables (``sweeps``: ``SweepResult`` objects, ``results.json`` paths or dicts)."""
    base = resolve_baseline(runs, baseline)
    out = [f"# {md_escape(title)}", ""]
    if runs:
        rows = [[r.name, r.model, r.metrics.get("top1"), r.metrics.get("top5"), r.metrics.get("top10"),
                 r.metrics.get("mean_class_accuracy")] for r in runs]
        out += ["## Runs", "", _md_table(["run", "model", "top-1", "top-5", "top-10", "mean class acc"], rows), ""]
    for r in runs:
        out += _run_notes(r)
    if base is not None:
        for r in runs:
            if r is not base:
                out += _changes(r, base, num_changes)
    for sweep in map(as_sweep_result, sweeps):
        if not sweep.title:  # untitled sweeps are headed by their name
            out += [f"## {md_escape(sweep.name)}", ""]
        out.append(sweep.to_markdown(heading="##"))
    return "\n".join(out) + "\n"
