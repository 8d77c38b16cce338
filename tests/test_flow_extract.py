"""``extract --modality flow`` end to end on real encoded videos: raw flow and flow features in the store (with
their provenance), resume after an interruption, bad videos, RGB and flow stores read side by side (early
fusion) or refused when their manifests or samplers differ, and video networks trained on flow clips."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from actionlab.config import ExtractConfig, FlowConfig, TrainConfig, apply_overrides
from actionlab.data.index import index_dataset
from actionlab.data.manifest import Manifest, write_manifest
from actionlab.features.engine import create_engine
from actionlab.features.extract import ExtractError, extract_features, parts_dir
from actionlab.features.flow import file_features as video_flow_features
from actionlab.features.modalities import build_backbone
from actionlab.features.parts import part_contents
from actionlab.features.store import FeatureStore, IncompatibleStoreError
from actionlab.types import VideoRecord

pytestmark = pytest.mark.usefixtures("one_thread")

RAW = ExtractConfig(modality="flow", sampler="all", workers=0,
                    flow=FlowConfig(output="raw", stack=1, size=32))
FEATURES = ExtractConfig(modality="flow", num_frames=3, workers=0, engine="torch", batch_size=8,
                         flow=FlowConfig(stack=2))
RGB = ExtractConfig(num_frames=3, workers=0, engine="torch", batch_size=8)
TINY = {"epochs": 1, "batch_size": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def manifest(synth_factory, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:  # type: ignore[no-untyped-def]
    """8 videos of 16 frames: MoveRight / MoveLeft, train, val and test."""
    root = synth_factory("ucf101", classes=["MoveRight", "MoveLeft"], groups=4, clips_per_group=1)
    m, _ = index_dataset(root, workers=0, val_fraction=0.34)
    path = tmp_path_factory.mktemp("flow_manifest") / "manifest.csv"
    write_manifest(m, path)
    return m, path


@pytest.fixture(scope="module")
def stores(manifest: tuple[Manifest, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("flow_stores")
    paths = {"raw": out / "raw.h5", "flow": out / "flow.h5", "rgb": out / "rgb.h5"}
    for name, cfg in (("raw", RAW), ("flow", FEATURES), ("rgb", RGB)):
        report = extract_features(manifest[0], paths[name], cfg)
        assert report.done == len(manifest[0].records) and not report.failed
    return paths


def test_flow_stores_hold_what_they_say(stores: dict[str, Path], manifest: tuple[Manifest, Path]) -> None:
    m = manifest[0]
    with FeatureStore(stores["raw"]) as raw, FeatureStore(stores["flow"]) as flow, FeatureStore(stores["rgb"]) as rgb:
        assert raw.content == "flow_fields" and flow.content == "features" and rgb.provenance["modality"] == "rgb"
        prov = raw.provenance
        assert prov["modality"] == "flow" and prov["dtype"] == "uint8" and prov["backbone"] is None
        assert prov["flow"]["algorithm"] == "farneback" and prov["flow"]["bound"] == 20.0 and prov["flow"]["size"] == 32
        assert prov["flow"]["params"]["winsize"] == 15 and "preset" not in prov["flow"]["params"]
        key = raw.keys()[0]
        q = raw.array(key)
        assert q.dtype == np.uint8 and q.shape == (16, 2, 32, 40)  # every frame's flow, short side 32
        # The flow of MoveRight points right, MoveLeft's left (where the diamond moves: |x| > 0.5 px).
        for k in raw.keys():
            x = raw.array(k)[:, 0].astype(np.float32) - 127.5
            moving = np.abs(x) > 3.5
            assert moving.sum() > 20 and np.sign(x[moving].mean()) == (1 if "MoveRight" in k else -1), k
        fp = flow.provenance
        assert fp["preprocessing"]["channels"] == 4 and fp["preprocessing"]["crop"] == 224
        assert fp["flow"]["size"] == 256 and fp["feature_dim"] == 1280 and fp["weights"] == "mobilenet_v2-b0353104.pth"
        assert flow.features(key).shape == (3, 1280)
        np.testing.assert_array_equal(flow.frame_indices(key), rgb.frame_indices(key))  # aligned steps
        # predict's path (one video file) gives the stored features
        rec = m.records[0]
        spec, module = build_backbone(FEATURES)
        engine = create_engine(module, spec, "cpu", "torch")
        positions, feats, _ = video_flow_features(m.abspath(rec), FEATURES, spec, engine)
        k0 = flow.keys()[0]
        assert flow.record(k0).path == rec.path
        np.testing.assert_array_equal(positions, flow.frame_indices(k0))
        np.testing.assert_allclose(feats, flow.features(k0, normalize=False), atol=2e-2, rtol=1e-2)


def test_flow_extraction_resumes_after_an_interruption(stores: dict[str, Path], manifest: tuple[Manifest, Path],
                                                       tmp_path: Path) -> None:
    m = manifest[0]
    out = tmp_path / "raw.h5"
    calls: list[int] = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 4:  # the start, then three finished videos (each in its own part file)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(m, out, RAW, part_videos=1, progress=interrupt)
    assert not out.exists()
    finished = {k for p in parts_dir(out).glob("part-*.h5") for k in part_contents(p)[1]}
    assert 2 <= len(finished) < len(m.records)
    with pytest.raises(ExtractError, match=r"flow\.bound.*overwrite"):  # other flow settings: refused
        extract_features(m, out, dataclasses.replace(RAW, flow=dataclasses.replace(RAW.flow, bound=10.0)))
    report = extract_features(m, out, RAW)
    assert report.skipped == len(finished) and report.done == len(m.records) - len(finished)
    assert not parts_dir(out).exists()
    with FeatureStore(out) as got, FeatureStore(stores["raw"]) as ref:
        assert got.keys() == ref.keys()
        for k in ref.keys():
            np.testing.assert_array_equal(got.array(k), ref.array(k))
    assert extract_features(m, out, RAW).done == 0  # finished: a rerun is a no-op


def test_bad_video_is_named_or_skipped(manifest: tuple[Manifest, Path], tmp_path: Path) -> None:
    m = manifest[0]
    bad = tmp_path / "v_Broken_g01_c01.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(2000))
    records = [*m.records[:2], VideoRecord(str(bad), m.classes[0], 0, "train", "broken", 16, 25.0, 0.64)]
    bad_manifest = Manifest(m.root, m.classes, records, m.layout)
    with pytest.raises(ExtractError, match=r"v_Broken_g01_c01\.avi.*skip_bad"):
        extract_features(bad_manifest, tmp_path / "raw.h5", RAW)
    report = extract_features(bad_manifest, tmp_path / "raw.h5", RAW, skip_bad=True)
    assert [p for p, _ in report.failed] == [str(bad)]


def test_rgb_and_flow_stores_of_other_manifests_or_samplers_are_refused(
        stores: dict[str, Path], manifest: tuple[Manifest, Path], tmp_path: Path) -> None:
    from actionlab.runs.inputs import FeatureInputs

    m = manifest[0]
    cfg = apply_overrides(TrainConfig(), TINY)
    other_sampler = tmp_path / "rgb_2frames.h5"
    extract_features(m, other_sampler, dataclasses.replace(RGB, num_frames=2))
    with pytest.raises(IncompatibleStoreError, match=r"sampler\.num_frames: flow\.h5=3 rgb_2frames\.h5=2"):
        FeatureInputs([stores["flow"], other_sampler], cfg, device=__import__("torch").device("cpu"))
    subset = Manifest(m.root, m.classes, m.records[:2], m.layout)
    other_manifest = tmp_path / "rgb_subset.h5"
    extract_features(subset, other_manifest, RGB)
    with pytest.raises(IncompatibleStoreError, match=r"manifest_checksum: rgb_subset\.h5='[0-9a-f]+' flow\.h5="):
        FeatureInputs([other_manifest, stores["flow"]], cfg, device=__import__("torch").device("cpu"))
    with pytest.raises(ValueError, match="raw optical flow fields for video networks"):
        FeatureInputs([stores["rgb"], stores["raw"]], cfg, device=__import__("torch").device("cpu"))


def test_early_fusion_concatenates_rgb_and_flow_features(stores: dict[str, Path], manifest: tuple[Manifest, Path],
                                                         tmp_path: Path) -> None:
    from actionlab.config import from_dict
    from actionlab.evaluate.predictions import load_predictions
    from actionlab.features.modalities import stacked_video_features
    from actionlab.models.checkpoint import load_checkpoint
    from actionlab.runs.train import train_run

    cfg = apply_overrides(TrainConfig(), {**TINY, "model.name": "lstm", "sequence.seq_len": 3})
    train_run(cfg, tmp_path / "early", features=[stores["rgb"], stores["flow"]])
    meta = load_checkpoint(tmp_path / "early" / "checkpoints" / "best.pt")["meta"]
    assert meta["model_kwargs"]["input_dim"] == 2 * 1280 and len(meta["feature_mean"]) == 2 * 1280
    assert [s["extract"]["modality"] for s in meta["stores"]] == ["rgb", "flow"]
    val = load_predictions(tmp_path / "early" / "predictions_val.npz")  # what `fuse` chooses its weight on
    test = load_predictions(tmp_path / "early" / "predictions_test.npz")
    assert val.num_videos and test.num_videos and not set(val.keys) & set(test.keys)
    # One video file through each store's pipeline, as the checkpoint lists them: the stored rows, side by side.
    parts = []
    for entry in meta["stores"]:
        extract = from_dict(ExtractConfig, entry["extract"])
        spec, module = build_backbone(extract)
        parts.append((extract, spec, create_engine(module, spec, "cpu", "torch")))
    rec = manifest[0].records[1]
    _, feats, _ = stacked_video_features(manifest[0].abspath(rec), parts)
    with FeatureStore(stores["rgb"]) as rgb, FeatureStore(stores["flow"]) as flow:
        key = rgb.keys()[1]
        stored = np.concatenate([rgb.features(key, normalize=False), flow.features(key, normalize=False)], axis=1)
    np.testing.assert_allclose(feats, stored, atol=2e-2, rtol=1e-2)


def test_predict_on_flow_early_and_fused_runs_gives_their_evaluation_scores(stores: dict[str, Path],
                                                                           manifest: tuple[Manifest, Path],
                                                                           tmp_path: Path) -> None:
    """The Predictor recomputes flow from the file as extraction did: a flow run, an early-fusion run (RGB and
    flow stores side by side), a late-fusion run and one fused again score a test video as their
    ``predictions_test.npz`` do; none of them exports (optical flow is OpenCV code, not a graph)."""
    from actionlab.evaluate.predictions import load_predictions
    from actionlab.predict.export import export_run
    from actionlab.predict.predictor import Predictor
    from actionlab.runs.fuse import fuse_runs
    from actionlab.runs.train import train_run

    cfg = apply_overrides(TrainConfig(), {**TINY, "model.name": "lstm", "sequence.seq_len": 3})
    runs = {"flow": tmp_path / "flow_lstm", "early": tmp_path / "early", "rgb": tmp_path / "rgb"}
    train_run(cfg, runs["flow"], features=stores["flow"])
    train_run(cfg, runs["early"], features=[stores["rgb"], stores["flow"]])
    train_run(cfg, runs["rgb"], features=stores["rgb"])
    runs["fused"] = tmp_path / "fused"
    fuse_runs(runs["rgb"], runs["flow"], runs["fused"])
    runs["nested"] = tmp_path / "nested"  # a fused run fused again with a third stream (here: flow once more)
    fuse_runs(runs["fused"], runs["flow"], runs["nested"])
    for name in ("flow", "early", "fused", "nested"):
        test = load_predictions(runs[name] / "predictions_test.npz")
        video = manifest[0].root / test.keys[0]
        p = Predictor(runs[name], device="cpu")
        scores = p.scores(video)
        np.testing.assert_allclose(scores.video, test.scores[0], atol=2e-2, err_msg=name)
        assert p.predict(video)["top"][0]["label"] in p.classes and len(scores.spans) == len(scores.windows) >= 1
        with pytest.raises(ValueError, match="exports hold graphs"):
            export_run(runs[name], tmp_path / f"{name}.actionlab")
        with pytest.raises(ValueError, match="video file"):
            p.scores(np.zeros((8, 32, 32, 3), np.uint8))


def test_video_network_trains_on_flow_clips(stores: dict[str, Path], tmp_path: Path) -> None:
    from actionlab.models.checkpoint import load_checkpoint
    from actionlab.runs.train import train_run

    cfg = apply_overrides(TrainConfig(), {**TINY, "model.name": "slow_fusion", "model.width": 0.25,
                                          "clip.clip_len": 10, "clip.frame_interval": 1, "clip.size": 32,
                                          "clip.resize": 32, "clip.test_clips": 2})
    result = train_run(cfg, tmp_path / "slow", features=stores["raw"])
    assert 0.0 <= result["top1"] <= 1.0
    meta = load_checkpoint(tmp_path / "slow" / "checkpoints" / "best.pt")["meta"]
    assert meta["model_kwargs"]["in_channels"] == 2 and meta["preprocessing"]["input"] == "optical flow"
    with pytest.raises(ValueError, match="clip.hue=0"):
        train_run(apply_overrides(cfg, {"clip.hue": 0.5}), tmp_path / "hue", features=stores["raw"])
    with pytest.raises(ValueError, match="per-step flow features"):
        train_run(cfg, tmp_path / "feat", features=stores["flow"])


def test_flow_workers_start_fresh_after_the_parent_ran_opencv(stores: dict[str, Path], manifest: tuple[Manifest, Path],
                                                              tmp_path: Path) -> None:
    """Flow decoding workers forked from a process whose OpenCV and FFmpeg threads had run waited forever
    (bench_flow did that: bare OpenCV, then extraction). In a child process, so a hang fails instead of
    stalling the suite; 2 workers store exactly what the in-process extraction stored."""
    import subprocess
    import sys

    script = f"""
import dataclasses, pickle, sys
import cv2
from actionlab.data.manifest import read_manifest
from actionlab.features.extract import extract_features
from actionlab.features.flow import FlowStep
cfg = pickle.loads({pickle.dumps(RAW)!r})
m = read_manifest({str(manifest[1])!r})
cv2.setNumThreads(2)
for rec in m.records:  # the parent decodes and computes flow with OpenCV's threads first
    FlowStep(cfg, 32, None)(m.abspath(rec))
report = extract_features(m, {str(tmp_path / 'raw2.h5')!r}, dataclasses.replace(cfg, workers=2))
sys.exit(0 if report.done == len(m.records) else 3)
"""
    done = subprocess.run([sys.executable, "-c", script], timeout=180, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with FeatureStore(stores["raw"]) as one, FeatureStore(tmp_path / "raw2.h5") as two:
        assert one.keys() == two.keys()
        for k in one.keys():
            np.testing.assert_array_equal(one.array(k), two.array(k))
