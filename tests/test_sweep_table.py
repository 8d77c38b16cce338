"""The sweep table shared by the sweep engine and the report: formatting, columns, and the best row, which
validation (or, lacking it, train) numbers pick and test numbers never do."""

from __future__ import annotations

import json
import math

import pytest

from actionlab.report.sweep_table import (
    SweepResult,
    SweepRow,
    as_sweep_result,
    format_mean_std,
    load_sweep,
    selection_metric,
)


def _row(i: int, label: str, **metrics: list[float]) -> SweepRow:
    n = len(next(iter(metrics.values())))
    return SweepRow(index=i, label=label, overrides={"model.num_layers": i + 1}, seeds=list(range(n)),
                    metrics=metrics)


def _result(rows: list[SweepRow], metric: str = "val_top1", direction: str = "maximize") -> SweepResult:
    return SweepResult(name="layers", metric=metric, direction=direction, seeds=[0, 1], rows=rows)


def test_format_mean_std():
    assert format_mean_std(0.68, 0.0283, 2) == "0.6800 ± 0.0283"
    assert format_mean_std(0.5, 0.0, 1) == "0.5000"
    assert format_mean_std(math.nan, math.nan, 0) == "–"


def test_selection_metric_never_returns_a_test_metric():
    assert selection_metric("val_top1", {"val_top1", "test_top1"}) == ("val_top1", None)
    metric, note = selection_metric("test_top1", {"val_top1", "test_top1"})
    assert metric == "val_top1" and "test split never picks" in note
    metric, note = selection_metric("val_top1", {"train_acc", "test_top1"})
    assert metric == "train_acc" and "no val_top1" in note
    assert selection_metric("val_loss", {"train_loss"})[0] == "train_loss"
    assert selection_metric("train_loss", {"train_loss", "test_top1"}) == ("train_loss", None)
    assert selection_metric("test_top1", {"test_top1"})[0] == "val_top1"  # nothing else: no best row, not test


def test_changing_only_test_numbers_does_not_change_the_best_row():
    rows = [_row(0, "a", val_top1=[0.70, 0.72], test_top1=[0.50, 0.52]),
            _row(1, "b", val_top1=[0.60, 0.62], test_top1=[0.90, 0.92])]
    flipped = [_row(0, "a", val_top1=[0.70, 0.72], test_top1=[0.95, 0.97]),
               _row(1, "b", val_top1=[0.60, 0.62], test_top1=[0.10, 0.12])]
    assert _result(rows).best == _result(flipped).best == 0
    # even a table that asks for test_top1 (an old results.json) is ranked on validation
    assert _result(rows, metric="test_top1").best == 0
    only_test = _result([_row(0, "a", test_top1=[0.5]), _row(1, "b", test_top1=[0.9])], metric="test_top1")
    assert only_test.best is None and "**" not in only_test.to_markdown()


def test_markdown_table_bolds_the_best_row_and_notes_a_train_fallback():
    res = _result([_row(0, "a", train_acc=[0.99, 0.97], test_top1=[0.5, 0.6]),
                   _row(1, "b", train_acc=[0.80, 0.82], test_top1=[0.7, 0.8])])
    assert res.selected_by == "train_acc" and res.best == 0
    md = res.to_markdown()
    lines = md.splitlines()
    assert lines[0] == "| setting | seeds | train_acc | test_top1 |"
    assert lines[2] == "| **a** | **2** | **0.9800 ± 0.0141** | **0.5500 ± 0.0707** |"
    assert "Best by train_acc (maximize): **a**" in md and "no val_top1" in md


def test_minimize_and_columns_in_order():
    res = _result([_row(0, "a", test_top5=[0.9], val_loss=[0.5], train_loss=[0.3], zeta=[1.0]),
                   _row(1, "b", test_top5=[0.8], val_loss=[0.4], train_loss=[0.4], zeta=[2.0])],
                  metric="val_loss", direction="minimize")
    assert res.columns == ["train_loss", "val_loss", "test_top5", "zeta"] and res.best == 1


def test_labels_are_escaped_in_markdown():
    evil = "<script>alert(1)</script>|x"
    md = _result([_row(0, evil, val_top1=[0.5])]).to_markdown()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in md


def test_json_round_trip_recomputes_a_stored_best(tmp_path):
    res = _result([_row(0, "a", val_top1=[0.7], test_top1=[0.5]), _row(1, "b", val_top1=[0.6], test_top1=[0.9])])
    res.write(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["best"] == 0 and data["selected_by"] == "val_top1"
    data.update(best=1, metric="test_top1")  # as an old sweep that picked its best row on test would have stored
    (tmp_path / "results.json").write_text(json.dumps(data))
    back = load_sweep(tmp_path)
    assert back.best == 0 and back.rows[1].metrics == res.rows[1].metrics
    assert as_sweep_result(data).best == 0 and as_sweep_result(back) is back
    assert (tmp_path / "results.csv").read_text().splitlines()[0].startswith("setting,n_seeds,val_top1_mean")
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        load_sweep(tmp_path / "missing")
