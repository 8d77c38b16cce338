"""Indexing the public dataset layouts, built as tiny fake trees (empty files, probe=False) plus one real probe."""

from __future__ import annotations

import csv
import os
import random
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actionlab.cli.text import format_index_report
from actionlab.data.index import (
    DatasetLayoutError,
    assign_group_splits,
    carve_validation,
    detect_layout,
    index_dataset,
)
from actionlab.data.manifest import read_manifest, write_manifest

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups", "YoYo"]
UCF_FILE_CLASS = {"HandstandPushups": "HandStandPushups"}  # the real quirk: folder and file names differ in case


def _touch(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _ucf_name(cls: str, g: int, c: int) -> str:
    return f"{cls}/v_{UCF_FILE_CLASS.get(cls, cls)}_g{g:02d}_c{c:02d}.avi"


def make_ucf101(videos: Path, lists: Path, clips: int = 2, classes: list[str] = UCF_CLASSES) -> list[str]:
    """UCF-101 as distributed: 25 groups per class, official lists (CRLF) for splits 1-3."""
    names = [_ucf_name(cls, g, c) for cls in classes for g in range(1, 26) for c in range(1, clips + 1)]
    for n in names:
        _touch(videos / n)
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)).encode())
    for s in (1, 2, 3):
        test_groups = range(7 * (s - 1) + 1, 7 * s + 1)
        train, test = [], []
        for i, cls in enumerate(classes, 1):
            for g in range(1, 26):
                for c in range(1, clips + 1):
                    if g in test_groups:
                        test.append(f"{_ucf_name(cls, g, c)}\r\n")
                    else:
                        train.append(f"{_ucf_name(cls, g, c)} {i}\r\n")
        (lists / f"trainlist0{s}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist0{s}.txt").write_bytes("".join(test).encode())
    return names


def _groups_by_split(manifest) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in manifest.records:
        out[r.split].add(r.group)
    return out


def _assert_no_group_straddles(manifest) -> None:
    split_of: dict[str, str] = {}
    for r in manifest.records:
        assert split_of.setdefault(r.group, r.split) == r.split, f"group {r.group} in two splits"


# ----------------------------------------------------------------------------------- UCF-101


def test_ucf101_official_layout_crlf_and_handstand_quirk(tmp_path: Path) -> None:
    names = make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist")
    m, rep = index_dataset(tmp_path, val_fraction=0.0, probe=False)  # the official lists as they are
    assert rep.layout == "ucf101" and "classInd.txt" in rep.detected and rep.split == 1
    assert m.root == (tmp_path / "UCF-101").resolve() and m.layout == "ucf101"
    assert m.classes == UCF_CLASSES
    assert sorted(r.path for r in m.records) == sorted(names)
    assert rep.ok and rep.missing == [] and rep.unlisted == [] and rep.listed == len(names)
    hs = [r for r in m.records if "HandStand" in r.path]
    assert len(hs) == 50 and {(r.label, r.label_index) for r in hs} == {("HandstandPushups", 2)}
    assert all(r.path.startswith("HandstandPushups/v_HandStandPushups_g") for r in hs)
    groups = _groups_by_split(m)
    assert groups["test"] == {f"g{g:02d}" for g in range(1, 8)}
    assert groups["train"] == {f"g{g:02d}" for g in range(8, 26)}
    assert rep.counts == {"train": 4 * 18 * 2, "test": 4 * 7 * 2}
    assert all(r.num_frames == -1 and r.width == r.height == 0 for r in m.records)  # not probed: unknown
    assert m.abspath(hs[0]).is_file()


def test_ucf101_lists_beside_video_folder_and_split_choice(tmp_path: Path) -> None:
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1)
    m2, rep = index_dataset(tmp_path / "UCF-101", split=2, probe=False)  # ROOT is the video folder itself
    assert rep.layout == "ucf101" and m2.root == (tmp_path / "UCF-101").resolve()
    assert _groups_by_split(m2)["test"] == {f"g{g:02d}" for g in range(8, 15)}
    with pytest.raises(DatasetLayoutError, match="splits 1, 2 and 3"):
        index_dataset(tmp_path, split=4, probe=False)


