"""The frame table: one demux pass (no decoding) that says how many frames a video has and where decoding
can start.

It records the presentation timestamp of every packet, where the keyframes are and how many pictures each
packet holds, and picks how frames are identified after a seek: ``pts`` (timestamps against the table),
``count`` (counting decoder outputs from a clean keyframe; AVI with B-frames) or ``sequential`` (streams the
table cannot describe for sure, counted by one full decode). See :mod:`actionlab.data.video.decode`.

Some files store decode times as presentation times (every packet's pts equals its dts although the stream
has B-frames: Debian opencv-doc's ``box.mp4``). Their timestamps still identify each picture (a frame keeps
its packet's pts through reordering) but sorting them does not give the output order, so the order is
learned from one full decode (``FrameTable.learned``) and the clean keyframes are those whose GOP no frame
crosses.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from actionlab.data.video.bitstream import VOL_START, container_truncation, mpeg4_vops, vol_time_bits
from actionlab.data.video.orientation import Display, read_display

logger = logging.getLogger(__name__)

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
    rotation: int = 0
    """Clockwise degrees the stored pictures are turned to be shown (display matrix or ``rotate`` tag)."""
    mirrored: bool = False
    """Mirrored left-right after the rotation (a display matrix with a flip)."""
    sar: float = 1.0
    """Sample aspect ratio of the stored pictures (``width`` already includes it)."""
    coded_width: int = 0
    """Stored picture width (0: same as ``width``); ``width``/``height`` are the displayed size, what
    :class:`~actionlab.data.video.decode.VideoReader` outputs at ``size=None``."""
    coded_height: int = 0

    @property
    def display(self) -> Display:
        """How stored pictures are turned and stretched to be shown."""
        return Display(self.rotation, self.mirrored, self.sar)



# ----------------------------------------------------------------------------------- frame table


@dataclass(frozen=True)
class Anchor:
    """A place decoding can start from and reproduce the sequential output."""

    index: int
    """Frame index of the first frame it yields."""
    packet: int
    """Index of its packet in demux order (-1: the start of the file, reached by reopening)."""
    pts: int | None
    dts: int | None


START = Anchor(index=0, packet=-1, pts=None, dts=None)


@dataclass(frozen=True)
class FrameTable:
    info: VideoInfo
    mode: str
    """``pts``, ``count`` or ``sequential`` (no seeking)."""
    anchors: tuple[Anchor, ...]
    """Sorted by index; the first is always the start of the file."""
    pts_index: dict[int, int]
    """pts -> frame index (``pts`` mode)."""
    packet_ids: dict[int | None, int]
    """Byte position (or dts when positions are unknown) of a packet -> its demux-order index, to check
    where a seek landed."""
    by_pos: bool
    learned: bool = False
    """The pts -> index map comes from one full decode (timestamps that are decode times), not from sorting."""

    def anchor_for(self, index: int) -> Anchor:
        keys = [a.index for a in self.anchors]
        return self.anchors[bisect.bisect_right(keys, index) - 1]


def open_container(path: Path) -> av.container.InputContainer:
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
    reason = container_truncation(path, size)
    if reason:
        raise VideoDecodeError(path, f"{reason}; re-download or re-encode it")


def _decode_count(path: Path) -> int:
    """Number of frames a full sequential decode outputs: the slow, sure way."""
    container = open_container(path)
    try:
        return sum(1 for _ in decode_packets(path, container, container.streams.video[0]))
    finally:
        container.close()


def decode_packets(path: Path, container: Any, stream: Any, packets: Iterator[Any] | None = None
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


def _learn_order(path: Path, pts_l: list[int | None], key_l: list[bool], dts_l: list[int | None]
                 ) -> tuple[list[Anchor], dict[int, int], int] | None:
    """``(anchors, pts -> index, frame count)`` from the output order of one full decode; None when the
    decoder's output timestamps do not identify frames (missing, repeated or unknown to the demuxer).

    A keyframe is an anchor when its GOP is closed in output order: every frame output before it comes
    from an earlier packet and every frame output from it on from a later one (an IDR picture).
    """
    container = open_container(path)
    try:
        order = [f.pts for f in decode_packets(path, container, container.streams.video[0])]
    finally:
        container.close()
    packet_of = {p: i for i, p in enumerate(pts_l)}
    if None in order or len(set(order)) != len(order) or any(p not in packet_of for p in order):
        logger.debug("%s: decoder output timestamps do not identify frames; reading sequentially", path)
        return None
    packets = [packet_of[p] for p in order]  # type: ignore[index]
    n = len(packets)
    suffix_min = [0] * (n + 1)
    suffix_min[n] = len(pts_l)
    for j in range(n - 1, -1, -1):
        suffix_min[j] = min(packets[j], suffix_min[j + 1])
    anchors = [START]
    before_max = -1  # highest packet among the frames output so far
    for j, k in enumerate(packets):
        if j > 0 and key_l[k] and before_max < k <= suffix_min[j]:
            anchors.append(Anchor(j, k, pts_l[k], dts_l[k]))
        before_max = max(before_max, k)
    return anchors, {p: j for j, p in enumerate(order)}, n  # type: ignore[misc]


def _read_display(path: Path) -> Display:
    """The stream's :class:`Display`; the display matrix is read from the first decoded frame, where FFmpeg
    puts it for every container."""
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        first = next(iter(decode_packets(path, container, stream)), None)
        return read_display(path, stream, first)
    except VideoDecodeError as e:
        logger.warning("%s: cannot read how it is displayed (%s); decoding the pictures as stored", path, e.reason)
        return Display()
    finally:
        container.close()


@dataclass
class _Demuxed:
    """What one demux pass of a file's video stream tells: the stream's header and each packet's fields."""

    codec: str
    fmt: str
    width: int
    height: int
    reorders: bool
    fps: float
    duration: float
    is_mpeg4: bool
    pts_l: list[int | None]
    dts_l: list[int | None]
    pos_l: list[int]
    key_l: list[bool]
    discard_l: list[bool]
    vops_l: list[list[tuple[str, bool]] | None]


