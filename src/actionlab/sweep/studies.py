"""Named studies: sets of one-factor-at-a-time experiments, run as one sweep and written as one table each.

A study is a function returning a list of :class:`Experiment`; :data:`STUDIES` names them for the CLI::

    results = run_experiments(STUDIES["lstm_ablation"](scale=0.1), objective, "sweeps/lstm_ablation")

The engine that runs them (Optuna storage, samplers, resume, worker processes) is
:func:`actionlab.sweep.engine.run_sweep`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actionlab.report.escape import md_escape
from actionlab.report.sweep_table import SweepResult, SweepRow, canonical_setting
from actionlab.sweep.engine import Objective, run_sweep, setting_labels
from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["STUDIES", "Experiment", "get_study", "lstm_ablation", "real_differences", "run_experiments",
           "study_summary"]


@dataclass(frozen=True)
class Experiment:
    """One factor varied on top of a shared baseline: ``settings`` each change one thing in ``base``.

    Each experiment becomes one table of a study (e.g. "1. Number of LSTM layers" of the LSTM ablation study).
    """

    name: str
    title: str
    settings: tuple[dict[str, Any], ...]
    base: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> list[dict[str, Any]]:
        return [{**self.base, **s} for s in self.settings]


def run_experiments(experiments: Sequence[Experiment], objective: Objective, study_dir: str | Path,
                    **sweep_kwargs: Any) -> list[SweepResult]:
    """Run several experiments as ONE grid sweep over their distinct settings, then split it into tables.

    Settings shared between experiments (the baseline appears in every table of a one-factor-at-a-time study)
    run once. Writes the combined table to ``study_dir/results.*``, one table per experiment to
    ``study_dir/experiments/<name>.*``, and all of them to ``study_dir/summary.md``. ``sweep_kwargs`` go to
    :func:`~actionlab.sweep.engine.run_sweep` (``seeds``, ``n_jobs``, ``storage``, ``metric``, ...; the
    sampler is always ``grid``).
    """
    study_dir = Path(study_dir)
    unique: dict[str, dict[str, Any]] = {}
    for exp in experiments:
        for s in exp.resolved():
            unique.setdefault(canonical_setting(s), s)
    combined = run_sweep(list(unique.values()), objective, study_dir, sampler="grid", **sweep_kwargs)
    rows_by_key = {canonical_setting(r.overrides): r for r in combined.rows}
    results = []
    for exp in experiments:
        labels = setting_labels(list(exp.settings))
        rows = []
        for i, (s, label) in enumerate(zip(exp.resolved(), labels)):
            src = rows_by_key[canonical_setting(s)]
            rows.append(SweepRow(index=i, label=label, overrides=s, seeds=src.seeds, metrics=src.metrics,
                                 trial=src.trial, run_dirs=src.run_dirs))
        res = SweepResult(name=exp.name, title=exp.title, metric=combined.metric, direction=combined.direction,
                          seeds=combined.seeds, rows=rows, study_dir=str(study_dir))
        res.compare_with_best()
        res.write(study_dir / "experiments", stem=exp.name)
        results.append(res)
    atomic_write_text(study_dir / "summary.md", study_summary(results))
    return results


def real_differences(results: Sequence[SweepResult]) -> str:
    """Which knobs made a real difference: per experiment, whether some setting differs from the experiment's
    best by more than chance on validation top-1 (paired over videos and seeds). Markdown, ``""`` when no
    experiment could be compared (no trial kept its validation predictions)."""
    compared = [r for r in results if r.compared and any(row.vs_best for row in r.rows)]
    if not compared:
        return ""
    real = [r for r in compared if r.differing()]
    lines = ["## Which knobs made a real difference", "",
             "Each setting against the best of its table, on validation top-1, paired over videos and seeds "
             "(a difference is real when McNemar's/sign-flip p < 0.05 and its 95% interval leaves out 0).", ""]
    for r in real:
        best = r.rows[r.best].label if r.best is not None else "?"
        worse = ", ".join(md_escape(row.label) for row in r.differing())
        lines.append(f"- **{md_escape(r.title or r.name)}**: best {md_escape(best)}; clearly different: {worse}")
    quiet = [md_escape(r.title or r.name) for r in compared if not r.differing()]
    if quiet:
        lines.append(f"- No clear difference (within chance): {', '.join(quiet)}")
    return "\n".join(lines) + "\n"


def study_summary(results: Sequence[SweepResult]) -> str:
    """``summary.md`` of a study: which knobs made a real difference, then every experiment's table."""
    head = real_differences(results)
    return (head + "\n" if head else "") + "\n".join(r.to_markdown() for r in results)


