"""Encode frames into real video files with PyAV (XviD .avi like UCF-101, H.264 .mp4, lossless FFV1), all at
once (:func:`write_video`) or one frame at a time (:class:`VideoWriter`)."""

from __future__ import annotations

import logging
from fractions import Fraction
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


class VideoWriter:
    """Encode frames one at a time with PyAV (memory: one frame): ``with VideoWriter(path, h, w) as out:
    out.write(frame)``. ``codec`` as in :func:`write_video`; ``format`` names the container when the file name's
    suffix does not (e.g. a temporary file)."""

    def __init__(self, path: str | Path, height: int, width: int, fps: float = 25, codec: str = "xvid",
                 format: str | None = None) -> None:
        import av

        self.path = Path(path)
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        if codec == "h264" and "libx264" not in av.codecs_available:
            logger.warning("PyAV has no libx264 encoder; writing %s with mpeg4 instead", path)
            codec = "mpeg4"
        if codec != "ffv1" and (height % 2 or width % 2):
            raise ValueError(f"{path}: {codec} needs an even frame size, got {height}x{width}")
        encoder, options = _codec_settings(codec)
        self.encoder, self.count = encoder, 0
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(25)
        self.container = av.open(str(path), mode="w", format=format)
        self.stream = self.container.add_stream(encoder, rate=rate, options=options)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "bgr0" if encoder == "ffv1" else "yuv420p"
        if encoder == "mpeg4":
            self.stream.codec_tag = "XVID"
            self.stream.codec_context.max_b_frames = 2
            self.stream.codec_context.gop_size = 12
            self.stream.bit_rate = int(0.6 * width * height * float(rate))  # generous: noise and textures stay visible

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        import av

        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        if self.encoder == "ffv1":
            vf = vf.reformat(format="bgr0")
        vf.pts = self.count
        self.count += 1
        for packet in self.stream.encode(vf):
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
            self.container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "xvid") -> None:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB to ``path`` with PyAV.

    ``xvid``/``mpeg4``: MPEG-4 Part 2 with the ``XVID`` tag and B-frames (like UCF-101/HMDB-51 .avi);
    ``h264``: libx264 with B-frames (like Kinetics .mp4; falls back to mpeg4 when libx264 is missing);
    ``ffv1``: lossless RGB, so decoded frames equal ``frames`` exactly.
    """
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    _, h, w, _ = frames.shape
    with VideoWriter(path, h, w, fps, codec) as out:
        for frame in frames:
            out.write(frame)
