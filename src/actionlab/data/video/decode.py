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
``sequential``). Packets the decoder rejects are skipped, like ``ffmpeg`` does.

Damage: random access gives what sequential decoding gives. In ``pts`` mode every frame after a seek must
be the one after the previous; when it is not (the seek landed in a damaged group of pictures and the
decoder dropped pictures), decoding starts again from an earlier keyframe, at last from the start of the
file. A frame the decoder flags as corrupt after a seek (concealed, from whatever was decoded before) is
decoded from the start. When a decode from the start contradicts the table (pictures lost to damage,
timestamps that are decode times), the table is rebuilt once from a full decode, and only a frame that
decode lacks raises ``VideoDecodeError``. (Known limit: pictures the decoder drops are found only by decoding
through them; until then a reader that seeks past them, and ``probe``, number the later frames as the
demuxer counts them, as does ``count`` mode always.)

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
from actionlab.data.video.orientation import DECODE_PROVENANCE

logger = logging.getLogger(__name__)

__all__ = ["DECODE_PROVENANCE", "VideoDecodeError", "VideoInfo", "VideoReader", "probe", "read_frames"]

SEEK_COST_FRAMES = 6
"""A seek (demuxer seek, decoder flush, an intra frame) costs about this many decoded frames; the reader
seeks only when it skips more frames than that."""

Size = int | tuple[int, int] | None


# ----------------------------------------------------------------------------------- reader


class _SeekMiss(Exception):
    """A seek did not land on the expected keyframe; the caller restarts from the beginning."""


class _Concealed(Exception):
    """A decode that started at a seek output a frame the decoder flags as corrupt (concealed): concealment
    depends on what was decoded before, so it may differ from the sequential decode's."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class _Missed(Exception):
    """Decoding went past the wanted frame (or ended) without producing it, or output a frame out of the
    table's order (``pts`` mode: each frame must be the one after the previous)."""


