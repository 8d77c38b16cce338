"""How the HTML report scales with the number of classes (never collected by pytest).

For K classes (default 101 and 400), a synthetic run with ``--per-class`` test videos per class (about 60%
right, the rest spread over the other classes) is written as a run directory and reported. Prints, per K:
the report's size, the size of the confusion matrix drawn as one SVG ``<rect>`` per cell (the report's way up
to 30 classes) and their ratio, the time to build the report, and its load time in headless Chromium
(``loadEventEnd`` of the navigation, the median of ``--loads`` fresh pages) when Chromium and Playwright are
there. Figures vary with the machine's load: take them on a quiet one.

    .venv/bin/python benchmarks/bench_report.py [--classes 101,400] [--per-class 5] [--loads 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlab.config import TrainConfig, apply_overrides, save_yaml
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.metrics import summarize
from actionlab.evaluate.predictions import save_predictions
from actionlab.report.charts import confusion_heatmap
from actionlab.report.html import load_run, write_report
from actionlab.utils import strict_json

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def synthetic_run(root: Path, k: int, per_class: int, seed: int = 0) -> Path:
    """A run directory with config.yaml, metrics.jsonl, metrics.json and predictions_test.npz for ``k`` classes."""
    rng = np.random.default_rng(seed)
    classes = [f"Action{i:03d}" + "Long" * int(rng.integers(0, 4)) for i in range(k)]
    labels = np.repeat(np.arange(k), per_class)
    logits = rng.normal(0, 1, (len(labels), k))
    right = rng.random(len(labels)) < 0.6
    logits[np.arange(len(labels)), labels] += np.where(right, 6.0, 0.0)
    scores = log_softmax(logits)
    run = root / f"k{k}"
    run.mkdir(parents=True)
    save_yaml(apply_overrides(TrainConfig(), {"model.name": "lstm", "epochs": 30}), run / "config.yaml")
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 3 / (e + 1), "train_acc": 1 - 1 / (e + 2), "val_loss": 3.2 / (e + 1),
             "val_top1": 0.5 - 0.4 / (e + 2), "seconds": 1.0} for e in range(30)]
    (run / "metrics.jsonl").write_text("".join(strict_json(r) + "\n" for r in rows))
    keys = [f"{classes[y]}/v_{i:06d}.avi" for i, y in enumerate(labels)]
    save_predictions(run / "predictions_test.npz", keys=keys, labels=labels, scores=scores, classes=classes)
    (run / "metrics.json").write_text(strict_json(summarize(scores, labels, classes)))
    return run


def load_ms(path: Path, loads: int) -> float | None:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(path.resolve().as_uri())
                page.wait_for_load_state("load")
                times.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
                page.close()
        finally:
            browser.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", default="101,400")
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--loads", type=int, default=3)
    args = parser.parse_args()
    print(f"{'classes':>8} {'videos':>7} {'report':>10} {'SVG matrix':>11} {'ratio':>6} {'build':>7} {'load':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(c) for c in args.classes.split(",")):
            run = load_run(synthetic_run(Path(tmp), k, args.per_class))
            t0 = time.perf_counter()
            out = write_report(Path(tmp) / f"report_{k}.html", [run], markdown=False)
            build = time.perf_counter() - t0
            size = out.stat().st_size
            svg = len(confusion_heatmap(run.confusion, run.classes).encode())
            ms = load_ms(out, args.loads)
            load = f"{ms:.0f} ms" if ms is not None else "n/a"
            print(f"{k:>8} {len(run.predictions.keys):>7} {size / 1e6:>8.2f}MB {svg / 1e6:>9.2f}MB "
                  f"{size / svg:>6.2f} {build:>6.2f}s {load:>8}")


if __name__ == "__main__":
    main()
