"""The generated dataset: layout files parsed independently, real encoded videos, determinism, and the
property the time-order classes exist for (same single frames, different order)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from actionlab.synth.families import (
    APPEARANCE_CLASSES,
    SYNTH_CLASSES,
    TIME_PAIRS,
    hmdb_name,
    kinetics_name,
    make_synthetic_dataset,
    read_synth_info,
    render_clip,
    ucf_test_groups,
)
from conftest import SYNTH_UCF101_CLASSES, SYNTH_UCF101_KWARGS


def decode_all(path: Path) -> tuple[np.ndarray, dict]:
    """All frames (T, H, W, 3) uint8 with PyAV, plus stream facts."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames, pict = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            pict.append(PictureType(int(f.pict_type)).name)
        facts = dict(codec=s.codec_context.name, tag=s.codec_context.codec_tag, fps=float(s.average_rate),
                     width=s.codec_context.width, height=s.codec_context.height, pict=pict)
    return np.stack(frames), facts


# ----------------------------------------------------------------------------------- UCF-101 layout


def test_ucf101_layout_files(synth_ucf101: Path) -> None:
    lists = synth_ucf101 / "ucfTrainTestlist"
    raw = (lists / "classInd.txt").read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n") == len(SYNTH_UCF101_CLASSES)
    class_ind = dict(line.split(" ") for line in raw.decode().splitlines())
    assert class_ind == {str(i): c for i, c in enumerate(SYNTH_UCF101_CLASSES, 1)}
    on_disk = {p.relative_to(synth_ucf101 / "UCF-101").as_posix() for p in (synth_ucf101 / "UCF-101").rglob("*.avi")}
    groups, clips = SYNTH_UCF101_KWARGS["groups"], SYNTH_UCF101_KWARGS["clips_per_group"]
    assert len(on_disk) == len(SYNTH_UCF101_CLASSES) * groups * clips
    name_re = re.compile(r"^(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.avi$")
    for split in (1, 2, 3):
        train_raw = (lists / f"trainlist{split:02d}.txt").read_bytes()
        test_raw = (lists / f"testlist{split:02d}.txt").read_bytes()
        for blob in (train_raw, test_raw):
            assert blob.count(b"\r\n") == blob.count(b"\n") > 0  # CRLF everywhere
        train = [line.split(" ") for line in train_raw.decode().splitlines()]
        test = test_raw.decode().splitlines()
        assert all(len(t) == 2 for t in train) and all(" " not in t for t in test)  # test lines carry no label
        for path, idx in train:
            m = name_re.match(path)
            assert m and m[1] == m[2] and class_ind[idx] == m[1]
        train_groups = {int(name_re.match(p)[3]) for p, _ in train}
        test_groups = {int(name_re.match(p)[3]) for p in test}
        assert test_groups == set(ucf_test_groups(groups, split)) and not train_groups & test_groups
        assert sorted([p for p, _ in train] + test) == sorted(on_disk)


def test_ucf_test_groups_scale_the_official_split() -> None:
    # 25 groups: exactly UCF-101's official split
    assert ucf_test_groups(25, 1) == list(range(1, 8))
    assert ucf_test_groups(25, 2) == list(range(8, 15))
    assert ucf_test_groups(25, 3) == list(range(15, 22))
    for g in range(2, 30):
        tests = [set(ucf_test_groups(g, s)) for s in (1, 2, 3)]
        assert all(t and t <= set(range(1, g + 1)) and len(t) < g for t in tests)
        if g >= 4:
            assert not (tests[0] & tests[1]) and not (tests[1] & tests[2])


