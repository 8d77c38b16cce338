"""A trained model out of the lab: ``Predictor`` on runs and exports, ``actionlab export``, ``actionlab predict``
(many files, bad ones, ``--output``), and the streamed timeline. Real runs trained here on real XviD videos
(``tiny_lstm_run``, ``tiny_video_run``), real ONNX Runtime, real encoded output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionlab.cli import main
from actionlab.data.manifest import read_manifest
from actionlab.data.video.decode import VideoReader
from actionlab.evaluate.aggregate import log_softmax
from actionlab.evaluate.predictions import load_predictions
from actionlab.evaluate.timeline import WindowPlan, segments, stream_windows
from actionlab.predict.export import export_run
from actionlab.predict.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")


def test_videos(manifest: Path) -> list[tuple[str, Path]]:
    m = read_manifest(manifest)
    return [(r.path, m.abspath(r)) for r in m.split("test")]


test_videos.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def frames_run(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame classifier (MobileNetV2 fine-tuned on 64x64 frames for one epoch; 3 test frames per video)."""
    from actionlab.config import TrainConfig, apply_overrides
    from actionlab.runs.train import train_run

    run = tmp_path_factory.mktemp("frames") / "frames"
    cfg = apply_overrides(TrainConfig(), {"model.name": "frame_classifier", "model.pretrained": True,
                                          "frames.crop": 64, "frames.per_video": 1, "frames.test_per_video": 3,
                                          "frames.flip": False, "epochs": 1, "batch_size": 8, "device": "cpu"})
    train_run(cfg, run, manifest=tiny_manifest)
    return run


