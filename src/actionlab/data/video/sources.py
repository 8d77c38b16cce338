"""Where frames come from at prediction time: a video file (:class:`~actionlab.data.video.decode.VideoReader`) or
frames already in memory (:class:`ArrayVideo`), behind one interface: ``info``, ``get_frames(indices)``,
``close()`` and use as a context manager.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from actionlab.data.video.decode import Size, VideoInfo, VideoReader

__all__ = ["ArrayVideo", "FrameSource", "open_video"]

DEFAULT_FPS = 25.0
"""Frame rate assumed for frames given as an array without one."""


class FrameSource(Protocol):
    """Frames of one video: ``info`` (frame count, fps, size) and ``get_frames(indices) -> (N, H, W, 3) uint8``."""

    info: VideoInfo

    def get_frames(self, indices: Any) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


class ArrayVideo:
    """Frames held in memory, ``(T, H, W, 3)`` uint8 RGB, at their own size (the transforms resize them)."""

    def __init__(self, frames: np.ndarray, fps: float | None = None, name: str = "<frames>") -> None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be a (T, H, W, 3) uint8 RGB array, got {frames.dtype} {frames.shape}")
        if frames.shape[0] < 1:
            raise ValueError("frames must hold at least one frame")
        self.frames = frames
        fps = float(fps or DEFAULT_FPS)
        t, h, w, _ = frames.shape
        self.info = VideoInfo(path=name, num_frames=t, fps=fps, width=w, height=h, duration=t / fps, codec="array")

    def get_frames(self, indices: Any) -> np.ndarray:
        """Frames at ``indices`` (repeats allowed): ``(N, H, W, 3)`` uint8."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self.info.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"frame index out of range for {n} frames")
        return self.frames[idx]

    def close(self) -> None:
        pass

    def __enter__(self) -> ArrayVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def open_video(video: str | os.PathLike[str] | np.ndarray, size: Size = None, fps: float | None = None
               ) -> VideoReader | ArrayVideo:
    """A :class:`VideoReader` on a file (decoded at ``size``, see there) or an :class:`ArrayVideo` on frames."""
    if isinstance(video, np.ndarray):
        return ArrayVideo(video, fps)
    path = Path(video)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    return VideoReader(path, size=size)
