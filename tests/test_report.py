"""The HTML/Markdown report from real run directories, checked as text and in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from actionlab.config import TrainConfig, apply_overrides, save_yaml
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.metrics import summarize
from actionlab.evaluate.predictions import save_predictions
from actionlab.report.html import RunData, load_run, markdown_summary, render_html, write_report
from browser import CHROMIUM, NO_CHROMIUM, launch

EVIL = "<script>alert(1)</script>"
CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", EVIL, 'Say "hi" & \'bye\'', "JumpRope"]
K = len(CLASSES)


def _make_run(root: Path, name: str, skill: float, model: str, seed: int) -> Path:
    """A run directory as training writes it: config.yaml, metrics.jsonl, metrics.json, predictions_test.npz."""
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    cfg = apply_overrides(TrainConfig(), {"model.name": model, "epochs": 6})
    save_yaml(cfg, run / "config.yaml", extra={"git": "abc123", "data": {"manifest": f"{EVIL}.csv"}})
    lines = []
    for epoch in range(1, 7):
        lines.append(json.dumps({"epoch": epoch, "lr": 1e-3, "train_loss": 2.0 / epoch, "train_acc": 1 - 0.5 / epoch,
                                 "val_loss": 1.5 / epoch + 0.2, "val_top1": 0.4 + 0.05 * epoch * skill,
                                 "val_top5": 0.9, "val_top10": 1.0, "seconds": 1.0}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    labels = np.repeat(np.arange(K), 6)
    logits = rng.normal(size=(len(labels), K))
    logits[np.arange(len(labels)), labels] += 3 * skill  # better skill -> more correct
    scores = log_softmax(logits)
    keys = [f"v_{i:03d}.avi" for i in range(len(labels))]
    save_predictions(run / "predictions_test.npz", keys=keys, labels=labels, scores=scores, classes=CLASSES)
    (run / "metrics.json").write_text(json.dumps({"test": summarize(scores, labels, CLASSES)}))
    return run


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    base = load_run(_make_run(root, "single_frame", 0.3, "single_frame", 0))
    lstm = load_run(_make_run(root, "lstm", 0.8, "lstm", 1))
    sweep = {"name": "layers", "title": "1. Number of LSTM layers", "metric": "val_top1", "direction": "maximize",
             "seeds": [0, 1], "best": 1, "rows": [
                 {"index": 0, "label": "num_layers=1", "overrides": {}, "seeds": [0, 1],
                  "metrics": {"train_loss": [0.5, 0.6], "val_top1": [0.55, 0.57], "test_top1": [0.60, 0.62],
                              "test_mean_class_accuracy": [0.58, 0.60]}},
                 {"index": 1, "label": f"num_layers=2 {EVIL}", "overrides": {}, "seeds": [0, 1],
                  "metrics": {"train_loss": [0.4, 0.5], "val_top1": [0.60, 0.64], "test_top1": [0.66, 0.70],
                              "test_mean_class_accuracy": [0.64, 0.66]}}]}
    return base, lstm, sweep


def test_load_run_reads_every_file(report_inputs):
    base, lstm, _ = report_inputs
    assert lstm.classes == CLASSES and lstm.model == "lstm"
    assert len(lstm.history) == 6 and lstm.history[-1]["epoch"] == 6
    assert lstm.confusion.shape == (K, K) and lstm.confusion.sum() == 6 * K
    assert lstm.predictions is not None and lstm.metrics["top1"] > base.metrics["top1"]


def test_load_run_without_metrics_json_recomputes(tmp_path):
    run = _make_run(tmp_path, "r", 0.5, "gru", 3)
    (run / "metrics.json").unlink()
    data = load_run(run)
    assert data.confusion is not None and data.metrics["num_videos"] == 6 * K
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run(tmp_path)


def test_html_is_escaped_and_self_contained(report_inputs, tmp_path):
    base, lstm, sweep = report_inputs
    out = write_report(tmp_path / "report.html", [base, lstm], [sweep], baseline="single_frame")
    text = out.read_text()
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Say &quot;hi&quot; &amp; &#x27;bye&#x27;" in text
    assert text.count("<script") == 1  # only our own inline script
    for needle in ("http://", "https://", "<link"):
        assert needle not in text
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', text))  # images inline only
    assert text.count('class="cell') == 2 * K * K
    assert "Improved most" in text and "Hurt most" in text
    md = (tmp_path / "report.md").read_text()
    assert "| run | model | top-1" in md and "lstm vs single_frame" in md
    assert "**num_layers=2" in md  # best sweep row in bold
    assert "0.6800 ± 0.0283" in md  # mean ± sample std of [0.66, 0.70]
    assert "test_mean_class_accuracy" in md and "test_mean_class_accuracy" in text  # the sweep's own columns
    assert "Best by val_top1" in md and "best by val_top1" in text
    assert EVIL not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_markdown_escapes_class_names():
    run = RunData(name="r|1", metrics={"most_confused": [
        {"true": EVIL, "predicted": "Jump|Rope & <b>", "count": 3, "fraction": 0.5}]})
    md = markdown_summary([run])
    assert EVIL not in md and "<b>" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt; → Jump\\|Rope &amp; &lt;b&gt;" in md
    assert "| r\\|1 |" in md  # a pipe in a name does not split the table cell


def _run_section(text: str, index: int) -> str:
    start = text.index(f'<section id="run-{index}"')
    return text[start:text.index("</section>", start)]


def test_learning_curves_put_train_next_to_validation(report_inputs):
    _, lstm, _ = report_inputs
    section = _run_section(render_html([lstm]), 0)
    rows = section.split('<div class="grid2">')[1:3]  # accuracy row, then loss row
    assert "Train accuracy" in rows[0] and "Validation accuracy" in rows[0] and "loss" not in rows[0].lower()
    assert "Train loss" in rows[1] and "Validation loss" in rows[1]
    only_train = render_html([RunData(name="t", history=[{"epoch": 1, "train_acc": 0.5, "train_loss": 1.0}])])
    assert "Train accuracy" in only_train and "Validation accuracy" not in only_train


def test_memorising_run_gets_a_warning_card(report_inputs):
    base, lstm, _ = report_inputs  # train accuracy 0.92 at the last epoch, validation 0.49 / 0.64
    text = render_html([base, lstm])
    for i in (0, 1):
        card = _run_section(text, i).split('<div class="warn" role="alert">')[1]
        assert "points above validation accuracy" in card and "<code>model.dropout</code>" in card
    history = [{"epoch": 1, "train_acc": 0.60, "val_top1": 0.55}, {"epoch": 2, "train_acc": 0.99, "val_top1": 0.50}]
    best_is_early = RunData(name="early", history=history, metrics={"best_epoch": 1})
    assert 'class="warn"' not in render_html([best_is_early])  # the evaluated (best) epoch generalises
    best_is_late = RunData(name="late", history=history, metrics={"best_epoch": 2})
    assert 'class="warn"' in render_html([best_is_late])
    assert "**Warning (late):** Training accuracy (99.0%) is 49.0 points" in markdown_summary([best_is_late])


def test_markdown_lists_class_changes(report_inputs):
    base, lstm, _ = report_inputs
    md = markdown_summary([base, lstm], baseline=base)
    assert "**Improved most**" in md and "%" in md


def test_empty_report_still_renders():
    text = render_html([RunData(name="empty")])
    assert "no learning curves" in text and "no confusion matrix" in text


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_in_headless_chromium(report_inputs, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, lstm, sweep = report_inputs
    out = write_report(tmp_path / "report.html", [base, lstm], [sweep], baseline=base)
    errors, failed, dialogs = [], [], []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(out.resolve().as_uri())
            page.wait_for_load_state("load")
            assert page.locator("#run-1 svg.heatmap rect.cell").count() == K * K
            assert page.locator("svg.chart path").count() >= 4  # loss + accuracy curves per run
            assert page.locator("tr.best").count() >= 2  # best run and best sweep setting
            assert EVIL in page.locator("#run-1 svg.heatmap").inner_html().replace("&lt;", "<").replace("&gt;", ">")
            # the tooltip shows counts on hover
            page.locator("#run-1 svg.heatmap rect.cell").first.hover()
            tip = page.locator("#tip").inner_text()
            assert "→" in tip and " of 6 " in tip
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not failed, failed
    assert not dialogs, "a class name ran as script"
    assert (tmp_path / "report.png").stat().st_size > 10_000
