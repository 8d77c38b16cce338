"""Inference engines: ONNX Runtime export/cache/verification against eager PyTorch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from actionlab.features import engine as E
from actionlab.features.backbones import Preprocess, create_backbone, get_backbone_spec

pytest.importorskip("onnxruntime")

# MobileNetV2 with its real weights, exported and compared at 96 px to keep the test quick on 2 cores
SPEC = dataclasses.replace(get_backbone_spec("mobilenet_v2"), preprocess=Preprocess(110, 96))


@pytest.fixture(scope="module")
def mobilenet() -> torch.nn.Module:
    return create_backbone("mobilenet_v2", weights="imagenet")


def _batch(n: int, size: int = 96, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_onnx_engine_matches_torch_and_is_cached(mobilenet, tmp_path) -> None:
    spec = SPEC
    onnx_engine = E.create_engine(mobilenet, spec, "cpu", "auto", with_head=True, onnx_dir=tmp_path)
    assert isinstance(onnx_engine, E.OnnxEngine)  # auto on CPU = ONNX Runtime
    torch_engine = E.create_engine(mobilenet, spec, "cpu", "torch", with_head=True)
    x = _batch(3)  # a batch size other than the export's: the batch axis is dynamic
    (f_onnx, l_onnx), (f_torch, l_torch) = onnx_engine(x), torch_engine(torch.from_numpy(x))
    assert f_onnx.shape == (3, 1280) and l_onnx.shape == (3, 1000) and f_onnx.dtype == np.float32
    np.testing.assert_allclose(f_onnx, f_torch, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(l_onnx, l_torch, atol=1e-3, rtol=1e-3)
    assert (l_onnx.argmax(1) == l_torch.argmax(1)).all()

    files = sorted(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))  # atomic write left no temp file
    mtime = files[0].stat().st_mtime_ns
    again = E.create_engine(mobilenet, spec, "cpu", "onnx", with_head=True, onnx_dir=tmp_path)
    assert again.path == files[0] and files[0].stat().st_mtime_ns == mtime  # reused, not re-exported
    features_only = E.create_engine(mobilenet, spec, "cpu", "onnx", with_head=False, onnx_dir=tmp_path)
    f, logits = features_only(x[:1])
    assert logits is None and np.allclose(f, f_onnx[:1], atol=1e-4)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_cache_key_follows_weights(tmp_path) -> None:
    spec = get_backbone_spec("resnet18")
    torch.manual_seed(0)
    a = create_backbone("resnet18", weights="none")
    torch.manual_seed(1)
    b = create_backbone("resnet18", weights="none")
    assert E.onnx_cache_path(a, spec, False, tmp_path) != E.onnx_cache_path(b, spec, False, tmp_path)
    assert E.onnx_cache_path(a, spec, False, tmp_path) == E.onnx_cache_path(a, spec, False, tmp_path)


def test_failed_verification_falls_back_or_raises(mobilenet, tmp_path, monkeypatch) -> None:
    spec = SPEC

    def disagree(*args, **kwargs):
        raise RuntimeError("engines disagree: max |difference| 1 > 0.001")

    monkeypatch.setattr(E, "check_engines_agree", disagree)
    fallback = E.create_engine(mobilenet, spec, "cpu", "auto", onnx_dir=tmp_path)
    assert isinstance(fallback, E.TorchEngine)
    assert not list(tmp_path.glob("*.onnx"))  # a bad export is not left in the cache

    def export_fails(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(E, "export_onnx", export_fails)
    with pytest.raises(RuntimeError, match="unsupported operator"):  # explicit onnx: no silent fallback
        E.create_engine(mobilenet, spec, "cpu", "onnx", onnx_dir=tmp_path)
    assert isinstance(E.create_engine(mobilenet, spec, "cpu", "auto", onnx_dir=tmp_path), E.TorchEngine)


def test_torch_engine_features_only_and_describe(mobilenet) -> None:
    spec = SPEC
    eng = E.create_engine(mobilenet, spec, "cpu", "torch")
    f, logits = eng(_batch(2))
    assert f.shape == (2, 1280) and logits is None and np.isfinite(f).all()
    assert E.describe_engine(eng)["engine"] == "torch"
    with pytest.raises(ValueError, match="engine must be"):
        E.create_engine(mobilenet, spec, "cpu", "tensorrt")


def test_check_engines_agree_detects_a_difference() -> None:
    class Fake:
        def __init__(self, offset: float) -> None:
            self.offset = offset

        def __call__(self, x):
            return x.reshape(len(x), -1)[:, :4] + self.offset, None

    assert E.check_engines_agree(Fake(0.0), Fake(0.0), size=8) == 0.0
    with pytest.raises(RuntimeError, match="disagree"):
        E.check_engines_agree(Fake(0.0), Fake(0.5), size=8)
