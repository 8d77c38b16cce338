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

import bisect
import itertools
import logging
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

logger = logging.getLogger(__name__)

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "probe", "read_frames"]

SEEK_COST_FRAMES = 6
"""A seek (demuxer seek, decoder flush, an intra frame) costs about this many decoded frames; the reader
seeks only when it skips more frames than that."""

Size = int | tuple[int, int] | None

# Codecs whose packets (in the containers below) each carry exactly one shown picture, so the frame table
# can count packets. Others (e.g. VP8, whose hidden alt-ref frames are packets of their own) are counted by
# decoding. MPEG-4 Part 2 is counted by parsing its VOP headers instead.
_ONE_FRAME_PER_PACKET = frozenset({
    "h264", "hevc", "vp9", "av1", "h263", "h263p", "msmpeg4v1", "msmpeg4v2", "msmpeg4", "msmpeg4v3", "wmv1",
    "wmv2", "wmv3", "vc1", "flv1", "cinepak", "mjpeg", "ffv1", "huffyuv", "ffvhuff", "utvideo", "rawvideo",
    "png", "prores", "dnxhd", "qtrle", "theora", "dvvideo", "indeo3", "indeo5", "svq1", "svq3", "mpeg1video",
    "mpeg2video", "magicyuv", "rpza", "msvideo1", "8bps", "zmbv", "libdav1d",
})
# Containers whose packets are cut by a parser from a byte stream (MPEG-TS/PS): fields or slices may come
# as separate packets, so they are counted by decoding.
_PARSED_CONTAINERS = frozenset({"mpegts", "mpeg", "mpegvideo", "mpegtsraw"})


class VideoDecodeError(RuntimeError):
    """A video cannot be opened or decoded; ``path`` names the file and ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` tells about a video without decoding it."""

    path: str
    num_frames: int
    """Exact number of frames a full decode outputs (equals ``ffprobe -count_frames`` nb_read_frames)."""
    fps: float
    """Nominal frame rate of the stream (0.0 when the container does not say)."""
    width: int
    height: int
    duration: float
    """Seconds."""
    codec: str
    """FFmpeg decoder name, e.g. ``mpeg4`` (XviD/DivX), ``h264``, ``ffv1``."""


# ----------------------------------------------------------------------------------- container checks