def test_ucf101_videos_directly_under_root_with_lists_inside(tmp_path: Path) -> None:
    make_ucf101(tmp_path, tmp_path / "ucfTrainTestlist", clips=1, classes=["Diving", "Punch"])
    m, rep = index_dataset(tmp_path, layout="ucf101", probe=False)
    assert rep.detected == "requested" and m.root == tmp_path.resolve() and len(m) == 50 and rep.ok


def test_ucf101_missing_and_unlisted_files_are_reported(tmp_path: Path) -> None:
    names = make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1)
    gone = names[3]
    (tmp_path / "UCF-101" / gone).unlink()
    _touch(tmp_path / "UCF-101" / "YoYo" / "v_YoYo_g26_c01.avi")
    m, rep = index_dataset(tmp_path, probe=False)
    assert rep.missing == [gone] and not rep.ok
    assert rep.unlisted == ["YoYo/v_YoYo_g26_c01.avi"]
    assert gone not in {r.path for r in m.records} and len(m) == len(names) - 1
    text = format_index_report(m, rep)
    assert "missing (listed, not on disk): 1" in text and gone in text and "v_YoYo_g26_c01.avi" in text


def test_ucf101_other_case_on_disk_is_matched(tmp_path: Path) -> None:
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1, classes=["YoYo"])
    os.rename(tmp_path / "UCF-101/YoYo/v_YoYo_g01_c01.avi", tmp_path / "UCF-101/YoYo/v_yoyo_g01_c01.AVI")
    m, rep = index_dataset(tmp_path, probe=False)
    assert rep.ok and "YoYo/v_yoyo_g01_c01.AVI" in {r.path for r in m.records}
    assert any("other case" in n for n in rep.notes)


@pytest.mark.parametrize(("line", "match"), [
    ("Skiing/v_Skiing_g08_c01.avi 1", r"trainlist01\.txt:3: folder 'Skiing' is not a class"),
    ("YoYo/v_YoYo_g08_c01.avi 1", r"trainlist01\.txt:3: label 1 disagrees with folder 'YoYo'"),
    ("v_YoYo_g08_c01.avi", r"trainlist01\.txt:3: expected"),
])
def test_ucf101_bad_list_lines_name_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    lists = tmp_path / "ucfTrainTestlist"
    make_ucf101(tmp_path / "UCF-101", lists, clips=1)
    lines = (lists / "trainlist01.txt").read_bytes().split(b"\r\n")
    lines[2] = line.encode()
    (lists / "trainlist01.txt").write_bytes(b"\r\n".join(lines))
    with pytest.raises(DatasetLayoutError, match=match):
        index_dataset(tmp_path, probe=False)


def test_ucf101_class_subset_and_group_aware_val(tmp_path: Path) -> None:
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist")
    m, rep = index_dataset(tmp_path, classes=["YoYo", "applyeyemakeup"], val_fraction=0.2, seed=0, probe=False)
    assert m.classes == ["YoYo", "ApplyEyeMakeup"]
    assert {(r.label, r.label_index) for r in m.records} == {("YoYo", 0), ("ApplyEyeMakeup", 1)}
    assert rep.listed == 2 * 25 * 2 == len(m)
    _assert_no_group_straddles(m)
    groups = _groups_by_split(m)
    assert len(groups["val"]) == round(0.2 * 18) and groups["val"] <= {f"g{g:02d}" for g in range(8, 26)}
    assert groups["test"] == {f"g{g:02d}" for g in range(1, 8)}  # the official test split is untouched
    again, _ = index_dataset(tmp_path, classes=["YoYo", "ApplyEyeMakeup"], val_fraction=0.2, seed=0, probe=False)
    assert again.records == m.records
    other, _ = index_dataset(tmp_path, classes=["YoYo", "ApplyEyeMakeup"], val_fraction=0.2, seed=1, probe=False)
    assert _groups_by_split(other)["val"] != groups["val"]
    with pytest.raises(DatasetLayoutError) as err:
        index_dataset(tmp_path, classes=["Yoyo2"], probe=False)
    assert "HandstandPushups" in str(err.value) and "Yoyo2" in str(err.value)


# ----------------------------------------------------------------------------------- HMDB-51

