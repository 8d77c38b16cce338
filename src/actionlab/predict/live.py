"""Live input: label a stream while it plays (``Predictor.stream(source)``, ``actionlab predict SOURCE --live``).

A source is anything FFmpeg opens: an RTSP/HTTP/UDP/TCP URL, ``-`` (a pipe on stdin), a capture device such as
``/dev/video0`` (read with ``v4l2``), or a file (read as fast as it decodes). Two threads share the work:

- a *reader* decodes every frame of the first video stream with PyAV and keeps the frames of the timeline's grid
  (every ``stride``-th, as the scorer's :class:`~actionlab.evaluate.timeline.WindowPlan` says), converted to RGB
  at the scorer's decode size and turned upright, in a :class:`FrameRing` of a fixed number of frames. It never
  waits for the scorer (a live source must be drained, or its socket buffer overflows and pictures break): when
  the ring is full the oldest frame is overwritten;
- the *scoring loop* (the caller's thread) waits until the next window's frames are all in the ring, embeds the
  new ones and combines the window with the scorer's own hooks (``embed`` and ``combine``, the ones the offline
  timeline uses: :func:`~actionlab.evaluate.timeline.stream_windows`), and yields one dict per window.

Windows are ``length`` grid steps long and start every ``hop`` steps, as in the offline timeline (without the
offline last window aligned to the end: a live stream has no known end). When scoring falls behind the stream by
more than a window (the window's last frame is more than ``length`` grid steps older than the newest frame read)
the window is skipped and counted in ``dropped``; so is a window whose frames were overwritten before they were
scored. Memory is the ring plus one window of embedded steps, however long the stream plays.

The stream stops when the source ends (or sends nothing for ``read_timeout_s``), after ``max_seconds``, when the
caller stops iterating (``close()``, ``break``) or on ``KeyboardInterrupt``, which propagates after the reader
has been stopped. :meth:`LiveStream.summary` then says what happened.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from actionlab.data.video.decode import VideoInfo, output_size
from actionlab.data.video.orientation import Display, read_display
from actionlab.evaluate.timeline import WindowPlan
from actionlab.evaluate.video_scores import top_labels

logger = logging.getLogger(__name__)

__all__ = ["FrameRing", "LiveFrame", "LiveStream", "source_url"]

DEFAULT_FPS = 25.0
"""Frame rate assumed when the source does not say."""


def source_url(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(url, FFmpeg input format or None)`` for a source as a user names it: ``-`` is stdin, ``/dev/videoN`` a
    V4L2 capture device; anything else (a URL, a file) goes to FFmpeg as it is."""
    text = os.fspath(source)
    if text == "-":
        return "pipe:0", None
    if text.startswith("/dev/video"):
        return text, "v4l2"
    return text, None


class LiveFrame(NamedTuple):
    """One grid frame of a live source."""

    index: int
    """Position among all decoded frames (0 = the first)."""
    time: float
    """Stream seconds since the first frame."""
    arrival: float
    """``time.monotonic()`` when it was decoded."""
    rgb: np.ndarray
    """``(H, W, 3)`` uint8, upright, at the scorer's decode size."""


class FrameRing:
    """The newest ``size`` grid frames of a live source, by grid step; thread-safe. The writer never blocks:
    a frame beyond ``size`` evicts the oldest (counted in ``lost``). ``take`` removes what it returns, so the
    ring holds only frames not yet scored."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the frame ring must hold at least 1 frame, got {size}")
        self.size = size
        self._items: OrderedDict[int, LiveFrame] = OrderedDict()
        self._cond = threading.Condition()
        self.latest = -1
        """Newest grid step put (-1: none yet)."""
        self.max_held = 0
        """Most frames held at once (never above ``size``)."""
        self.lost = 0
        """Frames evicted before they were taken."""
        self.finished = False
        """True once the writer has stopped (end of stream, timeout, error or stop)."""

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, step: int, frame: LiveFrame) -> None:
        with self._cond:
            self._items[step] = frame
            while len(self._items) > self.size:
                self._items.popitem(last=False)
                self.lost += 1
            self.max_held = max(self.max_held, len(self._items))
            self.latest = step
            self._cond.notify_all()

    def take(self, steps: Sequence[int]) -> list[LiveFrame] | None:
        """The frames of ``steps``, removed from the ring; ``None`` (and nothing removed) when one is missing."""
        with self._cond:
            if any(s not in self._items for s in steps):
                return None
            return [self._items.pop(s) for s in steps]

    def discard_before(self, step: int) -> None:
        """Forget frames of steps before ``step`` (windows that were skipped no longer need them)."""
        with self._cond:
            for s in [s for s in self._items if s < step]:
                del self._items[s]

    def wait(self, step: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for grid step ``step``; True when it (or a later one) was put."""
        with self._cond:
            self._cond.wait_for(lambda: self.latest >= step or self.finished, timeout)
            return self.latest >= step

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()