@pytest.fixture(scope="module")
def tsm_run(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video network the way the video_cpu preset trains one: TSM from ImageNet weights, 4 frames spread over
    each video, whole frames squeezed square (32 x 32 here), 2 test clips, 1 epoch."""
    from actionlab.config import apply_overrides
    from actionlab.presets import preset
    from actionlab.runs.train import train_run

    run = tmp_path_factory.mktemp("tsm") / "tsm"
    cfg = apply_overrides(preset("video_cpu"), {"clip.clip_len": 4, "clip.size": 32, "clip.resize": 36,
                                                "clip.test_clips": 2, "clip.cache_frames": False, "epochs": 1,
                                                "batch_size": 4, "device": "cpu"})
    train_run(cfg, run, manifest=tiny_manifest)
    return run


@pytest.fixture(scope="module")
def runs(tiny_lstm_run: Path, tiny_lstm_centre_run: Path, tiny_video_run: Path, frames_run: Path, tsm_run: Path
         ) -> dict[str, Path]:
    return {"lstm": tiny_lstm_run, "lstm_centre": tiny_lstm_centre_run, "r2p1d": tiny_video_run, "frames": frames_run,
            "tsm": tsm_run}


@pytest.fixture(scope="module")
def exports(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    for name, run in runs.items():
        assert main(["export", str(run), "-o", str(out / f"{name}.actionlab")]) == 0
    export_run(runs["r2p1d"], out / "r2p1d_ts.actionlab", fmt="torchscript")
    return {name: out / f"{name}.actionlab" for name in [*runs, "r2p1d_ts"]}


@pytest.mark.parametrize("run, export", [("lstm", "lstm"), ("lstm_centre", "lstm_centre"), ("r2p1d", "r2p1d"),
                                         ("r2p1d", "r2p1d_ts"), ("frames", "frames"), ("tsm", "tsm")])
def test_run_and_export_reproduce_the_evaluation(run: str, export: str, runs: dict[str, Path],
                                                 tiny_manifest: Path, exports: dict[str, Path]) -> None:
    """The Predictor on a run (PyTorch) and on its export (ONNX Runtime / TorchScript) gives every test video
    the score in the run's predictions_test.npz: one inference path."""
    run_dir = runs[run]
    preds = load_predictions(run_dir / "predictions_test.npz")
    on_run, on_export = Predictor(run_dir, device="cpu"), Predictor(exports[export])
    assert on_export.engine == ("torchscript" if export.endswith("_ts") else "onnx")
    for key, path in test_videos(tiny_manifest):
        expected = preds.scores[list(preds.keys).index(key)]
        for p in (on_run, on_export):
            got = p.scores(path)
            np.testing.assert_allclose(got.video, expected, atol=2e-4)
            assert got.video.argmax() == expected.argmax()
    manifest = json.loads((exports[export] / "manifest.json").read_text())
    assert manifest["classes"] == list(preds.classes) and manifest["kind"] == on_run.kind
    if run.startswith("lstm"):  # extracted from the whole frame (the default) or (extract --view centre) the crop
        assert manifest["preprocessing"].get("view", "centre") == ("centre" if run == "lstm_centre" else "full")
    assert all(d < 1e-3 for d in manifest["verification"]["max_abs_diff"].values())


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_predict.py"
PLAIN = """
import json, sys
sys.path.insert(0, {folder!r})
from onnx_predict import Export
model = Export({export!r})
print(json.dumps([model(v).tolist() for v in {videos!r}]))
assert "torch" not in sys.modules and "actionlab" not in sys.modules
"""


@pytest.mark.parametrize("name", ["lstm", "lstm_centre", "r2p1d", "frames", "tsm"])
def test_an_export_needs_only_onnxruntime_and_its_manifest(name: str, exports: dict[str, Path], runs: dict[str, Path],
                                                           tiny_manifest: Path) -> None:
    """examples/onnx_predict.py follows manifest.json by hand (PyAV, numpy, plain onnxruntime sessions; neither
    torch nor actionlab imported) and gets the run's test predictions."""
    keys, videos = zip(*test_videos(tiny_manifest))
    code = PLAIN.format(folder=str(EXAMPLE.parent), export=str(exports[name]), videos=[str(v) for v in videos])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    preds = load_predictions(runs[name] / "predictions_test.npz")
    for key, logp in zip(keys, json.loads(out.stdout)):
        np.testing.assert_allclose(logp, preds.scores[list(preds.keys).index(key)], atol=2e-4)


def test_import_actionlab_stays_light() -> None:
    """``import actionlab`` does not load torch; ``actionlab.Predictor`` loads it on first use."""
    code = ("import sys, actionlab; assert 'torch' not in sys.modules, 'torch imported'; "
            "P = actionlab.Predictor; assert P.__module__ == 'actionlab.predict.predictor'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_predictor_loads_no_training_sweep_or_tensorboard_code() -> None:
    """Scoring a video needs the model, not the machinery that trained it."""
    code = ("import sys; from actionlab import Predictor; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'optuna') or "
            "m.startswith(('actionlab.train', 'actionlab.runs', 'actionlab.sweep', 'actionlab.synth'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=300, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_export_refuses_what_it_cannot_vouch_for(tiny_video_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "strict.actionlab"
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        export_run(tiny_video_run, out, tolerance=1e-12)  # float32 graphs cannot agree to 1e-12
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
    assert main(["export", str(tiny_video_run), "-o", str(tmp_path / "model.onnx")]) == 2
    assert "model.actionlab" in capsys.readouterr().err
    assert main(["export", str(tiny_video_run), "-o", str(out)]) == 0
    assert "max |PyTorch - onnx|" in capsys.readouterr().out
    assert main(["export", str(tiny_video_run), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_predict_answers_the_good_files_and_names_the_bad(tiny_video_run: Path, tiny_manifest: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (a, va), (b, vb) = test_videos(tiny_manifest)[:2]
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(Path(vb).read_bytes()[:3000])
    argv = ["predict", str(va), str(text), str(truncated), str(tmp_path / "missing.avi"), str(vb),
            "--run", str(tiny_video_run), "--json", "--device", "cpu"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [r["video"] for r in results] == [str(va), str(vb)]
    errors = [line for line in captured.err.splitlines() if ": error: " in line]
    assert len(errors) == 3
    for bad, line in zip((text, truncated, tmp_path / "missing.avi"), errors):
        assert str(bad) in line and "Traceback" not in line
    # the command is a thin wrapper: the same labels and scores as the Predictor
    p = Predictor(tiny_video_run, device="cpu")
    for r, video in zip(results, (va, vb)):
        direct = p.predict(video)
        assert [t["label"] for t in r["top"]] == [t["label"] for t in direct["top"]]
        np.testing.assert_allclose([t["score"] for t in r["top"]], [t["score"] for t in direct["top"]], atol=1e-6)
        assert r["segments"] == direct["segments"]


def test_annotated_video_keeps_every_frame(tiny_lstm_run: Path, tiny_manifest: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, video = test_videos(tiny_manifest)[0]
    out = tmp_path / "annotated.mp4"
    assert main(["predict", str(video), "--run", str(tiny_lstm_run), "--output", str(out), "--segments",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "segments:" in printed and "annotated video" in printed
    with VideoReader(video) as src, VideoReader(out) as ann:
        assert ann.info.num_frames == src.info.num_frames and ann.info.codec == "h264"
        assert abs(ann.info.fps - src.info.fps) < 1e-6
        first = ann.get_frames([0])[0]
        plain = src.get_frames([0])[0]
    bar = first[:6]  # the label bar: dark, with white text in it; below it the video itself
    assert bar.mean() < 80 and bar.max() > 200
    assert np.abs(first[-20:].astype(int) - plain[-20:]).mean() < 12
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=nb_read_frames", "-of", "csv=p=0", str(out)], capture_output=True, text=True,
                               check=True)
        assert int(probe.stdout.strip()) == src.info.num_frames


def test_frames_in_memory_and_lists(tiny_video_run: Path, tiny_manifest: Path) -> None:
    p = Predictor(tiny_video_run, device="cpu", top_k=2)
    (_, a), (_, b) = test_videos(tiny_manifest)[:2]
    frames = VideoReader(a).get_frames(np.arange(VideoReader(a).info.num_frames))  # (T, H, W, 3) uint8
    result = p(frames, fps=12.5)
    assert result["video"] == "<frames>" and result["fps"] == 12.5
    assert result["duration"] == pytest.approx(len(frames) / 12.5)
    assert len(result["top"]) == 2 and result["top"][0]["score"] >= result["top"][1]["score"]
    assert result["segments"][0]["start"] == 0 and result["segments"][-1]["end"] == pytest.approx(len(frames) / 12.5)
    both = p([a, b])
    assert isinstance(both, list) and [r["video"] for r in both] == [str(a), str(b)]
    with pytest.raises(ValueError, match="uint8"):
        p(frames.astype(np.float32))


def test_timeline_streams_each_frame_once_and_scores_every_window() -> None:
    """One forward pass, ascending, never more than a batch at a time; each window scored as if alone."""
    n, plan = 503, WindowPlan(stride=3, length=7, hop=4)
    asked: list[np.ndarray] = []

    def get_frames(idx: np.ndarray) -> np.ndarray:
        asked.append(idx)
        return np.repeat(idx[:, None, None, None], 3, axis=-1).astype(np.int64)  # (N, 1, 1, 3): the index

    def combine(steps: np.ndarray) -> np.ndarray:  # (B, L, 1, 1, 3) -> (B, 2): first and last frame index
        return steps[:, [0, -1], 0, 0, 0].astype(np.float32)

    out, spans = stream_windows(get_frames, n, plan, lambda f: f, combine, batch=10)
    grid, windows = plan.layout(n)
    flat = np.concatenate(asked)
    assert np.array_equal(flat, grid) and max(len(a) for a in asked) <= 10
    np.testing.assert_array_equal(out, grid[windows[:, [0, -1]]])
    np.testing.assert_array_equal(spans, grid[windows[:, [0, -1]]])
    assert spans[-1, 1] == grid[-1]  # the last window reaches the end


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(1, 5),
       st.integers(0, 2**31 - 1))
def test_segments_tile_the_video(n: int, stride: int, length: int, hop: int, width: int, seed: int) -> None:
    grid, windows = WindowPlan(stride, length, hop).layout(n)
    spans = np.stack([grid[windows[:, 0]], grid[windows.max(1)]], axis=1)
    logp = log_softmax(np.random.default_rng(seed).standard_normal((len(spans), 3)))
    segs = segments(logp, spans, n, width)
    assert segs[0][0] == 0 and segs[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(segs, segs[1:]))  # contiguous
    assert all(a[2] != b[2] for a, b in zip(segs, segs[1:]))  # merged: neighbours differ
    assert all(0 < s[3] <= 1 for s in segs)


def test_a_graph_that_needs_fixed_shapes_is_exported_for_one_item(tmp_path: Path) -> None:
    """Frames of a clip through a 2D CNN with adaptive pooling (as late_fusion): the ONNX exporter refuses a
    variable batch, so the graph is written for one item and batches go through it one by one."""
    import torch
    from torch import nn

    from actionlab.predict.export import export_graph
    from actionlab.predict.graphs import onnx_net

    class FramePool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.pool, self.fc = nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d((2, 2)), nn.Linear(48, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, 5)
            return self.fc(self.pool(self.conv(x.flatten(0, 1))).reshape(len(x), -1))

    module = FramePool().eval()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((n, 3, 3, 10, 10)).astype(np.float32) for n in (2, 3)]
    file, diff, shape = export_graph(module, inputs, {0: "batch"}, tmp_path / "g.onnx", "onnx", 1e-3)
    assert shape == [1, 3, 3, 10, 10] and diff < 1e-5
    x = rng.standard_normal((5, 3, 3, 10, 10)).astype(np.float32)
    with torch.inference_mode():
        np.testing.assert_allclose(onnx_net(file)(x), module(torch.from_numpy(x)).numpy(), atol=1e-5)
