"""Byte-level checks below FFmpeg: container size fields (is the file cut short?) and MPEG-4 Part 2 VOP headers.

MPEG-4 Part 2 (XviD/DivX, the format of UCF-101) is parsed down to the VOP headers so that packed B-frames
(two pictures in one packet) and not-coded N-VOP placeholders are counted as the decoder counts them.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

# ----------------------------------------------------------------------------------- container checks


def container_truncation(path: Path, file_size: int) -> str | None:
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

VOL_START = re.compile(rb"\x00\x00\x01[\x20-\x2f]")
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


def vol_time_bits(data: bytes, start: int) -> int | None:
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


def mpeg4_vops(data: bytes, time_bits: int) -> list[tuple[str, bool]] | None:
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
