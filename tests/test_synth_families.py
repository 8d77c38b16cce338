"""The generated dataset families beyond the demo's: what each renders, determinism, documented frame counts
and rates, backward classes as reversed forward clips, and every synth layout for every family."""

from __future__ import annotations

import re

import av
import numpy as np
import pytest

from actionlab.data.index import index_dataset
from actionlab.synth.families import (
    FAMILIES,
    LAYOUTS,
    SYNTH_CLASSES,
    family_classes,
    get_family,
    make_synthetic_dataset,
    read_synth_info,
    render_clip,
)

NEW = [f for f in FAMILIES if f != "demo"]
# documented in actionlab.synth.families and each family's module
DOCUMENTED = {
    "demo": dict(classes=11, pairs=4, frames=(40, 72), fps=25, size=(240, 320)),
    "textures": dict(classes=8, pairs=3, frames=(30, 90), fps=15, size=(240, 320)),
    "gestures": dict(classes=14, pairs=6, frames=(48, 120), fps=30, size=(180, 320)),
    "outdoor": dict(classes=10, pairs=4, frames=(36, 150), fps=24, size=(160, 240)),
}


def test_families_are_listed_and_documented() -> None:
    assert FAMILIES == ("demo", "textures", "gestures", "outdoor")
    assert family_classes("demo") == SYNTH_CLASSES == family_classes()
    every = [c for f in FAMILIES for c in family_classes(f)]
    assert len(every) == len(set(every)), "class names are unique across families"
    for name in FAMILIES:
        fam, doc = get_family(name), DOCUMENTED[name]
        assert len(fam.classes) == doc["classes"] and len(fam.pairs) == doc["pairs"]
        assert len(fam.appearance) == doc["classes"] - 2 * doc["pairs"] >= 2
        assert (fam.num_frames, fam.fps, fam.size) == (doc["frames"], doc["fps"], doc["size"])
        assert set(fam.descriptions) == set(fam.classes) and all(fam.descriptions.values())
    with pytest.raises(ValueError, match="family must be one of"):
        get_family("noise")


@pytest.mark.parametrize("family", NEW)
def test_every_class_renders_deterministically(family: str) -> None:
    fam = get_family(family)
    h, w = fam.size
    for name in fam.classes:
        clip = render_clip(name, 2, 1, 9, seed=5)
        assert clip.shape == (9, h, w, 3) and clip.dtype == np.uint8 and clip.std() > 5
        np.testing.assert_array_equal(clip, render_clip(name, 2, 1, 9, seed=5))
        assert not np.array_equal(clip, render_clip(name, 2, 1, 9, seed=6))
        assert not np.array_equal(clip, render_clip(name, 3, 1, 9, seed=5))  # another group: another scene
        assert not np.array_equal(clip, render_clip(name, 2, 2, 9, seed=5))  # another clip of the group
    small = render_clip(fam.classes[0], 1, 1, 3, size=(48, 64))
    assert small.shape == (3, 48, 64, 3)


@pytest.mark.parametrize("family", NEW)
def test_backward_classes_are_forward_clips_reversed(family: str) -> None:
    fam = get_family(family)
    for fwd, bwd in fam.pairs:
        for g, c in ((1, 1), (4, 2)):
            forward = render_clip(fwd, g, c, 24, size=(72, 96))
            np.testing.assert_array_equal(render_clip(bwd, g, c, 24, size=(72, 96)), forward[::-1])
            # the forward clip changes over time (the action happens), far more than camera noise
            change = np.abs(forward[0].astype(np.float32) - forward[-1]).mean()
            assert change > 4, (fwd, g, c, change)


