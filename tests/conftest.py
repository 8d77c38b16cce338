"""Shared fixtures: small generated datasets in the public layouts, made once per test session.

- ``synth_ucf101``: a tiny UCF-101-layout dataset (``UCF-101/`` + ``ucfTrainTestlist/``): 4 classes
  (``SYNTH_UCF101_CLASSES``), 3 groups x 2 clips per class, 24 frames of 96x128 XviD at 25 fps.
- ``synth_factory(layout="ucf101", **kwargs) -> Path``: any other small layout; the keyword arguments are
  those of :func:`actionlab.data.synth.make_synthetic_dataset` (small defaults: 2 classes, 2 groups,
  2 clips, 16 frames, 64x80). Calls with the same arguments share one directory, so treat it as read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from actionlab.data.synth import make_synthetic_dataset

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