class _Reader(threading.Thread):
    """Decodes an open container into a :class:`FrameRing` (grid frames only) until the stream ends, sends
    nothing for the read timeout, fails, or ``stop`` is set; closes the container. ``reason`` says why it
    ended; ``error`` holds an unexpected exception for the scoring loop to raise."""

    def __init__(self, container: Any, url: str, stride: int, size: int | tuple[int, int], ring: FrameRing,
                 read_timeout_s: float) -> None:
        super().__init__(name=f"actionlab-live-reader {url}", daemon=True)
        self.container, self.url, self.stride, self.size, self.ring = container, url, stride, size, ring
        self.read_timeout_s = read_timeout_s
        self.stop = threading.Event()
        self.frames = 0
        """Frames decoded so far (all of them, not only the grid's)."""
        self.reason = ""
        self.error: BaseException | None = None
        self.epoch: float | None = None
        """``time.monotonic()`` when stream time 0 played, as early as the frames so far show it: the least
        ``arrival - stream time`` of any frame (a burst of buffered frames at the start shows it earliest)."""
        self._first_time: float | None = None
        self._display: Display | None = None
        self._shape = (0, 0)  # (H, W) the scaler outputs, before the display turn
        self._reformatter = VideoReformatter()

    def run(self) -> None:
        try:
            self.reason = self._decode()
        except (av.error.ExitError, av.error.TimeoutError):  # PyAV's read timeout interrupted a wait for data
            self.reason = f"no data for {self.read_timeout_s:g} s"
        except av.error.FFmpegError as e:
            self.reason = f"the stream failed ({e})"
            logger.warning("%s: %s", self.url, self.reason)
        except BaseException as e:  # handed to the scoring loop, which raises it
            self.reason, self.error = f"the reader failed ({type(e).__name__}: {e})", e
        finally:
            try:
                self.container.close()
            finally:
                self.ring.finish()

    def _decode(self) -> str:
        stream = self.container.streams.video[0]
        ctx = stream.codec_context
        for packet in self.container.demux(stream):
            if self.stop.is_set():
                return "stopped"
            try:
                frames = ctx.decode(packet)
            except (av.error.InvalidDataError, av.error.PatchWelcomeError, av.error.UndefinedError) as e:
                logger.debug("%s: skipping an undecodable packet (%s)", self.url, e)  # as ffmpeg does
                continue
            for frame in frames:
                self._take(stream, frame)
        return "end of stream"

    def _take(self, stream: Any, frame: av.VideoFrame) -> None:
        index, now = self.frames, time.monotonic()
        self.frames += 1
        if self._display is None:  # the first frame carries the display matrix (rotation) of the stream
            self._display = read_display(self.url, stream, frame)
            width, height = self._display.size(frame.width, frame.height)
            self._shape = self._display.stored_shape(*output_size(self.size, width, height))
            self._first_time = frame.time
        seconds = (frame.time - self._first_time if frame.time is not None and self._first_time is not None
                   else index / float(stream.average_rate or DEFAULT_FPS))
        self.epoch = now - seconds if self.epoch is None else min(self.epoch, now - seconds)
        if index % self.stride:
            return  # not on the timeline's grid: decoded (it must be) but never converted
        try:  # one scaler thread, as VideoReader converts (PyAV < 14 has no ``threads`` argument)
            rgb = self._reformatter.reformat(frame, width=self._shape[1], height=self._shape[0], format="rgb24",
                                             interpolation="BILINEAR", threads=1)
        except TypeError:
            rgb = self._reformatter.reformat(frame, width=self._shape[1], height=self._shape[0], format="rgb24",
                                             interpolation="BILINEAR")
        self.ring.put(index // self.stride, LiveFrame(index, seconds, now, self._display.apply(rgb.to_ndarray())))


@dataclass
class LiveStats:
    """What a live stream did so far (scalars only: memory stays flat)."""

    windows: int = 0
    dropped: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    behind_max: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stopped: str = ""


class LiveStream:
    """An iterable over the windows of a live source, scored as they complete (see the module docstring).

    Each item: ``{"window", "time", "start", "end", "frames", "label", "score", "top", "latency_s", "behind_s",
    "dropped"}``: ``time``/``start``/``end`` are stream seconds since the first frame (``time`` is the window's
    end), ``frames`` the first and last frame index, ``top`` the ``top_k`` labels, ``latency_s`` the seconds
    from the window's last frame being decoded to its label, ``behind_s`` how far the label lags real time: now
    minus when the window's last frame played live (stream time 0 is put at the earliest the source's frames
    show it, so decoding that falls behind counts too; at least ``latency_s``), ``dropped`` the windows skipped
    so far.

    Args:
        scorer: a kind scorer (:mod:`actionlab.predict.scorers`) with ``plan``/``embed``/``combine``.
        source: URL, ``-`` (stdin), ``/dev/videoN`` or a file.
        classes, top_k: class names and labels per window.
        fps: frame rate of the source when it does not say (or says wrong); default: its own, else 25.
        ring: grid frames held (default: two windows); at least one window.
        max_seconds: stop after this many seconds of wall-clock time.
        open_timeout_s, read_timeout_s: give up opening after this long; end when no data comes for this long.
        options: FFmpeg options of the input (e.g. ``{"rtsp_transport": "tcp"}``).
        input_format: FFmpeg input format (default: guessed; ``v4l2`` for ``/dev/video*``).
    """

    def __init__(self, scorer: Any, source: str | os.PathLike[str], classes: Sequence[str], top_k: int = 5,
                 fps: float | None = None, ring: int | None = None, max_seconds: float | None = None,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0, options: dict[str, str] | None = None,
                 input_format: str | None = None) -> None:
        if not all(hasattr(scorer, hook) for hook in ("plan", "embed", "combine", "decode_size")):
            raise ValueError(f"run {getattr(scorer, 'card', {}).get('run')!r} cannot score a live stream: its "
                             "windows are not built frame by frame (optical flow, or a fused run); use a run on "
                             "RGB frames or its export")
        for name, value in (("fps", fps), ("max_seconds", max_seconds), ("open_timeout_s", open_timeout_s),
                            ("read_timeout_s", read_timeout_s)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.scorer, self.classes, self.top_k = scorer, list(classes), min(top_k, len(classes))
        self.url, fmt = source_url(source)
        self.input_format = input_format or fmt
        self.fps, self.ring_size, self.max_seconds = fps, ring, max_seconds
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self.options = {"rw_timeout": str(round(read_timeout_s * 1e6)), **(options or {})}
        self.stats = LiveStats()
        self.ring: FrameRing | None = None
        self.plan: WindowPlan | None = None
        self._reader: _Reader | None = None
        self._gen: Generator[dict[str, Any], None, None] | None = None

    # -- lifecycle
    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._gen is not None:
            raise RuntimeError(f"{self.url}: this live stream is already being read; open another one")
        self._gen = self._run()
        return self._gen

    def close(self) -> None:
        """Stop reading (also what leaving a ``with`` block and the end of iteration do)."""
        if self._gen is not None:
            self._gen.close()
        self._stop_reader()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> dict[str, Any]:
        """``{"source", "windows", "dropped", "frames", "ring", "latency_s", "behind_max_s", "seconds",
        "stopped"}`` (``ring``: size, most held, frames lost; ``latency_s``: mean and max)."""
        s, ring = self.stats, self.ring
        return {"source": self.url, "windows": s.windows, "dropped": s.dropped,
                "frames": self._reader.frames if self._reader is not None else 0,
                "ring": {"size": ring.size, "max_held": ring.max_held, "lost": ring.lost} if ring is not None
                else {"size": 0, "max_held": 0, "lost": 0},
                "latency_s": {"mean": s.latency_sum / s.windows if s.windows else 0.0, "max": s.latency_max},
                "behind_max_s": s.behind_max, "seconds": time.monotonic() - s.started, "stopped": s.stopped}

    # -- internals
    def _open(self) -> Any:
        try:
            container = av.open(self.url, format=self.input_format, options=self.options,
                                timeout=(self.open_timeout_s, self.read_timeout_s))
        except av.error.FFmpegError as e:
            raise OSError(f"{self.url}: cannot open it as a stream ({e}); check the address, that the stream is "
                          f"playing, and the open timeout ({self.open_timeout_s:g} s)") from None
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.url}: the stream has no video")
        return container

    def _start(self) -> tuple[_Reader, FrameRing, WindowPlan]:
        container = self._open()
        stream = container.streams.video[0]
        fps = float(self.fps or stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        info = VideoInfo(path=self.url, num_frames=0, fps=fps, width=stream.codec_context.width or 0,
                         height=stream.codec_context.height or 0, duration=0.0, codec=stream.codec_context.name)
        plan = self.scorer.plan(info)
        size = self.ring_size if self.ring_size is not None else 2 * plan.length
        if size < plan.length:
            container.close()
            raise ValueError(f"ring={size}: the frame ring must hold at least one window ({plan.length} frames)")
        ring = FrameRing(size)
        reader = _Reader(container, self.url, plan.stride, self.scorer.decode_size, ring, self.read_timeout_s)
        logger.info("%s: %s at %.3g fps; windows of %d frames (one in %d) every %d frames; a ring of %d frames",
                    self.url, info.codec, fps, plan.length, plan.stride, plan.hop * plan.stride, size)
        reader.start()
        return reader, ring, plan

    def _stop_reader(self) -> None:
        reader = self._reader
        if reader is not None and reader.is_alive():
            reader.stop.set()  # seen at the next packet; a wait for data ends within the read timeout
            reader.join(self.read_timeout_s + 1.0)
            if reader.is_alive():
                logger.warning("%s: the reader did not stop within %.0f s", self.url, self.read_timeout_s + 1)

    def _run(self) -> Generator[dict[str, Any], None, None]:
        self.stats = LiveStats()
        self.stats.stopped = "interrupted"  # unless one of the ends below says otherwise
        reader, ring, plan = self._reader, self.ring, self.plan = self._start()
        try:
            yield from self._windows(reader, ring, plan)
        except GeneratorExit:
            self.stats.stopped = "closed by the caller"
            raise
        finally:
            self._stop_reader()
            logger.info("%s: %s after %d windows (%d dropped)", self.url, self.stats.stopped, self.stats.windows,
                        self.stats.dropped)

    def _windows(self, reader: _Reader, ring: FrameRing, plan: WindowPlan) -> Iterator[dict[str, Any]]:
        """The scoring loop: wait for a window, skip it when it is too far behind, else score and yield it."""
        embedded: dict[int, np.ndarray] = {}  # grid step -> what embed kept, for the window being built
        frames: dict[int, LiveFrame] = {}  # grid step -> its frame's times (the pixels are dropped once embedded)
        w = 0
        while True:
            if self.max_seconds is not None and time.monotonic() - self.stats.started >= self.max_seconds:
                self.stats.stopped = f"max_seconds ({self.max_seconds:g} s)"
                return
            first, last = w * plan.hop, w * plan.hop + plan.length - 1
            if not ring.wait(last, timeout=0.1):
                if reader.error is not None:
                    raise reader.error
                if ring.finished:
                    self.stats.stopped = reader.reason
                    return
                continue
            new = [s for s in range(first, last + 1) if s not in embedded]
            taken = None if ring.latest - last >= plan.length else ring.take(new)  # too far behind: skip it
            if taken is None:  # behind by more than a window, or its frames were overwritten
                self.stats.dropped += 1
                ring.discard_before((w + 1) * plan.hop)
            else:
                embedded.update(zip(new, self.scorer.embed(np.stack([f.rgb for f in taken]))))  # (N, ...)
                frames.update((s, f._replace(rgb=np.empty(0, np.uint8))) for s, f in zip(new, taken))
                steps = np.stack([embedded[s] for s in range(first, last + 1)])  # (L, ...)
                logp = np.asarray(self.scorer.combine(steps[None]))[0]  # (K,)
                yield self._record(w, frames[first], frames[last], logp, reader)
            w += 1
            for s in [s for s in embedded if s < w * plan.hop]:  # no later window needs them
                del embedded[s], frames[s]

    def _record(self, w: int, first: LiveFrame, last: LiveFrame, logp: np.ndarray, reader: _Reader
                ) -> dict[str, Any]:
        now = time.monotonic()
        latency = now - last.arrival
        behind = now - (reader.epoch if reader.epoch is not None else last.arrival - last.time) - last.time
        s = self.stats
        s.windows += 1
        s.latency_sum += latency
        s.latency_max, s.behind_max = max(s.latency_max, latency), max(s.behind_max, behind)
        top = top_labels(logp, self.classes, self.top_k)
        return {"window": w, "time": round(last.time, 3), "start": round(first.time, 3), "end": round(last.time, 3),
                "frames": [first.index, last.index], "label": top[0]["label"], "score": top[0]["score"],
                "top": top, "latency_s": round(latency, 4), "behind_s": round(behind, 4), "dropped": s.dropped}
