"""Single-frame fine-tuning end to end on the tiny synthetic UCF-101 dataset."""

from __future__ import annotations

import json

import numpy as np
import torch

from actionlab.data.index import index_dataset
from actionlab.evaluate.predictions import load_predictions
from actionlab.experiments.finetune import finetune, video_scores
from actionlab.features.backbones import create_backbone
from actionlab.features.weights import read_backbone_checkpoint


def test_video_scores_average_frame_probabilities() -> None:
    p = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    out = video_scores(np.log(p), np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(np.exp(out), [[0.7, 0.3], [0.2, 0.8]], rtol=1e-5)


def test_finetune_one_epoch_and_reload_as_weights(synth_ucf101, tmp_path) -> None:
    manifest, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0)
    out = tmp_path / "ft"
    before = create_backbone("mobilenet_v2", weights="imagenet")
    metrics = finetune(manifest, out, backbone="mobilenet_v2", train_layers="top", epochs=1, lr=0.01,
                       batch_size=8, frames_per_video=1, seed=0, device="cpu", crop=96,
                       test_frames_per_video=2)
    for key in ("frame_top1", "frame_top5", "video_top1", "video_top5"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["video_top5"] == 1.0  # 4 classes: every label is in the top 5
    n_test = len(manifest.split("test"))
    assert metrics["test_videos"] == n_test and metrics["test_frames"] == 2 * n_test
    assert json.loads((out / "metrics.json").read_text())["video_top1"] == metrics["video_top1"]
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "metrics.jsonl").is_file()
    preds = load_predictions(out / "predictions_test.npz")
    assert preds.scores.shape == (n_test, 4) and preds.clip_scores.shape == (2 * n_test, 4)

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
