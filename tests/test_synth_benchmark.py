"""The ``actions101`` benchmark: UCF-101's shape (counts, lengths, splits, scale), classes drawn from randomised
primitives with order, direction and fine-motion pairs, deterministic rendering, and resumable generation
that ``actionlab index`` reads."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("cv2")

from actionlab.cli.main import main
from actionlab.data.index import index_dataset
from actionlab.data.layouts import ucf101
from actionlab.synth import benchmark
from actionlab.synth.actors import pose, signals
from actionlab.synth.benchmark import clip_counts, make_benchmark, plan_benchmark
from actionlab.synth.primitives import ACTORS, draw_classes, pairs
from actionlab.synth.stage import draw_scene, render_video

SPECS = draw_classes(0)
BY_NAME = {s.name: s for s in SPECS}
PAIRS = pairs(SPECS)


def test_full_plan_has_ucf101_shape() -> None:
    counts = clip_counts(0)
    assert counts.shape == (101, 25) and counts.min() >= 4 and counts.max() <= 7 and counts.sum() == 13_320
    assert len(set(np.bincount(counts.ravel())[4:])) == 4  # every count 4-7 occurs
    specs, videos = plan_benchmark(0)
    assert len(specs) == 101 and len(videos) == 13_320
    seconds = np.array([v.num_frames for v in videos]) / benchmark.FPS
    assert 1.0 <= seconds.min() and seconds.max() <= 10.0
    assert 7.0 <= seconds.mean() <= 7.4 and np.median(seconds) < seconds.max() - 1  # UCF-101's mean of 7.2 s
    assert 2.3e6 <= seconds.sum() * benchmark.FPS <= 2.5e6
    per_class = Counter(v.synth_class for v in videos)
    assert all(per_class[s.name] == counts[s.index].sum() for s in specs)
    assert not np.array_equal(counts, clip_counts(1))


def test_scale_keeps_every_class_and_every_split() -> None:
    full = {(v.synth_class, v.group, v.clip) for v in plan_benchmark(0)[1]}
    specs, videos = plan_benchmark(0, scale=0.1)
    counts = clip_counts(0)
    assert len(videos) == sum(max(1, round(0.1 * counts[s.index].sum())) for s in specs)
    assert 1300 <= len(videos) <= 1360
    assert {(v.synth_class, v.group, v.clip) for v in videos} <= full
    for split in (1, 2, 3):
        test_groups = set(ucf101.scaled_test_groups(25, split))
        tested = Counter(v.synth_class for v in videos if v.group in test_groups)
        trained = Counter(v.synth_class for v in videos if v.group not in test_groups)
        assert set(tested) == set(trained) == {s.name for s in specs}  # every class tested and trained
        assert 0.2 <= sum(tested.values()) / len(videos) <= 0.36  # UCF-101 tests 7 of 25 groups
    small = plan_benchmark(0, scale=0.02, classes=3, max_frames=9)[1]
    assert {v.synth_class for v in small} == {s.name for s in SPECS[:3]} and max(v.num_frames for v in small) == 9
    with pytest.raises(ValueError, match="scale"):
        plan_benchmark(0, scale=0.0)
    with pytest.raises(ValueError, match="unknown actions101 classes"):
        plan_benchmark(0, classes=["NoSuchClass"])


def test_classes_come_from_randomised_primitives_with_pairs() -> None:
    assert len(SPECS) == 101 and len({s.name for s in SPECS}) == 101
    assert [s.index for s in SPECS] == list(range(101))
    assert {s.actor for s in SPECS} == set(ACTORS) and all(s.description for s in SPECS)
    kinds = Counter(kind for _, _, kind in PAIRS)
    assert 2 * (kinds["reverse"] + kinds["mirror"]) >= 101 / 3  # a third at least: order or direction only
    assert kinds["speed"] >= 2 and kinds["part"] >= 2  # fine motion only
    for first, second, kind in PAIRS:
        a, b = BY_NAME[first], BY_NAME[second]
        assert b.index == a.index + 1 and a.partner == second and b.partner == first and b.second
        same = ("actor", "shape", "background", "camera", "clutter", "lighting", "noise")
        assert all(getattr(a, f) == getattr(b, f) for f in same)  # nothing a single frame could see
        if kind == "part":
            assert a.actor == "object" and a.motions[0].kind != b.motions[0].kind
        else:
            assert a.motions == b.motions
        assert (b.reverse, b.mirror, b.speed > 1) == (kind == "reverse", kind == "mirror", kind == "speed")
        assert not (a.reverse or a.mirror or a.speed > 1)
    other = draw_classes(1)
    assert [s.name for s in draw_classes(0)] == [s.name for s in SPECS] != [s.name for s in other]


def test_pairs_differ_only_in_order_or_direction() -> None:
    for first, second, kind in PAIRS:
        a, b = BY_NAME[first], BY_NAME[second]
        sa, ta = signals(a, np.random.default_rng(3), 40, 25.0)
        sb, tb = signals(b, np.random.default_rng(3), 40, 25.0)
        look = draw_scene(a, np.random.default_rng(4), 240, 320).look
        pa, pb = (pose(s, look, np.random.default_rng(5), 40, 25.0, 240, 320) for s in (a, b))
        if kind == "reverse":  # the same clip draws, played backwards
            assert all(np.allclose(x[::-1], y) for x, y in zip(sa, sb)) and np.allclose(ta[::-1], tb)
            for field in ("x", "y", "angle", "scale", "alpha"):
                np.testing.assert_allclose(getattr(pa, field)[::-1], getattr(pb, field))
        elif kind == "mirror":  # the same draws, running the other way
            assert all(np.allclose(x, y) for x, y in zip(sa, sb))
            moved = [not np.allclose(getattr(pa, f), getattr(pb, f)) for f in ("x", "y", "angle")]
            moved += [not np.allclose(pa.extra[k], pb.extra[k]) for k in pa.extra]
            moved += [pa.wobble is not None and not np.allclose(pa.wobble, pb.wobble),
                      pa.scroll is not None and not np.allclose(pa.scroll, pb.scroll)]
            assert any(moved), first
        elif kind == "speed":
            assert b.speed >= 2.0 and a.speed == 1.0


@pytest.mark.parametrize("actor", ACTORS)
def test_every_actor_renders_deterministically_and_moves(actor: str) -> None:
    spec = next(s for s in SPECS if s.actor == actor)
    clip = render_video(spec, 0, 2, 1, 12, 120, 160)
    assert clip.shape == (12, 120, 160, 3) and clip.dtype == np.uint8 and clip.std() > 5
    np.testing.assert_array_equal(clip, render_video(spec, 0, 2, 1, 12, 120, 160))
    assert not np.array_equal(clip, render_video(spec, 0, 3, 1, 12, 120, 160))  # another group: another scene
    assert not np.array_equal(clip, render_video(spec, 0, 2, 2, 12, 120, 160))  # another clip of the group
    assert np.abs(np.diff(clip.astype(np.int16), axis=0)).mean() > 0.1  # something changes over time


def _decoded_frames(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    return len(frames), (frames[0].height, frames[0].width)


def test_make_benchmark_writes_ucf101_layout_and_resumes(tmp_path: Path) -> None:
    first, second, _ = PAIRS[0]
    names = [first, second, SPECS[0].name]
    out = tmp_path / "bench"
    kwargs = dict(scale=0.03, seed=0, workers=1, classes=names, max_frames=6, size=(96, 128))
    make_benchmark(out, **kwargs)
    info = json.loads((out / "synth_info.json").read_text())
    videos = info["videos"]
    assert {v["synth_class"] for v in videos} == set(names) and len(videos) >= 3 * 3
    assert [first, second, "reverse" if BY_NAME[second].reverse else BY_NAME[second].relation] in info["pairs"]
    assert _decoded_frames(out / videos[0]["path"]) == (videos[0]["num_frames"], (96, 128))
    manifest, report = index_dataset(out, layout="ucf101", split=1, workers=0)
    assert report.ok and len(manifest.records) == len(videos)
    assert manifest.classes == [s.name for s in SPECS if s.name in names]
    assert {r.split for r in manifest.records} >= {"train", "test"}
    assert not list(out.rglob(".*.tmp.avi"))

    # resume: a lost video comes back, a half-written one is cleared, the rest is left alone
    lost = out / videos[1]["path"]
    lost.unlink()
    stale = lost.with_name(f".{lost.stem}.tmp.avi")
    stale.write_bytes(b"half")
    kept = out / videos[2]["path"]
    before = kept.stat().st_mtime_ns
    os.utime(kept, ns=(before - 10**9, before - 10**9))
    make_benchmark(out, **kwargs)
    assert lost.exists() and not stale.exists() and kept.stat().st_mtime_ns == before - 10**9
    assert _decoded_frames(lost)[0] == videos[1]["num_frames"]
    with pytest.raises(FileExistsError, match="differing: scale"):
        make_benchmark(out, **{**kwargs, "scale": 0.05})


def test_cli_synth_passes_scale_and_refuses_what_does_not_apply(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    calls = []
    monkeypatch.setattr(benchmark, "make_benchmark", lambda out, **kw: calls.append((out, kw)) or Path(out))
    assert main(["synth", str(tmp_path / "b"), "--family", "actions101", "--scale", "0.1", "--workers", "1",
                 "--classes", "4", "--seed", "3"]) == 0
    assert calls == [(str(tmp_path / "b"), {"scale": 0.1, "seed": 3, "workers": 1, "classes": 4})]
    assert main(["synth", str(tmp_path / "c"), "--family", "actions101", "--groups", "3"]) == 2
    assert main(["synth", str(tmp_path / "d"), "--family", "actions101", "--layout", "hmdb51"]) == 2
    assert main(["synth", str(tmp_path / "e"), "--scale", "0.5"]) == 2  # the demo family has no --scale
    assert len(calls) == 1


def test_benchmark_table_averages_seeds_and_pair_kinds(tmp_path: Path) -> None:
    """``scripts/benchmark_table.py``: test/val top-1 over seeds and the mean accuracy of each pair kind's
    classes, from the runs' metrics.json and the dataset's synth_info.json."""
    import subprocess
    import sys

    root = tmp_path / "bench"
    root.mkdir()
    (root / "synth_info.json").write_text(json.dumps({"pairs": [["A", "B", "reverse"], ["C", "D", "speed"]]}))
    classes = ["A", "B", "C", "D", "E"]
    for seed, (top1, accs) in enumerate([(0.5, [1.0, 0.0, 0.5, 0.5, 0.5]), (0.7, [1.0, 1.0, 0.0, 0.0, 1.0])]):
        run = tmp_path / "lstm" / f"seed-{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps(
            {"top1": top1, "val_top1": 0.4, "classes": classes, "per_class_accuracy": accs}))
    script = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_table.py"
    out = subprocess.run([sys.executable, str(script), str(root), f"lstm={tmp_path / 'lstm'}"],
                         capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| lstm |"))
    # top-1 0.5, 0.7: 60.0 ± 14.1; reverse pairs (A, B): 0.5 then 1.0 -> 75.0 ± 35.4; speed (C, D): 0.5, 0.0
    assert row == "| lstm | 2 | 60.0 ± 14.1% | 40.0 ± 0.0% | 75.0 ± 35.4% | 25.0 ± 35.4% |"
    missing = subprocess.run([sys.executable, str(script), str(tmp_path), "x=" + str(tmp_path)],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "synth_info.json" in missing.stderr
