"""End to end through the ``actionlab`` command on tiny generated videos (real XviD files, real MobileNetV2
ImageNet weights, real HDF5, real training steps): index -> extract -> train -> evaluate -> predict -> report,
plus the end-to-end video path and a sweep."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actionlab.cli import main
from actionlab.data.manifest import read_manifest

OPENCV_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def pipeline(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cli")
    manifest, store = out / "manifest.csv", out / "feats.h5"
    assert run("index", synth_ucf101, "-o", manifest, "--val-fraction", "0.34", "--workers", "0") == 0
    assert run("extract", manifest, "-o", store, "--num-frames", "8", "--workers", "0", "--batch-size", "32") == 0
    runs = {"manifest": manifest, "store": store, "single": out / "single", "lstm": out / "lstm"}
    assert run("train", "--features", store, "--preset", "single_frame", "--run", runs["single"],
               "--epochs", "3", "--batch-size", "8", "--device", "cpu") == 0
    assert run("train", "--features", store, "--model", "lstm", "--run", runs["lstm"], "--epochs", "3",
               "--batch-size", "8", "--device", "cpu", "--set", "model.hidden_size=32", "--set", "model.fc_size=32",
               "--set", "sequence.seq_len=6", "--set", "inference.window=6", "--set", "inference.stride=2") == 0
    return runs


def test_train_writes_a_complete_run_directory(pipeline: dict[str, Path]) -> None:
    run_dir = pipeline["lstm"]
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "labels.txt", "predictions_test.npz",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1, 2]
    assert all({"train_loss", "val_loss", "val_top1"} <= set(e) for e in epochs)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 4
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["hidden_size"] == 32 and config["git"]
    assert config["meta"]["store_provenance"]["backbone"] == "mobilenet_v2"


def test_same_seed_same_metrics(pipeline: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert run("train", "--features", pipeline["store"], "--preset", "single_frame", "--run", again,
               "--epochs", "3", "--batch-size", "8", "--device", "cpu") == 0
    a = json.loads((pipeline["single"] / "metrics.json").read_text())
    b = json.loads((again / "metrics.json").read_text())
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert a["predictions"] == b["predictions"]


def test_existing_run_needs_resume(pipeline: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run("train", "--features", pipeline["store"], "--preset", "single_frame", "--run", pipeline["single"],
               "--epochs", "3", "--batch-size", "8", "--device", "cpu")
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_evaluate_against_baseline(pipeline: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("evaluate", pipeline["lstm"], "--baseline", pipeline["single"], "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "top10", "mean_class_accuracy", "clip_top1"} <= set(result["metrics"])
    assert set(result["changes"]) >= {"improved", "hurt"}
    assert run("evaluate", pipeline["lstm"]) == 0
    assert "per-class accuracy" in capsys.readouterr().out


def test_predict_json_on_generated_and_real_video(pipeline: dict[str, Path], synth_ucf101: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    videos = sorted((synth_ucf101 / "UCF-101").rglob("*.avi"))[:1]
    if OPENCV_VTEST.is_file():
        videos.append(OPENCV_VTEST)  # MS-MPEG4, 768x576, 795 frames: a long real clip
    # 4-second timeline windows: a few hundred frames of the long clip go through the backbone, not all of them
    assert run("predict", *videos, "--run", pipeline["lstm"], "--json", "--device", "cpu", "--window", "4") == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == len(videos)
    for r in results:
        probs = [t["score"] for t in r["top"]]
        assert len(probs) == 4 and probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
        assert r["timeline"] and all(w["end"] > w["start"] for w in r["timeline"])
        assert r["segments"][0]["start"] == 0 and r["segments"][-1]["end"] == pytest.approx(r["frames"] / r["fps"])


def test_predict_missing_file_is_a_clear_error(pipeline: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("predict", "no/such/video.avi", "--run", pipeline["lstm"]) == 2
    assert "no/such/video.avi" in capsys.readouterr().err


def test_report_is_self_contained_and_escaped(pipeline: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert run("report", pipeline["single"], pipeline["lstm"], "-o", out, "--baseline", pipeline["single"]) == 0
    html = out.read_text()
    assert "GrowCircle" in html and "<svg" in html
    # the test videos of runs over cached features are found through the store's provenance
    assert "Test videos it got most wrong" in html and "data:image/jpeg;base64," in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert out.with_suffix(".md").is_file()


@pytest.mark.usefixtures("one_thread")
def test_explain_lstm_run_shows_the_frames_and_steps_it_rests_on(pipeline: dict[str, Path], synth_ucf101: Path,
                                                                 tmp_path: Path) -> None:
    """Per-frame Grad-CAM of the backbone through the LSTM, and occlusion of each of the 6 steps it reads."""
    pytest.importorskip("pytorch_grad_cam", reason="the explain extra: pip install 'actionlab[explain]'")
    from actionlab.data.video.decode import VideoReader

    video = sorted((synth_ucf101 / "UCF-101").rglob("*.avi"))[0]
    assert run("explain", pipeline["lstm"], video, "-o", tmp_path) == 0
    summary = json.loads((tmp_path / f"{video.stem}.json").read_text())
    assert len(summary["frames"]) == len(summary["weights"]) == 6  # inference.window=6 of the 8 extracted frames
    assert "occlusion" in summary["steps"] and "mobilenet_v2" in summary["map"]
    assert any(abs(w) > 1e-4 for w in summary["weights"]) and max(summary["heat_per_frame"]) > 0
    with VideoReader(tmp_path / f"{video.stem}.mp4") as movie:
        assert movie.info.num_frames == 6
    assert (tmp_path / f"{video.stem}.png").stat().st_size > 10_000


def test_video_network_trains_from_manifest(pipeline: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "c3d"
    assert run("train", "--manifest", pipeline["manifest"], "--model", "c3d_small", "--run", run_dir,
               "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--set", "clip.clip_len=8",
               "--set", "clip.size=32", "--set", "clip.resize=40", "--set", "clip.test_clips=2") == 0
    from actionlab.evaluate.predictions import load_predictions

    preds = load_predictions(run_dir / "predictions_test.npz")
    assert preds.part_scores is not None and len(preds.part_scores) == 2 * len(preds.keys)
    assert np.allclose(np.exp(preds.scores).sum(1), 1, atol=1e-4)
    # A clip network compares video by video with a baseline trained on cached features, and vice versa.
    capsys.readouterr()
    assert run("evaluate", run_dir, "--baseline", pipeline["single"], "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert sum(c["support"] for c in result["changes"]["improved"] + result["changes"]["hurt"]
               + result["changes"]["unchanged"]) == len(preds.keys)
    assert run("evaluate", pipeline["lstm"], "--baseline", run_dir) == 0


def test_sweep_grid_resumes(pipeline: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sweep", "--features", pipeline["store"], "--model", "lstm", "--out", tmp_path / "sw",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--set", "model.hidden_size=16",
            "--set", "model.fc_size=0", "--set", "sequence.seq_len=4", "--set", "inference.window=4",
            "--grid", "model.num_layers=1,2", "--seeds", "0,1"]
    assert run(*args) == 0
    table = capsys.readouterr().out
    assert "model.num_layers" in table or "num_layers" in table
    trials = sorted(p for p in (tmp_path / "sw").rglob("metrics.json"))
    assert len(trials) == 4  # 2 settings x 2 seeds
    stamps = [p.stat().st_mtime_ns for p in trials]
    assert run(*args) == 0  # finished sweep: nothing reruns
    assert [p.stat().st_mtime_ns for p in trials] == stamps


def test_console_script_lists_models() -> None:
    exe = Path(sys.executable).parent / "actionlab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    out = subprocess.run([*cmd, "list", "models"], capture_output=True, text=True, timeout=120, check=True).stdout
    for name in ("lstm", "gru", "single_frame", "c3d", "s3d", "r2plus1d_18", "lrcn"):
        assert name in out


def test_finetune_then_single_frame_baseline_from_store(pipeline: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # An ImageNet store has no per-frame predictions over the dataset's classes: a clear error.
    assert run("evaluate", pipeline["store"]) == 2
    assert "--predictions" in capsys.readouterr().err
    ft = tmp_path / "ft"
    assert run("finetune", pipeline["manifest"], "--out", ft, "--epochs", "1", "--frames-per-video", "1",
               "--batch-size", "8", "--device", "cpu") == 0
    store = tmp_path / "ft.h5"
    assert run("extract", pipeline["manifest"], "-o", store, "--weights", ft / "backbone.pt", "--predictions",
               "--num-frames", "4", "--workers", "0") == 0
    capsys.readouterr()
    assert run("evaluate", store, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["num_classes"] == 4 and 0 <= result["metrics"]["top1"] <= 1
    assert result["metrics"]["num_clips"] == 4 * result["metrics"]["num_videos"]  # 4 frames per video
    if importlib.util.find_spec("pytorch_grad_cam"):  # explain a frame classifier: per-frame maps and probabilities
        video = next((Path(read_manifest(pipeline["manifest"]).root)).rglob("*.avi"))
        assert run("explain", ft, video, "-o", tmp_path / "explain") == 0
        summary = json.loads((tmp_path / "explain" / f"{video.stem}.json").read_text())
        assert len(summary["weights"]) == 5 and all(0 <= w <= 1 for w in summary["weights"])  # frames.test_per_video
        assert "frame classifier" in summary["map"] and max(summary["heat_per_frame"]) > 0


def test_frame_cache_that_would_not_fit_is_refused(pipeline: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import actionlab.runs.inputs.videos as inputs

    monkeypatch.setattr(inputs, "available_memory", lambda: 2**20)  # 1 MiB free
    args = ["train", "--manifest", pipeline["manifest"], "--model", "c3d_small", "--run", tmp_path / "r",
            "--epochs", "1", "--device", "cpu", "--set", "clip.clip_len=8", "--set", "clip.size=32",
            "--set", "clip.resize=40", "--set", "clip.cache_frames=true"]
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert "clip.cache_frames=false" in err and "GiB available" in err
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()


def test_train_with_seeds_writes_mean_and_std(pipeline: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seeds"
    assert run("train", "--features", pipeline["store"], "--preset", "single_frame", "--run", out,
               "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--seeds", "0,1") == 0
    summary = json.loads((out / "seeds.json").read_text())
    top1 = [json.loads((out / f"seed-{s}" / "metrics.json").read_text())["top1"] for s in (0, 1)]
    assert summary["seeds"] == [0, 1] and summary["mean"]["top1"] == pytest.approx(sum(top1) / 2)
    assert summary["std"]["top1"] == pytest.approx(abs(top1[0] - top1[1]) / 2 ** 0.5)
    assert "mean" in capsys.readouterr().out  # the mean ± std row of the table

