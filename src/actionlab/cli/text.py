"""Terminal text of the verbs: evaluations, comparisons, per-class tables, predictions.

The library returns data (dicts of metrics, predictions); only the CLI turns it into text. Everything it prints
passes :func:`terminal_safe` (``main`` wraps stdout and the log), so a class or file name holding control
characters or ANSI escapes is shown escaped and never reaches the terminal raw.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actionlab.data.index import IndexReport
    from actionlab.data.manifest import Manifest


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters (all but tab and newline; ESC starts ANSI sequences, CR rewrites a line) and the
bidirectional overrides that make text display in another order than it reads."""


def terminal_safe(text: str) -> str:
    """``text`` with control characters and bidi overrides written as visible escapes (``\\x1b``, ``\\u202e``)."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


class TerminalSafe(io.TextIOBase):
    """stdout through :func:`actionlab.cli.text.terminal_safe`: names from datasets never reach the terminal raw."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(terminal_safe(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        """The record as usual, through :func:`terminal_safe`."""
        return terminal_safe(super().format(record))


def error_message(exc: BaseException, command: str | None = None) -> str:
    """One line for an exception: the message of the errors actionlab raises (they name the file and the fix);
    for anything else its type too, and a pointer to ``-v``. ``command`` (``train``...) tailors how to resume."""
    from actionlab.utils import DiskFullError

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(exc, DiskFullError):
        exc = DiskFullError(exc.filename or "?")
    if isinstance(exc, DiskFullError) and command in ("train", "finetune"):
        exc.rerun = "rerun the same command with --resume"
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    elif isinstance(exc, OSError) and exc.filename and exc.strerror and str(exc).startswith("[Errno"):
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    text = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    if not isinstance(exc, (OSError, ValueError, KeyError, RuntimeError)):
        text = f"unexpected {type(exc).__name__}: {text} (rerun with -v for the traceback)"
    return text


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):5.1f}%"


def format_evaluation(result: dict[str, Any]) -> str:
    """A terminal summary of :func:`evaluate_run`."""
    m = result["metrics"]
    lines = [f"{result['name']} on {result['split']}: {m.get('num_videos', '?')} videos, "
             f"{len(m.get('classes', []))} classes"]
    row = [("top-1", m.get("top1")), ("top-5", m.get("top5")), ("top-10", m.get("top10")),
           ("mean class acc", m.get("mean_class_accuracy"))]
    if "clip_top1" in m:
        row.append(("clip top-1", m["clip_top1"]))
    lines.append("  ".join(f"{k} {_pct(v)}" for k, v in row))
    if result.get("warning"):
        lines.append(f"warning: {result['warning']}")
    if "baseline_metrics" in result:
        b = result["baseline_metrics"]
        lines.append(f"baseline {Path(result['baseline']).name}: top-1 {_pct(b.get('top1'))}  "
                     f"mean class acc {_pct(b.get('mean_class_accuracy'))}")
    if "difference" in result:
        lines += _paired_lines(result, "vs baseline")
    for member in result.get("vs_members", []):
        lines += _paired_lines(member, f"vs {Path(member['member']).name}")
    classes = m.get("classes", [])
    acc = m.get("per_class_accuracy", [])
    if classes and acc:
        lines.append("per-class accuracy:")
        width = max(len(c) for c in classes)
        lines += [f"  {c:<{width}}  {_pct(a)}" for c, a in zip(classes, acc)]
    pairs = m.get("most_confused", [])
    if pairs:
        lines.append("most confused (true -> predicted):")
        for p in pairs[:5]:
            lines.append(f"  {p.get('true')} -> {p.get('predicted')}: {p.get('count')}")
    ch = result.get("changes")
    discordant = _class_discordance(result)
    if ch:
        for title, key in (("improved most vs baseline", "improved"), ("hurt most vs baseline", "hurt")):
            if ch.get(key):
                lines.append(f"{title}:")
                for c in ch[key]:
                    lines.append(f"  {c['class']}: {_pct(c.get('base_accuracy'))} -> {_pct(c.get('new_accuracy'))}"
                                 + discordant.get(c.get("index"), ""))
    return "\n".join(lines)


def _paired_lines(c: dict[str, Any], title: str) -> list[str]:
    """A paired comparison (``evaluate --baseline``, a fused run against a stream): the sentence, which carries
    the discordant counts, the top-1 difference, its 95% interval and McNemar's p-value."""
    return [f"{title}: {c.get('verdict', '')}"]


