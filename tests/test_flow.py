"""Optical flow as a modality: actionlab's flow against OpenCV's on a real encoded video of a known translation,
quantisation (TSN / denseflow), the frames each step's flow comes from, TSN's cross-modality initialisation,
flow clips, and the clear error where TV-L1 is missing."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actionlab.config import ExtractConfig, FlowConfig
from actionlab.data.flow_clips import FlowClipDataset
from actionlab.data.sampling import uniform_indices
from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import write_video
from actionlab.features.flow import (
    FlowUnavailableError,
    create_estimator,
    cross_modality_init,
    dequantise,
    flow_image,
    flow_input,
    flow_windows,
    quantise,
    tvl1_available,
    video_flow_fields,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SHIFT = (3.0, -2.0)  # pixels per frame: the texture moves right and up
H, W, FRAMES = 96, 128, 12


@pytest.fixture(scope="module")
def translating_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smooth random texture sliding by ``SHIFT`` per frame, encoded as XviD (lossy, like UCF-101)."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 80, W + 80, 3)).astype(np.float32), (0, 0), 2.0)
    big = np.clip((big - big.mean()) * 4 + 128, 0, 255).astype(np.uint8)
    dx, dy = int(SHIFT[0]), int(SHIFT[1])
    frames = np.stack([big[40 - dy * t: 40 - dy * t + H, 40 - dx * t: 40 - dx * t + W] for t in range(FRAMES)])
    path = tmp_path_factory.mktemp("flow") / "translate.avi"
    write_video(path, frames, fps=25, codec="xvid")
    return path


def _flow_cfg(**flow: object) -> ExtractConfig:
    return ExtractConfig(modality="flow", sampler="uniform", num_frames=4,
                         flow=FlowConfig(size=H, stack=1, output="raw", **flow))  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["dis", "farneback"])
def test_flow_of_a_known_translation_matches_opencv(translating_video: Path, algorithm: str) -> None:
    cfg = _flow_cfg(algorithm=algorithm)
    positions, q, _ = video_flow_fields(translating_video, cfg)
    assert q.shape == (4, 2, H, W) and q.dtype == np.uint8
    np.testing.assert_array_equal(positions, uniform_indices(FRAMES, 4))  # the RGB sampler's positions
    flow = dequantise(q, cfg.flow.bound)[:, :, 16:-16, 16:-16]  # interior: borders have no match
    mean = flow.mean(axis=(0, 2, 3))
    assert np.sign(mean).tolist() == [1.0, -1.0]
    np.testing.assert_allclose(mean, SHIFT, atol=0.35)
    np.testing.assert_allclose(flow.mean(axis=(2, 3)), np.tile(SHIFT, (4, 1)), atol=0.5)  # every step

    # Bare OpenCV on the same decoded frames, quantised by the formula: the same fields.
    estimate, _ = create_estimator(cfg.flow)
    with VideoReader(translating_video, size=H) as reader:
        frames = reader.get_frames(flow_windows(FRAMES, positions, 1).reshape(-1))
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    for i in range(4):
        f = estimate(grey[2 * i], grey[2 * i + 1])  # (H, W, 2)
        bare = np.round((np.clip(f, -20, 20) + 20) * 255 / 40).transpose(2, 0, 1)
        assert np.abs(q[i].astype(int) - bare).max() <= 1  # float rounding of 127.5-like values only


def test_downscaled_flow_keeps_the_size_and_the_units(translating_video: Path) -> None:
    """``flow.downscale=2`` estimates on frames of half the size: the stored field still has the full size and
    its vectors are in full-size pixels (the known shift), close to the full-resolution field."""
    _, full, _ = video_flow_fields(translating_video, _flow_cfg())
    _, half, _ = video_flow_fields(translating_video, _flow_cfg(downscale=2))
    assert half.shape == full.shape == (4, 2, H, W)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    mean = dequantise(half, 20.0)[inner].mean(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, SHIFT, atol=0.4)
    gap = np.abs(dequantise(half, 20.0)[inner] - dequantise(full, 20.0)[inner]).mean()
    assert gap < 0.5, f"downscaled flow differs from the full field by {gap:.2f} px on average"
    with pytest.raises(ValueError, match="flow.step and flow.downscale"):
        FlowConfig(algorithm="mv", downscale=2)
    with pytest.raises(ValueError, match="downscale >= 1"):
        FlowConfig(downscale=0)


def test_a_field_over_several_frames_measures_their_whole_motion(translating_video: Path) -> None:
    """``stack=1, step=2``: one field from frame t to t+2, twice the per-frame shift, and the same as
    bare Farneback on those two frames."""
    cfg = _flow_cfg(step=2)
    positions, q, _ = video_flow_fields(translating_video, cfg)
    assert q.shape == (4, 2, H, W)
    flow = dequantise(q, 20.0)[:, :, 16:-16, 16:-16]
    np.testing.assert_allclose(flow.mean(axis=(2, 3)), np.tile(np.multiply(SHIFT, 2), (4, 1)), atol=0.7)
    windows = flow_windows(FRAMES, positions, 1, 2)
    assert (np.diff(windows, axis=1) == 2).all()
    estimate, _ = create_estimator(cfg.flow)
    with VideoReader(translating_video, size=H) as reader:
        a, b = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in reader.get_frames(windows[0]))
    bare = np.round((np.clip(estimate(a, b), -20, 20) + 20) * 255 / 40).transpose(2, 0, 1)
    assert np.abs(q[0].astype(int) - bare).max() <= 1
    with pytest.raises(ValueError, match="flow.step and flow.downscale"):
        FlowConfig(algorithm="mv", step=5)


def test_the_default_flow_leaves_a_flat_noisy_wall_still(tmp_path: Path) -> None:
    """Why Farneback is the default: a textured square slides 2 px/frame right over a plain wall with sensor
    noise (std 3). DIS fills the wall with motion about as large as the square's (measured: 1.2-1.8 px mean);
    the default must keep it near zero and measure the square's motion."""
    rng = np.random.default_rng(0)
    square = cv2.GaussianBlur(rng.uniform(0, 255, (20, 20, 3)).astype(np.float32), (0, 0), 1.5)
    square = np.clip((square - square.mean()) * 4 + 128, 0, 255)
    frames = np.empty((FRAMES, H, W, 3), np.uint8)
    for t in range(FRAMES):
        f = np.full((H, W, 3), (200, 202, 198), np.float32) + rng.normal(0, 3.0, (H, W, 1))
        f[40:60, 20 + 2 * t: 40 + 2 * t] = square
        frames[t] = np.clip(f, 0, 255)
    path = tmp_path / "wall.avi"
    write_video(path, frames, fps=25, codec="xvid")
    positions, q, _ = video_flow_fields(path, _flow_cfg())  # the default algorithm
    flow = dequantise(q, 20.0)  # (4, 2, H, W)
    wall = np.hypot(flow[:, 0, :25], flow[:, 1, :25])  # rows above the square's band
    assert wall.mean() < 0.3, f"the plain wall moves by {wall.mean():.2f} px on average"
    inside = np.stack([flow[i, :, 45:55, 26 + 2 * p: 34 + 2 * p].mean(axis=(1, 2)) for i, p in enumerate(positions)])
    np.testing.assert_allclose(inside, np.tile([2.0, 0.0], (4, 1)), atol=0.3)


