"""Two-stream late fusion: the weight is chosen on the validation split only, runs evaluated on other videos are
refused naming what differs, and the fused run is a run for ``evaluate``, ``--baseline`` and ``report``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from actionlab.cli import main
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.predictions import load_predictions, save_predictions
from actionlab.evaluate.two_stream import choose_weight, fuse_log_probs, fused_video_scores
from actionlab.rundir import RunDir
from actionlab.runs.evaluate import evaluate_run
from actionlab.runs.fuse import fuse_runs

CLASSES = ("MoveLeft", "MoveRight", "FadeIn", "FadeOut")


def _stream(labels: np.ndarray, expert: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Log-probs of a stream that is right and sure on the videos it is ``expert`` on, and guesses (unsure, right
    half the time) on the others."""
    n, k = len(labels), len(CLASSES)
    logits = rng.normal(0, 0.2, (n, k))
    wrong = (labels + 1 + rng.integers(0, k - 1, n)) % k
    right = expert | (rng.random(n) < 0.5)
    logits[np.arange(n), np.where(right, labels, wrong)] += np.where(expert, 4.0, 1.0)
    return log_softmax(logits).astype(np.float32)


def _make_run(run: Path, keys: dict[str, list[str]], labels: dict[str, np.ndarray], scores: dict[str, np.ndarray],
              checksum: str = "abc") -> Path:
    run.mkdir(parents=True)
    for split in keys:
        save_predictions(run / f"predictions_{split}.npz", keys=keys[split], labels=labels[split],
                         scores=scores[split], classes=CLASSES)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "lstm"},
                                                     "meta": {"store_provenance": {"manifest_checksum": checksum}}}))
    return run


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """An RGB-like run right on the fades, a flow-like run right on the moves; each weaker on the other pair."""
    rng = np.random.default_rng(0)
    keys = {s: [f"{s}/v{i:03d}.avi" for i in range(n)] for s, n in (("val", 40), ("test", 60))}
    labels = {s: np.arange(len(k)) % 4 for s, k in keys.items()}
    fades = {s: labels[s] >= 2 for s in keys}
    rgb = {s: _stream(labels[s], fades[s], rng) for s in keys}
    flow = {s: _stream(labels[s], ~fades[s], rng) for s in keys}
    return (_make_run(tmp_path / "rgb", keys, labels, rgb), _make_run(tmp_path / "flow", keys, labels, flow))


