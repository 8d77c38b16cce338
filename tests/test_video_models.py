"""End-to-end video networks: every registered model trains a step on a tiny clip, parameter counts match the
published figures, our S3D / R(2+1)D reproduce torchvision's outputs with the same weights, and I3D's
inflation turns a temporally constant clip into the 2D network's activations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models import video as tvv

from actionlab.features.weights import WeightsChecksumError, WeightsNotFoundError
from actionlab.models import create_model, list_models, model_entry
from actionlab.models.c3d import C3D
from actionlab.models.fusion import FusionVGG
from actionlab.models.i3d import I3D, inflate_2d_weights
from actionlab.models.r2plus1d import R2Plus1D
from actionlab.models.s3d import S3D, load_torchvision_state_dict

VIDEO_MODELS = list_models("video")

# The smallest clip each architecture accepts (default: (2, 3, 8, 32, 32)); batch 2 so BatchNorm can train
# on 1x1 maps. tv_s3d's fixed 2x7x7 final pooling needs 224 px and 9+ frames at the top: 13 frames.
INPUT_SHAPES = {"c3d": (2, 3, 16, 32, 32), "tv_s3d": (1, 3, 13, 224, 224), "slow_fusion": (2, 3, 10, 32, 32)}
BUILD_KWARGS: dict[str, dict[str, Any]] = {
    "fusion_vgg": {"clip_len": 8},
    "early_fusion": {"clip_len": 8, "width": 0.25},
    "single_frame_cnn": {"width": 0.25}, "late_fusion": {"width": 0.25}, "slow_fusion": {"width": 0.25},
    "tv_mvit_v1_b": {"clip_len": 8, "size": 32},
    "lrcn": {"backbone": "mobilenet_v2", "freeze_backbone": False, "hidden_size": 32},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # The test machine's cores are shared: one intra-op thread avoids OpenMP oversubscription stalls (5-10x).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so eval-mode parity tests exercise them."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_model_trains_a_step_and_accepts_channels_last_3d(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **BUILD_KWARGS.get(name, {}))
    clip = model.default_clip
    assert isinstance(clip["clip_len"], int) and isinstance(clip["size"], int)
    x = torch.randn(*INPUT_SHAPES.get(name, (2, 3, 8, 32, 32)))

    model.train()
    logits = model(x)
    assert logits.shape == (x.shape[0], 5) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.arange(x.shape[0]) % 5).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"{name}: parameters without a finite gradient: {no_grad[:5]}"

    # The training loop converts video models with .to(memory_format=channels_last_3d) on CUDA.
    model.eval()
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last_3d)
        out = model(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_lrcn_learns_a_brightness_cue_end_to_end() -> None:
    torch.manual_seed(0)
    model = create_model("lrcn", num_classes=2, backbone="small_cnn", freeze_backbone=False, hidden_size=32,
                         dropout=0.0)
    y = torch.tensor([0, 1, 0, 1])
    x = torch.randn(4, 3, 8, 16, 16, generator=torch.Generator().manual_seed(0)) + y.view(4, 1, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


# ------------------------------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize("name, weights", [
    ("r2plus1d_18", tvv.R2Plus1D_18_Weights.KINETICS400_V1),
    ("s3d", tvv.S3D_Weights.KINETICS400_V1),
    ("tv_r3d_18", tvv.R3D_18_Weights.KINETICS400_V1),
    ("tv_mc3_18", tvv.MC3_18_Weights.KINETICS400_V1),
    ("tv_r2plus1d_18", tvv.R2Plus1D_18_Weights.KINETICS400_V1),
    ("tv_s3d", tvv.S3D_Weights.KINETICS400_V1),
    ("tv_mvit_v1_b", tvv.MViT_V1_B_Weights.KINETICS400_V1),
    ("tv_swin3d_t", tvv.Swin3D_T_Weights.KINETICS400_V1),
])
def test_parameter_count_matches_published(name: str, weights: Any) -> None:
    with torch.device("meta"):  # shapes only, no memory or init time
        model = create_model(name, num_classes=400)
    assert _num_params(model) == weights.meta["num_params"]


def test_c3d_parameter_count() -> None:
    def conv(cin: int, cout: int) -> int:
        return 27 * cin * cout + cout

    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    for k in (101, 487):
        expected = sum(conv(a, b) for a, b in convs) + (8192 * 4096 + 4096) + (4096 * 4096 + 4096) + 4096 * k + k
        with torch.device("meta"):
            n = _num_params(C3D(num_classes=k))
        assert n == expected
    with torch.device("meta"):
        assert 77.5e6 < _num_params(C3D(num_classes=101)) < 79e6  # "78M" (C3D on UCF-101)


@pytest.mark.parametrize("name", ["c3d", "c3d_small", "r2plus1d_18"])
def test_width_scales_the_convolutions(name: str) -> None:
    def conv_params(model: nn.Module) -> int:
        return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv3d))

    with torch.device("meta"):
        full, quarter = create_model(name, 11, width=1.0), create_model(name, 11, width=0.25)
    def widths(model: nn.Module) -> list[int]:
        return sorted({m.out_channels for m in model.modules() if isinstance(m, nn.Conv3d)})

    assert 3.9 < widths(full)[-1] / widths(quarter)[-1] < 4.1 and widths(quarter)[0] >= 8
    assert 12 < conv_params(full) / conv_params(quarter) < 20  # ~width^2 fewer weights (and FLOPs)
    x = torch.randn(2, 3, 16, 32, 32)
    bn = {"batch_norm": True} if "batch_norm" in model_entry(name).params else {}  # r2plus1d always has it
    out = create_model(name, 11, width=0.25, **bn)(x)
    assert out.shape == (2, 11) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="width must be > 0"):
        create_model(name, 11, width=0.0)


def test_pretrained_weights_need_full_width(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="width 1.0"):
        create_model("r2plus1d_18", 11, width=0.5, weights_path=str(tmp_path / "missing.pth"))


def test_s3d_variants_parameter_budget() -> None:
    with torch.device("meta"):
        full, top_heavy = _num_params(create_model("s3d", 400)), _num_params(create_model("s3d_top_heavy", 400))
        v3 = _num_params(create_model("s3d_v3", 400))
    assert top_heavy < full  # the lower half lost its temporal convolutions
    assert 2 * full < v3 < 5 * full  # the S3D-v3 reproduction paper: the Inception-v3 backbone is much larger


# ------------------------------------------------------------------------------------------ parity with torchvision


def test_r2plus1d_matches_torchvision_with_its_weights(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    tv = tvv.r2plus1d_18(num_classes=400).eval()
    with torch.no_grad():
        _randomize_bn(tv, gen)
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(tv.state_dict(), path)
    ours = create_model("r2plus1d_18", num_classes=400, weights_path=str(path)).eval()
    assert isinstance(ours, R2Plus1D)
    x = torch.randn(1, 3, 8, 32, 32, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-6)
    # a new label set keeps the backbone and starts a fresh head
    ours10 = create_model("r2plus1d_18", num_classes=10, weights_path=str(path))
    torch.testing.assert_close(ours10.stem.spatial.weight, tv.stem[0].weight)
    assert ours10.fc.out_features == 10


def test_s3d_matches_torchvision_with_its_weights() -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    tv = tvv.s3d(num_classes=400).eval()
    with torch.no_grad():
        _randomize_bn(tv, gen)
    ours = S3D(num_classes=400).eval()
    load_torchvision_state_dict(ours, tv.state_dict())
    # torchvision pools a fixed 2x7x7 window (224 px clips); at 32 px its top map is 2x1x1, so the same window
    # shrunk to 2x1x1 is its global average, which ours computes at any size.
    tv.avgpool = nn.AvgPool3d((2, 1, 1), stride=1)
    x = torch.randn(1, 3, 16, 32, 32, generator=gen)
    with torch.no_grad():
        ref = tv(x)
        torch.testing.assert_close(ours(x), ref, rtol=1e-5, atol=1e-6)
    assert ref.abs().max() > 1e-3  # not a degenerate all-zero comparison
    with pytest.raises(ValueError, match="only the all-3D s3d"):
        load_torchvision_state_dict(S3D(400, temporal_from="mixed4b"), tv.state_dict())


# ------------------------------------------------------------------------------------------ I3D inflation


def test_i3d_inflation_reproduces_2d_activations_on_a_constant_clip() -> None:
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    g2d = tvm.googlenet(num_classes=1000, aux_logits=True, init_weights=True, transform_input=False).eval()
    with torch.no_grad():
        _randomize_bn(g2d, gen)
        for m in g2d.modules():  # He-scaled weights keep activations O(1) through 60 layers
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=gen)
    i3d = I3D(num_classes=1000).eval()
    skipped = inflate_2d_weights(i3d, g2d.state_dict(), load_head=True)
    assert skipped and all(k.startswith(("aux1.", "aux2.")) for k in skipped)
    conv1 = i3d.conv1.conv.weight
    assert conv1.shape[2] == 7
    torch.testing.assert_close(conv1.sum(dim=2), g2d.conv1.conv.weight)

    frame = torch.randn(1, 3, 16, 16, generator=gen)
    clip = frame.unsqueeze(2).expand(1, 3, 128, 16, 16).contiguous()  # a "boring video" of 128 frames
    with torch.no_grad():
        f3d = i3d.forward_features(clip)  # (1, 1024, 16, 1, 1)
        x = frame
        for name in ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                     "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                     "inception5a", "inception5b"):
            x = getattr(g2d, name)(x)  # (1, 1024, 1, 1)
    # away from the clip's ends (zero temporal padding) every time step equals the 2D activations
    centre = f3d[:, :, 7:9]
    assert x.abs().max() > 0.1
    torch.testing.assert_close(centre, x.unsqueeze(2).expand_as(centre), rtol=1e-4, atol=1e-4 * x.abs().max().item())


# ------------------------------------------------------------------------------------------ offline weights


@pytest.fixture
def empty_weights_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $ACTIONLAB_WEIGHTS_DIR and torch hub's cache at empty directories; returns the former."""
    wdir = tmp_path / "weights"
    wdir.mkdir()
    monkeypatch.setenv("ACTIONLAB_WEIGHTS_DIR", str(wdir))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return wdir