@pytest.mark.parametrize("family", NEW)
def test_default_frame_counts_and_rates_as_documented(family: str, tmp_path) -> None:
    doc = DOCUMENTED[family]
    fam = get_family(family)
    root = make_synthetic_dataset(tmp_path / family, layout="folders", family=family, classes=2, groups=3,
                                  clips_per_group=2, size=(48, 64), workers=0)
    info = read_synth_info(root)
    assert info["params"]["family"] == family and info["params"]["fps"] == doc["fps"]
    assert info["params"]["num_frames"] == list(doc["frames"])
    lengths = [v["num_frames"] for v in info["videos"]]
    assert all(doc["frames"][0] <= n <= doc["frames"][1] for n in lengths) and len(set(lengths)) > 1
    for fwd, bwd in fam.pairs[:1]:  # both classes of a pair draw the same lengths
        by = {(v["synth_class"], v["group"], v["clip"]): v["num_frames"] for v in info["videos"]}
        assert all(by[(fwd, g, c)] == by[(bwd, g, c)] for (name, g, c) in by if name == fwd)
    v = info["videos"][0]
    with av.open(str(root / v["path"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4" and stream.codec_context.codec_tag == "XVID"
        assert float(stream.average_rate) == doc["fps"]
        assert sum(1 for _ in container.decode(stream)) == v["num_frames"]
    readme = (root / "README.txt").read_text()
    assert all(c in readme for c in fam.classes[:2]) and f'"family": "{family}"' in readme


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("family", NEW)
def test_every_family_in_every_layout(family: str, layout: str, tmp_path) -> None:
    classes = [get_family(family).classes[i] for i in (0, 1, -1)]  # a pair and an appearance class
    root = make_synthetic_dataset(tmp_path / "d", layout=layout, family=family, classes=classes, groups=5,
                                  clips_per_group=2, num_frames=(6, 8), size=(32, 48), workers=0)
    videos = read_synth_info(root)["videos"]
    assert len(videos) == 3 * 5 * 2 and all((root / v["path"]).is_file() for v in videos)
    manifest, report = index_dataset(root, probe=False)
    assert manifest.layout == layout and len(manifest) == len(videos) and report.ok
    assert not report.unlisted and sorted(manifest.classes) == sorted({v["label"] for v in videos})
    assert "val" in manifest.splits()
    if layout == "hmdb51":  # the clips of one generated scene are one source video
        assert {r.group for r in manifest.records} == {re.sub(r"_f_nm_np1_fr_goo_\d+$", "", v["path"].split("/")[1][:-4])
                                                       for v in videos}


def test_family_classes_are_checked() -> None:
    with pytest.raises(ValueError, match="family 'textures'"):
        make_synthetic_dataset("/nonexistent/never-written", family="textures", classes=["GrowCircle"])
    with pytest.raises(ValueError, match="unknown synthetic class 'Swim'.*gestures: RaiseArm"):
        render_clip("Swim", 1, 1, 5)


def test_outdoor_is_sized_like_a_held_out_ucf101_set(tmp_path) -> None:
    """By default the held-out family has 25 groups x 4 clips per class: 100 videos a class, of which UCF-101's
    split 1 tests groups 1-7 (28 videos; 10 classes: 720 train / 280 test)."""
    fam = get_family("outdoor")
    assert (fam.groups, fam.clips_per_group) == (25, 4)
    assert (get_family("demo").groups, get_family("demo").clips_per_group) == (16, 2)  # the others unchanged
    root = make_synthetic_dataset(tmp_path / "d", family="outdoor", classes=["Fountain"], num_frames=2,
                                  size=(16, 24), codec="ffv1", workers=0)
    lists = root / "ucfTrainTestlist"
    train = (lists / "trainlist01.txt").read_bytes().decode().split("\r\n")[:-1]
    test = (lists / "testlist01.txt").read_bytes().decode().split("\r\n")[:-1]
    assert (len(train), len(test)) == (72, 28)
    assert test[0] == "Fountain/v_Fountain_g01_c01.avi" and test[-1] == "Fountain/v_Fountain_g07_c04.avi"
    assert all(line.startswith("Fountain/v_Fountain_g") and line.endswith(" 1") for line in train)