def _demux(path: Path) -> _Demuxed:
    """One demux pass (no decoding): the stream header, and per packet its timestamps, position, key flag,
    discard flag (MP4 edit lists) and, for MPEG-4 Part 2, the VOPs it holds."""
    _check_file(path)
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.name
        fmt = container.format.name
        width, height = ctx.width, ctx.height
        reorders = bool(getattr(ctx, "has_b_frames", False))  # from the stream header, before any decoding
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
            m = VOL_START.search(extradata)
            time_bits = vol_time_bits(extradata, m.start()) if m else None
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
                    m = VOL_START.search(data)
                    if m and data[m.start():m.start() + 24] != last_vol:  # the VOL repeats at keyframes
                        last_vol = data[m.start():m.start() + 24]
                        time_bits = vol_time_bits(data, m.start())
                    vops_l.append(mpeg4_vops(data, time_bits) if time_bits else None)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"demuxing failed ({e}); the file may be truncated or corrupt") from None
    finally:
        container.close()

    return _Demuxed(codec, fmt, width, height, reorders, fps, duration, is_mpeg4, pts_l, dts_l, pos_l, key_l,
                    discard_l, vops_l)


def _vop_anchors(d: _Demuxed, nf: list[int], first_producing: int) -> list[Anchor] | None:
    """Seek points of an MPEG-4 Part 2 stream counted from its VOPs (None: it opens with an open GOP)."""
    n_packets = len(d.pts_l)
    seq = [(i, kind) for i in range(n_packets) for kind, coded in d.vops_l[i] if coded]  # type: ignore[union-attr]
    if len(seq) > 1 and seq[0][1] == "I" and seq[1][1] == "B":
        return None
    first_vop: dict[int, int] = {}
    for j, (i, _) in enumerate(seq):
        first_vop.setdefault(i, j)
    anchors, before = [], 0
    for i in range(n_packets):
        j = first_vop.get(i)
        if i > first_producing and d.key_l[i] and j is not None and seq[j][1] == "I":
            lead_b = 0
            while j + 1 + lead_b < len(seq) and seq[j + 1 + lead_b][1] == "B":
                lead_b += 1
            if lead_b == 0 or nf[i] == 1:
                anchors.append(Anchor(before + lead_b, i, d.pts_l[i], d.dts_l[i]))
        before += nf[i]
    return anchors


def _pts_anchors(d: _Demuxed, frame_pts: list[int]) -> tuple[dict[int, int], list[Anchor]]:
    """``(pts -> frame index, seek points)`` of a stream whose timestamps identify its pictures: each keyframe
    after the first starts the frames shown from its pts on (a discarded one too)."""
    ordered = sorted(frame_pts)
    anchors = []
    for i in range(1, len(d.pts_l)):
        pts = d.pts_l[i]
        if d.key_l[i] and pts is not None:
            index = bisect.bisect_left(ordered, pts)
            if index < len(ordered):
                anchors.append(Anchor(index, i, pts, d.dts_l[i]))
    return {p: i for i, p in enumerate(ordered)}, anchors