def test_the_weight_is_chosen_on_val_and_test_labels_never_change_it(two_runs: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    rgb, flow = two_runs
    metrics = fuse_runs(rgb, flow, tmp_path / "fused")
    record = RunDir(tmp_path / "fused").read_fusion()
    assert record is not None and record["chosen_on"] == "val" and record["members"] == [str(rgb), str(flow)]
    weight = record["weights"][0]
    val = [load_predictions(r / "predictions_val.npz") for r in (rgb, flow)]
    expected, table = choose_weight(val[0].scores, val[1].scores, val[0].labels)
    assert weight == expected and 0 < weight < 1  # each stream is right where the other is not: both count
    best = max(r["top1"] for r in table)
    assert record["val_top1"] == best > max(table[0]["top1"], table[-1]["top1"])  # better than either alone
    test = [load_predictions(r / "predictions_test.npz") for r in (rgb, flow)]
    fused = load_predictions(tmp_path / "fused" / "predictions_test.npz")
    np.testing.assert_allclose(fused.scores, fuse_log_probs([t.scores for t in test], record["weights"]), atol=1e-6)
    assert metrics["top1"] == pytest.approx(float(np.mean(fused.preds == fused.labels)))

    # The same runs with shuffled test labels (and scores): the same weight.
    rng = np.random.default_rng(1)
    new_labels, order = rng.permutation(fused.labels), rng.permutation(len(fused.labels))
    for run in (rgb, flow):
        p = load_predictions(run / "predictions_test.npz")
        save_predictions(run / "predictions_test.npz", keys=p.keys, labels=new_labels, scores=p.scores[order],
                         classes=CLASSES)
    fuse_runs(rgb, flow, tmp_path / "fused_again")
    assert RunDir(tmp_path / "fused_again").read_fusion()["weights"] == record["weights"]  # type: ignore[index]


def test_runs_on_other_videos_or_manifests_are_refused_naming_the_fields(two_runs: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    rgb, flow = two_runs
    p = load_predictions(flow / "predictions_test.npz")
    keep = np.arange(len(p.keys)) != 3
    save_predictions(flow / "predictions_test.npz", keys=p.keys[keep], labels=p.labels[keep],
                     scores=p.scores[keep], classes=CLASSES)
    cfg = yaml.safe_load((flow / "config.yaml").read_text())
    cfg["meta"]["store_provenance"]["manifest_checksum"] = "other"
    (flow / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"manifest_checksum: rgb=abc flow=other.*test videos: 1 only in rgb, 0 only "
                                         r"in flow \(e\.g\. \['test/v003\.avi'\]\)"):
        fuse_runs(rgb, flow, tmp_path / "fused")
    assert not (tmp_path / "fused").exists()
    (rgb / "predictions_val.npz").unlink()
    with pytest.raises(FileNotFoundError, match="predictions_val.npz does not exist: fuse chooses its weight"):
        fuse_runs(rgb, flow, tmp_path / "fused")


def test_a_fused_run_is_a_run_for_evaluate_baseline_and_report(two_runs: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    rgb, flow = two_runs
    out = tmp_path / "fused"
    assert main(["fuse", str(rgb), str(flow), "--run", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weights chosen on val" in printed and "top-1" in printed
    result = evaluate_run(out, baseline=rgb)
    assert result["metrics"]["top1"] > result["baseline_metrics"]["top1"]
    assert {"labels.txt", "metrics.json", "config.yaml", "fusion.json", "predictions_val.npz",
            "predictions_test.npz"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"].startswith("two_stream") and metrics["members"] == [str(rgb), str(flow)]
    assert main(["evaluate", str(out), "--baseline", str(rgb)]) == 0
    assert main(["report", str(rgb), str(flow), str(out), "-o", str(tmp_path / "report.html")]) == 0
    assert "two_stream" in (tmp_path / "report.md").read_text()
    assert main(["fuse", str(rgb), str(flow), "--run", str(rgb)]) == 2  # never over a member
    # predict's fusion of one video: the members' log-probs with the recorded weights
    record = RunDir(out).read_fusion()
    assert record is not None
    one = [load_predictions(r / "predictions_test.npz").scores[0] for r in (rgb, flow)]
    np.testing.assert_allclose(fused_video_scores(one, record), load_predictions(out / "predictions_test.npz").scores[0],
                               atol=1e-6)


def test_choose_weight_averages_when_validation_cannot_tell() -> None:
    labels = np.array([0, 1])
    good = log_softmax(np.array([[3.0, 0], [0, 3.0]])).astype(np.float32)
    weak = log_softmax(np.array([[0.5, 0], [0, 0.5]])).astype(np.float32)
    weight, table = choose_weight(good, weak, labels)
    # Every w > 0 is right and w = 1 has the lowest NLL, but a tie on top-1 keeps both streams: plain averaging.
    assert all(r["top1"] == 1.0 for r in table[1:]) and min(table, key=lambda r: r["nll"])["weight"] == 1.0
    assert weight == 0.5
    # Where the best top-1 excludes 0.5, the weight nearest it among the best; NLL only breaks exact ties.
    wrong = log_softmax(np.array([[0.0, 5.0], [5.0, 0.0]])).astype(np.float32)  # always wrong, confidently
    weight, table = choose_weight(good, wrong, labels)
    best = max(r["top1"] for r in table)
    assert table[-1]["top1"] == best and weight == min((r["weight"] for r in table if r["top1"] == best),
                                                       key=lambda w: abs(w - 0.5)) and weight > 0.5
    with pytest.raises(ValueError, match="one weight per member"):
        fuse_log_probs([good], [0.5, 0.5])
