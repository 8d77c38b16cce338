"""Shared fixtures: small generated datasets in the public layouts, made once per test session.

- ``synth_ucf101``: a tiny UCF-101-layout dataset (``UCF-101/`` + ``ucfTrainTestlist/``): 4 classes
  (``SYNTH_UCF101_CLASSES``), 3 groups x 2 clips per class, 24 frames of 96x128 XviD at 25 fps.
- ``synth_factory(layout="ucf101", **kwargs) -> Path``: any other small layout; the keyword arguments are
  those of :func:`actionlab.synth.families.make_synthetic_dataset` (small defaults: 2 classes, 2 groups,
  2 clips, 16 frames, 64x80). Calls with the same arguments share one directory, so treat it as read-only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from actionlab.synth.families import make_synthetic_dataset

# Under pytest-xdist (`make test`: -n 2) each worker gets its share of the cores: two workers with torch's
# default of every core each would oversubscribe a 2-core machine.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

SYNTH_UCF101_CLASSES = ["GrowCircle", "ShrinkCircle", "FadeIn", "BounceBall"]
SYNTH_UCF101_KWARGS: dict[str, Any] = dict(classes=SYNTH_UCF101_CLASSES, groups=3, clips_per_group=2,
                                           num_frames=24, size=(96, 128), fps=25, seed=0)
SMALL_DEFAULTS: dict[str, Any] = dict(classes=["GrowCircle", "ShrinkCircle"], groups=2, clips_per_group=2,
                                      num_frames=16, size=(64, 80), fps=25, seed=0, workers=0)


@pytest.fixture(scope="session")
def synth_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make(layout="ucf101", **kwargs) -> Path``: a cached small synthetic dataset (read-only)."""
    cache: dict[str, Path] = {}

    def make(layout: str = "ucf101", **kwargs: Any) -> Path:
        args = {**SMALL_DEFAULTS, **kwargs, "layout": layout}
        key = repr(sorted((k, repr(v)) for k, v in args.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth_{layout}") / "data"
            cache[key] = make_synthetic_dataset(out, **args)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def synth_ucf101(synth_factory: Callable[..., Path]) -> Path:
    """Root of a tiny UCF-101-layout dataset: ``root/UCF-101/<Class>/*.avi`` + ``root/ucfTrainTestlist/``."""
    return synth_factory("ucf101", **SYNTH_UCF101_KWARGS)


@pytest.fixture
def one_thread() -> Any:
    """Run a test with one torch thread: tiny models only add thread contention on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------- tiny trained runs


@pytest.fixture(scope="session")
def tiny_manifest(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of ``synth_ucf101`` with a validation split (read-only)."""
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import write_manifest

    m, _ = index_dataset(synth_ucf101, layout="ucf101", workers=0, val_fraction=0.34)
    path = tmp_path_factory.mktemp("tiny_runs") / "manifest.csv"
    write_manifest(m, path)
    return path


def _tiny_lstm(manifest: Path, name: str, *extract_args: str) -> Path:
    """A temporal run (MobileNetV2 ImageNet features of 8 frames per video, a 32-unit LSTM, 3 epochs; windows of
    6 steps) with its ``predictions_test.npz``, next to ``manifest``."""
    from actionlab.cli import main

    out = manifest.parent
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["extract", str(manifest), "-o", str(out / f"{name}.h5"), "--num-frames", "8",
                     "--workers", "0", "--batch-size", "32", *extract_args]) == 0
        assert main(["train", "--features", str(out / f"{name}.h5"), "--model", "lstm", "--run", str(out / name),
                     "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--set", "model.hidden_size=32",
                     "--set", "model.fc_size=32", "--set", "sequence.seq_len=6", "--set", "inference.window=6",
                     "--set", "inference.mode=windows", "--set", "inference.stride=2"]) == 0
    finally:
        torch.set_num_threads(n)
    return out / name


@pytest.fixture(scope="session")
def tiny_lstm_run(tiny_manifest: Path) -> Path:
    """A temporal run on whole frames, the default view (:func:`_tiny_lstm`, read-only)."""
    return _tiny_lstm(tiny_manifest, "lstm")


@pytest.fixture(scope="session")
def tiny_lstm_centre_run(tiny_manifest: Path) -> Path:
    """The same on the ImageNet centre crop (``extract --view centre``, read-only)."""
    return _tiny_lstm(tiny_manifest, "lstm_centre", "--view", "centre")


@pytest.fixture(scope="session")
def tiny_video_run(tiny_manifest: Path) -> Path:
    """A video-network run (R(2+1)D at a quarter width on 4-frame 32x32 clips, 2 test clips, 1 epoch) with its
    ``predictions_test.npz`` (read-only)."""
    from actionlab.config import TrainConfig, apply_overrides
    from actionlab.runs.train import train_run

    run = tiny_manifest.parent / "r2p1d"
    cfg = apply_overrides(TrainConfig(), {"model.name": "r2plus1d_18", "model.width": 0.25, "clip.clip_len": 4,
                                          "clip.frame_interval": 2, "clip.size": 32, "clip.resize": 36,
                                          "clip.test_clips": 2, "epochs": 1, "batch_size": 4, "device": "cpu"})
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(cfg, run, manifest=tiny_manifest)
    finally:
        torch.set_num_threads(n)
    return run