def test_the_dis_preset_with_another_algorithm_is_an_error() -> None:
    with pytest.raises(ValueError, match="flow.algorithm=dis"):
        FlowConfig(preset="medium")
    assert FlowConfig(algorithm="dis", preset="medium").preset == "medium"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 50, width=32), min_size=2, max_size=40).filter(lambda v: len(v) % 2 == 0),
       st.sampled_from([5.0, 20.0]))
def test_quantisation_clips_to_the_bound_and_rounds(values: list[float], bound: float) -> None:
    f = np.array(values, np.float32).reshape(1, -1, 2)
    q = quantise(f.copy(), bound)
    assert q.dtype == np.uint8 and q.shape == f.shape
    expected = np.clip(np.round((np.clip(f, -bound, bound) + bound) * 255 / (2 * bound)), 0, 255)
    assert np.abs(q.astype(int) - expected).max() <= 1
    np.testing.assert_allclose(dequantise(q, bound), np.clip(f, -bound, bound), atol=bound / 255 * 1.01 + 1e-4)


@given(st.integers(1, 60), st.integers(1, 6), st.integers(1, 6), st.data())
def test_flow_windows_are_evenly_spaced_frames_inside_the_video(n: int, stack: int, step: int,
                                                                data: st.DataObject) -> None:
    positions = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10)))
    w = flow_windows(n, positions, stack, step)
    assert w.shape == (len(positions), stack + 1)
    assert (w >= 0).all() and (w < n).all()
    steps = np.diff(w, axis=1)
    if n > stack * step:  # room for the whole window: every step-th frame, starting at the position or before
        assert (steps == step).all() and (w[:, 0] <= positions).all()
        assert (w[:, 0] == np.minimum(positions, n - 1 - stack * step)).all()
    else:  # a short video: its frames in order, cut at the last one (zero flow after it)
        assert (steps >= 0).all() and (steps <= step).all() and (w[:, 0] == 0).all() and (w[:, -1] == n - 1).all()


