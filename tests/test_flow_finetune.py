"""A 2D CNN fine-tuned on optical flow images of a raw flow store (``actionlab finetune FLOW_RAW.h5``, TSN's flow
stream), flow features extracted with it, and what is refused: other flow settings, RGB frames, a flow features
store, predicting videos with the fine-tuning run itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from actionlab.cli.main import main
from actionlab.config import ExtractConfig, FlowConfig
from actionlab.data.index import index_dataset
from actionlab.data.manifest import read_manifest, write_manifest
from actionlab.features.backbones import create_backbone, get_backbone_spec
from actionlab.features.extract import extract_features
from actionlab.features.flow import flow_image
from actionlab.features.store import FeatureStore
from actionlab.features.weights import read_backbone_checkpoint, save_backbone_checkpoint
from actionlab.runs.inputs.flow import FlowFrameDataset

pytestmark = pytest.mark.usefixtures("one_thread")

RAW = ExtractConfig(modality="flow", num_frames=3, workers=0, flow=FlowConfig(output="raw", stack=2))
"""Raw flow at the default sampler's positions and the backbone's size: what flow features are drawn from."""


def run(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def flow_data(synth_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """8 videos (MoveRight / MoveLeft; train, val, test): ``m.csv`` and a raw flow store ``raw.h5``."""
    root = synth_factory("ucf101", classes=["MoveRight", "MoveLeft"], groups=4, clips_per_group=1)
    m, _ = index_dataset(root, workers=0, val_fraction=0.34)
    out = tmp_path_factory.mktemp("flow_finetune")
    write_manifest(m, out / "m.csv")
    report = extract_features(m, out / "raw.h5", RAW)
    assert report.done == len(m.records) and not report.failed
    return out


def test_flow_images_are_drawn_as_extraction_draws_them(flow_data: Path) -> None:
    pre = get_backbone_spec("mobilenet_v2").preprocess
    with FeatureStore(flow_data / "raw.h5") as store:
        keys = store.keys("train")
        labels = np.array([store.record(k).label_index for k in keys])
        test = FlowFrameDataset(store, keys, labels, per_video=3, bound=20.0, pre=pre, train=False, crop=pre.crop)
        assert len(test) == 3 * len(keys) and test.num_videos == len(keys)
        x, y, v = test[4]  # video 1, the centre of its second of 3 segments: row 1 of 3
        assert (y, v) == (labels[1], 1)
        torch.testing.assert_close(x, flow_image(store.array(keys[1])[1:2], 20.0, pre)[0])

        train = FlowFrameDataset(store, keys, labels, per_video=3, bound=20.0, pre=pre, train=True, crop=96)
        a = [train[i][0] for i in range(len(train))]
        assert all(t.shape == (3, 96, 96) for t in a)
        assert all(torch.equal(t, train[i][0]) for i, t in enumerate(a))  # the same item for the same (epoch, index)
        train.set_epoch(1)
        assert any(not torch.equal(t, train[i][0]) for i, t in enumerate(a))  # other crops in another epoch

        # A flip mirrors the image and the motion: x displacement d -> -d, so the x channel c -> 1 - c
        full = FlowFrameDataset(store, keys, labels, per_video=1, bound=20.0, pre=pre, train=True, crop=pre.crop)
        flip = FlowFrameDataset(store, keys, labels, per_video=1, bound=20.0, pre=pre, train=True, crop=pre.crop,
                                flip=True)
        flipped = 0
        for i in range(len(full)):
            plain, other = full[i][0], flip[i][0]
            if torch.equal(plain, other):
                continue
            flipped += 1
            m0, s0 = pre.mean[0], pre.std[0]
            torch.testing.assert_close(other[0] * s0 + m0, 1.0 - (plain[0] * s0 + m0).flip(-1), atol=1e-5, rtol=0)
            torch.testing.assert_close(other[1:], plain[1:].flip(-1))
        assert flipped > 0


def test_finetune_on_flow_then_extract_flow_features_with_it(flow_data: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ft = tmp_path / "ft"
    assert run("finetune", flow_data / "raw.h5", "--out", ft, "--epochs", "1", "--set", "frames.crop=96",
               "--set", "frames.test_per_video=2", "--device", "cpu") == 0
    assert "extract --modality flow --weights" in capsys.readouterr().out
    cfg = yaml.safe_load((ft / "config.yaml").read_text())
    # the flow preset: all layers, and no flips (they would turn MoveLeft's motion into MoveRight's)
    assert cfg["model"]["train_layers"] == "all" and cfg["frames"]["flip"] is False
    meta = read_backbone_checkpoint(ft / "backbone.pt")
    assert meta is not None and meta["classes"] == ["MoveRight", "MoveLeft"]
    flow = meta["extra"]["flow"]
    assert meta["extra"]["input"] == "optical flow"
    assert (flow["algorithm"], flow["stack"], flow["encoding"], flow["size"]) == ("farneback", 2, "image", 256)

    tuned, plain = tmp_path / "tuned.h5", tmp_path / "imagenet.h5"
    common = ["--modality", "flow", "--num-frames", "3", "--flow-stack", "2", "--workers", "0", "--engine", "torch"]
    assert run("extract", flow_data / "m.csv", "-o", tuned, "--weights", ft / "backbone.pt", *common) == 0
    assert run("extract", flow_data / "m.csv", "-o", plain, *common) == 0
    # what flow extraction reads by default (ExtractConfig.view auto: the centre crop)
    pre = dataclasses.replace(get_backbone_spec("mobilenet_v2").preprocess,
                              view=ExtractConfig(modality="flow").resolved_view)
    net = create_backbone("mobilenet_v2", weights=ft / "backbone.pt").eval()
    with FeatureStore(tuned) as t, FeatureStore(plain) as p, FeatureStore(flow_data / "raw.h5") as raw:
        key = t.keys()[0]
        with torch.no_grad():  # the store holds the fine-tuned CNN's features of the same flow images
            want = net.forward_features(flow_image(raw.array(key), 20.0, pre)).numpy()
        np.testing.assert_allclose(t.features(key, normalize=False), want, rtol=0.02, atol=0.02)
        assert not np.allclose(t.features(key, normalize=False), p.features(key, normalize=False), atol=0.05)
        assert t.provenance["weights"] != p.provenance["weights"]
    # --flow-from: the same store from the raw flow, without computing the flow again
    stored = tmp_path / "stored.h5"
    assert run("extract", flow_data / "m.csv", "-o", stored, "--weights", ft / "backbone.pt", *common,
               "--flow-from", flow_data / "raw.h5") == 0
    with FeatureStore(tuned) as t, FeatureStore(stored) as s:
        assert t.keys() == s.keys()
        for key in t.keys():
            np.testing.assert_array_equal(s.array(key), t.array(key))
            np.testing.assert_array_equal(s.frame_indices(key), t.frame_indices(key))
        assert {k: v for k, v in s.provenance.items() if k != "created"} == {
            k: v for k, v in t.provenance.items() if k != "created"}
    capsys.readouterr()
    other = [a if a != "3" else "4" for a in common]  # another sampler than the raw store's
    assert run("extract", flow_data / "m.csv", "-o", tmp_path / "other.h5", *other,
               "--flow-from", flow_data / "raw.h5") == 2
    assert "sampler.num_frames: raw store=3 this extraction=4" in capsys.readouterr().err
    assert run("extract", flow_data / "m.csv", "-o", tmp_path / "rgb.h5", "--flow-from", flow_data / "raw.h5") == 2
    assert "use it with --modality flow" in capsys.readouterr().err
    # a temporal model trains on them like on any flow features
    assert run("train", "--features", tuned, "--model", "lstm", "--run", tmp_path / "lstm", "--epochs", "1") == 0


def test_flow_weights_are_refused_where_they_do_not_fit(flow_data: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ft = tmp_path / "ft"
    assert run("finetune", flow_data / "raw.h5", "--out", ft, "--epochs", "1", "--set", "frames.crop=64",
               "--set", "frames.test_per_video=1", "--set", "frames.per_video=1", "--device", "cpu") == 0
    capsys.readouterr()
    m = flow_data / "m.csv"
    flow = ["--modality", "flow", "--num-frames", "3", "--workers", "0"]
    cases = [
        (["extract", m, "-o", tmp_path / "a.h5", *flow, "--flow-stack", "3"], "stack: this extraction=3 fine-tuned on=2"),
        (["extract", m, "-o", tmp_path / "b.h5", *flow, "--flow-stack", "2", "--flow-algorithm", "dis"],
         "algorithm: this extraction='dis' fine-tuned on='farneback'"),
        (["extract", m, "-o", tmp_path / "c.h5", "--num-frames", "3", "--workers", "0"], "fine-tuned on optical flow"),
        (["predict", next(Path(read_manifest(m).root).rglob("*.avi")), "--run", ft],
         "feature extractor, not a classifier"),
    ]
    for argv, message in cases:
        assert run(*argv, *([] if argv[0] == "predict" else ["--weights", ft / "backbone.pt"])) == 2
        assert message in capsys.readouterr().err
    assert not any((tmp_path / f"{n}.h5").exists() for n in "abc")

    # weights fine-tuned on RGB frames do not read flow
    rgb = save_backbone_checkpoint(tmp_path / "rgb.pt", backbone="mobilenet_v2", num_classes=2,
                                   state_dict=create_backbone("mobilenet_v2", weights="imagenet",
                                                              num_classes=2).state_dict())
    assert run("extract", m, "-o", tmp_path / "d.h5", *flow, "--weights", rgb) == 2
    assert "fine-tuned on rgb frames, not optical flow" in capsys.readouterr().err

    # fine-tuning reads raw flow, not flow features, nor flow too small for the crop
    small = tmp_path / "small.h5"
    assert run("extract", m, "-o", small, *flow, "--flow-output", "raw", "--flow-size", "64") == 0
    features = tmp_path / "features.h5"
    assert run("extract", m, "-o", features, *flow, "--engine", "torch") == 0
    capsys.readouterr()
    assert run("finetune", features, "--out", tmp_path / "x", "--epochs", "1") == 2
    assert "holds per-step flow features" in capsys.readouterr().err
    assert run("finetune", small, "--out", tmp_path / "y", "--epochs", "1") == 2
    assert "smaller than mobilenet_v2's 224px crop: extract the raw store at --flow-size 256" in capsys.readouterr().err
