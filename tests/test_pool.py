"""Spatial pooling that keeps where things are (``ExtractConfig.pool``): a 2x2 grid of averages instead of one
global average. Its sizes, what it sees that the average does not (a shape at the left or the right of the
frame), the stores and runs it must never be mixed with, and one inference path from extraction to ``predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from actionlab.cli import main
from actionlab.config import ExtractConfig
from actionlab.data.manifest import read_manifest
from actionlab.evaluate.predictions import load_predictions
from actionlab.features.backbones import create_backbone, get_backbone_spec
from actionlab.features.frames import build_provenance, compat
from actionlab.features.layers import grid_pool
from actionlab.features.rgb import build_pipeline
from actionlab.features.store import FeatureStore, IncompatibleStoreError, as_compared, compare_provenance
from actionlab.predict.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")

DIMS = {"avg": 1280, "grid": 1280, "grid_wide": 5120}
TRAIN = ["--model", "lstm", "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--set", "model.hidden_size=32",
         "--set", "model.fc_size=32", "--set", "sequence.seq_len=6", "--set", "inference.window=6",
         "--set", "inference.mode=windows", "--set", "inference.stride=2"]
"""A tiny temporal run: a 32-unit LSTM, 3 epochs, windows of 6 steps (as ``conftest._tiny_lstm``)."""


@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_grid_cells_are_adaptive_pooling_cells(h: int, w: int, seed: int) -> None:
    """The slices give the cells of ``adaptive_avg_pool2d(x, 2)`` (odd sides share their middle), cell by cell."""
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, h, w)).astype(np.float32))
    expected = F.adaptive_avg_pool2d(x, 2).permute(0, 2, 3, 1).flatten(1)  # (B, 2, 2, C) -> (B, 4 C)
    torch.testing.assert_close(grid_pool(x), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("pool", list(DIMS))
def test_feature_size_of_each_pooling(pool: str) -> None:
    """Module, spec and the features of a 4:3 frame agree on D."""
    model = create_backbone("mobilenet_v2", weights="none", pool=pool)
    with torch.no_grad():
        f = model.forward_features(torch.zeros(2, 3, 224, 298))
    assert model.pool == pool
    assert model.feature_dim == get_backbone_spec("mobilenet_v2", pool).feature_dim == f.shape[1] == DIMS[pool]


def test_grids_are_refused_where_they_do_not_exist() -> None:
    with pytest.raises(ValueError, match="backbones with it: mobilenet_v2"):
        create_backbone("resnet18", weights="none", pool="grid")
    with pytest.raises(ValueError, match="pool must be one of"):
        ExtractConfig(pool="max")
    with pytest.raises(ValueError, match="need pool=avg"):  # the ImageNet head reads the average only
        ExtractConfig(pool="grid", predictions=True)
    model = create_backbone("mobilenet_v2", weights="none", pool="grid")
    with pytest.raises(ValueError, match="head reads pool='avg'"):  # same 1280-d shape: it must not run silently
        model(torch.zeros(1, 3, 64, 64))


def _diamond_frame(centre_x: int, size: int = 224, radius: int = 28) -> np.ndarray:
    """uint8 ``(size, size, 3)``: a mid-grey frame with a white diamond (mirror-symmetric) at ``(centre_x, size/2)``."""
    yy, xx = np.mgrid[:size, :size]
    frame = np.full((size, size, 3), 110, np.uint8)
    frame[np.abs(xx - centre_x) + np.abs(yy - size // 2) <= radius] = (240, 240, 240)
    return frame


def test_the_grid_sees_left_from_right_and_the_average_does_not() -> None:
    """A symmetric shape at the left of the frame, then (the mirror image) at the right: the ImageNet average
    barely changes; the grid changes, as its left and right cells swap."""
    left, right = _diamond_frame(64), _diamond_frame(159)
    assert np.array_equal(right, left[:, ::-1])  # the same shape moved right by 95 px
    spec = get_backbone_spec("mobilenet_v2")
    x = spec.preprocess.preprocess_batch(np.stack([left, right, np.full_like(left, 110)]))

    def features(pool: str) -> np.ndarray:
        model = create_backbone("mobilenet_v2", weights="imagenet", pool=pool)
        with torch.no_grad():
            return model.forward_features(x).numpy().astype(np.float64)

    def change(f: np.ndarray) -> float:  # left -> right, relative to what the shape adds to the plain frame
        return float(np.linalg.norm(f[0] - f[1]) / np.linalg.norm(f[0] - f[2]))

    avg, grid, wide = features("avg"), features("grid"), features("grid_wide")
    assert change(avg) < 0.35
    assert change(grid) > 3 * change(avg) and change(wide) > 3 * change(avg)
    for f, c in ((grid, 320), (wide, 1280)):  # cells (TL, TR, BL, BR): mirroring swaps TL<->TR and BL<->BR
        swapped = f[0].reshape(2, 2, c)[:, ::-1].reshape(-1)
        assert np.linalg.norm(f[1] - swapped) < 0.5 * np.linalg.norm(f[1] - f[0])


@pytest.fixture(scope="module")
def grid_run(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporal run on grid features (8 frames per video, a 32-unit LSTM, 3 epochs), with its predictions."""
    out = tmp_path_factory.mktemp("grid")
    assert main(["extract", str(tiny_manifest), "-o", str(out / "grid.h5"), "--pool", "grid", "--num-frames", "8",
                 "--workers", "0", "--batch-size", "32"]) == 0
    assert main(["train", "--features", str(out / "grid.h5"), "--run", str(out / "run"), *TRAIN]) == 0
    return out / "run"