def _class_discordance(result: dict[str, Any]) -> dict[int, str]:
    """Per class index: `` (3 fixed, 1 broken; rests on few videos)`` from the comparison's per-class counts."""
    out = {}
    for c in result.get("per_class") or []:
        few = "; rests on few videos" if c.get("few_videos") else ""
        out[c["index"]] = f"  ({c['b_right_a_wrong']} fixed, {c['a_right_b_wrong']} broken{few})"
    return out


def format_comparison(results: dict[str, dict[str, Any]]) -> str:
    """A table, one row per run: top-1/5/10, mean class accuracy, clip top-1."""
    header = f"{'run':<16} {'top-1':>7} {'top-5':>7} {'top-10':>7} {'mean cls':>8} {'clip top-1':>10}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        m = r["metrics"]
        lines.append(f"{name:<16} {_pct(m.get('top1')):>7} {_pct(m.get('top5')):>7} {_pct(m.get('top10')):>7} "
                     f"{_pct(m.get('mean_class_accuracy')):>8} {_pct(m.get('clip_top1')):>10}")
    return "\n".join(lines)


def format_per_class(results: dict[str, dict[str, Any]]) -> str:
    """A table, one row per class (test videos in brackets) and one column per run: per-class accuracy."""
    names = list(results)
    first = results[names[0]]["metrics"]
    labels = [f"{c} ({n})" for c, n in zip(first["classes"], first["support"])]
    width = max(len(label) for label in labels)
    header = f"{'class':<{width}}" + "".join(f" {n[:12]:>12}" for n in names)
    lines = [header, "-" * len(header)]
    for i, label in enumerate(labels):
        cells = "".join(f" {_pct(results[n]['metrics']['per_class_accuracy'][i]):>12}" for n in names)
        lines.append(f"{label:<{width}}{cells}")
    return "\n".join(lines)


def format_predictions(results: list[dict[str, Any]], segments: bool = False) -> str:
    """Top labels of each video, then its timeline (every window, or the merged ``segments``)."""
    lines = []
    for r in results:
        lines.append(f"{r['video']}  ({r['frames']} frames, {r['duration']:.1f}s)")
        lines += [f"  {t['score']:6.1%}  {t['label']}" for t in r["top"]]
        rows = r["segments"] if segments else r["timeline"]
        if segments or len(rows) > 1:
            lines.append("  segments:" if segments else "  timeline:")
            lines += [f"    {w['start']:7.2f}s - {w['end']:7.2f}s  {w['label']} ({w['score']:.0%})" for w in rows]
        if "annotated" in r:
            lines.append(f"  annotated video: {r['annotated']['path']} ({r['annotated']['frames']} frames)")
    return "\n".join(lines)


def format_seeds(summary: dict[str, Any]) -> str:
    """A table of a multi-seed run: one row per seed, then mean ± std (sample standard deviation) and the 95%
    t-interval of the mean."""
    keys = [k for k in ("top1", "mean_class_accuracy", "val_top1", "best_train_acc") if k in summary["mean"]]
    names = {"top1": "test top-1", "mean_class_accuracy": "mean class", "val_top1": "val top-1",
             "best_train_acc": "train acc"}
    header = f"{'seed':<8}" + "".join(f" {names[k]:>16}" for k in keys)
    lines = [header, "-" * len(header)]
    for seed, m in summary["runs"].items():
        lines.append(f"{seed:<8}" + "".join(f" {_pct(m.get(k)):>16}" for k in keys))
    cells = "".join(f" {100 * summary['mean'][k]:>8.1f} ± {100 * summary['std'][k]:<4.1f}%" for k in keys)
    lines.append(f"{'mean':<8}{cells}")
    intervals = summary.get("ci95") or {}
    if any(_interval(intervals.get(k)) != "-" for k in keys):
        lines.append(f"{'95% CI':<8}" + "".join(f" {_interval(intervals.get(k)):>16}" for k in keys))
    return "\n".join(lines)