def _container_truncation(path: Path, file_size: int) -> str | None:
    """A reason when the container's own size fields say the file was cut short, else None.

    Looks only at a few header bytes: AVI (RIFF chunk sizes), MP4/MOV (top-level box sizes) and
    Matroska/WebM (segment size). Other formats are not checked here.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] == b"RIFF" and head[8:11] == b"AVI":
            offset = 0
            while offset + 8 <= file_size:  # RIFF 'AVI ' then optional 'AVIX' chunks (files > 1 GB)
                fh.seek(offset)
                tag, size = struct.unpack("<4sI", fh.read(8))
                if tag != b"RIFF":
                    break
                end = offset + 8 + size + (size & 1)
                if offset + 8 + size > file_size:
                    return f"truncated AVI: RIFF chunk declares {size + 8} bytes at offset {offset}, file has {file_size}"
                offset = end
            return None
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
            offset = 0
            while offset + 8 <= file_size:
                fh.seek(offset)
                size, tag = struct.unpack(">I4s", fh.read(8))
                if size == 1:
                    size = struct.unpack(">Q", fh.read(8))[0]
                elif size == 0:  # box runs to the end of the file
                    return None
                if size < 8:
                    return None  # not a box structure we understand; let FFmpeg judge
                if offset + size > file_size:
                    return (f"truncated MP4/MOV: box {tag.decode('latin-1')!r} declares {size} bytes at offset "
                            f"{offset}, file has {file_size}")
                offset += size
            return None
        if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML (Matroska/WebM)
            fh.seek(0)
            data = fh.read(4096)
            pos = 4
            size, n = _ebml_vint(data, pos)
            if size is None:
                return None
            pos += n + size
            if data[pos:pos + 4] != b"\x18\x53\x80\x67":
                return None
            size, n = _ebml_vint(data, pos + 4)
            if size is not None and pos + 4 + n + size > file_size:
                return f"truncated Matroska: segment declares {size} bytes, file has {file_size - pos - 4 - n}"
    return None


def _ebml_vint(data: bytes, pos: int) -> tuple[int | None, int]:
    """Decode an EBML size at ``data[pos]``: (value or None for 'unknown', length in bytes)."""
    if pos >= len(data) or data[pos] == 0:
        return None, 1
    first = data[pos]
    length = 8 - first.bit_length() + 1
    value = first & ((1 << (8 - length)) - 1)
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    if value == (1 << (7 * length)) - 1:
        return None, length  # all ones: unknown size (live streams)
    return value, length


# ----------------------------------------------------------------------------------- MPEG-4 Part 2 VOPs

_VOL_START = re.compile(rb"\x00\x00\x01[\x20-\x2f]")
_VOP_START = re.compile(rb"\x00\x00\x01\xb6")


class _Bits:
    """Big-endian bit reader over (at most 64 bytes of) ``data`` from ``byte_pos``; reads past the end give zeros."""

    def __init__(self, data: bytes, byte_pos: int, max_bytes: int = 64) -> None:
        chunk = data[byte_pos:byte_pos + max_bytes]
        self.total = 8 * len(chunk)
        self.value = int.from_bytes(chunk, "big")
        self.pos = 0

    def get(self, n: int) -> int:
        self.pos += n
        shift = self.total - self.pos
        if shift >= 0:
            return (self.value >> shift) & ((1 << n) - 1)
        return ((self.value << -shift) & ((1 << n) - 1)) if -shift < n else 0


def _vol_time_bits(data: bytes, start: int) -> int | None:
    """Bits of ``vop_time_increment`` from a video_object_layer header at ``data[start]`` (ISO 14496-2 6.2.3)."""
    b = _Bits(data, start + 4)
    b.get(1 + 8)  # random_accessible_vol, video_object_type_indication
    verid = 1
    if b.get(1):  # is_object_layer_identifier
        verid = b.get(4)
        b.get(3)
    if b.get(4) == 15:  # aspect_ratio_info: extended PAR
        b.get(16)
    if b.get(1):  # vol_control_parameters
        b.get(3)  # chroma_format, low_delay
        if b.get(1):  # vbv_parameters
            b.get(79)
    shape = b.get(2)
    if shape == 3 and verid != 1:
        b.get(4)
    if not b.get(1):
        return None  # marker bit missing: not a header we can read
    resolution = b.get(16)
    if not b.get(1) or resolution == 0:
        return None
    return max(1, (resolution - 1).bit_length())


def _mpeg4_vops(data: bytes, time_bits: int) -> list[tuple[str, bool]] | None:
    """``(type, coded)`` of each VOP in a packet, type in ``IPBS``; None when a header does not parse."""
    vops = []
    for m in _VOP_START.finditer(data):
        b = _Bits(data, m.end())
        kind = "IPBS"[b.get(2)]
        while b.get(1):  # modulo_time_base
            if b.pos > b.total:
                return None
        if not b.get(1):
            return None
        b.get(time_bits)
        if not b.get(1):
            return None
        vops.append((kind, bool(b.get(1))))
    return vops


# ----------------------------------------------------------------------------------- frame table


@dataclass(frozen=True)
class _Anchor:
    """A place decoding can start from and reproduce the sequential output."""

    index: int
    """Frame index of the first frame it yields."""
    packet: int
    """Index of its packet in demux order (-1: the start of the file, reached by reopening)."""
    pts: int | None
    dts: int | None


_START = _Anchor(index=0, packet=-1, pts=None, dts=None)


@dataclass(frozen=True)
class _Table:
    info: VideoInfo
    mode: str
    """``pts``, ``count`` or ``sequential`` (no seeking)."""
    anchors: tuple[_Anchor, ...]
    """Sorted by index; the first is always the start of the file."""
    pts_index: dict[int, int]
    """pts -> frame index (``pts`` mode)."""
    packet_ids: dict[int | None, int]
    """Byte position (or dts when positions are unknown) of a packet -> its demux-order index, to check
    where a seek landed."""
    by_pos: bool

    def anchor_for(self, index: int) -> _Anchor:
        keys = [a.index for a in self.anchors]
        return self.anchors[bisect.bisect_right(keys, index) - 1]


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise VideoDecodeError(path, f"FFmpeg cannot open it ({e}); is it a video file?") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "it has no video stream")
    return container


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoDecodeError(path, "file not found; check the path (and the manifest root)")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes); re-download or re-encode it")
    reason = _container_truncation(path, size)
    if reason:
        raise VideoDecodeError(path, f"{reason}; re-download or re-encode it")


def _decode_count(path: Path) -> int:
    """Number of frames a full sequential decode outputs: the slow, sure way."""
    container = _open(path)
    try:
        return sum(1 for _ in _decode_packets(path, container, container.streams.video[0]))
    finally:
        container.close()


def _decode_packets(path: Path, container: Any, stream: Any, packets: Iterator[Any] | None = None
                    ) -> Iterator[av.VideoFrame]:
    """Decode ``packets`` (default: demux ``stream``) and the final flush; undecodable packets are skipped
    like ``ffmpeg``/``ffprobe`` do."""
    ctx = stream.codec_context
    try:
        source = packets if packets is not None else container.demux(stream)
        for packet in source:
            try:
                frames = ctx.decode(packet)
            except (av.error.InvalidDataError, av.error.PatchWelcomeError, av.error.UndefinedError) as e:
                logger.debug("%s: skipping an undecodable packet at pts %s (%s)", path, packet.pts, e)
                continue
            yield from frames
    except av.error.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed ({e}); the file may be truncated or corrupt") from None


def _build_table(path: Path) -> _Table:
    _check_file(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.name
        fmt = container.format.name
        width, height = ctx.width, ctx.height
        if width <= 0 or height <= 0:
            raise VideoDecodeError(path, f"the video stream has no frame size ({width}x{height}); corrupt header?")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0

        time_bits: int | None = None
        is_mpeg4 = codec == "mpeg4"
        if is_mpeg4:
            extradata = bytes(ctx.extradata or b"")
            m = _VOL_START.search(extradata)
            time_bits = _vol_time_bits(extradata, m.start()) if m else None
        pts_l: list[int | None] = []
        dts_l: list[int | None] = []
        pos_l: list[int] = []
        key_l: list[bool] = []
        discard_l: list[bool] = []  # MP4 edit lists: decoded (as references) but never output
        vops_l: list[list[tuple[str, bool]] | None] = []
        last_vol = b""
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                pts_l.append(packet.pts)
                dts_l.append(packet.dts)
                pos_l.append(packet.pos if packet.pos is not None else -1)
                key_l.append(bool(packet.is_keyframe))
                discard_l.append(bool(getattr(packet, "is_discard", False)))
                if is_mpeg4:
                    data = bytes(packet)
                    m = _VOL_START.search(data)
                    if m and data[m.start():m.start() + 24] != last_vol:  # the VOL repeats at keyframes
                        last_vol = data[m.start():m.start() + 24]
                        time_bits = _vol_time_bits(data, m.start())
                    vops_l.append(_mpeg4_vops(data, time_bits) if time_bits else None)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"demuxing failed ({e}); the file may be truncated or corrupt") from None
    finally:
        container.close()

    n_packets = len(pts_l)
    sure = n_packets > 0
    if is_mpeg4:
        sure = sure and all(v is not None for v in vops_l)
        nf = [sum(coded for _, coded in v) for v in vops_l] if sure else [1] * n_packets  # type: ignore[union-attr]
    else:
        nf = [1] * n_packets
        if codec not in _ONE_FRAME_PER_PACKET or fmt in _PARSED_CONTAINERS:
            sure = False
    nf = [0 if discard else k for k, discard in zip(nf, discard_l)]
    producing = [i for i in range(n_packets) if nf[i] > 0]
    if not producing:
        sure = False
    elif not key_l[0]:
        sure = False  # leading packets before the first keyframe: decoders differ on what they output

    by_pos = all(p >= 0 for p in pos_l) and len(set(pos_l)) == n_packets
    packet_ids: dict[int | None, int] = {(pos_l[i] if by_pos else dts_l[i]): i for i in range(n_packets)}
    reorder_guessed = fmt.startswith("avi") and any(p != d for p, d in zip(pts_l, dts_l))
    frame_pts = [pts_l[i] for i in producing]
    pts_ok = (sure and not reorder_guessed and all(nf[i] == 1 for i in producing)
              and None not in frame_pts and len(set(frame_pts)) == len(frame_pts))

    mode = "sequential"
    anchors: list[_Anchor] = [_START]
    pts_index: dict[int, int] = {}
    if pts_ok:
        first_key_pts = pts_l[0]
        if first_key_pts is None or any(p < first_key_pts for p in frame_pts):  # type: ignore[operator]
            sure = False  # open GOP at the start: leading pictures may or may not be output
        else:
            mode = "pts"
            ordered = sorted(frame_pts)  # type: ignore[type-var]
            pts_index = {p: i for i, p in enumerate(ordered)}  # type: ignore[misc]
            for i in range(1, n_packets):
                if key_l[i] and pts_l[i] is not None:
                    # the keyframe starts the frames shown from its pts on (a discarded one too)
                    index = bisect.bisect_left(ordered, pts_l[i])
                    if index < len(ordered):
                        anchors.append(_Anchor(index, i, pts_l[i], dts_l[i]))
    elif sure and not is_mpeg4:
        sure = False  # reordered frames whose timestamps do not identify them, and no parser to count them
    elif sure:
        # Decode-order list of coded VOPs. Decoding from a keyframe packet that opens with an I-VOP
        # reproduces the sequential output from that I-VOP on. B-VOPs right after it (open GOP) are shown
        # before it and need the previous GOP: after a seek the decoder drops them (no past reference),
        # so the I-VOP's frame index counts them too. Packed packets holding an I-VOP and a B-VOP are
        # not used as seek points.
        seq = [(i, kind) for i in range(n_packets) for kind, coded in vops_l[i] if coded]  # type: ignore[union-attr]
        if len(seq) > 1 and seq[0][1] == "I" and seq[1][1] == "B":
            sure = False  # the stream starts with an open GOP: the first B-VOPs have nothing to refer to
        else:
            mode = "count"
            first_vop: dict[int, int] = {}
            for j, (i, _) in enumerate(seq):
                first_vop.setdefault(i, j)
            before = 0
            for i in range(n_packets):
                j = first_vop.get(i)
                if i > producing[0] and key_l[i] and j is not None and seq[j][1] == "I":
                    lead_b = 0
                    while j + 1 + lead_b < len(seq) and seq[j + 1 + lead_b][1] == "B":
                        lead_b += 1
                    if lead_b == 0 or nf[i] == 1:
                        anchors.append(_Anchor(before + lead_b, i, pts_l[i], dts_l[i]))
                before += nf[i]

    if sure:
        num_frames = sum(nf)
    else:
        logger.debug("%s: frame table uncertain (codec %s in %s); counting frames by decoding", path, codec, fmt)
        num_frames = _decode_count(path)
        mode, anchors, pts_index = "sequential", [_START], {}
    if num_frames == 0:
        raise VideoDecodeError(path, "the video stream has no decodable frames")
    info = VideoInfo(str(path), num_frames, fps, width, height, duration, codec)
    return _Table(info, mode, tuple(anchors), pts_index, packet_ids, by_pos)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video without decoding it (one demux pass), with an exact frame count.

    Raises ``VideoDecodeError`` for a missing, empty, truncated, corrupt or non-video file.
    """
    return _build_table(Path(path)).info


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
        self._table = _build_table(self.path)
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
        self._restart(_START)
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
        anchor = self._table.anchor_for(target) if self._can_seek else _START
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
        self._container = _open(self.path)
        self._stream = self._container.streams.video[0]
        if self._threads != 1:
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = self._threads
        self._fresh = True

    def _restart(self, anchor: _Anchor) -> None:
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
        self._frames = self._decode_from(self._container.demux(self._stream), _START)
        self._next = 0

    def _seek(self, anchor: _Anchor) -> None:
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
            start = _Anchor(0, landed, None, None)
        if start is None or start.index > anchor.index:
            raise _SeekMiss
        self._frames = self._decode_from(itertools.chain([first], packets), start)
        self._next = start.index

    def _decode_from(self, packets: Iterator[Any], anchor: _Anchor) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(frame index, frame)`` decoded from ``packets``, which start at ``anchor``."""
        table = self._table
        frames = _decode_packets(self.path, self._container, self._stream, packets)
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
