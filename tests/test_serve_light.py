"""A served export needs no PyTorch: ``Predictor(EXPORT)`` and ``actionlab serve EXPORT`` run on ONNX Runtime,
PyAV and numpy, with numpy preprocessing that gives the torch transforms' numbers. Real exports of real runs
(``tiny_lstm_run``: MobileNetV2 features + LSTM; ``tiny_video_run``: R(2+1)D), real server processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.data.eval_arrays import ClipEval, FrameEval, resize_antialiased, resize_uint8
from actionlab.data.manifest import read_manifest
from actionlab.data.transforms import ClipEvalTransform, FrameEvalTransform
from actionlab.data.video.decode import VideoReader
from actionlab.features.preprocess import Preprocess
from actionlab.predict.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = [(72, 96), (64, 85), (96, 128), (240, 320), (30, 40), (85, 64)]
"""Frame sizes (H, W): at the decode size of the settings below, and not (smaller, larger, portrait)."""


def _frames(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ----------------------------------------------------------------------------------- numpy preprocessing


@pytest.mark.parametrize("pre", [Preprocess(72, 64), Preprocess(72, 64, view="full"), Preprocess(256, 224)],
                         ids=["centre", "full", "imagenet"])
@pytest.mark.parametrize("hw", SIZES)
def test_numpy_preprocessing_is_torchs_to_the_bit(pre: Preprocess, hw: tuple[int, int]) -> None:
    """A backbone's preprocessing in numpy equals extraction's torch path exactly, resize included (torch's
    antialiased uint8 kernel reproduced in integers)."""
    frames = _frames((3, *hw, 3))
    expected = pre.preprocess_batch(frames).numpy()
    got = pre.preprocess_array(frames)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_numpy_bicubic_preprocessing_is_within_one_grey_level() -> None:
    pre = Preprocess(72, 64, interpolation="bicubic")
    frames = _frames((2, 96, 128, 3))
    diff = np.abs(pre.preprocess_array(frames) - pre.preprocess_batch(frames).numpy())
    assert diff.max() <= 1.0001 / 255 / min(pre.std)  # a rare pixel rounds the other way; most are equal
    assert (diff > 0).mean() < 0.01
    np.testing.assert_array_equal(pre.preprocess_array(frames[:, :72]), pre.preprocess_batch(frames[:, :72]).numpy())


@pytest.mark.parametrize("kwargs", [dict(size=32, resize=36), dict(size=32, resize=36, crops=3),
                                    dict(size=32, resize=36, keep_aspect=False)], ids=["centre", "three", "squeezed"])
@pytest.mark.parametrize("hw", [(36, 48), (48, 36), (36, 36), (96, 128), (30, 40)])
def test_numpy_clip_crops_match_the_torch_transform(kwargs: dict[str, object], hw: tuple[int, int]) -> None:
    """Decoded at the transform's size (what prediction decodes), the numpy crops are the torch ones to the bit;
    frames of another size are resized by torch's float kernel, within float32 rounding."""
    clip = _frames((4, *hw, 3))
    expected = ClipEvalTransform(**kwargs)(clip).numpy()  # type: ignore[arg-type]
    got = ClipEval(**kwargs).array(clip)  # type: ignore[arg-type]
    assert got.shape == expected.shape and got.dtype == np.float32 and got.flags.c_contiguous
    decoded_at_size = hw == (36, 36) if kwargs.get("keep_aspect") is False else min(hw) == 36
    if decoded_at_size:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("hw", [(64, 85), (64, 64), (96, 128), (85, 64)])
