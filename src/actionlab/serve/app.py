"""``actionlab serve``: a :class:`~actionlab.predict.predictor.Predictor` behind HTTP, with a page to try it.

::

    GET  /          a self-contained page (no CDN, works offline): drop a video, see the top-5 as bars and the
                    timeline as a strip under the player
    GET  /health    {"status": "ok", "running", "queued"}
    GET  /model     the model card: run name, kind, classes, preprocessing, sampler, inference, engine
    POST /predict   multipart upload (field ``file``) -> the Predictor's JSON

Uploads are streamed into a private file (mode 0600, in a 0700 directory of the server's own) and counted
while they arrive: past ``max_upload_mb`` the answer is 413 at once, from the ``Content-Length`` header or
from the bytes themselves. The file is probed before inference (not a readable video: 422 with FFmpeg's
reason) and always removed. Inference runs in a pool of ``workers`` threads; at most ``queue`` requests wait
for one (more: 503). A request still waiting when its ``timeout_s`` runs out gets 503, one still running gets
504. Errors are ``{"error": "..."}`` JSON that never names a server path; tracebacks go to the server log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from actionlab.data.video.decode import VideoDecodeError
from actionlab.predict.predictor import Predictor
from actionlab.serve.upload import UploadError, receive_video, too_large
from actionlab.utils import cpu_threads

logger = logging.getLogger(__name__)


def default_workers() -> int:
    """Inference threads: 1 on machines of up to 4 cores (one inference already uses them all), else cores/4."""
    cores = cpu_threads()
    return 1 if cores <= 4 else min(4, cores // 4)


@dataclass(frozen=True)
class ServeConfig:
    """Limits of a served model."""

    max_upload_mb: float = 200.0
    """Largest accepted upload (413 past it)."""
    workers: int = 1
    """Inference threads; concurrent requests beyond them wait."""
    queue: int = 32
    """Requests that may wait for a worker (503 past it)."""
    timeout_s: float = 120.0
    """Time limit of one request, waiting included (503 while waiting, 504 while running)."""

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0 or self.workers < 1 or self.queue < 0 or not self.timeout_s > 0:
            raise ValueError(f"need max_upload_mb > 0, workers >= 1, queue >= 0 and timeout_s > 0, got {self}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _display_name(filename: str) -> str:
    """The client's file name, its last component only, printable and short."""
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(c for c in name if c.isprintable())[:120]
    return name or "upload"


class InferencePool:
    """A bounded pool of inference threads with a bounded queue and per-request time limits."""

    def __init__(self, predictor: Predictor, cfg: ServeConfig) -> None:
        self.predictor, self.cfg = predictor, cfg
        self.executor = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="inference")
        self.lock = threading.Lock()
        self.queued = self.running = 0

    def _job(self, path: Path, name: str, started: threading.Event) -> dict[str, Any]:
        started.set()
        with self.lock:
            self.queued -= 1
            self.running += 1
        try:
            return self.predictor.predict(path, name=name)
        finally:
            with self.lock:
                self.running -= 1
            path.unlink(missing_ok=True)  # the job owns the upload from the moment it starts

    async def predict(self, path: Path, name: str) -> dict[str, Any]:
        """The Predictor's answer for the file at ``path`` (removed once done); :class:`UploadError` otherwise."""
        with self.lock:
            busy = self.queued >= self.cfg.queue + self.cfg.workers - self.running
            if not busy:
                self.queued += 1
        if busy:
            path.unlink(missing_ok=True)
            raise UploadError(503, f"the server is busy ({self.running} running, {self.queued} waiting); "
                                   "try again shortly")
        started = threading.Event()
        try:
            future: Future[dict[str, Any]] = self.executor.submit(self._job, path, name, started)
        except RuntimeError:  # shutting down
            with self.lock:
                self.queued -= 1
            path.unlink(missing_ok=True)
            raise UploadError(503, "the server is shutting down") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.cfg.timeout_s)
        except asyncio.TimeoutError:
            if not started.is_set() and future.cancel():
                with self.lock:
                    self.queued -= 1
                raise UploadError(503, f"the server is busy: this request waited {self.cfg.timeout_s:g} s for a "
                                       "free worker; try again shortly") from None
            raise UploadError(504, f"inference took longer than the time limit of {self.cfg.timeout_s:g} s "
                                   "(actionlab serve --timeout-s)") from None
        finally:
            if future.cancelled():
                path.unlink(missing_ok=True)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def create_app(predictor: Predictor, cfg: ServeConfig = ServeConfig()) -> FastAPI:
    """The FastAPI application serving ``predictor`` (see the module doc for the routes)."""
    pool = InferencePool(predictor, cfg)
    upload_dir = Path(tempfile.mkdtemp(prefix="actionlab-serve-"))  # 0700: only this user reads uploads
    card = predictor.describe()
    page = resources.files("actionlab.serve").joinpath("page.html").read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()
        shutil.rmtree(upload_dir, ignore_errors=True)

    app = FastAPI(title="actionlab", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.upload_dir, app.state.pool = upload_dir, pool

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                           "media-src 'self' blob:; style-src 'unsafe-inline'; "
                                           "script-src 'unsafe-inline'"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "running": pool.running, "queued": pool.queued}

    @app.get("/model")
    def model() -> dict[str, Any]:
        return {**card, "max_upload_mb": cfg.max_upload_mb}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_upload_bytes + 64 * 2**10:
            return _error(413, too_large(cfg.max_upload_bytes).message)
        fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".video", dir=upload_dir)  # mode 0600
        path = Path(tmp)
        name = "upload"
        handed_over = False
        try:
            with os.fdopen(fd, "wb") as dest:
                filename, _ = await receive_video(request.headers.get("content-type", ""), request.stream(), dest,
                                                  cfg.max_upload_bytes)
            name = _display_name(filename)
            handed_over = True
            result = await pool.predict(path, name)
            return JSONResponse(result)
        except UploadError as e:
            return _error(e.status, e.message)
        except VideoDecodeError as e:
            return _error(422, f"{name} is not a video this server can read: {_scrub(e.reason, path, name)}")
        except (ValueError, IndexError, OSError) as e:
            logger.warning("%s: %s", name, e)
            return _error(422, f"{name} could not be used: {_scrub(str(e), path, name)}")
        except Exception:
            logger.exception("inference failed on %s", name)
            return _error(500, "inference failed (an internal error, logged on the server)")
        finally:
            if not handed_over:
                path.unlink(missing_ok=True)

    return app


def _scrub(message: str, path: Path, name: str) -> str:
    """``message`` without the upload's server path (nor any other absolute path)."""
    message = message.replace(str(path), name).replace(str(path.parent), "")
    return re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*", "<path>", message)


def serve(source: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, cfg: ServeConfig = ServeConfig(),
          device: str = "auto") -> None:
    """Load ``source`` (a run or an export) and serve it until interrupted. An ONNX export is served without
    torch (the log says which engine runs and whether torch was loaded)."""
    import uvicorn

    threads = max(1, cpu_threads() // cfg.workers) if cfg.workers > 1 else None  # share the cores, not oversubscribe
    predictor = Predictor(source, device=device, threads=threads)
    if threads is not None and "torch" in sys.modules:  # a run: its PyTorch modules share the cores too
        import torch  # already loaded by the run; an export never gets here

        torch.set_num_threads(threads)
    logger.info("serving %s (%s model, engine %s; torch %s)", Path(source).name, predictor.kind, predictor.engine,
                "loaded" if "torch" in sys.modules else "not loaded")
    uvicorn.run(create_app(predictor, cfg), host=host, port=port, log_level="info")
