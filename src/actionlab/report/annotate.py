"""A video with its predicted label drawn on every frame (``actionlab predict --output annotated.mp4``).

The input is decoded and the output encoded one frame at a time (memory: one frame, whatever the length);
the output has exactly the input's frames, at its frame rate, with a bar on top saying the label of the
segment the frame falls in and its score (each segment's bar is drawn once). H.264 for ``.mp4``/``.mkv``/``.mov``, XviD for ``.avi``; odd frame
sizes get a black row/column so the encoder accepts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import VideoWriter
from actionlab.utils import atomic_path

CONTAINERS = {".mp4": ("mp4", "h264"), ".mkv": ("matroska", "h264"), ".mov": ("mov", "h264"),
              ".avi": ("avi", "xvid")}

Segment = tuple[int, int, str, float]
"""``(first frame, end frame (exclusive), label, score)``."""


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def label_bar(text: str, width: int, font: Any) -> np.ndarray:
    """``(h, width, 3)`` uint8: ``text`` in white on a black bar as tall as the text."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, _, bottom = probe.textbbox((0, 0), text, font=font)
    img = Image.new("RGB", (width, bottom - top + 4))
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def write_annotated(video: str | Path, segments: Sequence[Segment], out: str | Path) -> int:
    """Write ``video`` to ``out`` with the label of ``segments`` on each frame (atomically); returns the frame
    count. ``segments`` must cover every frame, in order (as :func:`actionlab.evaluate.timeline.segments`)."""
    out = Path(out)
    if out.suffix.lower() not in CONTAINERS:
        raise ValueError(f"{out}: write the annotated video as one of {', '.join(CONTAINERS)}")
    container, codec = CONTAINERS[out.suffix.lower()]
    with VideoReader(video) as reader:
        info = reader.info
        h, w = reader.height + reader.height % 2, reader.width + reader.width % 2
        font = _font(max(8, min(28, h // 14)))
        bars = [label_bar(f"{label} {score:.0%}", w, font)[:h] for _, _, label, score in segments]  # one per segment
        canvas = np.zeros((h, w, 3), dtype=np.uint8)  # odd sizes: a black row/column the encoder needs
        with atomic_path(out) as tmp, VideoWriter(tmp, h, w, info.fps or 25.0, codec, format=container) as writer:
            k = 0
            for i, frame in enumerate(reader):
                while k < len(segments) - 1 and i >= segments[k][1]:
                    k += 1
                canvas[:frame.shape[0], :frame.shape[1]] = frame
                canvas[:len(bars[k])] = bars[k]
                writer.write(canvas)
    return writer.count