HMDB = {
    "brush_hair": ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "April_09_brush_hair_u_nm_np1_ba_goo_1.avi",
                   "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi"],
    "cartwheel": ["(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", "Boden,_Rolle_&_Rad_cartwheel_0.avi",
                  "#20_Rhythm_cartwheel_u_nm_np1_fr_goo_0.avi"],
    "climb_stairs": ["BIG_FISH_climb_stairs_f_nm_np1_fr_med_0.avi", "BIG_FISH_climb_stairs_f_nm_np1_fr_med_1.avi",
                     "Goldfinger_climb_stairs_f_cm_np1_ba_med_2.avi"],
}


def make_hmdb51(root: Path) -> None:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls, names in HMDB.items():
        for n in names:
            _touch(root / "hmdb51_org" / cls / n)
        for s, codes in ((1, "120"), (2, "012"), (3, "201")):
            # the real files end every line with a space; some copies have CRLF
            text = "".join(f"{n} {code} \r\n" for n, code in zip(names, codes)) + "\r\n"
            (splits / f"{cls}_test_split{s}.txt").write_bytes(text.encode())


def test_hmdb51_split_files_trailing_spaces_and_codes(tmp_path: Path) -> None:
    make_hmdb51(tmp_path)
    m, rep = index_dataset(tmp_path, val_fraction=0.0, probe=False)  # the official lists as they are
    assert rep.layout == "hmdb51" and "_test_split" in rep.detected
    assert m.classes == ["brush_hair", "cartwheel", "climb_stairs"]
    assert m.root == (tmp_path / "hmdb51_org").resolve()
    by_path = {r.path: r for r in m.records}
    r = by_path["cartwheel/Boden,_Rolle_&_Rad_cartwheel_0.avi"]
    assert (r.split, r.label_index, r.group) == ("test", 1, "Boden,_Rolle_&_Rad_cartwheel_0")
    assert by_path["cartwheel/#20_Rhythm_cartwheel_u_nm_np1_fr_goo_0.avi"].split == "unused"
    assert by_path["climb_stairs/BIG_FISH_climb_stairs_f_nm_np1_fr_med_0.avi"].split == "train"
    assert by_path["brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi"].split == "unused"
    assert rep.counts == {"train": 3, "test": 3, "unused": 3} and rep.ok
    m2, _ = index_dataset(tmp_path, split=2, val_fraction=0.0, probe=False)
    assert m2.split("train")[0].path != m.split("train")[0].path
    # odd file names survive the CSV round trip
    write_manifest(m, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv").records == m.records
    with pytest.raises(DatasetLayoutError, match=r"splits present: \[1, 2, 3\]"):
        index_dataset(tmp_path, split=4, probe=False)


def test_hmdb51_bad_code_names_file_and_line(tmp_path: Path) -> None:
    make_hmdb51(tmp_path)
    f = tmp_path / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    f.write_text(f.read_text() + "extra_video.avi 3\n")
    with pytest.raises(DatasetLayoutError, match=r"cartwheel_test_split1\.txt:5: expected '<video>.avi <0\|1\|2>'"):
        index_dataset(tmp_path, probe=False)


# ----------------------------------------------------------------------------------- Kinetics


def make_kinetics(root: Path) -> dict[str, tuple[str, str, str]]:
    """Returns the clips that exist on disk: key -> (label, split, path)."""
    rows = [  # label, youtube_id, start, end, split
        ("abseiling", "--07WQ2iBlw", 1, 11, "train"),
        ("abseiling", "-0Fgi_4cC1E", 30, 40, "train"),
        ("passing American football (in game)", "a_b-CdEfGhI", 5, 15, "train"),
        ("passing American football (in game)", "zzzMissing1", 0, 10, "train"),
        ("massaging person's head", "Q1w2E3r4T5y", 100, 110, "train"),
        ("massaging person's head", "qwErtyuiop1", 2, 12, "validate"),
        ("abseiling", "abseilVal01", 7, 17, "validate"),
        ("passing American football (in game)", "zzzMissing2", 3, 13, "validate"),
    ]
    ann = root / "annotations"
    ann.mkdir(parents=True)
    for name, split in (("train.csv", "train"), ("validate.csv", "validate")):
        with open(ann / name, "w", newline="") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
            w.writerows([*r, 0] for r in rows if r[4] == split)
    # an unlabeled test CSV (as Kinetics-400 first shipped) is skipped, with a note
    (ann / "test.csv").write_text("youtube_id,time_start,time_end,split\nTeStId00001,0,10,test\n")
    on_disk = {
        "--07WQ2iBlw_000001_000011": ("abseiling", "train", "train/abseiling/--07WQ2iBlw_000001_000011.mp4"),
        "-0Fgi_4cC1E_000030_000040": ("abseiling", "train", "-0Fgi_4cC1E_000030_000040.mkv"),  # flat, other ext
        "a_b-CdEfGhI_000005_000015": ("passing American football (in game)", "train",
                                      "train/passing_American_football_(in_game)/a_b-CdEfGhI_000005_000015.mp4"),
        "Q1w2E3r4T5y_000100_000110": ("massaging person's head", "train",
                                      "train/massaging person's head/Q1w2E3r4T5y_000100_000110.webm"),
        "qwErtyuiop1_000002_000012": ("massaging person's head", "val",
                                      "val/massaging person's head/qwErtyuiop1_000002_000012.mp4"),
        "abseilVal01_000007_000017": ("abseiling", "val", "val/abseiling/abseilVal01_000007_000017.mp4"),
    }
    for _, _, p in on_disk.values():
        _touch(root / p)
    return on_disk


def test_kinetics_csvs_labels_with_spaces_and_missing_videos(tmp_path: Path) -> None:
    on_disk = make_kinetics(tmp_path)
    m, rep = index_dataset(tmp_path, probe=False)
    assert rep.layout == "kinetics" and "label,youtube_id" in rep.detected
    assert m.classes == ["abseiling", "massaging person's head", "passing American football (in game)"]
    got = {r.path: (r.label, r.split) for r in m.records}
    assert got == {p: (label, split) for label, split, p in on_disk.values()}
    assert {r.group for r in m.records} == {k.rsplit("_", 2)[0] for k in on_disk}
    assert len(rep.missing) == 2 and all("zzzMissing" in x for x in rep.missing)
    assert rep.counts == {"train": 4, "val": 2} and rep.listed == 8
    assert any("test.csv" in n and "no label column" in n for n in rep.notes)
    sub, _ = index_dataset(tmp_path, layout="kinetics", classes=["passing_American_football_(in_game)"],
                           probe=False)
    assert sub.classes == ["passing American football (in game)"] and len(sub) == 1
    write_manifest(m, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv") == m


def test_kinetics_bad_split_value_names_file_and_line(tmp_path: Path) -> None:
    make_kinetics(tmp_path)
    with open(tmp_path / "annotations" / "train.csv", "a") as fh:
        fh.write("abseiling,xyz,1,11,training-set,0\n")
    with pytest.raises(DatasetLayoutError, match=r"train\.csv:7: split 'training-set'"):
        index_dataset(tmp_path, probe=False)


# ----------------------------------------------------------------------------------- UCF-11


def test_ucf11_groups_are_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "UCF11_updated_mpg"
    # the real quirk: class folder 'basketball' holds v_shooting_NN groups
    for cls, stem in (("basketball", "shooting"), ("biking", "biking"), ("golf_swing", "golf")):
        for g in range(1, 9):
            for c in range(1, 4):
                _touch(root / cls / f"v_{stem}_{g:02d}" / f"v_{stem}_{g:02d}_{c:02d}.mpg")
        _touch(root / cls / "Annotation" / f"v_{stem}_01_01.xgtf")
    assert detect_layout(tmp_path)[0] == "ucf11"
    m, rep = index_dataset(tmp_path, probe=False)
    assert rep.layout == "ucf11" and m.root == root.resolve()
    assert m.classes == ["basketball", "biking", "golf_swing"] and len(m) == 72
    assert {r.group for r in m.records if r.label == "basketball"} == {f"v_shooting_{g:02d}" for g in range(1, 9)}
    assert all(r.path.split("/")[1] == r.group for r in m.records)
    _assert_no_group_straddles(m)
    assert set(rep.counts) == {"train", "val", "test"}


# ----------------------------------------------------------------------------------- folders


def test_folders_split_is_stable_when_classes_are_added(tmp_path: Path) -> None:
    for cls in ("walk", "run"):
        for i in range(30):
            _touch(tmp_path / cls / f"{cls}_{i:03d}.mp4")
    m1, rep = index_dataset(tmp_path, probe=False)
    assert rep.layout == "folders" and m1.classes == ["run", "walk"]
    for i in range(30):
        _touch(tmp_path / "jump" / f"jump_{i:03d}.mp4")
    m2, _ = index_dataset(tmp_path, probe=False)
    assert m2.classes == ["jump", "run", "walk"]
    before = {r.path: r.split for r in m1.records}
    assert {r.path: r.split for r in m2.records if r.path in before} == before
    assert {r.label_index for r in m2.records if r.label == "walk"} == {2}
    frac = {s: n / len(m2) for s, n in m2.summary()["videos_per_split"].items()}
    assert 0.55 < frac["train"] < 0.85 and 0.05 < frac["val"] < 0.3 and 0.05 < frac["test"] < 0.3
    m3, _ = index_dataset(tmp_path, probe=False, seed=1)
    assert {r.path: r.split for r in m3.records} != {r.path: r.split for r in m2.records}
    m4, _ = index_dataset(tmp_path, probe=False, fractions=(0.5, 0.0, 0.5))
    assert set(m4.splits()) == {"train", "test"}


def test_folders_wrapper_stray_files_and_groups(tmp_path: Path) -> None:
    data = tmp_path / "my_dataset"
    _touch(data / "wave" / "v_wave_g03_c01.avi")
    _touch(data / "wave" / "v_wave_g03_c02.avi")
    _touch(data / "wave" / "session1" / "a.mov")
    _touch(data / "wave" / "session1" / "b.mov")
    _touch(data / "clap" / "IMG_0001.MP4")
    _touch(data / "clap" / "notes.txt")
    _touch(data / "orphan.mp4")
    m, rep = index_dataset(data, probe=False)
    assert m.root == data.resolve() and m.classes == ["clap", "wave"]
    groups = {r.path: r.group for r in m.records}
    assert groups == {"wave/v_wave_g03_c01.avi": "g03", "wave/v_wave_g03_c02.avi": "g03",
                      "wave/session1/a.mov": "session1", "wave/session1/b.mov": "session1",
                      "clap/IMG_0001.MP4": "IMG_0001"}
    assert rep.unlisted == ["orphan.mp4"] and "unlisted" in format_index_report(m, rep)
    _assert_no_group_straddles(m)
    (data / "orphan.mp4").unlink()
    wrapped, rep = index_dataset(tmp_path, probe=False)  # descends through the single wrapper folder
    assert wrapped.root == data.resolve() and wrapped.records == m.records
    assert any("my_dataset" in n for n in rep.notes)


_NAMING = st.sampled_from(["ucf", "nested", "stem"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.lists(st.tuples(_NAMING, st.integers(1, 6), st.integers(1, 3)), min_size=2, max_size=4),
       seed=st.integers(0, 3), shuffle_seed=st.integers(0, 2**16))
def test_folders_property_group_aware_complete_order_independent(spec, seed, shuffle_seed) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        true_group: dict[str, str] = {}
        # (one class folder alone would read as a wrapper folder, so specs have two or more classes)
        for k, (naming, n_groups, n_clips) in enumerate(spec):
            cls = f"class{k}"
            for g in range(1, n_groups + 1):
                for c in range(1, n_clips + 1):
                    if naming == "ucf":
                        rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                    elif naming == "nested":
                        rel = f"{cls}/clip{g}/{c}.mp4"
                    else:
                        rel = f"{cls}/video_{g}_{c}.mkv"
                    _touch(root / rel)
                    true_group[rel] = f"{cls}/{g}" if naming != "stem" else rel
        m, rep = index_dataset(root, layout="folders", seed=seed, probe=False)
        # every file assigned exactly once
        assert sorted(r.path for r in m.records) == sorted(true_group)
        assert rep.listed == len(true_group) and rep.ok
        # no group (ours, or the true scene group) in two splits
        _assert_no_group_straddles(m)
        split_of: dict[str, str] = {}
        for r in m.records:
            assert split_of.setdefault(true_group[r.path], r.split) == r.split
        # the same result whatever order the file system lists entries in
        real_scandir = os.scandir
        rng = random.Random(shuffle_seed)

        class _Shuffled:
            def __init__(self, path):
                self._it = real_scandir(path)

            def __enter__(self):
                entries = list(self._it)
                rng.shuffle(entries)
                return iter(entries)

            def __exit__(self, *exc):
                self._it.close()

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("actionlab.data.layouts.common.os.scandir", _Shuffled)
            shuffled, _ = index_dataset(root, layout="folders", seed=seed, probe=False)
        assert shuffled.records == m.records


@given(groups=st.sets(st.text(min_size=1, max_size=8), max_size=40), seed=st.integers(0, 5), data=st.data())
def test_assign_and_carve_are_order_independent(groups, seed, data) -> None:
    order = data.draw(st.permutations(sorted(groups)))
    a = assign_group_splits(sorted(groups), seed=seed)
    assert a == assign_group_splits(order, seed=seed) and set(a) == groups
    assert set(a.values()) <= {"train", "val", "test"}
    v = carve_validation(sorted(groups), 0.2, seed)
    assert v == carve_validation(order, 0.2, seed) and v <= groups
    if len(groups) >= 2:
        assert 1 <= len(v) <= len(groups) - 1


# ----------------------------------------------------------------------------------- errors and reports


def test_unrecognizable_root_is_a_clear_error(tmp_path: Path) -> None:
    _touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(DatasetLayoutError, match="no recognizable dataset layout.*--layout"):
        index_dataset(tmp_path, probe=False)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        index_dataset(tmp_path / "nope", probe=False)
    with pytest.raises(DatasetLayoutError, match="ucfTrainTestlist"):
        index_dataset(tmp_path, layout="ucf101", probe=False)


def test_lists_without_any_video_on_disk_is_an_error(tmp_path: Path) -> None:
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1, classes=["YoYo"])
    shutil.rmtree(tmp_path / "UCF-101")
    with pytest.raises(DatasetLayoutError, match=r"none of the 25 videos listed .* point ROOT at the folder"):
        index_dataset(tmp_path, probe=False)


def test_format_report_summarizes(tmp_path: Path) -> None:
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1)
    m, rep = index_dataset(tmp_path, val_fraction=0.1, probe=False)
    text = format_index_report(m, rep)
    assert text.startswith("layout:   ucf101 (auto: found ")
    assert f"videos:   100 of 100 listed (train {rep.counts['train']}, val {rep.counts['val']}, test 28)" in text
    assert "HandstandPushups" in text and "unreadable: 0" in text


# ----------------------------------------------------------------------------------- real videos


OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


@pytest.mark.skipif(not (OPENCV_DATA / "Megamind.avi").is_file(), reason="opencv-doc sample videos not installed")
def test_probe_real_videos_and_report_unreadable(tmp_path: Path) -> None:
    pytest.importorskip("actionlab.data.video.decode")
    shutil.copy(OPENCV_DATA / "tree.avi", tmp_path / "tree.avi")
    _touch(tmp_path / "Diving" / "v_Diving_g01_c01.avi", (OPENCV_DATA / "Megamind.avi").read_bytes())
    _touch(tmp_path / "Diving" / "v_Diving_g02_c01.avi", (OPENCV_DATA / "Megamind.avi").read_bytes()[:150_000])
    _touch(tmp_path / "Punch" / "v_Punch_g01_c01.avi", (tmp_path / "tree.avi").read_bytes())
    _touch(tmp_path / "Punch" / "v_Punch_g02_c01.avi", b"this is not a video\n")
    (tmp_path / "tree.avi").unlink()
    calls: list[tuple[int, int]] = []
    m, rep = index_dataset(tmp_path, layout="folders", workers=2, progress=lambda d, t: calls.append((d, t)))
    frames = {r.path: r.num_frames for r in m.records}
    assert frames == {"Diving/v_Diving_g01_c01.avi": 270, "Punch/v_Punch_g01_c01.avi": 68}
    assert all(r.fps > 0 and r.duration > 0 for r in m.records)
    # the displayed size, as the decoder outputs it (both files are square-pixel and unrotated)
    from actionlab.data.video.decode import probe

    for r in m.records:
        info = probe(m.abspath(r))
        assert (r.width, r.height) == (info.width, info.height) and r.width > 0 and r.height > 0
    write_manifest(m, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv").records == m.records
    bad = dict(rep.unreadable)
    assert set(bad) == {"Diving/v_Diving_g02_c01.avi", "Punch/v_Punch_g02_c01.avi"}
    assert all(reason for reason in bad.values())
    assert calls[-1] == (4, 4)
    serial, rep0 = index_dataset(tmp_path, layout="folders", workers=0)
    assert serial.records == m.records and rep0.unreadable == rep.unreadable
    assert "unreadable: 2" in format_index_report(m, rep)
