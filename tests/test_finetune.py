"""Single-frame fine-tuning (a ``frame_classifier`` run) end to end on the tiny synthetic UCF-101 dataset."""

from __future__ import annotations

import json

import numpy as np
import torch

from actionlab.config import apply_overrides
from actionlab.data.index import index_dataset
from actionlab.data.manifest import write_manifest
from actionlab.evaluate.inference import average_probabilities
from actionlab.evaluate.predictions import load_predictions
from actionlab.features.backbones import create_backbone
from actionlab.features.weights import read_backbone_checkpoint
from actionlab.presets import preset
from actionlab.runs.train import train_run


def test_video_scores_average_frame_probabilities() -> None:
    p = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    out = average_probabilities(np.log(p), np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(np.exp(out), [[0.7, 0.3], [0.2, 0.8]], rtol=1e-5)


def test_finetune_one_epoch_and_reload_as_weights(synth_ucf101, tmp_path) -> None:
    manifest, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0, val_fraction=0.0)
    write_manifest(manifest, tmp_path / "m.csv")
    out = tmp_path / "ft"
    before = create_backbone("mobilenet_v2", weights="imagenet")
    cfg = apply_overrides(preset("finetune"), {
        "model.backbone": "mobilenet_v2", "model.train_layers": "top", "epochs": 1, "optim.lr": 0.01,
        "batch_size": 8, "frames.per_video": 1, "seed": 0, "device": "cpu", "frames.crop": 96,
        "frames.test_per_video": 2})
    metrics = train_run(cfg, out, manifest=tmp_path / "m.csv")
    for key in ("clip_top1", "top1", "top5"):  # frame-level and video-level accuracy
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["top5"] == 1.0  # 4 classes: every label is in the top 5
    n_test = len(manifest.split("test"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["num_videos"] == n_test and saved["top1"] == metrics["top1"]
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "metrics.jsonl").is_file()
    preds = load_predictions(out / "predictions_test.npz")
    assert preds.scores.shape == (n_test, 4) and preds.part_scores.shape == (2 * n_test, 4)

    meta = read_backbone_checkpoint(out / "backbone.pt")
    assert meta["backbone"] == "mobilenet_v2" and meta["num_classes"] == 4
    assert meta["classes"] == manifest.classes
    tuned = create_backbone("mobilenet_v2", weights=out / "backbone.pt")
    assert tuned.num_classes == 4 and tuned.classes == manifest.classes
    # "top" trained the last feature block and the head; the frozen stem kept its ImageNet weights and stats
    assert torch.equal(tuned.features[0][0].weight, before.features[0][0].weight)
    assert torch.equal(tuned.features[0][1].running_mean, before.features[0][1].running_mean)
    assert not torch.equal(tuned.features[18][0].weight, before.features[18][0].weight)
    # the training loop's best.pt is accepted as weights too
    from_loop = create_backbone("mobilenet_v2", weights=out / "checkpoints" / "best.pt")
    assert from_loop.classes == manifest.classes
    assert torch.equal(from_loop.classifier[1].weight, tuned.classifier[1].weight)
