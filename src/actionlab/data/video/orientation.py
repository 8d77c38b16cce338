"""How a video is shown: the rotation and mirroring its metadata asks for, and its sample aspect ratio.

Phones store a portrait clip as landscape pictures plus a *display matrix* (MP4/MOV ``tkhd``, Matroska
projection) or, in older files, a ``rotate`` tag; anamorphic files store pictures whose pixels are not square
(a sample aspect ratio, SAR, other than 1:1). Players, browsers and ``ffmpeg`` show such a video rotated and
stretched; :class:`Display` says how, and :class:`~actionlab.data.video.decode.VideoReader` applies it so that
every frame comes out upright at the displayed size.

Conventions: a display matrix ``[a b u; c d v; x y w]`` (FFmpeg's side-data order, the ISO ``tkhd`` order)
maps a stored pixel ``(x, y)`` (y down) to ``(a*x + c*y, b*x + d*y)`` on screen, which for
``av_display_rotation_set(90)`` is a quarter turn counterclockwise as seen. A legacy ``rotate`` tag gives the
clockwise turn in degrees (what old ``ffmpeg -autorotate`` applied).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DECODE_PROVENANCE", "Display", "display_from_matrix", "read_display"]

DECODE_PROVENANCE = {"orientation": "display"}
"""What feature stores and runs record about decoding: frames as people see them (rotation, flips and sample
aspect ratio applied). A store built before this was recorded has no such field and is not mixed with one
built after."""


@dataclass(frozen=True)
class Display:
    """How stored pictures are shown: turned ``rotation`` degrees clockwise, then mirrored left-right when
    ``mirrored``; ``sar`` is the sample aspect ratio (displayed width = stored width * sar)."""

    rotation: int = 0
    mirrored: bool = False
    sar: float = 1.0

    def __post_init__(self) -> None:
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, got {self.rotation}")
        if not self.sar > 0:
            raise ValueError(f"sample aspect ratio must be > 0, got {self.sar}")

    @property
    def transposed(self) -> bool:
        """True when width and height swap (a quarter turn)."""
        return self.rotation in (90, 270)

    @property
    def turns(self) -> bool:
        """True when pixels move (a rotation or a mirror), False for a plain resize."""
        return self.rotation != 0 or self.mirrored

    def size(self, width: int, height: int) -> tuple[int, int]:
        """Displayed ``(width, height)`` of a ``width`` x ``height`` stored picture."""
        shown = max(1, round(width * self.sar))
        return (height, shown) if self.transposed else (shown, height)

    def stored_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` the scaler must produce so that :meth:`apply` gives a ``height`` x ``width`` frame."""
        return (width, height) if self.transposed else (height, width)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Turn a stored ``(H, W, ...)`` picture as it is shown (a contiguous copy when it moves)."""
        if not self.turns:
            return frame
        out = np.rot90(frame, -(self.rotation // 90))  # np.rot90 turns counterclockwise; -k is clockwise
        if self.mirrored:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def describe(self) -> str:
        """``rotate 90 (clockwise), mirrored, SAR 2`` or ``as stored``."""
        parts = [f"rotate {self.rotation} (clockwise)"] if self.rotation else []
        parts += ["mirrored"] if self.mirrored else []
        parts += [f"SAR {Fraction(self.sar).limit_denominator(1000)}"] if self.sar != 1.0 else []
        return ", ".join(parts) or "as stored"


def display_from_matrix(matrix: Any) -> tuple[int, bool] | None:
    """``(clockwise rotation, mirrored)`` of a 3x3 display matrix (9 int32 in FFmpeg's order); None when it
    is not a quarter turn or a flip (a skew, a zero matrix: broken or unsupported metadata)."""
    m = np.asarray(matrix, dtype=np.float64).reshape(-1)
    if m.size != 9:
        return None
    linear = np.array([m[0], m[1], m[3], m[4]])
    scale = np.abs(linear).max()
    if scale == 0 or not np.all((np.abs(linear) < 0.01 * scale) | (np.abs(np.abs(linear) - scale) < 0.01 * scale)):
        return None  # each entry must be 0 or +-scale: a quarter turn or a flip, not a skew or a free angle
    a, b, c, d = (int(np.sign(v)) if abs(v) >= 0.01 * scale else 0 for v in linear)
    axis_aligned = (b == c == 0 and a != 0 and d != 0) or (a == d == 0 and b != 0 and c != 0)
    if not axis_aligned:
        return None
    # Map a small labelled picture through the matrix and find which of the 8 turns gives the same picture.
    idx = np.arange(6).reshape(2, 3)
    ys, xs = np.mgrid[0:2, 0:3]
    xp, yp = a * xs + c * ys, b * xs + d * ys
    xp, yp = xp - xp.min(), yp - yp.min()
    shown = np.empty((yp.max() + 1, xp.max() + 1), dtype=idx.dtype)
    shown[yp, xp] = idx
    for rotation in (0, 90, 180, 270):
        for mirrored in (False, True):
            if np.array_equal(Display(rotation, mirrored).apply(idx), shown):
                return rotation, mirrored
    return None  # unreachable for an axis-aligned matrix


def _legacy_rotation(metadata: dict[str, str]) -> tuple[int | None, str | None]:
    """``(clockwise degrees, problem)`` from a ``rotate`` tag (any case); ``(None, None)`` without one."""
    value = next((v for k, v in metadata.items() if k.lower() == "rotate"), None)
    if value is None:
        return None, None
    try:
        degrees = float(value)
    except ValueError:
        return None, f"rotate tag {value!r} is not a number"
    if degrees % 90:
        return None, f"rotate tag {value!r} is not a multiple of 90 degrees"
    return int(degrees) % 360, None


def read_display(path: Any, stream: Any, first_frame: Any | None) -> Display:
    """The :class:`Display` of ``stream`` (PyAV), from ``first_frame``'s display matrix (FFmpeg attaches the
    stream's to decoded frames), else a legacy ``rotate`` tag, and the stream's sample aspect ratio.

    Broken metadata never stops decoding: it is logged as a warning and the pictures are kept as stored.
    """
    rotation, mirrored = 0, False
    matrix = None
    if first_frame is not None:
        try:
            from av.sidedata.sidedata import Type

            side = first_frame.side_data.get(Type.DISPLAYMATRIX)
            matrix = np.frombuffer(bytes(side), dtype=np.int32) if side is not None else None
        except (ImportError, AttributeError, ValueError) as e:  # an old PyAV, or unreadable side data
            logger.debug("%s: cannot read the display matrix (%s)", path, e)
    if matrix is not None:
        turn = display_from_matrix(matrix)
        if turn is None:
            logger.warning("%s: its display matrix %s is not a quarter turn or a flip; decoding the pictures "
                           "as stored", path, matrix.tolist())
        else:
            rotation, mirrored = turn
    else:
        degrees, problem = _legacy_rotation(dict(stream.metadata or {}))
        if problem:
            logger.warning("%s: %s; decoding the pictures as stored", path, problem)
        elif degrees is not None:
            rotation = degrees
    return Display(rotation, mirrored, _sample_aspect_ratio(path, stream))


def _sample_aspect_ratio(path: Any, stream: Any) -> float:
    """The stream's sample aspect ratio (container first, as ``ffprobe`` reports it), 1.0 when unset or absurd."""
    sar = None
    for source in (stream, getattr(stream, "codec_context", None)):
        value = getattr(source, "sample_aspect_ratio", None) if source is not None else None
        if value:
            sar = value
            break
    if not sar:
        return 1.0
    ratio = float(sar)
    if not 0.1 <= ratio <= 10.0:
        logger.warning("%s: sample aspect ratio %s is implausible; decoding with square pixels", path, sar)
        return 1.0
    return ratio
