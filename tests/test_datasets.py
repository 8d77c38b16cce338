"""Torch datasets over a manifest (real encoded videos) and clip-consistent transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from actionlab.config import ClipConfig
from actionlab.data.datasets import ClipDataset, FrameDataset
from actionlab.data.manifest import Manifest
from actionlab.data.sampling import clip_indices, spread_clip_indices, tsn_indices
from actionlab.data.transforms import (
    ClipEvalTransform,
    ClipTrainTransform,
    FrameEvalTransform,
    FrameTrainTransform,
    as_tchw,
    normalize,
    three_crop_boxes,
)
from actionlab.data.video.decode import VideoDecodeError, read_frames
from actionlab.synth.families import read_synth_info, render_clip, ucf_test_groups
from actionlab.types import VideoRecord
from conftest import SYNTH_UCF101_CLASSES


def synth_manifest(root: Path) -> Manifest:
    """A manifest of a generated UCF-101-layout dataset, split 1, built from its synth_info.json."""
    info = read_synth_info(root)
    classes = info["params"]["classes"]
    test = set(ucf_test_groups(info["params"]["groups"], 1))
    records = [VideoRecord(path=v["path"], label=v["label"], label_index=classes.index(v["label"]),
                           split="test" if v["group"] in test else "train", group=f"g{v['group']:02d}",
                           num_frames=v["num_frames"], fps=25.0, duration=v["num_frames"] / 25.0)
               for v in info["videos"]]
    return Manifest(root, classes, records, "ucf101")


@pytest.fixture(scope="module")
def manifest(synth_ucf101: Path) -> Manifest:
    return synth_manifest(synth_ucf101)


@pytest.fixture(scope="module")
def lossless(synth_factory) -> Manifest:
    return synth_manifest(synth_factory("ucf101", classes=["FadeIn", "FadeOut"], groups=2, clips_per_group=1,
                                        num_frames=(9, 14), size=(40, 56), codec="ffv1"))


# ----------------------------------------------------------------------------------- transforms


def test_train_transform_uses_one_crop_for_every_frame() -> None:
    rng0 = np.random.default_rng(0)
    frame = rng0.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    clip = np.stack([frame] * 5)  # identical frames: per-frame random parameters would make them differ
    t = ClipTrainTransform(size=32, resize=48, flip=True, scale=(0.2, 0.6))
    outs = [t(clip, np.random.default_rng(s)) for s in range(6)]
    for out in outs:
        assert out.shape == (3, 5, 32, 32) and out.dtype == torch.float32
        for k in range(1, 5):
            torch.testing.assert_close(out[:, k], out[:, 0], rtol=0, atol=0)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # random across clips
    torch.testing.assert_close(t(clip, np.random.default_rng(3)), outs[3], rtol=0, atol=0)  # same rng, same clip
    # numpy (T, H, W, 3) and tensor (C, T, H, W) inputs mean the same clip
    as_tensor = torch.from_numpy(clip).permute(3, 0, 1, 2)
    torch.testing.assert_close(t(as_tensor, np.random.default_rng(1)), outs[1])


def test_train_transform_follows_motion() -> None:
    # A bright column moving right by 4 px per frame stays a moving column after the (shared) crop.
    clip = np.zeros((4, 48, 64, 3), np.uint8)
    for k in range(4):
        clip[k, :, 20 + 4 * k: 24 + 4 * k] = 255
    t = ClipTrainTransform(size=48, resize=48, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), brightness=0, contrast=0,
                           saturation=0)
    out = t(clip, np.random.default_rng(0))
    cols = [int(out[0, k].mean(0).argmax()) for k in range(4)]
    assert cols == sorted(cols) and cols[-1] - cols[0] >= 6


def test_hue_and_grayscale_jitter() -> None:
    from actionlab.data.transforms import JitterParams, color_jitter, sample_jitter

    # Enabling hue/grayscale draws after the other factors: brightness/contrast/saturation stay the same.
    old, new = sample_jitter(np.random.default_rng(5), 0.3, 0.3, 0.3), sample_jitter(
        np.random.default_rng(5), 0.3, 0.3, 0.3, hue=0.5, grayscale=1.0)
    assert (old.brightness, old.contrast, old.saturation) == (new.brightness, new.contrast, new.saturation)
    assert old.hue == 0.0 and not old.grayscale and new.grayscale and -0.5 <= new.hue <= 0.5
    red = torch.zeros(2, 3, 4, 4)
    red[:, 0] = 0.8
    grey = color_jitter(red, JitterParams(grayscale=True))
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(grey[:, 0], torch.full((2, 4, 4), 0.299 * 0.8))
    green = color_jitter(red, JitterParams(hue=1 / 3))  # a third of the colour wheel: red -> green
    torch.testing.assert_close(green[:, 1], red[:, 0], atol=1e-5, rtol=0)
    assert green[:, 0].abs().max() < 1e-5 and green[:, 2].abs().max() < 1e-5
    clip = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    t = ClipTrainTransform(size=16, resize=20, hue=0.5, grayscale=0.5)
    outs = [t(clip, np.random.default_rng(i)) for i in range(8)]
    assert any(torch.allclose(o[0] * 0.22803 + 0.43216, o[1] * 0.22145 + 0.394666, atol=1e-5) for o in outs)
    assert not all(torch.allclose(o[0] * 0.22803 + 0.43216, o[1] * 0.22145 + 0.394666, atol=1e-5) for o in outs)


def test_eval_transform_centre_and_three_crops_are_exact_slices() -> None:
    clip = np.random.default_rng(1).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    t = ClipEvalTransform(size=24, resize=32, crops=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = t(clip)
    assert out.shape == (3, 3, 3, 24, 24)
    x = normalize(as_tchw(clip), t.mean, t.std).permute(1, 0, 2, 3)  # (C, T, H, W)
    for k, (top, left, h, w) in enumerate(three_crop_boxes(32, 48, 24)):
        torch.testing.assert_close(out[k], x[..., top:top + h, left:left + w])
    assert [b[1] for b in three_crop_boxes(32, 48, 24)] == [0, 12, 24]
    centre = ClipEvalTransform(size=24, resize=32, crops=1, mean=t.mean, std=t.std).crop(clip, 0)
    torch.testing.assert_close(centre, out[1])


def test_squeezed_frames_keep_the_whole_width() -> None:
    # A wide (16:9) clip with a bright bar at each side: a centre crop of the short side loses both bars,
    # the squeezed frame (keep_aspect=False) keeps both, for evaluation and for an unscaled training crop.
    clip = np.zeros((2, 36, 64, 3), np.uint8)
    clip[:, :, :6] = 255
    clip[:, :, -6:] = 255
    plain = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    kept = ClipEvalTransform(size=32, resize=36, **plain).crop(clip, 0)
    squeezed = ClipEvalTransform(size=32, resize=36, keep_aspect=False, **plain).crop(clip, 0)
    assert kept.shape == squeezed.shape == (3, 2, 32, 32)
    assert kept.max() == 0  # the bars are cut off
    cols = squeezed[0, 0].mean(0)
    assert cols[0] > 0.9 and cols[-1] > 0.9 and cols[16] == 0  # both bars, the middle stays dark
    train = ClipTrainTransform(size=32, resize=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), brightness=0, contrast=0,
                               saturation=0, keep_aspect=False, **plain)
    whole = ClipEvalTransform(size=32, resize=32, keep_aspect=False, **plain).crop(clip, 0)
    torch.testing.assert_close(train(clip, np.random.default_rng(0)), whole)


def test_spread_clips_cover_the_whole_video(manifest: Manifest) -> None:
    cfg = ClipConfig(clip_len=4, size=48, resize=64, test_clips=2, sampling="spread", augment=False)
    test = ClipDataset.from_config(manifest, "test", cfg, train=False)
    v = 0
    n = manifest.split("test")[v].num_frames
    path = manifest.abspath(manifest.split("test")[v])
    for j, idx in enumerate(spread_clip_indices(n, 4, 2)):
        assert idx[0] < n / 4 and idx[-1] >= 3 * n / 4  # from the first quarter to the last
        expected = ClipEvalTransform(size=48, resize=64)(read_frames(path, idx, size=64))[0]
        torch.testing.assert_close(test[v * 2 + j][0], expected)
    with pytest.raises(ValueError, match="frame_interval=3 does not apply to clip.sampling=spread"):
        ClipConfig(sampling="spread", frame_interval=3)


def test_frame_transforms() -> None:
    frame = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    train = FrameTrainTransform(crop=32, resize=40)
    a, b = train(frame, np.random.default_rng(5)), train(frame, np.random.default_rng(5))
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    outs = {train(frame, np.random.default_rng(s)).sum().item() for s in range(8)}
    assert len(outs) > 1
    ev = FrameEvalTransform(crop=32, resize=40)
    x = normalize(as_tchw(frame), ev.mean, ev.std)[0]
    torch.testing.assert_close(ev(frame), x[:, 4:36, 14:46])


# ----------------------------------------------------------------------------------- ClipDataset


def test_clip_dataset_train_items(manifest: Manifest) -> None:
    ds = ClipDataset(manifest, "train", clip_len=4, frame_interval=2, size=48, resize=64, train=True, seed=7)
    assert len(ds) == len(manifest.split("train"))
    for i in (0, len(ds) - 1):
        clip, label, v = ds[i]
        assert clip.shape == (3, 4, 48, 48) and clip.dtype == torch.float32
        assert v == i and label == manifest.split("train")[i].label_index
        assert SYNTH_UCF101_CLASSES[label] == manifest.split("train")[i].label
    again = ClipDataset(manifest, "train", clip_len=4, frame_interval=2, size=48, resize=64, train=True, seed=7)
    torch.testing.assert_close(again[3][0], ds[3][0], rtol=0, atol=0)  # (seed, epoch, index) decides
    first = ds[3][0]
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], first)
    ds.set_epoch(0)
    torch.testing.assert_close(ds[3][0], first, rtol=0, atol=0)


def test_clip_dataset_independent_of_workers(manifest: Manifest) -> None:
    ds = ClipDataset(manifest, "train", clip_len=3, frame_interval=1, size=32, resize=40, train=True, seed=1)
    ds.set_epoch(2)
    serial = torch.stack([ds[i][0] for i in range(6)])
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(6)), batch_size=2, num_workers=2)
    parallel = torch.cat([clips for clips, _, _ in loader])
    torch.testing.assert_close(parallel, serial, rtol=0, atol=0)


def test_clip_dataset_test_mode_clips_and_crops(manifest: Manifest) -> None:
    cfg = ClipConfig(clip_len=4, frame_interval=2, size=48, resize=64, test_clips=2, test_crops=3)
    ds = ClipDataset.from_config(manifest, "test", cfg, train=False)
    records = manifest.split("test")
    assert len(ds) == len(records) * 2 * 3
    assert ds.item_video.tolist() == [i // 6 for i in range(len(ds))]
    v = 1
    items = [ds[v * 6 + r] for r in range(6)]
    assert all(label == records[v].label_index and vi == v for _, label, vi in items)
    # item (clip j, crop k) equals the eval transform of the frames the sampler chose
    idx = clip_indices(records[v].num_frames, 4, 2, num_clips=2)
    path = manifest.abspath(records[v])
    for j in range(2):
        expected = ClipEvalTransform(size=48, resize=64, crops=3)(read_frames(path, idx[j], size=64))
        for k in range(3):
            torch.testing.assert_close(items[j * 3 + k][0], expected[k])
    assert not torch.equal(items[0][0], items[3][0])  # two clips at different times
    assert not torch.equal(items[0][0], items[1][0])  # two crops
    ds.set_epoch(5)  # evaluation does not depend on the epoch
    torch.testing.assert_close(ds[v * 6][0], items[0][0], rtol=0, atol=0)


def test_clip_cache_gives_the_same_items_and_decodes_each_video_once(manifest: Manifest, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(manifest.root, root)
    copy = Manifest(root, manifest.classes, manifest.records, manifest.layout)
    kw = dict(clip_len=4, frame_interval=3, size=32, resize=40, seed=3)
    plain, cached = (ClipDataset(copy, "train", cache_frames=c, **kw) for c in (False, True))
    test_plain, test_cached = (ClipDataset(copy, "test", train=False, num_clips=2, crops=3, cache_frames=c, **kw)
                               for c in (False, True))
    expected = {}
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            expected[epoch, i] = plain[i][0]
            torch.testing.assert_close(cached[i][0], expected[epoch, i], rtol=0, atol=0)
    test_expected = [test_plain[i][0] for i in range(len(test_plain))]
    for i in range(len(test_cached)):
        torch.testing.assert_close(test_cached[i][0], test_expected[i], rtol=0, atol=0)
    frames = sum(r.num_frames for r in copy.split("train"))
    assert cached.cache_bytes == frames * 40 * 53 * 3  # every frame of every video, at the decode size
    filled = ClipDataset(copy, "train", cache_frames=True, **kw)
    assert filled.fill_cache() == cached.cache_bytes  # all at once, before DataLoader workers fork

    shutil.rmtree(root)  # once cached, a video is never opened again
    plain.set_epoch(1)
    with pytest.raises(VideoDecodeError, match="copy"):
        plain[0]
    for i in range(len(cached)):
        torch.testing.assert_close(cached[i][0], expected[1, i], rtol=0, atol=0)
    filled.set_epoch(1)
    loader = torch.utils.data.DataLoader(filled, batch_size=3, num_workers=2)  # workers share the filled cache
    torch.testing.assert_close(torch.cat([x for x, _, _ in loader]),
                               torch.stack([expected[1, i] for i in range(len(filled))]), rtol=0, atol=0)
    torch.testing.assert_close(test_cached[5][0], test_expected[5], rtol=0, atol=0)


# ----------------------------------------------------------------------------------- FrameDataset


def test_frame_dataset_pixels_are_the_rendered_frames(lossless: Manifest) -> None:
    ds = FrameDataset(lossless, "train", frames_per_video=3, train=False)
    records = lossless.split("train")
    assert len(ds) == 3 * len(records)
    for i in range(len(ds)):
        frame, label, v = ds[i]
        rec = records[v]
        assert v == i // 3 and label == rec.label_index and frame.shape == (3, 40, 56)
        g, c = int(rec.path.split("_g")[1][:2]), int(rec.path.split("_c")[1][:2])
        ref = render_clip(rec.label, g, c, rec.num_frames, (40, 56))
        t = tsn_indices(rec.num_frames, 3)[i % 3]
        torch.testing.assert_close(frame, torch.from_numpy(ref[t]).permute(2, 0, 1).float() / 255)


def test_frame_dataset_random_frames_reproducible(manifest: Manifest) -> None:
    tf = FrameTrainTransform(crop=64, resize=72)
    ds = FrameDataset(manifest, "train", frames_per_video=2, transform=tf, seed=3, decode_size=72)
    x, label, v = ds[5]
    assert x.shape == (3, 64, 64) and v == 2 and label == manifest.split("train")[2].label_index
    same = FrameDataset(manifest, "train", frames_per_video=2, transform=tf, seed=3, decode_size=72)
    torch.testing.assert_close(same[5][0], x, rtol=0, atol=0)
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.add(round(ds[5][0].sum().item(), 3))
    assert len(draws) > 1


# ----------------------------------------------------------------------------------- errors


def test_decode_errors_name_the_file(tmp_path: Path, synth_ucf101: Path) -> None:
    good = next((synth_ucf101 / "UCF-101").rglob("*.avi"))
    bad = tmp_path / "Broken" / "v_Broken_g01_c01.avi"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[:300])  # truncated
    records = [VideoRecord("Broken/v_Broken_g01_c01.avi", "Broken", 0, "train", "g01", 24),
               VideoRecord("Broken/v_Missing_g01_c01.avi", "Broken", 0, "train", "g01", 24)]
    m = Manifest(tmp_path, ["Broken"], records, "ucf101")
    ds = ClipDataset(m, "train", clip_len=2, size=32, resize=40)
    for i, name in enumerate(["v_Broken_g01_c01.avi", "v_Missing_g01_c01.avi"]):
        with pytest.raises(VideoDecodeError, match=name):
            ds[i]
    with pytest.raises(ValueError, match="no videos"):
        ClipDataset(m, "test")