def test_torchvision_weights_never_download(empty_weights_dirs: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"r3d_18-b3b3357e\.pth(.|\n)*pretrained=False"):
        create_model("tv_r3d_18", num_classes=5, pretrained=True)
    with pytest.raises(WeightsNotFoundError, match="googlenet"):
        create_model("i3d", num_classes=5, pretrained=True)
    # a file under torchvision's name whose content does not match the hash in the name
    torch.save({"x": torch.zeros(1)}, empty_weights_dirs / "r3d_18-b3b3357e.pth")
    with pytest.raises(WeightsChecksumError):
        create_model("tv_r3d_18", num_classes=5, pretrained=True)
    # an explicit file is loaded as is; the Kinetics head is replaced for 5 classes
    torch.manual_seed(3)
    tv = tvv.r3d_18(num_classes=400)
    path = tmp_path / "r3d.pth"
    torch.save(tv.state_dict(), path)
    model = create_model("tv_r3d_18", num_classes=5, weights_path=str(path))
    torch.testing.assert_close(model.stem[0].weight, tv.stem[0].weight)
    assert model.fc.out_features == 5


def test_s3d_pretrained_loads_torchvision_file(empty_weights_dirs: Path) -> None:
    torch.manual_seed(4)
    tv = tvv.s3d(num_classes=400)
    path = empty_weights_dirs / "s3d.pth"
    torch.save(tv.state_dict(), path)
    model = create_model("s3d", num_classes=7, weights_path=str(path))
    torch.testing.assert_close(model.mixed5c.branch0.conv.weight, tv.features[15].branch0[0].weight)
    assert model.fc.out_features == 7