def test_cross_modality_initialisation_averages_the_rgb_kernels() -> None:
    from actionlab.features.backbones import create_backbone

    rgb = create_backbone("mobilenet_v2", weights="none")
    flow = cross_modality_init(copy.deepcopy(rgb), 10)
    w_rgb, w_flow = rgb.features[0][0].weight, flow.features[0][0].weight
    assert w_flow.shape == (32, 10, 3, 3)
    for c in range(10):
        torch.testing.assert_close(w_flow[:, c], w_rgb.mean(dim=1))
    torch.testing.assert_close(flow.features[1].conv[0][0].weight, rgb.features[1].conv[0][0].weight)  # the rest
    with torch.no_grad():
        assert flow.eval().forward_features(torch.zeros(2, 10, 64, 64)).shape == (2, 1280)
    with pytest.raises(ValueError, match="does not read RGB"):
        cross_modality_init(flow, 4)


def _quantised(fields: list[tuple[float, float]], bound: float = 20.0, h: int = 40, w: int = 48) -> np.ndarray:
    """``(1, 2L, h, w)`` uint8: a still background with a centre square moving by each field's (x, y)."""
    f = np.zeros((len(fields), h, w, 2), np.float32)
    for i, (x, y) in enumerate(fields):
        f[i] += (0.4, -0.3)  # the camera's drift, the same everywhere
        f[i, 12:28, 16:32] += (x, y)
    q = np.stack([quantise(fi.copy(), bound) for fi in f])  # (L, h, w, 2)
    return q.transpose(0, 3, 1, 2).reshape(1, 2 * len(fields), h, w)


def test_flow_image_draws_the_displacement_without_the_camera() -> None:
    from actionlab.features.preprocess import Preprocess

    pre = Preprocess(40, 32)  # ImageNet mean and std
    img = flow_image(_quantised([(2.0, 1.0), (3.0, 1.0)]), 20.0, pre)  # summed: (5, 2) px
    assert img.shape == (1, 3, 32, 32)
    rgb = img * torch.tensor(pre.std).view(1, 3, 1, 1) + torch.tensor(pre.mean).view(1, 3, 1, 1)
    inside, outside = rgb[0, :, 12:20, 12:20].mean((1, 2)), rgb[0, :, 0:4, 0:4].mean((1, 2))
    torch.testing.assert_close(outside, torch.tensor([0.5, 0.5, 0.0]), atol=0.01, rtol=0)  # the drift is gone
    expect = torch.tensor([0.5 + 5 / 40, 0.5 + 2 / 40, float(np.hypot(5, 2)) / 20])
    torch.testing.assert_close(inside, expect, atol=0.01, rtol=0)


def test_the_full_view_shows_motion_at_the_side_of_a_wide_frame() -> None:
    """``view=full``: a hand moving at the left edge of a 16:9 flow field (outside the centre square) is in the
    flow image and the stacked input, resized to short side ``crop``; the centre view has only the still wall."""
    from actionlab.features.preprocess import Preprocess

    f = np.zeros((1, 36, 64, 2), np.float32)
    f[0, 10:26, 2:10] = (4.0, -2.0)  # at the left edge
    q = quantise(f[0].copy(), 20.0).transpose(2, 0, 1)[None]  # (1, 2, 36, 64)
    centre, full = Preprocess(36, 32), Preprocess(36, 32, view="full")
    for encoding in ("image", "stack"):
        cfg = FlowConfig(encoding=encoding, stack=1)
        x_c, x_f = flow_input(q, cfg, centre), flow_input(q, cfg, full)
        assert x_c.shape[-2:] == (32, 32) and x_f.shape[-2:] == (32, 57)  # 64 * 32 / 36 = 56.9
        hand, wall = x_f[0, :, 12:20, 3:7].flatten(1), x_f[0, :, 12:20, 30:].flatten(1)
        assert x_c[0].flatten(1).std(1).max() < 0.02  # nothing moves in the centre square
        assert hand.std(1).max() < 0.02 and (hand.mean(1) - wall.mean(1)).abs().max() > 0.1


