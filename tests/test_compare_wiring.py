"""Paired comparisons where runs and settings are compared: ``evaluate --baseline`` (JSON and terminal), ``fuse``
against its streams, ``seeds.json``, the sweep table and study summary, and the report (HTML and Markdown)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from actionlab.cli import main
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.compare import mcnemar_exact, seed_interval
from actionlab.evaluate.predictions import save_predictions
from actionlab.report.html import load_run, markdown_summary, render_html
from actionlab.report.sweep_table import SweepResult, SweepRow

EVIL = "<b>Evil</b>"
CLASSES = ("Walk", "Run", EVIL, "Jump")


def _scores(labels: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Log-probs that put the top score on the label where ``right``, on the next class elsewhere."""
    pred = np.where(right, labels, (labels + 1) % len(CLASSES))
    logits = np.zeros((len(labels), len(CLASSES)))
    logits[np.arange(len(labels)), pred] = 3.0
    return log_softmax(logits).astype(np.float32)


def _run(path: Path, right: dict[str, np.ndarray], n: int = 280, name: str = "lstm") -> Path:
    """A run directory with ``predictions_<split>.npz`` right exactly where ``right[split]`` says."""
    path.mkdir(parents=True)
    for split, ok in right.items():
        keys = [f"{split}/v{i:03d}.avi" for i in range(n)]
        labels = np.arange(n) % len(CLASSES)
        save_predictions(path / f"predictions_{split}.npz", keys=keys, labels=labels, scores=_scores(labels, ok),
                         classes=CLASSES)
    (path / "config.yaml").write_text(yaml.safe_dump({"model": {"name": name}}))
    return path


def _pair(b_only: int, a_only: int, n: int = 280, both: int = 150) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    b[:b_only] = True
    a[b_only:b_only + a_only] = True
    a[b_only + a_only:b_only + a_only + both] = b[b_only + a_only:b_only + a_only + both] = True
    return a, b


