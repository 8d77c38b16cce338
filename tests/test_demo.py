"""``actionlab demo --quick``: the whole pipeline (synth -> index -> extract RGB and flow -> single frame, LSTM,
flow LSTM, their two-stream fusion and a video network -> evaluate -> report) on a small generated dataset, and a
rerun that reuses everything on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actionlab.cli import main
from actionlab.cli.demo import demo_configs
from actionlab.synth.families import SYNTH_CLASSES


@pytest.mark.slow  # ~1 min on 2 cores: 88 XviD videos, MobileNetV2 features, three short trainings
def test_quick_demo_runs_every_stage_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert list(demo_configs(quick=True)) == ["single_frame", "lstm", "flow_lstm", "tsm"]
    names = ["single_frame", "lstm", "flow_lstm", "two_stream", "tsm"]  # two_stream: lstm and flow_lstm fused
    for name in names:
        metrics = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert metrics["classes"] == SYNTH_CLASSES and sum(metrics["support"]) == metrics["num_videos"] > 0
        assert f"\n{name} " in printed  # a row of the comparison table
    video = json.loads((out / "runs" / "tsm" / "metrics.json").read_text())
    assert video["model"] == "tsm_mobilenet_v2" and "clip_top1" in video
    assert all(f"{c} (" in printed for c in SYNTH_CLASSES)  # the per-class table
    html = (out / "report.html").read_text()
    assert all(c in html for c in SYNTH_CLASSES) and (out / "report.md").is_file()

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}
    assert len(stamps) >= 8  # last.pt and best.pt of four trained runs
    fusion = json.loads((out / "runs" / "two_stream" / "fusion.json").read_text())
    assert fusion["chosen_on"] == "val" and abs(sum(fusion["weights"]) - 1) < 1e-6
    assert main(["demo", "--out", str(out), "--quick", "--device", "cpu"]) == 0
    again = capsys.readouterr().out
    assert "reusing the synthetic dataset" in again and "time per step:" in again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")} == stamps  # nothing retrained