def test_a_frozen_stacked_convolution_cannot_see_motion_along_x_equals_minus_y() -> None:
    """Why ``flow.encoding=image`` is the default for features: TSN's replicated kernels sum the 2L channels,
    so a frozen network cannot tell a square moving along x = -y from a still one; the flow image can."""
    from actionlab.features.backbones import create_backbone
    from actionlab.features.preprocess import Preprocess

    pre = Preprocess(40, 32)
    torch.manual_seed(0)
    rgb = create_backbone("mobilenet_v2", weights="none").eval()
    stacked = cross_modality_init(copy.deepcopy(rgb), 4)
    still, diagonal, right = (_quantised([m, m]) for m in [(0.0, 0.0), (4.0, -4.0), (4.0, 4.0)])
    with torch.no_grad():
        def feats(model: torch.nn.Module, q: np.ndarray, encoding: str) -> torch.Tensor:
            return model.forward_features(flow_input(q, FlowConfig(encoding=encoding), pre))

        s_still, s_diag, s_right = (feats(stacked, q, "stack") for q in (still, diagonal, right))
        i_still, i_diag = (feats(rgb, q, "image") for q in (still, diagonal))
    def change(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    assert change(s_diag, s_still) < 1e-3  # invisible, up to uint8 rounding
    assert change(s_right, s_still) > 0.05  # the same network sees the other diagonal
    assert change(i_diag, i_still) > 0.05


def test_tvl1_is_used_where_opencv_has_it_and_named_where_it_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    if tvl1_available():
        estimate, params = create_estimator(FlowConfig(algorithm="tvl1"))
        assert "tau" in params
    else:
        with pytest.raises(FlowUnavailableError, match=r"cv2\.optflow.*opencv-contrib-python-headless"):
            create_estimator(FlowConfig(algorithm="tvl1"))
    with pytest.raises(ValueError, match="flow.algorithm"):
        FlowConfig(algorithm="brox")
    with pytest.raises(ValueError, match="modality=flow only"):
        ExtractConfig(flow=FlowConfig(bound=10))
    from actionlab.cli import main

    assert main(["extract", "unused.csv", "--flow-bound", "10"]) == 2  # a flow option without --modality flow
    assert "--flow-bound and the other --flow-* options apply to --modality flow only" in capsys.readouterr().err


def test_flow_clips_flip_mirrors_the_motion() -> None:
    """A horizontal flip of a flow clip negates its x channels (a rightward motion becomes leftward)."""
    video = np.full((12, 2, 20, 24), 128, np.uint8)
    video[:, 0] = 200  # x flow > 0 everywhere; y flow 0 (128 -> 0.0039)
    ds = FlowClipDataset([video], [0], clip_len=4, size=16, resize=20, flip=True)
    signs = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        x, label, v = ds[0]
        assert x.shape == (2, 4, 16, 16) and (label, v) == (0, 0)
        np.testing.assert_allclose(x[1].numpy(), 128 / 127.5 - 1, atol=1e-6)
        signs.add(float(np.sign(x[0].mean().item())))
        np.testing.assert_allclose(x[0].abs().numpy(), 200 / 127.5 - 1, atol=1e-6)
    assert signs == {1.0, -1.0}
    test = FlowClipDataset([video, video], [0, 1], clip_len=4, size=16, resize=20, num_clips=3, train=False, crops=3)
    assert len(test) == 18 and test.item_video.tolist() == [0] * 9 + [1] * 9
    assert float(test[17][0][0].mean()) > 0  # never flipped at test


def test_flow_settings_recorded_before_encodings_existed_read_as_the_stacked_fields() -> None:
    from actionlab.config import recorded_extract, to_dict
    from actionlab.features.store import as_compared

    old = to_dict(ExtractConfig(modality="flow"))
    del old["flow"]["encoding"]
    assert recorded_extract(old).flow.encoding == "stack"  # what a run trained before then was fed
    raw = to_dict(ExtractConfig(modality="flow", flow=FlowConfig(output="raw")))
    del raw["flow"]["encoding"]
    assert recorded_extract(raw).flow == FlowConfig(output="raw")
    assert as_compared({"flow": old["flow"]})["flow"]["encoding"] == "stack"
    assert recorded_extract(to_dict(ExtractConfig(modality="flow"))).flow.encoding == "image"
    older = to_dict(ExtractConfig(modality="flow"))  # before flow.step and flow.downscale: per frame, full size
    del older["flow"]["step"], older["flow"]["downscale"]
    assert as_compared({"flow": older["flow"]})["flow"] == to_dict(ExtractConfig(modality="flow"))["flow"]
    with pytest.raises(ValueError, match="leave flow.encoding unset"):
        FlowConfig(output="raw", encoding="stack")