def _frames_per_packet(d: _Demuxed) -> tuple[list[int], list[int], bool]:
    """``(frames each packet outputs, the packets that output any, sure)`` of a demuxed stream ``d``; ``sure`` is
    False where the counts cannot be trusted (no packets, an MPEG-4 packet whose VOPs could not be parsed, a codec
    or container that may pack several frames per packet, nothing output, or a stream that does not open on a
    keyframe)."""
    n_packets = len(d.pts_l)
    sure = n_packets > 0
    if d.is_mpeg4:
        sure = sure and all(v is not None for v in d.vops_l)
        nf = [sum(coded for _, coded in v) for v in d.vops_l] if sure else [1] * n_packets  # type: ignore[union-attr]
    else:
        nf = [1] * n_packets
        if d.codec not in _ONE_FRAME_PER_PACKET or d.fmt in _PARSED_CONTAINERS:
            sure = False
    nf = [0 if discard else k for k, discard in zip(nf, d.discard_l)]
    producing = [i for i in range(n_packets) if nf[i] > 0]
    if not producing:
        sure = False
    elif not d.key_l[0]:
        sure = False  # leading packets before the first keyframe: decoders differ on what they output
    return nf, producing, sure


def build_table(path: Path, learn_order: bool = False) -> FrameTable:
    """The frame table of ``path`` (one demux pass; one full decode where the table cannot be sure).

    ``learn_order``: take the output order from a full decode even when the timestamps look sorted (the
    reader asks for it when a decoder's output contradicts the table).
    """
    d = _demux(path)
    codec, fmt, width, height, fps, duration, is_mpeg4 = (d.codec, d.fmt, d.width, d.height, d.fps, d.duration,
                                                         d.is_mpeg4)
    pts_l, dts_l, pos_l, key_l = d.pts_l, d.dts_l, d.pos_l, d.key_l
    reorders = d.reorders
    n_packets = len(pts_l)
    nf, producing, sure = _frames_per_packet(d)

    by_pos = all(p >= 0 for p in pos_l) and len(set(pos_l)) == n_packets
    packet_ids: dict[int | None, int] = {(pos_l[i] if by_pos else dts_l[i]): i for i in range(n_packets)}
    reorder_guessed = fmt.startswith("avi") and any(p != d for p, d in zip(pts_l, dts_l))
    frame_pts = [pts_l[i] for i in producing]
    pts_ok = (sure and not reorder_guessed and all(nf[i] == 1 for i in producing)
              and None not in frame_pts and len(set(frame_pts)) == len(frame_pts))

    mode = "sequential"
    anchors: list[Anchor] = [START]
    pts_index: dict[int, int] = {}
    learned: tuple[list[Anchor], dict[int, int], int] | None = None
    dts_as_pts = reorders and all(p == d for p, d in zip(pts_l, dts_l))
    if pts_ok and (learn_order or dts_as_pts):
        # The timestamps identify pictures but their order may not be the output order: learn it.
        learned = _learn_order(path, pts_l, key_l, dts_l)
        if learned is None:
            sure = False
        else:
            mode = "pts"
            anchors, pts_index, _ = learned
    elif pts_ok:
        first_key_pts = pts_l[0]
        if first_key_pts is None or any(p < first_key_pts for p in frame_pts):  # type: ignore[operator]
            sure = False  # open GOP at the start: leading pictures may or may not be output
        else:
            mode = "pts"
            pts_index, pts_anchors = _pts_anchors(d, frame_pts)
            anchors.extend(pts_anchors)
    elif sure and not is_mpeg4:
        sure = False  # reordered frames whose timestamps do not identify them, and no parser to count them
    elif sure:
        # Decode-order list of coded VOPs. Decoding from a keyframe packet that opens with an I-VOP
        # reproduces the sequential output from that I-VOP on. B-VOPs right after it (open GOP) are shown
        # before it and need the previous GOP: after a seek the decoder drops them (no past reference),
        # so the I-VOP's frame index counts them too. Packed packets holding an I-VOP and a B-VOP are
        # not used as seek points.
        vop_anchors = _vop_anchors(d, nf, producing[0])
        if vop_anchors is None:
            sure = False  # the stream starts with an open GOP: the first B-VOPs have nothing to refer to
        else:
            mode = "count"
            anchors.extend(vop_anchors)

    if learned is not None:
        num_frames = learned[2]
    elif sure:
        num_frames = sum(nf)
    else:
        logger.debug("%s: frame table uncertain (codec %s in %s); counting frames by decoding", path, codec, fmt)
        num_frames = _decode_count(path)
        mode, anchors, pts_index = "sequential", [START], {}
    if num_frames == 0:
        raise VideoDecodeError(path, "the video stream has no decodable frames")
    display = _read_display(path)
    shown_w, shown_h = display.size(width, height)
    info = VideoInfo(str(path), num_frames, fps, shown_w, shown_h, duration, codec, display.rotation,
                     display.mirrored, display.sar, width, height)
    return FrameTable(info, mode, tuple(anchors), pts_index, packet_ids, by_pos, learned is not None)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video without decoding it (one demux pass), with an exact frame count.

    Raises ``VideoDecodeError`` for a missing, empty, truncated, corrupt or non-video file.
    """
    return build_table(Path(path)).info
