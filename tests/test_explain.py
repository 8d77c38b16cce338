"""``actionlab explain`` on a trained video network (PNG strip, MP4 with one frame per explained frame, JSON), and
``train --tensorboard``: TensorBoard's own event reader finds every epoch's scalars and the confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.data.index import index_dataset
from actionlab.data.manifest import read_manifest, write_manifest
from actionlab.data.sampling import clip_indices
from actionlab.data.video.decode import VideoReader

pytest.importorskip("pytorch_grad_cam", reason="the explain extra: pip install 'actionlab[explain]'")
pytestmark = pytest.mark.usefixtures("one_thread")

CLIP_LEN, TEST_CLIPS, EPOCHS = 4, 2, 2


@pytest.fixture(scope="module")
def video_run(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("explain")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the one_thread fixture
    m, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0, val_fraction=0.34)
    write_manifest(m, out / "manifest.csv")
    run_dir = out / "runs" / "r2p1d"
    assert main(["train", "--manifest", str(out / "manifest.csv"), "--model", "r2plus1d_18", "--run", str(run_dir),
                 "--epochs", str(EPOCHS), "--batch-size", "4", "--device", "cpu", "--tensorboard",
                 "--set", "model.width=0.25", "--set", f"clip.clip_len={CLIP_LEN}", "--set", "clip.frame_interval=2",
                 "--set", "clip.size=32", "--set", "clip.resize=36", "--set", f"clip.test_clips={TEST_CLIPS}"]) == 0
    torch.set_num_threads(threads)
    video = m.abspath(m.split("test")[0])
    return {"run": run_dir, "video": video, "manifest": out / "manifest.csv"}


def test_explain_writes_a_strip_a_movie_and_the_weights(video_run: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(video_run["run"]), str(video_run["video"]), "-o", str(tmp_path / "out")]) == 0
    stem = video_run["video"].stem
    png, mp4, info = (tmp_path / "out" / f"{stem}.{ext}" for ext in ("png", "mp4", "json"))
    assert f"{stem}.png" in capsys.readouterr().out
    from PIL import Image

    with Image.open(png) as img:
        assert img.format == "PNG" and img.width >= 4 * 100 and img.height > 128  # frames + curve
    summary = json.loads(info.read_text())
    with VideoReader(video_run["video"]) as reader:  # every frame of every test clip, once, in time order
        frames = len(np.unique(clip_indices(reader.info.num_frames, CLIP_LEN, 2, TEST_CLIPS)))
    assert frames > CLIP_LEN
    assert len(summary["frames"]) == len(summary["weights"]) == frames
    assert summary["frames"] == sorted(summary["frames"])
    assert sum(summary["weights"]) == pytest.approx(1.0, abs=1e-4)  # each frame's share of the heat
    assert summary["predicted"] == summary["target"] and "Grad-CAM" in summary["map"]
    with VideoReader(mp4) as movie:
        assert movie.info.num_frames == frames
        first = movie.get_frames([0])[0]
    assert first.shape[1] == 256 and first.std() > 5  # a picture, not a blank frame


def test_explain_another_class_and_bad_target(video_run: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    classes = read_manifest(video_run["manifest"]).classes
    assert main(["explain", str(video_run["run"]), str(video_run["video"]), "-o", str(tmp_path),
                 "--target", classes[-1]]) == 0
    assert json.loads((tmp_path / f"{video_run['video'].stem}.json").read_text())["target"] == classes[-1]
    assert main(["explain", str(video_run["run"]), str(video_run["video"]), "--target", "NoSuchClass"]) == 2
    assert "NoSuchClass" in capsys.readouterr().err
    assert main(["explain", str(video_run["run"]), str(video_run["video"]), "--layer", "layer9"]) == 2
    err = capsys.readouterr().err
    assert "no layer 'layer9'" in err and "layer3" in err  # names the layers there are
    assert main(["explain", str(video_run["run"]), str(video_run["video"]), "-o", str(tmp_path / "l2"),
                 "--layer", "layer2"]) == 0
    assert "layer2" in json.loads((tmp_path / "l2" / f"{video_run['video'].stem}.json").read_text())["map"]


def test_tensorboard_reader_finds_every_epoch(video_run: dict[str, Path]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(video_run["run"] / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/acc", "val/loss", "val/top1", "lr", "test/top1"} <= set(tags["scalars"])
    history = [json.loads(line) for line in (video_run["run"] / "metrics.jsonl").read_text().splitlines()]
    events = acc.Scalars("train/loss")
    assert [e.step for e in events] == [r["epoch"] for r in history] == list(range(EPOCHS))
    assert np.allclose([e.value for e in events], [r["train_loss"] for r in history], rtol=1e-6)
    metrics = json.loads((video_run["run"] / "metrics.json").read_text())
    assert acc.Scalars("test/top1")[0].value == pytest.approx(metrics["top1"])
    assert "test/confusion_matrix" in tags["images"]


def test_tensorboard_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from actionlab.runs import tensorboard

    monkeypatch.setattr(tensorboard, "tensorboard_available", lambda: False)
    with caplog.at_level("INFO", logger="actionlab.runs.tensorboard"):
        assert tensorboard.open_tensorboard(tmp_path) is None
    assert "pip install 'actionlab[tensorboard]'" in caplog.text
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_for_a_run_trained_without_it_replays_its_history(tmp_path: Path) -> None:
    """A resumed (or finished) run gets the epochs already in metrics.jsonl when its event files are new."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from actionlab.runs.tensorboard import TensorBoardLog

    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 1.0 / (e + 1), "val_top1": None if e == 0 else 0.1 * e}
            for e in range(3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    board = TensorBoardLog(tmp_path)
    board.epoch({"epoch": 3, "train_loss": 0.2, "val_top1": 0.5})
    board.finish({"top1": 0.75, "confusion_matrix": [[3, 1], [0, 4]], "classes": ["a", "<b>"]})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [0, 1, 2, 3]
    assert [e.step for e in acc.Scalars("val/top1")] == [1, 2, 3]  # null (no validation yet) is left out
    assert acc.Scalars("test/top1")[0].step == 3 and "test/confusion_matrix" in acc.Tags()["images"]
