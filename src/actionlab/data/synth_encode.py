"""Encode generated frames into real video files with PyAV (XviD .avi like UCF-101, H.264 .mp4, lossless FFV1)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

CODECS = ("xvid", "mpeg4", "h264", "ffv1")


def _codec_settings(codec: str) -> tuple[str, dict[str, str]]:
    if codec in ("xvid", "mpeg4"):
        return "mpeg4", {}
    if codec == "h264":
        return "libx264", {"preset": "veryfast", "crf": "20", "bf": "2"}
    return "ffv1", {}


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "xvid") -> None:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB to ``path`` with PyAV.

    ``xvid``/``mpeg4``: MPEG-4 Part 2 with the ``XVID`` tag and B-frames (like UCF-101/HMDB-51 .avi);
    ``h264``: libx264 with B-frames (like Kinetics .mp4; falls back to mpeg4 when libx264 is missing);
    ``ffv1``: lossless RGB, so decoded frames equal ``frames`` exactly.
    """
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if codec == "h264" and "libx264" not in av.codecs_available:
        logger.warning("PyAV has no libx264 encoder; writing %s with mpeg4 instead", path)
        codec = "mpeg4"
    if codec != "ffv1" and (h % 2 or w % 2):
        raise ValueError(f"{path}: {codec} needs an even frame size, got {h}x{w}")
    encoder, options = _codec_settings(codec)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(encoder, rate=fps, options=options)
        stream.width, stream.height = w, h
        if encoder == "ffv1":
            stream.pix_fmt = "bgr0"
        else:
            stream.pix_fmt = "yuv420p"
        if encoder == "mpeg4":
            stream.codec_tag = "XVID"
            stream.codec_context.max_b_frames = 2
            stream.codec_context.gop_size = 12
            stream.bit_rate = int(0.6 * w * h * fps)  # generous: the noise and textures stay visible
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            if encoder == "ffv1":
                frame = frame.reformat(format="bgr0")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
