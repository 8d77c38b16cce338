"""``actionlab serve``: the API in-process (FastAPI's TestClient), then a real server process on a free localhost
port driven over HTTP and by a headless Chromium: uploads through the page, malformed uploads, a bounded load
test. The model is a real video-network run trained on generated XviD videos (``tiny_video_run``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from actionlab.data.manifest import read_manifest
from actionlab.data.video.decode import VideoReader
from actionlab.data.video.encode import VideoWriter
from actionlab.predict.predictor import Predictor
from browser import CHROMIUM, NO_CHROMIUM, launch

LIMIT_MB = 1


@pytest.fixture(scope="module")
def clips(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test video as XviD (as generated) and as H.264 MP4 (which a browser plays), plus malformed uploads."""
    out = tmp_path_factory.mktemp("uploads")
    m = read_manifest(tiny_manifest)
    avi = m.abspath(m.split("test")[0])
    mp4 = out / "clip.mp4"
    with VideoReader(avi) as reader, VideoWriter(mp4, reader.height, reader.width, reader.info.fps, "h264") as w:
        for frame in reader:
            w.write(frame)
    (out / "empty.mp4").write_bytes(b"")
    (out / "notes.mp4").write_text("these are my notes, not a video\n")
    data = mp4.read_bytes()
    (out / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (out / "huge.mp4").write_bytes(np.random.default_rng(0).bytes(int(1.5 * LIMIT_MB * 2**20)))
    return {"avi": avi, "mp4": mp4, **{p.stem: p for p in out.iterdir() if p.stem != "clip"}}


@pytest.fixture(scope="module")
def expected(tiny_video_run: Path, clips: dict[str, Path]) -> dict[str, Any]:
    """What the Predictor itself says about the MP4 clip (the server must say the same)."""
    return Predictor(tiny_video_run, device="cpu").predict(clips["mp4"], name="clip.mp4")


def _post(client: Any, path: Path, name: str | None = None, field: str = "file") -> Any:
    return client.post("/predict", files={field: (name or path.name, path.read_bytes(), "video/mp4")})


def test_api_in_process(tiny_video_run: Path, clips: dict[str, Path], expected: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from actionlab.serve.app import ServeConfig, create_app

    app = create_app(Predictor(tiny_video_run, device="cpu"), ServeConfig(max_upload_mb=LIMIT_MB))
    upload_dir = app.state.upload_dir
    assert oct(upload_dir.stat().st_mode & 0o777) == "0o700"
    with TestClient(app) as client:
        assert client.get("/health").json()["status"] == "ok"
        card = client.get("/model").json()
        assert card["run"] == tiny_video_run.name and card["kind"] == "video" and card["engine"] == "pytorch"
        assert card["classes"] == Predictor(tiny_video_run, device="cpu").classes
        assert {"mean", "std", "clip_len", "size"} <= set(card["preprocessing"])
        ok = _post(client, clips["mp4"], name="../../etc/clip.mp4")
        assert ok.status_code == 200
        answer = ok.json()
        assert answer["video"] == "clip.mp4"  # the client's name, last component only
        assert [t["label"] for t in answer["top"]] == [t["label"] for t in expected["top"]]
        np.testing.assert_allclose([t["score"] for t in answer["top"]], [t["score"] for t in expected["top"]],
                                   atol=1e-6)
        assert answer["segments"] == expected["segments"]
        bad = {"empty": 422, "notes": 422, "truncated": 422, "huge": 413}
        bodies = []
        for name, status in bad.items():
            r = _post(client, clips[name])
            assert r.status_code == status, (name, r.text)
            assert r.json()["error"] and "Traceback" not in r.text
            bodies.append(r.text)
        # without a Content-Length the bytes themselves are counted as they arrive (chunked upload)
        boundary = "actionlab-test-boundary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
                'Content-Type: video/mp4\r\n\r\n').encode()
        huge = clips["huge"].read_bytes()
        sent: list[int] = []

        def chunks() -> Iterator[bytes]:
            yield head
            for i in range(0, len(huge), 2**16):
                sent.append(i)
                yield huge[i:i + 2**16]
            yield f"\r\n--{boundary}--\r\n".encode()

        r = client.post("/predict", content=chunks(),
                        headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and "limit of 1 MB" in r.json()["error"]
        r = _post(client, clips["mp4"], field="video")
        assert r.status_code == 422 and "'file'" in r.json()["error"]
        r = client.post("/predict", content=clips["mp4"].read_bytes(), headers={"content-type": "video/mp4"})
        assert r.status_code == 415
        bodies += [r.text, client.get("/model").text]
        for text in bodies:  # no server path in any answer
            assert str(upload_dir) not in text and str(tiny_video_run) not in text and "/tmp" not in text
        page = client.get("/")
        assert page.status_code == 200 and "<script>" in page.text
        assert "innerHTML" not in page.text and "http://" not in page.text and "https://" not in page.text
    assert not upload_dir.exists()  # uploads removed, and the directory with them at shutdown


def test_time_limits_and_a_bounded_queue(tiny_video_run: Path, clips: dict[str, Path]) -> None:
    """One worker held busy: a second request waits in the queue (503 when its time runs out there), a third
    finds the queue full (503 at once), the first runs past its limit (504); the uploads are still removed."""
    from fastapi.testclient import TestClient

    from actionlab.serve.app import ServeConfig, create_app

    predictor = Predictor(tiny_video_run, device="cpu")
    gate = threading.Event()
    real = predictor.predict

    def held(*args: Any, **kwargs: Any) -> dict[str, Any]:
        gate.wait(30)  # a slow inference, released by the test
        return real(*args, **kwargs)

    predictor.predict = held  # type: ignore[method-assign]
    app = create_app(predictor, ServeConfig(workers=1, queue=1, timeout_s=4))
    with TestClient(app) as client, ThreadPoolExecutor(2) as threads:
        first = threads.submit(_post, client, clips["mp4"])
        _wait_for(lambda: client.get("/health").json()["running"] == 1)
        second = threads.submit(_post, client, clips["mp4"])
        _wait_for(lambda: client.get("/health").json()["queued"] == 1)
        third = _post(client, clips["mp4"])
        assert third.status_code == 503 and "busy" in third.json()["error"]
        assert second.result(60).status_code == 503 and "waited" in second.result().json()["error"]
        assert first.result(60).status_code == 504 and "time limit" in first.result().json()["error"]
        gate.set()
        _wait_for(lambda: client.get("/health").json() == {"status": "ok", "running": 0, "queued": 0})
        _wait_for(lambda: not list(app.state.upload_dir.iterdir()))
        predictor.predict = real  # type: ignore[method-assign]
        assert _post(client, clips["mp4"]).status_code == 200  # still serving


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the server")
        time.sleep(0.05)


# ----------------------------------------------------------------------------------- a real server process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_video_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``actionlab serve RUN`` on a free localhost port, with its own TMPDIR (checked empty afterwards)."""
    port, tmp = _free_port(), tmp_path_factory.mktemp("server_tmp")
    exe = Path(sys.executable).parent / "actionlab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}  # one core: the machine is shared
    proc = subprocess.Popen([*cmd, "serve", str(tiny_video_run), "--port", str(port), "--device", "cpu",
                             "--max-upload-mb", str(LIMIT_MB), "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"actionlab serve exited with {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise AssertionError("actionlab serve did not answer /health within 120 s")
            time.sleep(0.25)
        yield {"url": url, "tmp": tmp, "proc": proc}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read()  # type: ignore[union-attr]
    assert not list(tmp.rglob("*")), "uploads left behind"


def test_malformed_uploads_leave_the_server_serving(server: dict[str, Any], clips: dict[str, Path],
                                                    expected: dict[str, Any]) -> None:
    with httpx.Client(base_url=server["url"], timeout=60) as client:
        for name, status in {"empty": 422, "truncated": 422, "notes": 422, "huge": 413}.items():
            r = _post(client, clips[name])
            assert r.status_code == status, (name, r.text)
            assert r.headers["content-type"] == "application/json" and r.json()["error"]
            assert str(server["tmp"]) not in r.text and "Traceback" not in r.text
            assert client.get("/health").json()["status"] == "ok"
        r = _post(client, clips["mp4"])
        assert r.status_code == 200 and r.json()["top"][0]["label"] == expected["top"][0]["label"]


def test_load_40_requests_4_at_a_time(server: dict[str, Any], clips: dict[str, Path],
                                      expected: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = clips["avi"].read_bytes()

    def one(_: int) -> tuple[int, float, str]:
        t0 = time.perf_counter()
        with httpx.Client(base_url=server["url"], timeout=120) as client:
            r = client.post("/predict", files={"file": ("clip.avi", data, "video/x-msvideo")})
        return r.status_code, time.perf_counter() - t0, r.json()["top"][0]["label"] if r.status_code == 200 else r.text

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(40)))
    wall = time.perf_counter() - t0
    assert [r[0] for r in results] == [200] * 40, [r for r in results if r[0] != 200][:3]
    assert len({r[2] for r in results}) == 1  # the same answer every time
    latency = np.array([r[1] for r in results])
    with capsys.disabled():
        print(f"\nserve load test: 40 requests, 4 concurrent, 1 worker: 0 errors, p50 {np.percentile(latency, 50):.2f}s "
              f"p95 {np.percentile(latency, 95):.2f}s, {40 / wall:.1f} requests/s (load average "
              f"{os.getloadavg()[0]:.1f})")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_page_in_headless_chromium(server: dict[str, Any], clips: dict[str, Path], expected: dict[str, Any],
                                       tmp_path: Path) -> None:
    """Choose a video on the page: it shows the model's top label, the top-5 bars and the timeline strip."""
    sync_api = pytest.importorskip("playwright.sync_api")
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 820})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server["url"] + "/")
            page.locator("#model").filter(has_text="classes").wait_for()  # no eval: the page's CSP forbids it
            page.set_input_files("#file", str(clips["mp4"]))
            page.wait_for_selector("body[data-state=done]", timeout=120_000)
            labels = page.locator("#top li .label").all_inner_texts()
            assert labels == [t["label"] for t in expected["top"]]
            assert page.locator("#strip .seg").count() == len(expected["segments"])
            assert expected["top"][0]["label"] in page.locator("#status").inner_text()
            page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)
            assert not errors, errors
            # a malformed upload shows the server's reason (the browser logs the 422), and the page keeps working
            page.set_input_files("#file", str(clips["notes"]))
            page.wait_for_selector("body[data-state=error]", timeout=60_000)
            assert "422" in page.locator("#status").inner_text()
            assert "not a video" in page.locator("#status").inner_text()
            assert len(errors) == 1 and "422" in errors[0], errors
        finally:
            browser.close()
    assert all(u.startswith(server["url"]) or u.startswith("blob:") for u in requests), requests  # offline page
    assert (tmp_path / "serve_page.png").stat().st_size > 10_000
