"""The 101-class benchmark's table: test and validation top-1 (mean ± std over seeds) and the accuracy of the
classes that come in pairs (order/direction only: ``reverse``, ``mirror``; ``speed``), per run.

    .venv/bin/python scripts/benchmark_table.py DATASET_ROOT NAME=RUN [NAME=RUN ...]

DATASET_ROOT is the folder ``actionlab synth --family actions101`` wrote (its ``synth_info.json`` names the
pairs); RUN a run directory or a seeds directory (``train --seeds``: ``RUN/seed-*/``). Prints a Markdown table.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def seed_dirs(run: Path) -> list[Path]:
    seeds = sorted(p for p in run.glob("seed-*") if (p / "metrics.json").exists())
    if seeds:
        return seeds
    if (run / "metrics.json").exists():
        return [run]
    raise SystemExit(f"error: {run} has no metrics.json (nor seed-*/metrics.json): train or fuse it first")


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}%"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = Path(argv[0])
    info_path = root / "synth_info.json"
    if not info_path.exists():
        raise SystemExit(f"error: {info_path} is missing: DATASET_ROOT must be a folder written by "
                         "`actionlab synth ROOT --family actions101`")
    pairs = json.loads(info_path.read_text())["pairs"]
    kinds = sorted({kind for _, _, kind in pairs})
    header = ["run", "seeds", "test top-1", "val top-1", *[f"{k} pairs ({sum(p[2] == k for p in pairs)})"
                                                           for k in kinds]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in argv[1:]:
        name, _, path = spec.partition("=")
        runs = [json.loads((d / "metrics.json").read_text()) for d in seed_dirs(Path(path or name))]
        cells = [name, str(len(runs)), mean_std([m["top1"] for m in runs]),
                 mean_std([m["val_top1"] for m in runs if "val_top1" in m])]
        for kind in kinds:
            accs = []
            for m in runs:
                acc = dict(zip(m["classes"], m["per_class_accuracy"], strict=True))
                accs.append(statistics.mean(acc[c] for a, b, k in pairs if k == kind for c in (a, b)))
            cells.append(mean_std(accs))
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
