"""The motion vectors a video's decoder already has, as dense flow fields (``flow.algorithm = "mv"``).

Inter-coded pictures carry one motion vector per block (16x16 to 8x8 pixels): where in a reference picture the
block's content comes from. FFmpeg exports them as frame side data when the decoder runs with
``flags2=+export_mvs``; the compressed-domain action recognisers (Zhang et al.'s enhanced motion-vector CNNs,
2016; Wu et al.'s CoViAR, 2018) build their motion stream from them at a small fraction of optical flow's
cost. :class:`MotionVectorReader` decodes a video once, in order, without converting a single picture to RGB
(and skipping the inverse DCT and the loop filter, which only make pixels: the vectors come out the same), and
turns the vectors into the fields :class:`~actionlab.features.flow.FlowStep` stores in place of Farneback's.

The field of frame ``t`` is the motion *from frame t-1 to frame t* in pixels per frame at the output size,
``(H, W, 2)`` float32 (x, y; +x = moved right), the flow ``estimate(frame t-1, frame t)`` gives:

- A vector of frame ``t`` with a past reference (``source < 0``) says the block at ``dst`` came from
  ``dst + motion / motion_scale`` in the reference, ``d`` frames back: the motion is ``-motion / motion_scale / d``
  per frame. With a future reference (``source > 0``, B-frames) it is ``+motion / motion_scale / d``.
- ``d`` is the distance to the nearest anchor (I- or P-frame) on that side. That is exact for MPEG-4 Part 2
  (XviD/DivX: UCF-101, HMDB-51), whose P-frames refer to the previous anchor and whose B-frames are not
  references. For H.264 it is an approximation: FFmpeg gives only the direction of a vector's reference
  (``source`` is -1 or +1), and H.264 may refer to other pictures (several references, B-pyramids).
- A block-averaged field on a 4-pixel grid (the mean of every vector covering a cell: a bi-predicted block
  counts twice) is scaled to pixels of the output size and resampled to it by nearest cell (blocky, as the codec
  saw the motion; :class:`~actionlab.features.flow.FlowStep` quantises per cell before that, which is the same
  and cheaper). Cells no vector covers (intra blocks in a P-frame) are 0.
- FFmpeg's MPEG-4 Part 2 and H.263 decoders do not keep B-frame vectors (they export zeros), so there a
  B-frame takes the field of the P-frame that follows it: that P-frame's vectors describe the motion over
  every frame since the previous anchor, the B-frames included.
- Frames with no usable vectors (I-frames; in MPEG-4 Part 2 the B-frames before an I-frame, and the last
  P-frame of a stream with B-frames, which FFmpeg's decoder outputs at its flush without vectors) take the mean
  of the nearest fields before and after them (one of the two at the ends of the video): the motion through
  an I-frame is interpolated from its neighbours instead of being reported as none. A video of two or more
  frames without any motion vector (an intra-only codec such as FFV1 or MJPEG, or HEVC/VP9/AV1, whose FFmpeg
  decoders do not export them) raises :class:`NoMotionVectorsError`.

Frame ``i`` is the ``i``-th picture a full sequential decode outputs, as for
:class:`~actionlab.data.video.decode.VideoReader` (the same frame table, the same count; a mismatch raises
``VideoDecodeError``), and fields come out as the video is shown, as its frames do: the rotation and mirror of
the container's display matrix (or ``rotate`` tag) turn the field and its vectors, and the sample aspect ratio
stretches x.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.data.video.frame_table import (
    VideoDecodeError,
    VideoInfo,
    build_table,
    decode_packets,
    open_container,
)

logger = logging.getLogger(__name__)

__all__ = ["CELL", "MV_PARAMS", "MotionVectorReader", "NoMotionVectorsError", "motion_fields"]

CELL = 4
"""Side in pixels of the grid cells vectors are averaged on (H.264's smallest partition)."""
DECODER_OPTIONS = {"flags2": "+export_mvs", "skip_idct": "all", "skip_loop_filter": "all"}
"""The vectors are parsed from the bitstream, so the inverse DCT and the deblocking filter (pixels only) are
skipped; measured: the same vectors, 28% less decode time on H.264 (bikes.mp4)."""
NO_B_VECTORS = frozenset({"mpeg4", "h263", "h263p", "h263i", "flv1", "msmpeg4v1", "msmpeg4v2", "msmpeg4",
                          "msmpeg4v3", "wmv1", "wmv2"})
"""FFmpeg decoders (h263dec) that keep the motion vectors of P-frames only: their B-frames export zeros."""
_B = 3
"""FFmpeg's AV_PICTURE_TYPE_B: every other picture type (I, P, S, SI, SP, BI) is an anchor B-frames refer to."""
MV_PARAMS: dict[str, Any] = {
    "source": "FFmpeg export_mvs (decoder motion vectors)", "cell": CELL,
    "reference_distance": "frames to the nearest I/P frame on the vector's side",
    "b_frames": "own vectors; MPEG-4 Part 2/H.263: the next P-frame's", "uncovered_cells": 0.0,
    "partial_blocks": "dropped when less than half inside the picture",
    "no_vectors": "mean of the nearest fields before and after", "resample": "nearest cell",
}
"""How the fields are made: recorded as the ``mv`` algorithm's parameters in a flow store's provenance."""


class NoMotionVectorsError(ValueError):
    """A video has no motion vectors to read (intra-only coding, or a decoder that does not export them)."""


def output_size(size: int | tuple[int, int] | None, width: int, height: int) -> tuple[int, int]:
    """``(H, W)`` of the fields: VideoReader's rule (``None`` native, ``int`` short side, ``(H, W)`` exact)."""
    if size is None:
        return height, width
    if isinstance(size, (int, np.integer)):
        s = int(size)
        if height <= width:
            return s, max(1, round(width * s / height))
        return max(1, round(height * s / width)), s
    return int(size[0]), int(size[1])


@dataclass
class _Frame:
    """One decoded picture's vectors, averaged per cell and kept by side until its anchors are known."""

    index: int
    anchor: bool
    past: np.ndarray | None = None
    """``(3, gh, gw)``: summed motion x, y (pixels, pointing into the past reference) and vector count."""
    future: np.ndarray | None = None


@dataclass
class _Resolver:
    """Gives each wanted frame its field as the decode goes on; frames without one wait for the next field."""

    wanted: set[int]
    fields: dict[int, np.ndarray] = field(default_factory=dict)
    last: np.ndarray | None = None
    waiting: list[tuple[int, np.ndarray | None]] = field(default_factory=list)
    """Wanted frames without a field yet, with the last field before them."""
    found: int = 0
    """Frames that had a field of their own (or their P-frame's)."""

    def add(self, index: int, velocity: np.ndarray | None) -> None:
        if velocity is None:
            if index in self.wanted:
                self.waiting.append((index, self.last))
            return
        self.found += 1
        for i, before in self.waiting:
            self.fields[i] = velocity if before is None else (before + velocity) / 2
        self.waiting.clear()
        if index in self.wanted:
            self.fields[index] = velocity
        self.last = velocity

    def finish(self) -> None:
        for i, before in self.waiting:
            if before is not None:
                self.fields[i] = before
        self.waiting.clear()


class MotionVectorReader:
    """The motion fields of a video file's frames, from the decoder's motion vectors.

    ``size`` as VideoReader's (``None`` native, ``int`` short side, ``(H, W)``); ``b_vectors`` forces
    whether B-frames' own vectors are used (default: unless the decoder is one of :data:`NO_B_VECTORS`)::

        reader = MotionVectorReader("v.avi", size=256)
        f = reader.fields([1, 2, 3])   # (3, 256, 341, 2) float32: motion from frame i-1 to i, px/frame
    """

    def __init__(self, path: str | os.PathLike[str], size: int | tuple[int, int] | None = None,
                 b_vectors: bool | None = None) -> None:
        self.path = Path(path)
        self._table = build_table(self.path)
        self.info: VideoInfo = self._table.info
        # Fields come out as the video is shown, like VideoReader's frames: (H, W) of the displayed picture.
        self.height, self.width = output_size(size, self.info.width, self.info.height)
        self.b_vectors = self.info.codec not in NO_B_VECTORS if b_vectors is None else b_vectors
        info: Any = self.info  # the display fields (rotation, mirrored, coded size) of VideoInfo
        self._coded = (info.coded_height or info.height, info.coded_width or info.width)  # vectors' pixels
        self._rotation, self._mirrored = int(info.rotation), bool(info.mirrored)
        # the output size before the picture is turned (a quarter turn swaps H and W)
        self._turned_hw = (self.width, self.height) if self._rotation in (90, 270) else (self.height, self.width)

    def grids(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(N, 2, gh, gw)`` float32: the motion from frame ``i - 1`` to frame ``i`` for each of ``indices``
        (frame 0's is its successor's), in pixels per frame of the output size, x and y as shown (the
        rotation applied), on the grid of cells of the *stored* picture; one sequential decode. :meth:`expand`
        takes it (or anything computed per cell) to ``(..., H, W)`` as shown."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        n = self.info.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"frame index out of range for {self.path}: it has {n} frames (0..{n - 1})")
        found = self._grid_fields(set(idx.tolist()))
        out = np.zeros((len(idx), 2, *self._grid_shape()), np.float32)  # zeros: a one-frame video has no motion
        for j, i in enumerate(idx.tolist()):
            if i in found:
                out[j] = found[i]
        u = out[:, 0] * np.float32(self._turned_hw[1] / self._coded[1])  # stored pixels -> output pixels
        v = out[:, 1] * np.float32(self._turned_hw[0] / self._coded[0])
        # turned clockwise: a quarter turn takes a motion (u, v) (y down) to (-v, u); a mirror negates x
        u, v = {0: (u, v), 90: (-v, u), 180: (-u, -v), 270: (v, -u)}[self._rotation]
        out[:, 0], out[:, 1] = (-u if self._mirrored else u), v
        return out

    def expand(self, cells: np.ndarray) -> np.ndarray:
        """``(..., gh, gw)`` per cell -> ``(..., H, W)`` at the output size, as shown: each output pixel takes
        the cell its centre falls in (the block field stays blocky, as the codec saw it; any dtype)."""
        (gh, gw), (ch, cw), (th, tw) = self._grid_shape(), self._coded, self._turned_hw
        rows = np.minimum(((np.arange(th) + 0.5) * ch / th) // CELL, gh - 1).astype(np.intp)
        cols = np.minimum(((np.arange(tw) + 0.5) * cw / tw) // CELL, gw - 1).astype(np.intp)
        out = np.take(np.take(cells, rows, axis=-2), cols, axis=-1)
        if self._rotation == 0 and not self._mirrored:
            return out
        out = np.rot90(out, -(self._rotation // 90), axes=(-2, -1))  # np.rot90 turns counterclockwise
        return np.ascontiguousarray(out[..., ::-1] if self._mirrored else out)

    def fields(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(N, H, W, 2)`` float32: :meth:`grids` at the output size, the layout of an estimator's flow."""
        return np.ascontiguousarray(self.expand(self.grids(indices)).transpose(0, 2, 3, 1))

    def _grid_shape(self) -> tuple[int, int]:
        return -(-self._coded[0] // CELL), -(-self._coded[1] // CELL)

    # -- decoding
    def _grid_fields(self, wanted: set[int]) -> dict[int, np.ndarray]:
        """Frame index -> ``(2, gh, gw)`` motion per frame in native pixels, for every frame of ``wanted``."""
        resolver = _Resolver(wanted)
        pending: list[_Frame] = []  # frames since the last anchor: their future distance is not known yet
        prev_anchor: int | None = None
        count = 0
        for index, frame in self._decoded():
            count = index + 1
            f = _Frame(index, int(frame.pict_type) != _B)
            if f.anchor or self.b_vectors:
                f.past, f.future = self._cell_sums(frame)
            if f.anchor:
                self._close_gop(pending, f, prev_anchor, resolver)
                pending = []
                prev_anchor = index
            else:
                pending.append(f)
        self._close_gop(pending, None, prev_anchor, resolver)
        resolver.finish()
        if count != self.info.num_frames:
            raise VideoDecodeError(self.path, f"decoder output {count} frames, the frame table says "
                                              f"{self.info.num_frames}; the file may be corrupt")
        if count > 1 and resolver.found == 0:
            raise NoMotionVectorsError(
                f"{self.path} has no motion vectors (codec {self.info.codec}: intra-only, or its FFmpeg decoder "
                "does not export them): extract its flow with --flow-algorithm farneback or dis, or re-encode it "
                "with XviD/MPEG-4 or H.264")
        return resolver.fields

    def _decoded(self) -> Any:
        """``(index, av.VideoFrame)`` of a full sequential decode, numbered like VideoReader's."""
        container = open_container(self.path)
        try:
            stream = container.streams.video[0]
            stream.codec_context.options = dict(DECODER_OPTIONS)
            table = self._table
            index = 0
            for frame in decode_packets(self.path, container, stream):
                if table.mode == "pts" and (frame.pts is None or frame.pts not in table.pts_index):
                    continue  # leading pictures of an open GOP, or a timestamp the table does not know
                yield index, frame
                index += 1
        finally:
            container.close()

    def _close_gop(self, pending: list[_Frame], anchor: _Frame | None, prev_anchor: int | None,
                   resolver: _Resolver) -> None:
        """The fields of the B-frames since ``prev_anchor`` and of ``anchor`` (None: the end of the video),
        now that the distances to both of their anchors are known, handed on in frame order."""
        end = anchor.index if anchor is not None else None
        covering = self._velocity(anchor, prev_anchor, None) if anchor is not None else None
        for f in pending:
            own = self._velocity(f, prev_anchor, end)
            # A B-frame without vectors of its own (MPEG-4 Part 2) moves as its P-frame says (the P-frame's
            # vectors span every frame since the previous anchor, this one included).
            resolver.add(f.index, own if own is not None else covering)
        if anchor is not None:
            resolver.add(anchor.index, covering)

    @staticmethod
    def _velocity(f: _Frame | None, prev_anchor: int | None, next_anchor: int | None) -> np.ndarray | None:
        """``(2, gh, gw)`` float32 motion per frame from frame ``f``'s vectors, or None when it has none."""
        if f is None:
            return None
        total, count = None, None
        for sums, sign, ref in ((f.past, -1.0, prev_anchor), (f.future, 1.0, next_anchor)):
            if sums is None or ref is None or ref == f.index:
                continue
            step = sign / abs(f.index - ref)  # a vector spans |t - ref| frames
            part = sums[:2] * np.float32(step)
            total = part if total is None else total + part
            count = sums[2] if count is None else count + sums[2]
        if total is None or count is None or not count.any():
            return None
        return (total / np.maximum(count, 1)).astype(np.float32)

    def _cell_sums(self, frame: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(past, future)``: ``(3, gh, gw)`` per-cell sums of the frame's vectors by reference side, motion
        in native pixels pointing to the reference (``motion / motion_scale``) and the count; None when none."""
        side = frame.side_data.get("MOTION_VECTORS")
        if side is None:
            return None, None
        mv = side.to_ndarray()
        # Blocks mostly outside the picture (the padding of a last macroblock row or column when the size is not
        # a multiple of 16, e.g. 320x180) match padding, not content: measured, vectors of 8-16 px there on a
        # still background. Those cells are left to other blocks or 0.
        ch, cw = self._coded
        x0, y0 = mv["dst_x"].astype(np.int64) - mv["w"] // 2, mv["dst_y"].astype(np.int64) - mv["h"] // 2
        inside_w = np.minimum(x0 + mv["w"], cw) - np.maximum(x0, 0)
        inside_h = np.minimum(y0 + mv["h"], ch) - np.maximum(y0, 0)
        mv = mv[(2 * np.maximum(inside_w, 0) >= mv["w"]) & (2 * np.maximum(inside_h, 0) >= mv["h"])]
        if mv.size == 0:
            return None, None
        gh, gw = self._grid_shape()
        out: list[np.ndarray | None] = []
        for v in (mv[mv["source"] < 0], mv[mv["source"] > 0]):
            if v.size == 0:
                out.append(None)
                continue
            motion = np.stack([v["motion_x"], v["motion_y"]], 1) / v["motion_scale"][:, None].astype(np.float64)
            cells, which = [], []
            size = v["w"].astype(np.int64) * 256 + v["h"]
            for code in np.unique(size).tolist():  # a few block sizes
                bw, bh, sel = code // 256, code % 256, np.flatnonzero(size == code)
                # the cells each block covers: (V, ch, cw) cell rows and columns around its centre dst
                cy = ((v["dst_y"][sel].astype(np.int64) - bh // 2) // CELL)[:, None, None] \
                    + np.arange(max(bh // CELL, 1))[None, :, None]
                cx = ((v["dst_x"][sel].astype(np.int64) - bw // 2) // CELL)[:, None, None] \
                    + np.arange(max(bw // CELL, 1))[None, None, :]
                cy, cx = np.broadcast_arrays(cy, cx)
                inside = (cy >= 0) & (cy < gh) & (cx >= 0) & (cx < gw)
                cells.append((cy * gw + cx)[inside])
                which.append(np.broadcast_to(sel[:, None, None], cy.shape)[inside])
            flat, m = np.concatenate(cells), motion[np.concatenate(which)]
            sums = np.stack([np.bincount(flat, m[:, 0], gh * gw), np.bincount(flat, m[:, 1], gh * gw),
                             np.bincount(flat, minlength=gh * gw).astype(np.float64)])
            out.append(sums.reshape(3, gh, gw).astype(np.float32))
        return out[0], out[1]


def motion_fields(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray,
                  size: int | tuple[int, int] | None = None) -> np.ndarray:
    """``(N, H, W, 2)`` float32 motion fields of frames ``indices`` of ``path`` (:class:`MotionVectorReader`)."""
    return MotionVectorReader(path, size=size).fields(indices)
