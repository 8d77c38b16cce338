"""The run skeleton: one life for every input kind, unknown model fields refused, and preprocessing that
travels with the weights (training, the checkpoint and ``predict`` all use the model's own normalization)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.config import TrainConfig, apply_overrides
from actionlab.data.index import index_dataset
from actionlab.data.manifest import write_manifest
from actionlab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN
from actionlab.evaluate.predictions import load_predictions
from actionlab.models.checkpoint import load_checkpoint
from actionlab.predict.predictor import Predictor
from actionlab.runs.train import train_run

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_CLIPS = {"clip.clip_len": 4, "clip.frame_interval": 2, "clip.size": 32, "clip.resize": 36,
              "clip.test_clips": 2, "epochs": 1, "batch_size": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def manifest(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    m, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0, val_fraction=0.34)
    path = tmp_path_factory.mktemp("run") / "manifest.csv"
    write_manifest(m, path)
    return path


def test_a_field_the_model_does_not_take_is_refused(manifest: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--manifest", str(manifest), "--model", "s3d", "--set", "model.width=0.25",
                 "--run", str(tmp_path / "r"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "model.width" in err and "c3d, c3d_small, " in err and "r2plus1d_18" in err
    assert not (tmp_path / "r" / "checkpoints").exists()  # refused before any training


def test_pretrained_lrcn_trains_on_imagenet_normalized_clips(manifest: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An LRCN on an ImageNet 2D CNN gets ImageNet statistics, not the video networks' Kinetics ones."""
    from actionlab.data import datasets

    seen: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    real = datasets.ClipDataset.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(self, *args, **kwargs)
        seen.append((tuple(self.eval_transform.mean), tuple(self.eval_transform.std)))

    monkeypatch.setattr(datasets.ClipDataset, "__init__", spy)
    cfg = apply_overrides(TrainConfig(), {**TINY_CLIPS, "model.name": "lrcn", "model.pretrained": True,
                                          "model.hidden_size": 16, "clip.test_clips": 1})
    train_run(cfg, tmp_path / "lrcn", manifest=manifest)
    assert seen and all(s == (IMAGENET_MEAN, IMAGENET_STD) for s in seen)  # train, val and test datasets
    meta = load_checkpoint(tmp_path / "lrcn" / "checkpoints" / "best.pt")["meta"]
    assert tuple(meta["preprocessing"]["mean"]) == IMAGENET_MEAN


def test_predict_uses_the_normalization_in_the_checkpoint(manifest: Path, tmp_path: Path) -> None:
    cfg = apply_overrides(TrainConfig(), {**TINY_CLIPS, "model.name": "r2plus1d_18", "model.width": 0.25})
    run_dir = tmp_path / "r2p1d"
    train_run(cfg, run_dir, manifest=manifest)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert tuple(ckpt["meta"]["preprocessing"]["mean"]) == KINETICS_MEAN
    # predict == the evaluation's own scores for the same test video: one inference path
    preds = load_predictions(run_dir / "predictions_test.npz")
    from actionlab.data.manifest import read_manifest

    m = read_manifest(manifest)
    rec = m.split("test")[0]
    scores = Predictor(run_dir, device="cpu").scores(m.abspath(rec)).video
    row = list(preds.keys).index(rec.path)
    np.testing.assert_allclose(scores, preds.scores[row], atol=1e-4)
    # another recorded normalization changes what predict computes: it is read from the checkpoint
    ckpt["meta"]["preprocessing"]["mean"] = [0.9, 0.1, 0.5]
    torch.save(ckpt, run_dir / "checkpoints" / "best.pt")
    other = Predictor(run_dir, device="cpu").scores(m.abspath(rec)).video
    assert not np.allclose(other, scores, atol=1e-4)


def test_every_input_kind_writes_the_same_run_files(manifest: Path, tmp_path: Path) -> None:
    """A frame classifier (fine-tuning) is a run like the others: config, checkpoints, predictions, metrics."""
    cfg = apply_overrides(TrainConfig(), {"model.name": "frame_classifier", "model.pretrained": True,
                                          "frames.crop": 64, "frames.per_video": 1, "frames.test_per_video": 2,
                                          "frames.flip": False, "epochs": 1, "batch_size": 8, "device": "cpu"})
    run_dir = tmp_path / "frames"
    metrics = train_run(cfg, run_dir, manifest=manifest)
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "labels.txt", "predictions_test.npz",
                 "checkpoints/best.pt", "backbone.pt"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and "clip_top1" in saved and "val_top1" in saved
    # predict on a frame-classifier run agrees with its evaluation
    from actionlab.data.manifest import read_manifest

    m = read_manifest(manifest)
    rec = m.split("test")[0]
    got = Predictor(run_dir, device="cpu").scores(m.abspath(rec))
    scores, parts = got.video, got.parts
    preds = load_predictions(run_dir / "predictions_test.npz")
    np.testing.assert_allclose(scores, preds.scores[list(preds.keys).index(rec.path)], atol=1e-4)
    assert len(parts) == 2


def test_test_labels_never_select_a_checkpoint(manifest: Path, tmp_path: Path) -> None:
    """Validation, not the test split, picks best.pt: shuffling every test label changes no weight."""
    import dataclasses

    from actionlab.data.manifest import read_manifest

    m = read_manifest(manifest)
    k = len(m.classes)
    flipped = [dataclasses.replace(r, label_index=(r.label_index + 1) % k, label=m.classes[(r.label_index + 1) % k])
               if r.split == "test" else r for r in m.records]
    other = tmp_path / "flipped.csv"
    write_manifest(dataclasses.replace(m, records=flipped), other)
    cfg = apply_overrides(TrainConfig(), {**TINY_CLIPS, "model.name": "r2plus1d_18", "model.width": 0.25,
                                          "epochs": 3, "clip.test_clips": 1})
    train_run(cfg, tmp_path / "a", manifest=manifest)
    train_run(cfg, tmp_path / "b", manifest=other)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "best.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "best.pt")
    assert a["epoch"] == b["epoch"]
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])
    # ... while the test metrics do change: the labels were read
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["predictions"] == mb["predictions"] and ma["confusion_matrix"] != mb["confusion_matrix"]


def test_a_diverged_run_writes_valid_json(tmp_path: Path) -> None:
    """NaN losses (a diverged run) are written as null: metrics.json and metrics.jsonl stay strict JSON."""
    from actionlab.evaluate.predictions import Predictions
    from actionlab.runs.train import write_results
    from actionlab.train.loop import History

    def refuse(constant: str) -> None:
        raise AssertionError(f"a bare {constant} in JSON")

    preds = Predictions(keys=["a.avi", "b.avi"], labels=np.array([0, 1]), scores=np.log([[0.9, 0.1], [0.2, 0.8]]),
                        classes=["x", "y"])
    history = History(epochs=[{"epoch": 0, "train_loss": float("nan"), "train_acc": 0.5, "val_top1": 0.5}],
                      best_epoch=0)
    write_results(tmp_path, preds, history, {"split": "test"})
    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["train_loss"] is None and metrics["top1"] == 1.0