def output_size(size: Size, width: int, height: int) -> tuple[int, int]:
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
    """Frame-exact random access to the frames of a video (first video stream), upright at the displayed size
    (the stream's rotation, flips and sample aspect ratio applied, as players show it; ``info`` gives the
    displayed size). Not thread-safe: one reader per worker.

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
        # Output at the displayed size (rotation and sample aspect ratio applied, see orientation.py): the
        # scaler makes the stored-orientation picture of that size, numpy turns it upright.
        self.height, self.width = output_size(size, self.info.width, self.info.height)
        self._display = self.info.display
        self._scaled_h, self._scaled_w = self._display.stored_shape(self.height, self.width)
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
        self._bad_anchors: set[int] = set()  # packets of anchors from which decoding missed a frame
        self._run_anchor = START  # where the decoding run behind self._frames started
        self._relearned = False
        self._concealed: set[int] = set()  # frames found concealed after a seek: reached from the start only
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
        shown = "" if self._display == type(self._display)() else f" shown {self._display.describe()}"
        return (f"VideoReader({str(self.path)!r}, frames={i.num_frames}, {i.width}x{i.height}{shown} -> "
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
        count = 0
        while True:
            self._restart(START)
            assert self._frames is not None
            try:
                for _, frame in itertools.islice(self._frames, count, None):
                    count += 1
                    yield self._to_rgb(frame)
                break
            except _Missed:
                self._relearn(f"decoding stopped agreeing with the frame table after {count} frames")
        self._frames = None
        if count != self.info.num_frames:
            raise VideoDecodeError(self.path, f"decoder output {count} frames, the frame table says "
                                              f"{self.info.num_frames}; the file may be corrupt")

    # -- internals
    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB at the output size, converted and resized in one FFmpeg scaler call, then
        turned upright."""
        try:
            rgb = self._reformatter.reformat(frame, width=self._scaled_w, height=self._scaled_h, format="rgb24",
                                             interpolation=self._interpolation, **self._reformat_kw)
        except TypeError:  # PyAV < 14 has no scaler ``threads`` argument
            if not self._reformat_kw:
                raise
            self._reformat_kw = {}
            return self._to_rgb(frame)
        return self._display.apply(rgb.to_ndarray())

    def _frame_at(self, target: int) -> av.VideoFrame:
        """The frame at ``target``, recovering when decoding does not give it as a sequential decode would.

        A seek can land in a damaged group of pictures (a broken keyframe, a sync sample that is not one)
        where the decoder drops or conceals pictures differently than a sequential decode. Then the anchor
        is marked bad and the frame is decoded from an earlier anchor, at last from the start of the file.
        When even that contradicts the table (damage that makes the decoder drop or reorder pictures), the
        table is rebuilt from one full decode; only a frame that full decode lacks raises ``VideoDecodeError``.
        """
        while True:
            anchor = self._usable_anchor(target)
            resume = self._frames is not None and self._next <= target
            if not resume or anchor.index - self._next > SEEK_COST_FRAMES:
                self._restart(anchor)
            try:
                return self._advance(target)
            except _Concealed as e:
                self._frames = None
                if not self._concealed:
                    logger.warning("%s: frame %d is damaged and concealed by the decoder; frames that depend on it "
                                   "are decoded from the start, as a sequential decode sees them", self.path, e.index)
                self._concealed.add(e.index)
            except _Missed:
                self._frames = None
                if self._run_anchor.packet >= 0:
                    logger.warning("%s: decoding from the keyframe of frame %d does not give frame %d as a "
                                   "sequential decode does (damaged group of pictures?); decoding from an earlier "
                                   "keyframe", self.path, self._run_anchor.index, target)
                    self._bad_anchors.add(self._run_anchor.packet)
                else:
                    self._relearn(f"the decoder did not produce frame {target} of {self.info.num_frames}")

    def _relearn(self, problem: str) -> None:
        """A decode from the start contradicted the frame table (pictures dropped, reordered or concealed by
        damage, or timestamps that are decode times in a stream whose header announces no B-frames): rebuild
        the table from one full decode, once; a second contradiction raises ``VideoDecodeError``."""
        if self._relearned:
            raise VideoDecodeError(self.path, f"{problem} even decoding from the start; the file may be "
                                              "truncated or corrupt (re-encode it)")
        self._relearned = True
        logger.warning("%s: %s; rebuilding its frame table from a full decode", self.path, problem)
        self._table = build_table(self.path, learn_order=True)
        if self._table.info.num_frames != self.info.num_frames:
            logger.warning("%s: a full decode gives %d frames, the frame table said %d (damaged file); "
                           "re-index it", self.path, self._table.info.num_frames, self.info.num_frames)
        self.info = self._table.info
        self._bad_anchors.clear()
        self._frames = None

    def _usable_anchor(self, target: int) -> Anchor:
        """The last anchor at or before ``target`` not known to be bad (the start when seeking is off)."""
        if not self._can_seek:
            return START
        anchors = self._table.anchors
        i = anchors.index(self._table.anchor_for(target))
        while i > 0 and anchors[i].packet in self._bad_anchors:
            i -= 1
        if any(anchors[i].index <= c <= target for c in self._concealed):
            return START
        return anchors[i]

    def _advance(self, target: int) -> av.VideoFrame:
        """Decode on to ``target``; ``_Missed`` when the decoder goes past it or ends without producing it."""
        assert self._frames is not None
        for index, frame in self._frames:
            self._next = index + 1
            if index == target:
                return frame
            if index > target:
                break
        self._frames = None
        raise _Missed

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
        self._run_anchor = START

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
        self._run_anchor = start

    def _decode_from(self, packets: Iterator[Any], anchor: Anchor) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(frame index, frame)`` decoded from ``packets``, which start at ``anchor``."""
        table = self._table
        frames = decode_packets(self.path, self._container, self._stream, packets)
        seeked = anchor.packet >= 0
        if table.mode == "pts":
            # Each frame must be the one after the previous: a gap or a step back means pictures were dropped
            # or reordered (damage) or the timestamps are not presentation times, and the caller recovers.
            expected = anchor.index
            for frame in frames:
                index = table.pts_index.get(frame.pts) if frame.pts is not None else None
                if index is None or index < anchor.index:
                    continue  # leading pictures of an open GOP, or a timestamp the table does not know
                if index != expected:
                    raise _Missed
                if seeked and frame.is_corrupt:
                    raise _Concealed(index)
                expected += 1
                yield index, frame
        else:
            for index, frame in enumerate(frames, start=anchor.index):
                if seeked and frame.is_corrupt:
                    raise _Concealed(index)
                yield index, frame

def read_frames(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, size: Size = None
                ) -> np.ndarray:
    """Frames ``indices`` of the video at ``path``: ``(N, H, W, 3)`` uint8 RGB (see ``VideoReader``)."""
    with VideoReader(path, size=size) as reader:
        return reader.get_frames(indices)