def _interval(bounds: Any) -> str:
    """``[68.1, 73.5]%`` from ``[low, high]`` fractions, ``-`` when unknown (one seed)."""
    if not bounds or None in bounds or any(math.isnan(float(b)) for b in bounds):
        return "-"
    return f"[{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]%"


def format_index_report(manifest: Manifest, report: IndexReport, max_items: int = 10, max_classes: int = 30) -> str:
    """The human summary ``actionlab index`` prints."""
    summary = manifest.summary()
    lines = [f"layout:   {report.layout} ({report.detected})" + (f", split {report.split}" if report.split else ""),
             f"root:     {report.root}",
             f"classes:  {summary['num_classes']}",
             f"videos:   {summary['num_videos']} of {report.listed} listed ("
             + ", ".join(f"{s} {n}" for s, n in summary["videos_per_split"].items()) + ")"]
    if "groups_per_split" in summary and summary["groups_per_split"]:
        lines.append("groups:   " + ", ".join(f"{s} {n}" for s, n in summary["groups_per_split"].items()))
    if "frames" in summary:
        f = summary["frames"]
        lines.append(f"frames:   min {f['min']}, mean {f['mean']:.1f}, max {f['max']}")
    for title, items in (("missing (listed, not on disk)", report.missing),
                         ("unreadable", [f"{p}: {why}" for p, why in report.unreadable]),
                         ("skipped (listed, cannot be used)", report.skipped),
                         ("misplaced (listed, found in another class's folder; indexed with the listed label)",
                          [f"{listed} -> {found}" for listed, found in report.misplaced]),
                         ("unlisted (on disk, in no split list)", report.unlisted)):
        if not items and title.startswith(("skipped", "misplaced")):
            continue
        lines.append(f"{title}: {len(items)}")
        lines += [f"  {x}" for x in items[:max_items]]
        if len(items) > max_items:
            lines.append(f"  ... and {len(items) - max_items} more")
    splits = list(summary["videos_per_split"])
    per_class = summary["per_class"]
    if per_class and len(per_class) <= max_classes:
        width = max(len(c) for c in per_class)
        lines.append(f"per class ({'/'.join(splits)}):")
        lines += [f"  {c:<{width}}  " + "/".join(str(n[s]) for s in splits) for c, n in per_class.items()]
    elif per_class:
        totals = {c: sum(n.values()) for c, n in per_class.items()}
        lo, hi = min(totals, key=totals.__getitem__), max(totals, key=totals.__getitem__)
        lines.append(f"per class: min {totals[lo]} ({lo}), max {totals[hi]} ({hi})")
    lines += [f"note: {n}" for n in report.notes[:max_items]]
    if len(report.notes) > max_items:
        lines.append(f"note: ... and {len(report.notes) - max_items} more")
    lines.append(f"left out: {report.defect_summary()}")
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print a verb's result as JSON (``--json``) or as its terminal text."""
    print(json.dumps(data, indent=2, default=str) if as_json else text(data))


# ----------------------------------------------------------------------------------- the verbs' helpers


def progress_bar(desc: str, total: int | None = None, unit: str = "video") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=None)


def progress_callback(bar: Any) -> Callable[..., None]:
    """Adapt a tqdm bar to the library's ``progress(done, total)`` callbacks."""

    def update(done: int, total: int | None = None, **_: Any) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.n = done
        bar.refresh()

    return update


def csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def fail(message: str) -> None:
    """The one ``error:`` line of a failed command (stderr)."""
    print(f"error: {terminal_safe(message)}", file=sys.stderr)