def test_grid_store_is_never_mixed_with_an_average_one(grid_run: Path, tiny_manifest: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The pooling is part of the store's provenance: checking a grid store against an avg extraction's
    expectations, extracting avg into a grid store, or resuming a grid run on an avg store (same 1280-d!) is
    refused, naming the pooling."""
    store = grid_run.parent / "grid.h5"
    with FeatureStore(store) as fs:
        assert fs.provenance["pool"] == "grid" and fs.feature_dim == 1280
        assert fs.provenance["extract_config"]["pool"] == "grid"
        avg_cfg = ExtractConfig(num_frames=8, workers=0, batch_size=32)
        expected = compat(build_provenance(read_manifest(tiny_manifest), avg_cfg, build_pipeline(avg_cfg),
                                           fs.provenance["splits"], avg_cfg.engine))
        with pytest.raises(IncompatibleStoreError, match="pool"):
            fs.check_compatible(expected)
        fs.check_compatible({**expected, "pool": "grid"})  # nothing else differs
        before = {k: v for k, v in fs.provenance.items() if k != "pool"}  # a store made before poolings existed
        assert as_compared(before)["pool"] == "avg" and not compare_provenance(as_compared(before), expected)
    args = ["--num-frames", "8", "--workers", "0", "--batch-size", "32"]
    capsys.readouterr()
    assert main(["extract", str(tiny_manifest), "-o", str(store), *args]) == 2
    assert "pool" in capsys.readouterr().err
    avg_store = tmp_path / "avg.h5"
    assert main(["extract", str(tiny_manifest), "-o", str(avg_store), *args]) == 0
    capsys.readouterr()
    assert main(["train", "--features", str(avg_store), "--run", str(grid_run), "--resume", *TRAIN]) == 2
    assert "pool: run='grid' now='avg'" in capsys.readouterr().err


def test_predictor_on_a_grid_run_reproduces_its_evaluation(grid_run: Path, tiny_manifest: Path,
                                                            tmp_path: Path) -> None:
    """``predict`` rebuilds the grid backbone from the run's recorded extraction, on the run (PyTorch head, ONNX
    backbone) and on its ONNX export: every test video's score is the one the evaluation stored."""
    preds = load_predictions(grid_run / "predictions_test.npz")
    assert main(["export", str(grid_run), "-o", str(tmp_path / "grid.actionlab")]) == 0
    predictors = [Predictor(grid_run, device="cpu"), Predictor(tmp_path / "grid.actionlab")]
    m = read_manifest(tiny_manifest)
    for rec in m.split("test"):
        expected = preds.scores[list(preds.keys).index(rec.path)]
        for predictor in predictors:
            np.testing.assert_allclose(predictor.scores(m.abspath(rec)).video, expected, atol=2e-4)
