"""``actionlab report``: one HTML report (+ Markdown beside it) of run and sweep directories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from actionlab.report.html import load_run, write_report
from actionlab.report.sweep_table import load_sweep

StripMaker = Callable[[Any], Any]
"""``maker(run) -> strip(path, label) -> image | None``: heat-map strips of a run's videos."""


def make_report(paths: Sequence[str | Path], output: str | Path, baseline: str | Path | None = None,
                videos: int = 6, saliency: StripMaker | None = None) -> tuple[Path, Path]:
    """One HTML report (+ Markdown beside it) of run and sweep directories; returns both paths.

    ``videos``: test videos per run shown as frame strips (most wrong; fixed against the baseline);
    ``saliency``: draw them with the run's heat maps: ``saliency(run)`` gives a strip maker, or None for a run it
    cannot explain (``actionlab report --saliency`` passes :func:`actionlab.predict.explain.strip_maker`;
    seconds per video for a two-stage run on a CPU, so off by default)."""
    runs, sweeps = [], []
    for p in map(Path, paths):
        if (p / "results.json").is_file():
            exp_dir = p / "experiments"
            parts = sorted(exp_dir.glob("*.json")) if exp_dir.is_dir() else []
            sweeps.extend(load_sweep(q) for q in parts) if parts else sweeps.append(load_sweep(p))
        else:
            runs.append(load_run(p))
    base_name = None
    if baseline is not None:
        base_name = Path(baseline).name
        if base_name not in {r.name for r in runs}:
            runs.insert(0, load_run(baseline))
    html = write_report(output, runs, sweeps, baseline=base_name, videos=videos, saliency=saliency)
    return html, Path(html).with_suffix(".md")