def test_ucf101_videos_are_real_xvid(synth_ucf101: Path) -> None:
    info = read_synth_info(synth_ucf101)
    h, w = SYNTH_UCF101_KWARGS["size"]
    for v in info["videos"][:: max(1, len(info["videos"]) // 6)]:
        frames, facts = decode_all(synth_ucf101 / v["path"])
        assert frames.shape == (SYNTH_UCF101_KWARGS["num_frames"], h, w, 3)
        assert facts["codec"] == "mpeg4" and facts["tag"] == "XVID"
        assert facts["fps"] == 25.0 and (facts["width"], facts["height"]) == (w, h)
        assert "B" in facts["pict"], "XviD videos should contain B-frames like UCF-101's"
        # lossy but close to the rendered frames
        ref = render_clip(v["synth_class"], v["group"], v["clip"], v["num_frames"], (h, w), seed=0)
        assert np.abs(frames.astype(np.float32) - ref).mean() < 6.0
    readme = (synth_ucf101 / "README.txt").read_text()
    assert all(c in readme for c in SYNTH_UCF101_CLASSES)


# ----------------------------------------------------------------------------------- other layouts


def test_hmdb51_layout(synth_factory) -> None:
    classes = ["FadeIn", "TurnClockwise"]
    root = synth_factory("hmdb51", classes=classes, groups=4, clips_per_group=2)
    split_dir = root / "testTrainMulti_7030_splits"
    for name in classes:
        label = hmdb_name(name)
        videos = sorted(p.name for p in (root / label).glob("*.avi"))
        assert len(videos) == 8
        for split in (1, 2, 3):
            text = (split_dir / f"{label}_test_split{split}.txt").read_text()
            assert "\r" not in text
            lines = text.splitlines()
            assert all(re.fullmatch(r"\S+\.avi [012] ", line) for line in lines), lines[:2]
            assert sorted(line.split(" ")[0] for line in lines) == videos
            codes = [line.split(" ")[1] for line in lines]
            assert codes.count("2") == 2 and codes.count("1") == 6  # round(0.3 * 4) = 1 group of 2 clips tested
    assert hmdb_name("TurnCounterClockwise") == "turn_counter_clockwise"


def test_kinetics_layout(synth_factory) -> None:
    classes = ["MoveRight", "BounceBall"]
    root = synth_factory("kinetics", classes=classes, groups=5, clips_per_group=2)
    groups_by_split: dict[str, set[str]] = {}
    n = 0
    for split in ("train", "val"):
        with open(root / "annotations" / f"{split}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["label", "youtube_id", "time_start", "time_end", "split"]
        for label, yid, start, end, sp in rows[1:]:
            assert sp == split and label in {kinetics_name(c) for c in classes}
            assert re.fullmatch(r"[A-Za-z0-9_-]{11}", yid) and int(end) - int(start) == 10
            path = root / split / label / f"{yid}_{int(start):06d}_{int(end):06d}.mp4"
            assert path.is_file(), path
            groups_by_split.setdefault(split, set()).add(yid)
            n += 1
    assert n == 2 * 5 * 2
    assert groups_by_split["val"] and not groups_by_split["train"] & groups_by_split["val"]
    frames, facts = decode_all(next((root / "train").rglob("*.mp4")))
    assert facts["codec"] == "h264" and frames.shape[1:] == (64, 80, 3)


def test_folders_layout_and_frame_range(synth_factory) -> None:
    root = synth_factory("folders", classes=["Stripes", "BlinkChecker"], num_frames=(10, 20), clips_per_group=3)
    info = read_synth_info(root)
    lengths = []
    for v in info["videos"]:
        assert re.fullmatch(rf"{v['synth_class']}/{v['synth_class']}_g\d\d_c\d\d\.avi", v["path"])
        frames, _ = decode_all(root / v["path"])
        assert len(frames) == v["num_frames"] and 10 <= len(frames) <= 20
        lengths.append(len(frames))
    assert len(set(lengths)) > 1, "video lengths should vary within the range"


# ----------------------------------------------------------------------------------- determinism


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_per_seed_and_lossless_exact(tmp_path: Path) -> None:
    kw = dict(classes=["GrowCircle", "Stripes"], groups=2, clips_per_group=1, num_frames=(6, 9), size=(40, 56),
              lossless=True, workers=0)
    a = make_synthetic_dataset(tmp_path / "a", seed=3, **kw)
    b = make_synthetic_dataset(tmp_path / "b", seed=3, **kw)
    c = make_synthetic_dataset(tmp_path / "c", seed=4, **kw)
    assert _digest(a) == _digest(b)
    da, dc = _digest(a), _digest(c)
    assert any(da[k] != dc.get(k) for k in da if k.endswith(".avi"))
    for v in read_synth_info(a)["videos"]:
        frames, facts = decode_all(a / v["path"])
        assert facts["codec"] == "ffv1"
        np.testing.assert_array_equal(frames, render_clip(v["synth_class"], v["group"], v["clip"],
                                                          v["num_frames"], (40, 56), seed=3))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_dataset(a, seed=3, **kw)
    with pytest.raises(ValueError, match="SwimFast"):
        make_synthetic_dataset(tmp_path / "d", classes=["SwimFast"])


def test_scenes_vary_between_groups_and_clips() -> None:
    firsts = [render_clip("MoveRight", g, 1, 4, (48, 64))[0] for g in range(1, 6)]
    bg_colours = [f[:4, :4].reshape(-1, 3).mean(0) for f in firsts]
    assert min(np.abs(a - b).sum() for i, a in enumerate(bg_colours) for b in bg_colours[i + 1:]) > 5
    c1, c2 = render_clip("MoveRight", 1, 1, 4, (48, 64)), render_clip("MoveRight", 1, 2, 4, (48, 64))
    assert not np.array_equal(c1, c2)
    assert np.abs(c1[0].astype(float).mean((0, 1)) - c2[0].astype(float).mean((0, 1))).max() < 30  # same scene


# ----------------------------------------------------------------------------------- time-order pairs


def _object_mask(clip: np.ndarray) -> np.ndarray:
    """(T, H, W) pixels that differ from the temporal median (the moving/changing object)."""
    med = np.median(clip.astype(np.float32), axis=0)
    return np.abs(clip.astype(np.float32) - med).sum(-1) > 90


def _growth(clip: np.ndarray) -> float:
    """Colour-agnostic: > 0 when the changing region fills from its centre outward, < 0 when inward.

    Among pixels that differ between the first and last frame, those already like the last frame lie
    nearer the centre than those still like the first frame while a disc grows (and farther while it shrinks).
    """
    x = clip.astype(np.float32)
    changing = np.abs(x[0] - x[-1]).sum(-1) > 60
    ys, xs = np.nonzero(changing)
    r = np.hypot(ys - ys.mean(), xs - xs.mean())
    out = []
    for t in range(len(x) // 4, 3 * len(x) // 4):
        v = x[t][changing]
        like_last = np.abs(v - x[-1][changing]).sum(-1) < np.abs(v - x[0][changing]).sum(-1)
        if like_last.any() and (~like_last).any():
            out.append(r[~like_last].mean() - r[like_last].mean())
    return float(np.mean(out))


def test_time_order_pairs_share_single_frame_statistics(synth_factory) -> None:
    classes = [c for pair in TIME_PAIRS for c in pair]
    root = synth_factory("folders", classes=classes, groups=2, clips_per_group=2, num_frames=(12, 18),
                         size=(48, 64))
    info = read_synth_info(root)
    stats: dict[str, list[float]] = {c: [] for c in classes}
    for v in info["videos"]:
        frames, _ = decode_all(root / v["path"])
        stats[v["synth_class"]] += frames.reshape(len(frames), -1).mean(1).tolist()
    for fwd, bwd in TIME_PAIRS:
        a, b = np.sort(stats[fwd]), np.sort(stats[bwd])
        assert len(a) == len(b)
        np.testing.assert_allclose(a, b, atol=3.0)  # lossy-codec differences only (scenes differ by tens)


def test_time_order_pairs_differ_in_order() -> None:
    size = (72, 96)
    t = np.arange(30)
    for g in (1, 2, 3):
        fade_in = render_clip("FadeIn", g, 1, 30, size).reshape(30, -1).mean(1)
        fade_out = render_clip("FadeOut", g, 1, 30, size).reshape(30, -1).mean(1)
        np.testing.assert_array_equal(fade_in, fade_out[::-1])
        assert np.corrcoef(t, fade_in)[0, 1] > 0.9 and fade_in[0] < 0.15 * fade_in[-1]

        grow = render_clip("GrowCircle", g, 1, 30, size)
        assert _growth(grow) > 5 and _growth(render_clip("ShrinkCircle", g, 1, 30, size)) < -5
        assert (np.abs(grow[0].astype(float) - grow[-1]).sum(-1) > 60).mean() > 0.2  # a large, visible change

        mask = _object_mask(render_clip("MoveRight", g, 1, 30, size))
        xs = np.array([np.nonzero(m)[1].mean() for m in mask])
        assert xs[-1] - xs[0] > 0.4 * size[1]
        mask = _object_mask(render_clip("MoveLeft", g, 1, 30, size))
        xs = np.array([np.nonzero(m)[1].mean() for m in mask])
        assert xs[0] - xs[-1] > 0.4 * size[1]

        for name, sign in (("TurnClockwise", 1), ("TurnCounterClockwise", -1)):
            clip = render_clip(name, g, 1, 30, size)
            mask = _object_mask(clip)
            pts = np.array([[np.nonzero(m)[1].mean(), np.nonzero(m)[0].mean()] for m in mask])
            pts = pts - pts.mean(0)
            # shoelace area of the centroid path; positive = clockwise on screen (y points down)
            area = np.sum(pts[:-1, 0] * pts[1:, 1] - pts[1:, 0] * pts[:-1, 1]) / 2
            assert sign * area > 0, (name, g, area)


def test_all_classes_render_and_are_described() -> None:
    assert len(SYNTH_CLASSES) == len(set(SYNTH_CLASSES)) == 2 * len(TIME_PAIRS) + len(APPEARANCE_CLASSES)
    for name in SYNTH_CLASSES:
        clip = render_clip(name, 1, 1, 5, (32, 48))
        assert clip.shape == (5, 32, 48, 3) and clip.dtype == np.uint8 and clip.std() > 5
    with pytest.raises(ValueError, match="unknown synthetic class"):
        render_clip("Swim", 1, 1, 5)


@pytest.mark.parametrize("layout", ["ucf101", "hmdb51", "kinetics"])
def test_indexer_reads_every_generated_layout(layout: str, synth_ucf101: Path, synth_factory) -> None:
    index = pytest.importorskip("actionlab.data.index")
    roots = {"ucf101": synth_ucf101,  # the same arguments as the tests above, so these are cached
             "hmdb51": synth_factory("hmdb51", classes=["FadeIn", "TurnClockwise"], groups=4, clips_per_group=2),
             "kinetics": synth_factory("kinetics", classes=["MoveRight", "BounceBall"], groups=5, clips_per_group=2)}
    root = roots[layout]
    manifest, report = index.index_dataset(root, layout="auto", probe=False)
    videos = read_synth_info(root)["videos"]
    assert manifest.layout == layout and len(manifest) == len(videos)
    assert not report.missing and not report.unlisted
    assert sorted(manifest.classes) == sorted({v["label"] for v in videos})
    by_path = {Path(v["path"]).name: v for v in videos}
    for rec in manifest.records:
        assert rec.label == by_path[Path(rec.path).name]["label"]
