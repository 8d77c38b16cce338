"""``extract --modality diff``: frame differences as one image per step (what the image holds: where, which way
and in which order things move; still pixels grey), extracted from real encoded videos into a store with its
provenance, the same features through predict's one-file path, aligned with an RGB store, and the settings the
modality refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionlab.config import MODALITY_NAMES, ExtractConfig, FlowConfig
from actionlab.data.index import index_dataset
from actionlab.data.manifest import Manifest
from actionlab.features.diff import DIFF_GAIN, difference_image, difference_windows
from actionlab.features.diff import file_features as diff_file_features
from actionlab.features.engine import create_engine
from actionlab.features.extract import extract_features
from actionlab.features.modalities import MODALITIES, build_backbone
from actionlab.features.preprocess import Preprocess
from actionlab.features.store import FeatureStore

pytestmark = pytest.mark.usefixtures("one_thread")

DIFF = ExtractConfig(modality="diff", num_frames=3, workers=0, engine="torch", batch_size=8)
RGB = ExtractConfig(num_frames=3, workers=0, engine="torch", batch_size=8)
PLAIN = Preprocess(resize=8, crop=8, view="full", mean=(0.0,) * 3, std=(1.0,) * 3)  # the whole frame, as it is


def moving_bar(direction: int, n: int = 5) -> np.ndarray:
    """``(n, 8, 16, 3)`` uint8: a white bar 2 px wide on black, moving 2 px per frame right (+1) or left (-1)."""
    frames = np.zeros((n, 8, 16, 3), np.uint8)
    for t in range(n):
        x = (5 if direction > 0 else 9) + direction * 2 * t
        frames[t, :, x:x + 2] = 255
    return frames


def test_difference_image_shows_where_which_way_and_in_which_order_things_move() -> None:
    windows = difference_windows(5, np.array([0]))
    np.testing.assert_array_equal(windows, [[0, 1, 2, 3]])
    right = difference_image(moving_bar(+1), windows, PLAIN)[0].numpy()
    assert right.shape == (3, 8, 16)
    # Channel k is frame k+1 less frame k: the bar's new place bright (1), its old place dark (0), the rest 0.5.
    for k in range(3):
        row = right[k, 0]
        new, old = 5 + 2 * (k + 1), 5 + 2 * k
        assert np.all(row[new:new + 2] == 1.0) and np.all(row[old:old + 2] == 0.0)
        still = np.ones(16, bool)
        still[[old, old + 1, new, new + 1]] = False
        assert np.all(row[still] == 0.5)
    # Moving left mirrors the image; the frames in reverse order flip each difference's sign and their order.
    left = difference_image(moving_bar(-1), windows, PLAIN)
    np.testing.assert_array_equal(left[0].numpy()[..., ::-1], right)
    backwards = difference_image(moving_bar(+1)[::-1][1:], windows, PLAIN)
    np.testing.assert_allclose(backwards[0].numpy(), 1.0 - right[::-1])
    assert not np.allclose(backwards[0].numpy(), right)
    # A small difference is amplified by the gain, and normalisation is the backbone's.
    dim = np.zeros((4, 8, 8, 3), np.uint8)
    dim[1:] = 16
    out = difference_image(dim, np.array([[0, 1, 2, 3]]), Preprocess(resize=8, crop=8)).numpy()
    pre = Preprocess(resize=8, crop=8)
    expected = (0.5 + DIFF_GAIN * 16 / 255 - pre.mean[0]) / pre.std[0]
    assert out[0, 0, 0, 0] == pytest.approx(expected, rel=1e-5)
    assert out[0, 1, 0, 0] == pytest.approx((0.5 - pre.mean[1]) / pre.std[1], rel=1e-5)


def test_every_modality_a_config_accepts_has_a_module() -> None:
    assert set(MODALITY_NAMES) == set(MODALITIES)


def test_diff_refuses_what_is_not_its_own() -> None:
    with pytest.raises(ValueError, match="modality=flow only"):
        ExtractConfig(modality="diff", flow=FlowConfig(stack=2))
    with pytest.raises(ValueError, match="not modality=diff"):
        ExtractConfig(modality="diff", predictions=True)
    assert ExtractConfig(modality="diff").resolved_view == "centre"


def test_diff_store_holds_aligned_features_that_predict_computes_again(
        synth_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = synth_factory("ucf101", classes=["MoveRight", "MoveLeft"], groups=2, clips_per_group=1)
    m: Manifest = index_dataset(root, workers=0, val_fraction=0.0)[0]
    paths = {"diff": tmp_path / "diff.h5", "rgb": tmp_path / "rgb.h5"}
    for name, cfg in (("diff", DIFF), ("rgb", RGB)):
        report = extract_features(m, paths[name], cfg)
        assert report.done == len(m.records) and not report.failed
    with FeatureStore(paths["diff"]) as diff, FeatureStore(paths["rgb"]) as rgb:
        prov = diff.provenance
        assert prov["modality"] == "diff" and prov["feature_dim"] == 1280 and prov["flow"] is None
        assert prov["preprocessing"]["input"] == "frame differences" and prov["preprocessing"]["gain"] == DIFF_GAIN
        key = diff.keys()[0]
        np.testing.assert_array_equal(diff.frame_indices(key), rgb.frame_indices(key))  # aligned steps
        assert not np.allclose(diff.features(key, normalize=False), rgb.features(key, normalize=False), atol=0.1)  # another input than the frames
        rec = next(r for r in m.records if key.endswith(Path(r.path).name))
        spec, module = build_backbone(DIFF)
        engine = create_engine(module, spec, "cpu", "torch")
        positions, feats, _ = diff_file_features(m.abspath(rec), DIFF, spec, engine)
        np.testing.assert_array_equal(positions, diff.frame_indices(key))
        np.testing.assert_allclose(feats, diff.features(key, normalize=False), atol=2e-2, rtol=1e-2)

    # A run trained on the store predicts a video file as its evaluation scored it (predict's one path).
    from actionlab.config import TrainConfig, apply_overrides
    from actionlab.evaluate.predictions import load_predictions
    from actionlab.predict.predictor import Predictor
    from actionlab.runs.train import train_run

    cfg = apply_overrides(TrainConfig(), {"epochs": 1, "batch_size": 4, "device": "cpu", "model.name": "lstm",
                                          "sequence.seq_len": 3})
    train_run(cfg, tmp_path / "run", features=paths["diff"])
    test = load_predictions(tmp_path / "run" / "predictions_test.npz")
    predictor = Predictor(tmp_path / "run", device="cpu")
    assert predictor.describe()["modality"] == "diff"
    np.testing.assert_allclose(predictor.scores(m.root / test.keys[0]).video, test.scores[0], atol=2e-2)
