"""Saliency maps: Grad-CAM finds a moving object in a real encoded video, occlusion finds the time step a
trained LSTM rests on, every video architecture gets a map, and the differentiable video score of a temporal
model equals the inference path's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import InferenceConfig
from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import write_video
from actionlab.evaluate.inference import sequence_video_scores, window_logits
from actionlab.evaluate.saliency import cam_layer, grad_cam, step_occlusion, temporal_video_logprobs
from actionlab.models import create_model

pytest.importorskip("pytorch_grad_cam", reason="the explain extra: pip install 'actionlab[explain]'")
pytest.importorskip("captum", reason="the explain extra: pip install 'actionlab[explain]'")
pytestmark = pytest.mark.usefixtures("one_thread")

T, S, BOX, STEP = 8, 32, 8, 2


def moving_square(rng: np.random.Generator, hollow: bool) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(T, S, S, 3)`` uint8: a bright square (hollow or filled: the class) sliding left or right over a blocky
    background, and its top-left corner in every frame."""
    bg = rng.uniform(50, 150, (S // 8, S // 8, 3)).repeat(8, 0).repeat(8, 1)
    frames = np.repeat(bg[None], T, 0)
    span, right = STEP * (T - 1), rng.random() < 0.5
    x0 = int(rng.integers(0, S - BOX - span + 1)) + (0 if right else span)
    y0 = int(rng.integers(0, S - BOX + 1))
    corners = []
    for t in range(T):
        x = x0 + (STEP * t if right else -STEP * t)
        frames[t, y0:y0 + BOX, x:x + BOX] = rng.uniform(220, 255, 3)
        if hollow:
            frames[t, y0 + 2:y0 + BOX - 2, x + 2:x + BOX - 2] = bg[y0 + 2:y0 + BOX - 2, x + 2:x + BOX - 2]
        corners.append((y0, x))
    return frames.astype(np.uint8), corners


def as_clip(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255  # (3, T, S, S)


def test_grad_cam_mass_lies_on_the_moving_object(tmp_path: Path) -> None:
    """A small 3D CNN learns filled vs hollow squares that move; decoded from a real (lossless) video file, its
    Grad-CAM puts most of each frame's heat on the square *of that frame*, far above the square's share of
    the frame and above the same boxes taken in reverse time order."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2)),
        nn.Conv3d(8, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(inplace=True),
        nn.Conv3d(16, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, 2))
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(100):
        labels = rng.integers(0, 2, 12)
        x = torch.stack([as_clip(moving_square(rng, bool(y))[0]) for y in labels])
        loss = F.cross_entropy(net(x), torch.from_numpy(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    test = np.random.default_rng(1)
    inside, reversed_time, right = [], [], 0
    for i in range(6):
        label = i % 2
        frames, corners = moving_square(test, bool(label))
        write_video(tmp_path / f"square{i}.mkv", frames, codec="ffv1")  # lossless: the boxes stay exact
        with VideoReader(tmp_path / f"square{i}.mkv") as reader:
            clip = as_clip(reader.get_frames(np.arange(T)))[None]
        right += int(net(clip).argmax(1).item() == label)
        heat, layer = grad_cam(net, clip, label)
        assert heat.shape == (1, T, S, S) and heat.max() == pytest.approx(1.0)
        box = np.zeros((T, S, S), bool)
        for t, (y, x) in enumerate(corners):  # the square, and a margin of one cell of the 16x16 map
            box[t, max(0, y - 2):y + BOX + 2, max(0, x - 2):x + BOX + 2] = True
        inside.append(heat[0][box].sum() / heat.sum())
        reversed_time.append(heat[0][box[::-1]].sum() / heat.sum())
    assert right >= 5
    assert box.mean() < 0.2
    assert np.mean(inside) > 0.5, (inside, layer)
    assert np.mean(inside) > np.mean(reversed_time) + 0.1, (inside, reversed_time)


def test_step_occlusion_finds_the_step_an_lstm_rests_on() -> None:
    """Only step 5 of 12 carries the class (the sign of its features); a trained LSTM's video score drops most
    when that step is occluded."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_model("lstm", num_classes=2, input_dim=8, hidden_size=16, fc_size=16, dropout=0.0,
                         input_dropout=0.0, input_proj=0)
    inf = InferenceConfig(mode="full", step_weighting="last")

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = rng.integers(0, 2, n)
        x = rng.normal(0, 1, (n, 12, 8)).astype(np.float32)
        x[:, 5] = np.where(y[:, None] == 1, 2.0, -2.0) + rng.normal(0, 0.3, (n, 8))
        return torch.from_numpy(x), torch.from_numpy(y)

    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        x, y = batch(32)
        loss = F.nll_loss(temporal_video_logprobs(model, x, inf), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = batch(8)
    peaks = [int(np.argmax(step_occlusion(lambda z: temporal_video_logprobs(model, z, inf), x[i], int(y[i]))))
             for i in range(8)]
    assert peaks.count(5) >= 7, peaks


@pytest.mark.parametrize("mode,weighting", [("spread", "last"), ("windows", "linear"), ("full", "uniform")])
def test_differentiable_video_score_matches_the_inference_path(mode: str, weighting: str) -> None:
    torch.manual_seed(0)
    model = create_model("lstm", num_classes=5, input_dim=6, hidden_size=8, fc_size=8).eval()
    inf = InferenceConfig(mode=mode, window=4, stride=3, step_weighting=weighting)
    feats = np.random.default_rng(0).normal(size=(11, 6)).astype(np.float32)
    expected, _ = sequence_video_scores(window_logits(model, feats, inf, torch.device("cpu"))[0], inf)
    with torch.no_grad():
        got = temporal_video_logprobs(model, torch.from_numpy(feats)[None], inf)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


VIDEO_MODELS = [("r2plus1d_18", {"width": 0.25}), ("c3d_small", {"width": 0.25}), ("lrcn", {"backbone": "small_cnn"}),
                ("vgg9_average", {}), ("s3d", {})]


@pytest.mark.parametrize("name,kwargs", VIDEO_MODELS, ids=[m for m, _ in VIDEO_MODELS])
def test_every_video_architecture_gets_a_map_over_space_and_time(name: str, kwargs: dict) -> None:
    """3D networks, and networks that fold frames into the batch (LRCN, VGG9 averaged over frames), alike."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **kwargs).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    heat, layer = grad_cam(model, x, target=1)
    assert heat.shape == (2, 8, 64, 64) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert layer and model.get_submodule(layer) is not None


def test_a_network_whose_layers_run_twice_per_clip_is_named_not_mapped() -> None:
    """Late fusion runs one tower on two frames: Grad-CAM has no single map per layer, and says so."""
    model = create_model("late_fusion", num_classes=3, width=0.25).eval()
    with pytest.raises(ValueError, match="more than once per clip"):
        grad_cam(model, torch.randn(1, 3, 16, 64, 64), target=0)


def test_cam_layer_takes_the_deepest_map_with_room_to_localize() -> None:
    model = create_model("r2plus1d_18", num_classes=3, width=0.25).eval()
    assert cam_layer(model, torch.randn(1, 3, 8, 32, 32)) == ("layer3", 0)  # layer4 is 2x2 here
    assert cam_layer(model, torch.randn(1, 3, 8, 64, 64)) == ("layer4", 0)  # 4x4
    lrcn = create_model("lrcn", num_classes=3, backbone="small_cnn").eval()
    assert cam_layer(lrcn, torch.randn(1, 3, 4, 64, 64)) == ("backbone.conv3", 4)  # frames folded in the batch