# ------------------------------------------------------------------------------------------ per-frame models


def test_lrcn_frozen_backbone_gets_no_gradient_and_keeps_bn_statistics() -> None:
    torch.manual_seed(5)
    model = create_model("lrcn", num_classes=3, backbone="mobilenet_v2", pretrained=True, freeze_backbone=True,
                         hidden_size=16)
    # ImageNet weights from the local copy (installed package / hub cache), not random ones
    from actionlab.features.backbones import get_backbone_spec
    from actionlab.features.weights import read_weights_file, resolve_weights

    state, _ = read_weights_file(resolve_weights(get_backbone_spec("mobilenet_v2").weights))
    torch.testing.assert_close(model.backbone.features[0][0].weight, state["features.0.0.weight"])

    model.train()
    assert not model.backbone.training and model.lstm.training
    bn = model.backbone.features[0][1]
    before = bn.running_mean.clone()
    x = torch.randn(2, 3, 4, 32, 32)
    steps = model.forward_steps(x)
    assert steps.shape == (2, 4, 3)
    model(x).sum().backward()
    torch.testing.assert_close(bn.running_mean, before)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.lstm.weight_ih_l0.grad is not None and model.fc.weight.grad is not None

    model.eval()
    with torch.no_grad():  # the clip's logits are the mean of the step logits
        torch.testing.assert_close(model(x), model.forward_steps(x).mean(dim=1))


