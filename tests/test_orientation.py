"""Decode as people see it: rotation (display matrix or legacy ``rotate`` tag, with flips) and the sample aspect
ratio are applied, checked against ``ffmpeg``/``ffprobe`` and against PyAV's documented display-matrix meaning."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from actionlab.data.video.decode import VideoReader, probe
from actionlab.data.video.orientation import Display, display_from_matrix

H, W = 48, 64


def picture() -> np.ndarray:
    """An asymmetric picture: a white block in the top-left corner, a grey one at the right edge."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:8, :16] = 255
    img[20:28, -8:] = 128
    return img


def write(path: Path, rotation: int | None = None, hflip: bool = False, vflip: bool = False,
          metadata: dict[str, str] | None = None) -> Path:
    """A 3-frame lossless H.264 clip of :func:`picture`, optionally with a display matrix or tags."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        stream.metadata.update(metadata or {})
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(picture(), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    try:
        av.codec.Codec("libx264rgb", "w")
    except Exception:  # any failure: this PyAV build lacks the encoder
        pytest.skip("this PyAV build cannot encode libx264rgb")


def ffprobe_displayed_size(path: Path) -> tuple[int, int]:
    """(width, height) as players show it, from ffprobe: SAR applied, swapped by a quarter-turn rotation."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    s = json.loads(out)["streams"][0]
    num, den = (int(x) for x in (s.get("sample_aspect_ratio") or "1:1").replace("0:1", "1:1").split(":"))
    rotation = next((sd.get("rotation", 0) for sd in s.get("side_data_list", [])
                     if sd.get("side_data_type") == "Display Matrix"), 0)
    rotation = rotation or int(s.get("tags", {}).get("rotate", s.get("tags", {}).get("ROTATE", 0)))
    w, h = round(s["width"] * num / den), s["height"]
    return (h, w) if abs(int(rotation)) % 180 == 90 else (w, h)


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("flip", ["", "hflip", "vflip"])
def test_display_matrix_is_applied(tmp_path: Path, rotation: int, flip: str) -> None:
    """PyAV documents ``set_display_rotation(deg, hflip, vflip)`` as: turn ``deg`` counterclockwise, then
    mirror. The reader must give exactly that picture (lossless clip), at the displayed size."""
    need("ffprobe")
    path = write(tmp_path / f"r{rotation}{flip}.mp4", rotation, hflip=flip == "hflip", vflip=flip == "vflip")
    expected = np.rot90(picture(), rotation // 90)
    if flip == "hflip":
        expected = expected[:, ::-1]
    elif flip == "vflip":
        expected = expected[::-1]
    info = probe(path)
    assert (info.width, info.height) == ffprobe_displayed_size(path) == (expected.shape[1], expected.shape[0])
    with VideoReader(path) as reader:
        assert np.array_equal(reader.get_frames([2, 0])[1], expected)
        assert np.array_equal(next(iter(reader)), expected)
    with VideoReader(path, size=(expected.shape[0] // 2, expected.shape[1] // 2)) as reader:
        assert reader.get_frames([1]).shape == (1, expected.shape[0] // 2, expected.shape[1] // 2, 3)


def test_legacy_rotate_tag_through_ffmpeg_matches_ffmpegs_own_autorotate(tmp_path: Path) -> None:
    """``ffmpeg -c copy -metadata:s:v rotate=90``: the reader's frame equals ffmpeg's autorotated decode."""
    need("ffmpeg")
    src = write(tmp_path / "plain.mp4")
    path = tmp_path / "rotate90.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-c", "copy", "-metadata:s:v:0",
                    "rotate=90", str(path)], check=True, timeout=60)
    info = probe(path)
    assert (info.width, info.height) == ffprobe_displayed_size(path) == (H, W)
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60).stdout
    shown = np.frombuffer(raw, np.uint8).reshape(W, H, 3)  # ffmpeg autorotates by default
    with VideoReader(path) as reader:
        assert np.array_equal(reader.get_frames([0])[0], shown)


def test_rotate_tag_without_display_matrix(tmp_path: Path) -> None:
    """A literal ``rotate`` tag (old files; Matroska spells it ROTATE) is a clockwise turn."""
    need("ffprobe")
    path = write(tmp_path / "tag.mkv", metadata={"rotate": "90"})
    with VideoReader(path) as reader:
        assert reader.info.rotation == 90 and (reader.info.width, reader.info.height) == (H, W)
        assert np.array_equal(reader.get_frames([0])[0], np.rot90(picture(), -1))


def test_broken_rotation_metadata_decodes_as_stored_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    need("ffprobe")
    path = write(tmp_path / "bad.mkv", metadata={"rotate": "sideways"})
    with VideoReader(path) as reader:
        assert np.array_equal(reader.get_frames([0])[0], picture())
    assert "not a number" in caplog.text and "as stored" in caplog.text
    assert display_from_matrix([0] * 9) is None  # a zero matrix: not a turn
    assert display_from_matrix([65536, 30000, 0, 0, 65536, 0, 0, 0, 1 << 30]) is None  # a skew


def test_anamorphic_clip_is_read_at_its_displayed_size(tmp_path: Path) -> None:
    """``-vf setsar=2``: pixels twice as wide as tall; shown 2x wider, as ffprobe's SAR says."""
    need("ffmpeg")
    path = tmp_path / "sar2.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate=25",
                    "-t", "0.2", "-vf", "setsar=2", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
                   check=True, timeout=60)
    info = probe(path)
    assert info.sar == 2.0 and (info.coded_width, info.coded_height) == (W, H)
    assert (info.width, info.height) == ffprobe_displayed_size(path) == (2 * W, H)
    with VideoReader(path) as reader:
        assert reader.get_frames([0]).shape == (1, H, 2 * W, 3)
    with VideoReader(path, size=24) as reader:  # short side 24, displayed aspect ratio kept
        assert reader.get_frames([0]).shape == (1, 24, 64, 3)


def test_display_turns_are_the_eight_symmetries() -> None:
    idx = np.arange(6).reshape(2, 3)
    seen = {Display(r, m).apply(idx).tobytes() + bytes(Display(r, m).apply(idx).shape)
            for r in (0, 90, 180, 270) for m in (False, True)}
    assert len(seen) == 8
    assert Display(90).size(64, 48) == (48, 64) and Display(0, sar=2.0).size(64, 48) == (128, 48)
    with pytest.raises(ValueError, match="rotation"):
        Display(45)
