"""Frame-exact video decoding with PyAV.

Frame ``i`` is the ``i``-th picture a full sequential decode of the first video stream outputs, and
every access pattern (sparse, random, reversed, repeated) returns exactly that picture.

How: on open the file is demuxed once without decoding to build a frame table (the presentation
timestamp of every frame, where the keyframes are and how many pictures each packet holds). A request
is served in ascending frame order; across a big gap the reader seeks to the nearest *clean* keyframe
at or before the target (one from which decoding reproduces the sequential output) when that is
cheaper than decoding through, then decodes forward and identifies frames either

- by presentation timestamp against the table (``pts`` mode: MP4, MKV, B-frame-free AVI ...), or
- by counting decoder outputs from the keyframe (``count`` mode), for AVI files with B-frames, whose
  timestamps are guessed by the demuxer and do not identify frames. MPEG-4 Part 2 (XviD/DivX, the
  format of UCF-101) is parsed down to the VOP headers so that packed B-frames (two pictures in one
  packet) and not-coded N-VOP placeholders are counted as the decoder counts them.

MP4 edit-list "discard" packets (decoded as references, never shown) are not counted. Streams the table
cannot describe for sure (leading packets before the first keyframe, an open GOP at the start, codecs
whose packets are not one picture each such as VP8 with hidden alt-ref frames, MPEG-TS/PS, B-frames in
AVI with codecs other than MPEG-4 Part 2) are counted by one full decode and read sequentially (``mode``
``sequential``). Packets the decoder rejects are skipped, like ``ffmpeg`` does; a frame the decoder never
outputs raises ``VideoDecodeError`` and iteration checks the total. (Known limit: in ``count`` mode a
packet that fails to decode before a keyframe shifts the sequential numbering but not the table's.)

Only requested frames are converted to RGB, by FFmpeg's scaler straight to the output size, so a
full-size RGB frame is never materialised when ``size`` is given.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from actionlab.data.video.frame_table import (
    START,
    Anchor,
    VideoDecodeError,
    VideoInfo,
    build_table,
    decode_packets,
    open_container,
    probe,
)

logger = logging.getLogger(__name__)

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "probe", "read_frames"]

SEEK_COST_FRAMES = 6
"""A seek (demuxer seek, decoder flush, an intra frame) costs about this many decoded frames; the reader
seeks only when it skips more frames than that."""

Size = int | tuple[int, int] | None


# ----------------------------------------------------------------------------------- reader


class _SeekMiss(Exception):
    """A seek did not land on the expected keyframe; the caller restarts from the beginning."""


def _output_size(size: Size, width: int, height: int) -> tuple[int, int]:
    """(H, W) of decoded frames: ``None`` keeps the size, ``int`` is the short side, ``(H, W)`` is exact."""
    if size is None:
        return height, width
    if isinstance(size, (int, np.integer)):
        size = int(size)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if height <= width:
            return size, max(1, round(width * size / height))
        return max(1, round(height * size / width)), size
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"size must be (H, W) with H, W >= 1, got {size}")
    return int(h), int(w)


class VideoReader:
    """Frame-exact random access to the frames of a video (first video stream). Not thread-safe: one reader
    per worker.

    ``size``: ``None`` (native size), ``(H, W)`` or an ``int`` short side (aspect ratio kept); resizing is
    done by FFmpeg's scaler while converting to RGB. ``threads``: decoder threads (0 lets FFmpeg choose,
    1 is best inside many DataLoader workers). Use as a context manager::

        with VideoReader("v.avi", size=(128, 171)) as reader:
            clip = reader.get_frames([0, 2, 4, 6])  # (4, 128, 171, 3) uint8 RGB
    """

    def __init__(self, path: str | os.PathLike[str], size: Size = None, threads: int = 1,
                 interpolation: str = "BILINEAR") -> None:
        self.path = Path(path)
        self._table = build_table(self.path)
        self.info = self._table.info
        self.height, self.width = _output_size(size, self.info.width, self.info.height)
        self._threads = threads
        self._interpolation = interpolation
        # One scaler for all frames: its SwsContext is cached while the input format stays the same
        # (a per-frame scaler costs more than the conversion at UCF-101 sizes).
        self._reformatter = VideoReformatter()
        self._reformat_kw: dict[str, Any] = {"threads": 1}
        self._container: Any = None
        self._stream: Any = None
        self._fresh = False
        self._frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._next = 0  # index the next frame from self._frames is expected to have
        self._can_seek = True
        self.seeks = 0
        """Seeks done so far (for benchmarks and tests)."""

    # -- lifecycle
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    @property
    def mode(self) -> str:
        """How frames are found: ``pts`` (seek + timestamps), ``count`` (seek + counting decoder outputs from a
        clean keyframe) or ``sequential`` (no seeking: streams whose frame table is uncertain)."""
        return self._table.mode

    def __len__(self) -> int:
        return self.info.num_frames

    def __repr__(self) -> str:
        i = self.info
        return (f"VideoReader({str(self.path)!r}, frames={i.num_frames}, {i.width}x{i.height} -> "
                f"{self.width}x{self.height}, codec={i.codec}, mode={self._table.mode})")

    # -- public API
    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` in the given order (repeats allowed): ``(N, H, W, 3)`` uint8 RGB."""
        raw = np.asarray(indices)
        if raw.size and raw.dtype.kind not in "iu":
            raise TypeError(f"frame indices must be integers, got dtype {raw.dtype} for {self.path}")
        idx = raw.astype(np.int64).reshape(-1)
        n = self.info.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"frame index {bad} out of range for {self.path}: it has {n} frames (0..{n - 1})")
        unique, inverse = np.unique(idx, return_inverse=True)
        buf = np.empty((len(unique), self.height, self.width, 3), dtype=np.uint8)
        for j, target in enumerate(unique.tolist()):
            buf[j] = self._to_rgb(self._frame_at(target))
        if len(unique) == len(idx) and np.array_equal(unique, idx):
            return buf
        return buf[inverse.reshape(-1)]

    def __iter__(self) -> Iterator[np.ndarray]:
        """All frames in order, each ``(H, W, 3)`` uint8 RGB (one sequential pass; do not call ``get_frames``
        while iterating, they share the decoder)."""
        self._restart(START)
        assert self._frames is not None
        count = 0
        for _, frame in self._frames:
            count += 1
            yield self._to_rgb(frame)
        self._frames = None
        if count != self.info.num_frames:
            raise VideoDecodeError(self.path, f"decoder output {count} frames, the frame table says "
                                              f"{self.info.num_frames}; the file may be corrupt")

    # -- internals
    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB at the output size, converted and resized in one FFmpeg scaler call."""
        try:
            rgb = self._reformatter.reformat(frame, width=self.width, height=self.height, format="rgb24",
                                             interpolation=self._interpolation, **self._reformat_kw)
        except TypeError:  # PyAV < 14 has no scaler ``threads`` argument
            if not self._reformat_kw:
                raise
            self._reformat_kw = {}
            return self._to_rgb(frame)
        return rgb.to_ndarray()

    def _frame_at(self, target: int) -> av.VideoFrame:
        anchor = self._table.anchor_for(target) if self._can_seek else START
        resume = self._frames is not None and self._next <= target
        if not resume or anchor.index - self._next > SEEK_COST_FRAMES:
            self._restart(anchor)
        return self._advance(target)

    def _advance(self, target: int) -> av.VideoFrame:
        assert self._frames is not None
        for index, frame in self._frames:
            self._next = index + 1
            if index == target:
                return frame
            if index > target:
                break
        self._frames = None
        raise VideoDecodeError(self.path, f"the decoder did not produce frame {target} of "
                                          f"{self.info.num_frames}; the file may be truncated or corrupt")

    def _reopen(self) -> None:
        self.close()
        self._container = open_container(self.path)
        self._stream = self._container.streams.video[0]
        if self._threads != 1:
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = self._threads
        self._fresh = True

    def _restart(self, anchor: Anchor) -> None:
        """Position the decoder so that ``self._frames`` yields frames from ``anchor`` on."""
        if anchor.packet >= 0:
            try:
                self._seek(anchor)
                return
            except _SeekMiss:
                # Do not try again: repeated misses would decode the start over and over (slower than
                # one sequential pass); from now on this reader decodes through.
                logger.info("%s: seeking to frame %d did not land on its keyframe; reading this video "
                            "sequentially", self.path, anchor.index)
                self._can_seek = False
        if not self._fresh:
            self._reopen()
        self._fresh = False
        self._frames = self._decode_from(self._container.demux(self._stream), START)
        self._next = 0

    def _seek(self, anchor: Anchor) -> None:
        if self._container is None:
            self._reopen()
        self._fresh = False
        table = self._table
        ts = anchor.pts if table.mode == "pts" else anchor.dts
        if ts is None:
            raise _SeekMiss
        try:
            self._container.seek(ts, backward=True, any_frame=False, stream=self._stream)
            packets = self._container.demux(self._stream)
            first = next(packets)
            while first.size == 0:
                first = next(packets)
        except (av.error.FFmpegError, StopIteration) as e:
            logger.debug("%s: seek failed (%s)", self.path, e)
            raise _SeekMiss from None
        self.seeks += 1
        # Where did the demuxer land? It must be an anchor at or before the one asked for.
        landed = table.packet_ids.get(first.pos if table.by_pos else first.dts)
        start = next((a for a in table.anchors if a.packet == landed), None)
        if landed == 0 and start is None and table.mode == "pts":
            start = Anchor(0, landed, None, None)
        if start is None or start.index > anchor.index:
            raise _SeekMiss
        self._frames = self._decode_from(itertools.chain([first], packets), start)
        self._next = start.index

    def _decode_from(self, packets: Iterator[Any], anchor: Anchor) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(frame index, frame)`` decoded from ``packets``, which start at ``anchor``."""
        table = self._table
        frames = decode_packets(self.path, self._container, self._stream, packets)
        if table.mode == "pts":
            min_pts = anchor.pts
            for frame in frames:
                index = table.pts_index.get(frame.pts) if frame.pts is not None else None
                if index is None or (min_pts is not None and frame.pts < min_pts):
                    continue  # leading pictures of an open GOP, or a timestamp the table does not know
                yield index, frame
        else:
            yield from enumerate(frames, start=anchor.index)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, size: Size = None
                ) -> np.ndarray:
    """Frames ``indices`` of the video at ``path``: ``(N, H, W, 3)`` uint8 RGB (see ``VideoReader``)."""
    with VideoReader(path, size=size) as reader:
        return reader.get_frames(indices)