def test_lrcn_end_to_end_trains_the_backbone() -> None:
    model = create_model("lrcn", num_classes=3, backbone="mobilenet_v2", pretrained=False, freeze_backbone=False,
                         hidden_size=16)
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert model.backbone.features[0][0].weight.grad is not None


def test_fusion_vgg_requires_its_clip_length() -> None:
    model = FusionVGG(num_classes=4, clip_len=6)
    assert model.fusion.in_features == 6 * 500
    with pytest.raises(ValueError, match="clip_len=6"):
        model(torch.randn(1, 3, 5, 16, 16))


# ------------------------------------------------------------------------------------------ real decoded clips

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@pytest.mark.skipif(not VTEST.exists(), reason="needs Debian's opencv-doc sample videos")
@pytest.mark.parametrize("name", ["r2plus1d_18", "s3d", "vgg9_average"])
def test_models_classify_decoded_clips_from_the_data_pipeline(name: str) -> None:
    from actionlab.data.transforms import ClipEvalTransform
    from actionlab.data.video.decode import read_frames

    transform = ClipEvalTransform(size=32, resize=36)
    clips = torch.cat([transform(read_frames(VTEST, list(range(start, start + 16, 2)), size=(36, 48)))
                       for start in (0, 400)])  # two (3, 8, 32, 32) clips of a real MS-MPEG4 video, 16 s apart
    assert clips.shape == (2, 3, 8, 32, 32)
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    with torch.no_grad():
        logits = model(clips)
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    assert not torch.allclose(logits[0], logits[1])  # the output depends on the clip's content


# ------------------------------------------------------------------------------------------ TSM


def test_temporal_shift_moves_two_folds_one_frame() -> None:
    from actionlab.models.tsm import temporal_shift

    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2 * 3, 8, 1, 1)  # B=2 clips of T=3 frames, C=8
    y = temporal_shift(x, clip_len=3, fold_div=4).view(2, 3, 8)
    x = x.view(2, 3, 8)
    torch.testing.assert_close(y[:, 1:, :2], x[:, :-1, :2])  # fold 0 from the previous frame
    torch.testing.assert_close(y[:, :-1, 2:4], x[:, 1:, 2:4])  # fold 1 from the next frame
    torch.testing.assert_close(y[:, :, 4:], x[:, :, 4:])  # the rest stays
    assert y[:, 0, :2].abs().sum() == 0 and y[:, -1, 2:4].abs().sum() == 0  # nothing from outside the clip


def test_tsm_is_its_2d_network_on_a_still_clip_and_tells_time_order() -> None:
    from actionlab.models.tsm import TSM

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = TSM(num_classes=4, clip_len=24, pretrained=True).eval()  # ImageNet MobileNetV2, from disk
    frame = torch.randn(1, 3, 32, 32, generator=gen)
    still = frame.unsqueeze(2).expand(1, 3, 24, 32, 32).contiguous()
    def frame_features(clip: torch.Tensor) -> torch.Tensor:  # (1, 3, T, H, W) -> (T, 1280)
        return model.features(clip[0].transpose(0, 1).contiguous()).mean(dim=(2, 3))

    with torch.no_grad():
        steps = frame_features(still)
        x = frame
        for block in model.features:  # the same weights without any shift: the 2D network
            x = x + block.conv(x) if hasattr(block, "clip_len") else block(x)
        flat = x.mean(dim=(2, 3))[0]
        # 10 shifted blocks: the clip's zero ends reach 10 frames in; the middle frames are the 2D network's
        torch.testing.assert_close(steps[10:14], flat.expand(4, -1), rtol=1e-4, atol=1e-4 * flat.abs().max().item())
        # not a bag of frames: reversing the clip does not just reverse the frames' features
        clip = torch.randn(1, 3, 24, 32, 32, generator=gen)
        forward, backward = frame_features(clip), frame_features(clip.flip(2)).flip(0)
        assert (forward - backward).abs().max() > 0.05 * forward.abs().max()

# ------------------------------------------------------------------------------------------ fusion family, flow clips