def lstm_ablation(scale: float = 1.0, seq_scale: float = 1.0) -> list[Experiment]:
    """The LSTM ablation study of an IE598 course project on UCF-101: an LSTM over per-frame CNN features,
    one factor at a time (layers, weight decay, batch norm, optimizer, lr, epochs, clipping, sequence length,
    dropout, batch size, loss scaling, truncated BPTT, inference).

    The baseline is the project's reference setting (momentum SGD, lr 5e-4, 1 layer, batch norm, dropout 0.5,
    clip 5, sequence 120 with TBPTT 30, loss scaled toward later steps, strided-window inference). ``scale``
    multiplies epochs (25/50/100 at 1.0) and ``seq_scale`` sequence/window/TBPTT lengths (120 steps at 1.0,
    made for ~150-frame UCF-101 videos), so the same study runs on a tiny feature store, e.g.
    ``lstm_ablation(scale=0.08, seq_scale=0.1)``.
    """
    def ep(n: int) -> int:
        return max(1, round(n * scale))

    def steps(n: int) -> int:
        return max(1, round(n * seq_scale))

    base = {"model.name": "lstm", "model.num_layers": 1, "model.batch_norm": True, "model.dropout": 0.5,
            "optim.name": "sgd", "optim.lr": 5e-4, "optim.weight_decay": 0.0, "optim.grad_clip": 5.0,
            "epochs": ep(25), "batch_size": 32, "sequence.seq_len": steps(120), "sequence.tbptt": steps(30),
            "sequence.loss_weighting": "linear", "sequence.sampling": "segment",
            "sequence.short_policy": "reverse_repeat", "inference.mode": "windows", "inference.window": steps(60),
            "inference.stride": steps(30)}

    def exp(name: str, title: str, key: str, values: Sequence[Any]) -> Experiment:
        # dict.fromkeys dedupes values that collapse after scaling (e.g. tiny seq_scale)
        return Experiment(name, title, tuple({key: v} for v in dict.fromkeys(values)), base)

    return [
        exp("layers", "1. Number of LSTM layers", "model.num_layers", [1, 2, 3]),
        exp("weight_decay", "2. Weight decay", "optim.weight_decay", [0.0, 5e-4]),
        exp("batch_norm", "3. Batch normalization", "model.batch_norm", [True, False]),
        exp("optimizer", "4. Optimizer", "optim.name", ["sgd", "adam", "rmsprop"]),
        exp("lr", "5. Learning rate", "optim.lr", [3e-4, 5e-4, 7e-4, 9e-4, 1e-3]),
        exp("epochs", "6. Number of epochs", "epochs", [ep(25), ep(50), ep(100)]),
        exp("grad_clip", "7. Gradient clipping", "optim.grad_clip", [5.0, 7.0, 9.0, 11.0]),
        exp("seq_len", "8. Sequence length", "sequence.seq_len", [steps(n) for n in (30, 60, 120, 150, 180)]),
        exp("dropout", "9. Dropout", "model.dropout", [0.2, 0.3, 0.4, 0.5, 0.6]),
        exp("batch_size", "Batch size", "batch_size", [16, 32, 64]),
        exp("loss_weighting", "10. Loss scaling", "sequence.loss_weighting", ["uniform", "linear", "last"]),
        exp("tbptt", "11. Truncated BPTT", "sequence.tbptt", [steps(n) for n in (30, 50, 80, 120)]),
        exp("inference", "12. Inference technique", "inference.mode", ["full", "windows", "vote"]),
    ]


STUDIES: dict[str, Callable[..., list[Experiment]]] = {"lstm_ablation": lstm_ablation}
"""Named studies: ``run_experiments(STUDIES["lstm_ablation"](scale=0.1), objective, "sweeps/lstm_ablation")``."""

def get_study(name: str) -> Callable[..., list[Experiment]]:
    """The study called ``name``."""
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose from {sorted(STUDIES)}")
    return STUDIES[name]