def test_numpy_frame_crops_match_the_torch_transform(hw: tuple[int, int]) -> None:
    frames = _frames((3, *hw, 3))
    expected = np.stack([FrameEvalTransform(crop=56, resize=64)(f).numpy() for f in frames])
    got = FrameEval(crop=56, resize=64).array(frames)
    if min(hw) == 64:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_resizes_follow_torch_both_ways() -> None:
    """Up and down, both axes or one: the uint8 kernel to the integer, the float one within float32 rounding."""
    import torch.nn.functional as F

    for (h, w), (oh, ow) in [((96, 128), (36, 48)), ((30, 40), (64, 85)), ((50, 50), (50, 20)), ((17, 23), (40, 9))]:
        u = _frames((2, h, w, 3), seed=h)
        x = torch.from_numpy(u).permute(0, 3, 1, 2)
        expected = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
        np.testing.assert_array_equal(resize_uint8(u, (oh, ow)), expected.permute(0, 2, 3, 1).numpy())
        f = u.transpose(0, 3, 1, 2).astype(np.float32) / 255
        for mode in ("bilinear", "bicubic"):
            ref = F.interpolate(torch.from_numpy(f), size=(oh, ow), mode=mode, align_corners=False, antialias=True)
            np.testing.assert_allclose(resize_antialiased(f, (oh, ow), mode), ref.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------------- no torch in the process


@pytest.fixture(scope="module")
def light_runs(tiny_lstm_run: Path, tiny_video_run: Path) -> dict[str, Path]:
    return {"lstm": tiny_lstm_run, "r2p1d": tiny_video_run}


@pytest.fixture(scope="module")
def light_exports(light_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("light")
    runs = light_runs
    for name, run in runs.items():
        assert main(["export", str(run), "-o", str(out / f"{name}.actionlab")]) == 0
    return {name: out / f"{name}.actionlab" for name in runs}


@pytest.fixture(scope="module")
def clip(tiny_manifest: Path) -> Path:
    m = read_manifest(tiny_manifest)
    return m.abspath(m.split("test")[0])


NO_TORCH = """
import json, sys
import numpy as np
from actionlab import Predictor
p = Predictor({export!r})
result = p.predict({video!r})
frames = p(np.load({frames!r}), fps=25.0)
print(json.dumps({{"top": result["top"], "frames": frames["top"], "engine": p.engine,
                  "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}}))
"""


@pytest.mark.parametrize("name", ["lstm", "r2p1d"])
def test_an_export_predicts_without_importing_torch(name: str, light_runs: dict[str, Path],
                                                    light_exports: dict[str, Path], clip: Path, tmp_path: Path) -> None:
    """In a fresh interpreter, ``Predictor(EXPORT)`` on a file and on frames in memory (at their own size, so the
    numpy resize runs) leaves torch out of ``sys.modules`` and answers what the run answers."""
    with VideoReader(clip) as reader:
        frames = reader.get_frames(np.arange(reader.info.num_frames))  # (T, 96, 128, 3): resized by the scorer
    np.save(tmp_path / "frames.npy", frames)
    code = NO_TORCH.format(export=str(light_exports[name]), video=str(clip), frames=str(tmp_path / "frames.npy"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["torch"] == [] and answer["engine"] == "onnx"
    run = Predictor(light_runs[name], device="cpu")
    for got, expected in ((answer["top"], run.predict(clip)["top"]), (answer["frames"], run(frames, 25.0)["top"])):
        assert got[0]["label"] == expected[0]["label"]
        scores = {t["label"]: t["score"] for t in expected}  # every class (top 5 of 4)
        np.testing.assert_allclose([t["score"] for t in got], [scores[t["label"]] for t in got], atol=2e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _libraries(pid: int) -> set[str]:
    """File names of the shared libraries mapped into process ``pid``."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split()[-1]).name for line in lines if ".so" in line.split()[-1]}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/PID/maps (Linux)")
def test_actionlab_serve_export_answers_without_libtorch(light_exports: dict[str, Path], clip: Path,
                                                         tmp_path: Path) -> None:
    """``actionlab serve EXPORT`` (a real server process on localhost) answers an upload while libtorch is not
    mapped into it, and says so in its log."""
    port = _free_port()
    exe = Path(sys.executable).parent / "actionlab"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "actionlab.cli"]
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "serve", str(light_exports["lstm"]), "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"actionlab serve exited with {proc.returncode}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, "actionlab serve did not answer /health within 120 s"
            time.sleep(0.25)
        with httpx.Client(base_url=url, timeout=120) as client:
            assert client.get("/model").json()["engine"] == "onnx"
            r = client.post("/predict", files={"file": ("clip.avi", clip.read_bytes(), "video/x-msvideo")})
            assert r.status_code == 200, r.text
            libs = _libraries(proc.pid)
        assert any(name.startswith("libonnxruntime") for name in libs), sorted(libs)  # the check can see libraries
        assert not [name for name in libs if "torch" in name], sorted(n for n in libs if "torch" in n)
        expected = Predictor(light_exports["lstm"]).predict(clip, name="clip.avi")
        assert [t["label"] for t in r.json()["top"]] == [t["label"] for t in expected["top"]]
        assert r.json()["segments"] == expected["segments"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            log, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
    assert proc.returncode == 0, log
    assert "engine onnx; torch not loaded" in log, log