FLOW_INPUT_MODELS = ["single_frame_cnn", "early_fusion", "late_fusion", "slow_fusion", "c3d_small", "r2plus1d_18"]


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_every_video_network_takes_in_channels(name: str) -> None:
    """The registry gives every video network ``in_channels``: the convolution reading the clip is adapted."""
    assert "in_channels" in model_entry(name).params
    with torch.device("meta"):  # shapes only
        model = create_model(name, num_classes=3, in_channels=4, **BUILD_KWARGS.get(name, {}))
    stems = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
    assert stems[0].in_channels == 4 and stems[0].weight.shape[1] == 4
    assert all(m.in_channels != 3 for m in stems)  # no other layer was the one reading RGB


@pytest.mark.parametrize("name", FLOW_INPUT_MODELS)
def test_video_networks_read_two_channel_flow_clips(name: str) -> None:
    """``in_channels=2`` (optical flow x, y): the stem's RGB kernels averaged and replicated (TSN), and the
    network trains a step on a 2-channel clip."""
    torch.manual_seed(0)
    kwargs = {"early_fusion": {"clip_len": 10, "width": 0.25}, "single_frame_cnn": {"width": 0.25},
              "late_fusion": {"width": 0.25}, "slow_fusion": {"width": 0.25}, "r2plus1d_18": {"width": 0.25},
              "c3d_small": {"width": 0.25}}
    rgb = create_model(name, num_classes=3, **kwargs.get(name, {}))
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_channels=2, **kwargs.get(name, {}))
    stem_rgb = next(m for m in rgb.modules() if isinstance(m, nn.Conv2d | nn.Conv3d))
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d))
    assert stem.in_channels == 2 and stem.weight.shape[1] == 2
    expected = stem_rgb.weight.mean(dim=1, keepdim=True).expand_as(stem.weight)
    torch.testing.assert_close(stem.weight, expected)
    x = torch.randn(2, 2, 10, 32, 32)
    logits = model.train()(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert stem.weight.grad is not None and torch.isfinite(stem.weight.grad).all()


def test_karpathy_fusion_networks_see_the_frames_the_paper_says() -> None:
    """Single frame: only the middle frame matters; late fusion: only the first and last; early fusion's conv1
    spans the clip; slow fusion's conv1-3 have temporal extent 4, 2, 2 (stride 2): conv3 sees all 10 frames."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 32, 32)
    changed = x.clone()
    changed[:, :, 1:-1] = torch.randn(2, 3, 8, 32, 32)  # every frame but the first and the last
    changed_ends = x.clone()
    changed_ends[:, :, [0, -1]] = torch.randn(2, 3, 2, 32, 32)
    nets = {n: create_model(n, num_classes=4, width=0.25).eval() for n in ("single_frame_cnn", "late_fusion", "slow_fusion")}
    early = create_model("early_fusion", num_classes=4, clip_len=10, width=0.25).eval()
    with torch.no_grad():
        out = {n: (m(x), m(changed), m(changed_ends)) for n, m in nets.items()}
        torch.testing.assert_close(out["late_fusion"][0], out["late_fusion"][1])
        assert not torch.allclose(out["late_fusion"][0], out["late_fusion"][2])
        torch.testing.assert_close(out["single_frame_cnn"][0], out["single_frame_cnn"][2])  # middle frame kept
        assert not torch.allclose(out["single_frame_cnn"][0], out["single_frame_cnn"][1])
        assert not torch.allclose(out["slow_fusion"][0], out["slow_fusion"][1])
        assert not torch.allclose(out["slow_fusion"][0], out["slow_fusion"][2])
        slow = nets["slow_fusion"].features
        assert [slow.get_submodule(f"conv{i}").kernel_size[0] for i in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]
        assert slow[:slow_index(slow, "conv3") + 1](x).shape[2] == 1  # one response of all 10 frames
        assert early.features.conv1.kernel_size[0] == 10
        assert early.features.conv1(x).shape[2] == 1
    assert nets["late_fusion"].classifier.fc6.in_features == 2 * nets["single_frame_cnn"].classifier.fc6.in_features
    with pytest.raises(ValueError, match="clip.clip_len=10"):
        nets["slow_fusion"](x[:, :, :8])
    with pytest.raises(ValueError, match="clip_len=10"):
        early(x[:, :, :8])


def slow_index(seq: nn.Sequential, name: str) -> int:
    return [n for n, _ in seq.named_children()].index(name)