def test_evaluate_baseline_json_and_terminal_carry_the_comparison(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _pair(40, 5)
    base, new = _run(tmp_path / "base", {"test": a}), _run(tmp_path / "new", {"test": b})
    assert main(["evaluate", str(new), "--baseline", str(base), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["b_right_a_wrong"] == 40 and result["a_right_b_wrong"] == 5
    assert result["difference"] == pytest.approx(35 / 280)
    assert result["mcnemar_p"] == pytest.approx(mcnemar_exact(40, 5)) and result["mcnemar_p"] < 0.001
    low, high = result["ci95"]
    assert 0 < low < result["difference"] < high and result["clear"] is True
    assert "new is clearly better than base" in result["verdict"]
    assert sum(c["b_right_a_wrong"] for c in result["per_class"]) == 40
    assert main(["evaluate", str(new), "--baseline", str(base)]) == 0
    text = capsys.readouterr().out
    assert "vs baseline: new gets 40 videos right that base misses" in text and "p < 0.001" in text
    assert "fixed" in text and "broken" in text  # per-class counts beside the class changes


def test_three_videos_apart_is_chance_in_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _pair(3, 0)
    base, new = _run(tmp_path / "base", {"test": a}), _run(tmp_path / "new", {"test": b})
    assert main(["evaluate", str(new), "--baseline", str(base), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mcnemar_p"] > 0.05 and result["ci95"][0] <= 0 <= result["ci95"][1]
    assert "not clearly better" in result["verdict"]


def test_fused_run_is_compared_with_each_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    n = 200
    labels = np.arange(n) % len(CLASSES)
    runs = []
    for name, sure in (("rgb", labels < 2), ("flow", labels >= 2)):  # each stream is sure of half the classes
        run = tmp_path / name
        run.mkdir()
        for split in ("val", "test"):
            logits = rng.normal(0, 0.3, (n, len(CLASSES)))
            logits[np.arange(n), labels] += np.where(sure, 4.0, 0.2)
            save_predictions(run / f"predictions_{split}.npz", keys=[f"{split}/v{i}" for i in range(n)],
                             labels=labels, scores=log_softmax(logits), classes=CLASSES)
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "lstm"}}))
        runs.append(run)
    out = tmp_path / "fused"
    assert main(["fuse", str(runs[0]), str(runs[1]), "--run", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    members = metrics["vs_members"]
    assert [m["member"] for m in members] == [str(r) for r in runs]
    for m in members:
        assert {"difference", "ci95", "mcnemar_p", "b_right_a_wrong", "a_right_b_wrong", "verdict"} <= set(m)
        assert m["difference"] > 0 and m["clear"]  # fusion beats each half-blind stream by far more than chance
        assert f"vs {Path(m['member']).name}: fused gets" in printed


def test_seeds_json_carries_t_intervals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import actionlab.runs.train as train
    from actionlab.cli.text import format_seeds
    from actionlab.config import TrainConfig

    top1 = {0: 0.70, 1: 0.74, 2: 0.69}
    monkeypatch.setattr(train, "train_run", lambda cfg, run_dir, **_: {"top1": top1[cfg.seed], "epochs": 3})
    summary = train.train_seeds(TrainConfig(), tmp_path / "run", [0, 1, 2])
    saved = json.loads((tmp_path / "run" / "seeds.json").read_text())
    expected = seed_interval(list(top1.values()))
    assert saved["ci95"]["top1"] == pytest.approx([expected.low, expected.high])
    assert saved["mean"]["top1"] == pytest.approx(expected.mean) and saved["n"]["top1"] == 3
    assert saved["ci95"]["top1"][0] < saved["mean"]["top1"] < saved["ci95"]["top1"][1]
    assert "95% CI" in format_seeds(summary)
    one = train.train_seeds(TrainConfig(), tmp_path / "one", [0])
    assert json.loads((tmp_path / "one" / "seeds.json").read_text())["ci95"]["top1"] == [None, None]
    assert "95% CI" not in format_seeds(one)


def _sweep(tmp_path: Path, gaps: dict[str, tuple[int, int]], seeds: tuple[int, ...] = (0, 1)) -> SweepResult:
    """Rows whose seed runs' val predictions differ from the first row's by ``(b_only, a_only)`` videos."""
    rows = []
    for i, (label, (b_only, a_only)) in enumerate(gaps.items()):
        dirs = []
        for s in seeds:
            a, b = _pair(b_only, a_only, both=150 + s)
            dirs.append(str(_run(tmp_path / label / f"seed{s}", {"val": b})))
        acc = float(np.mean(b))
        rows.append(SweepRow(index=i, label=label, overrides={"model.num_layers": i + 1}, seeds=list(seeds),
                             metrics={"val_top1": [acc] * len(seeds)}, run_dirs=dirs))
    return SweepResult(name="layers", title="1. Layers", metric="val_top1", direction="maximize",
                       seeds=list(seeds), rows=rows)


def test_sweep_table_marks_settings_that_differ_from_the_best_by_more_than_chance(tmp_path: Path) -> None:
    # against a reference right on 150 videos: "one" +40 / -0, "two" +38 / -2 (close to one), "three" +0 / -30
    res = _sweep(tmp_path, {"one": (40, 0), "two": (38, 2), "three": (0, 30)})
    res.compare_with_best()
    assert res.best == 0 and res.compared
    vs = {r.label: r.vs_best for r in res.rows}
    assert vs["one"] is None and vs["two"] is not None and vs["three"] is not None
    assert not vs["two"]["clear"] and vs["three"]["clear"] and vs["three"]["difference"] < 0
    assert vs["three"]["seeds"] == 2 and vs["two"]["ci95"][0] <= 0 <= vs["two"]["ci95"][1]
    md = res.to_markdown()
    assert "val top-1 vs best" in md and "within chance" in md and ": worse" in md
    assert "Differs from the best (one) by more than chance" in md and "three (" in md
    back = SweepResult.from_json(json.loads(json.dumps(res.to_json())))
    assert back.compared and back.rows[2].vs_best == vs["three"]
    assert "vs_best_p" in res.to_csv().splitlines()[0]


def test_study_summary_lists_which_knobs_made_a_real_difference(tmp_path: Path) -> None:
    from actionlab.sweep.studies import study_summary

    real = _sweep(tmp_path / "a", {"one": (40, 0), "three": (0, 30)})
    quiet = _sweep(tmp_path / "b", {"x": (20, 0), "y": (19, 1)})
    quiet.name, quiet.title = "wd", "2. Weight decay"
    for r in (real, quiet):
        r.compare_with_best()
    summary = study_summary([real, quiet])
    head = summary.split("### ")[0]
    assert "Which knobs made a real difference" in head
    assert "**1. Layers**: best one; clearly different: three" in head
    assert "No clear difference (within chance): 2. Weight decay" in head


def test_report_prints_interval_p_and_sentence_beside_differences(tmp_path: Path) -> None:
    a, b = _pair(14, 5)
    base = load_run(_run(tmp_path / "single", {"test": a}))
    new = load_run(_run(tmp_path / "lstm", {"test": b}))
    html = render_html([base, new], baseline=base)
    assert "lstm gets 14 videos right that single misses and single gets 5 that lstm misses" in html
    assert "p = 0.06" in html and "not clearly better" in html and "videos fixed / broken" in html
    assert EVIL not in html and "&lt;b&gt;Evil&lt;/b&gt;" in html  # dataset strings stay escaped
    md = markdown_summary([base, new], baseline=base)
    assert "p = 0.06: not clearly better" in md and "fixed" in md and EVIL not in md
