"""The layout dispatcher, HMDB-51's source-video groups, and validation splits that never split a group."""

from __future__ import annotations

from pathlib import Path

import pytest

from actionlab.data import index as index_module
from actionlab.data.index import DEFAULT_VAL_FRACTION, detect_layout, index_dataset
from actionlab.data.layouts import LAYOUTS, NAMES, SYNTH_NAMES, get_layout, hmdb51
from test_index import _touch, make_kinetics, make_ucf101

# ----------------------------------------------------------------------------------- dispatcher


def test_dispatcher_lists_every_layout_once() -> None:
    assert NAMES == index_module.LAYOUTS == ("ucf101", "hmdb51", "kinetics", "ucf11", "folders")
    assert SYNTH_NAMES == ("ucf101", "hmdb51", "kinetics", "folders")
    assert index_module.OFFICIAL_LAYOUTS == ("ucf101", "hmdb51", "kinetics")
    assert [name for name, lay in LAYOUTS.items() if lay.ships_val] == ["kinetics"]
    assert all(lay.name == name for name, lay in LAYOUTS.items())
    with pytest.raises(ValueError, match="layout must be one of"):
        get_layout("ucf-101")


# ----------------------------------------------------------------------------------- HMDB-51 groups


@pytest.mark.parametrize(("name", "group"), [
    ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "April_09_brush_hair"),
    ("April_09_brush_hair_u_nm_np1_ba_goo_2.avi", "April_09_brush_hair"),
    ("Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", "Blonde_being_brushed_brush_hair"),
    ("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", "(Rad)Schlag_die_Bank!_cartwheel"),
    ("#20_Rhythm_cartwheel_u_nm_np1_fr_goo_12.avi", "#20_Rhythm_cartwheel"),
    ("AmericanGangster_climb_stairs_l_cm_np1_ba_bad_1.avi", "AmericanGangster_climb_stairs"),
    ("Boden,_Rolle_&_Rad_cartwheel_0.avi", None),  # not the official naming: its own group (the stem)
])
def test_hmdb51_group_is_the_source_video(name: str, group: str | None) -> None:
    assert hmdb51.group_of(name) == group


# Per class: source video -> number of clips cut from it, in the official naming.
HMDB_SOURCES = {
    "brush_hair": {"April_09_brush_hair": 3, "Aussie_Brushes_brush_hair": 2, "Blonde_being_brushed_brush_hair": 4,
                   "Brushing_Hair_with_Beth_brush_hair": 1, "Haarek_mmen_brush_hair": 3,
                   "Hair_Brushing_brush_hair": 2, "Prelinger_brush_hair": 3, "Trim_my_hair_brush_hair": 2},
    "pour": {"Bartender_School_pour": 4, "Finding_Forrester_pour": 2, "Gin_and_Tonic_pour": 3,
             "Home_Brewing_pour": 2, "How_to_pour_beer_pour": 3, "Latte_Art_pour": 2, "Milk_pour": 1,
             "Tea_Time_pour": 3},
}
_ATTRS = ("u_nm_np1_ba_goo", "f_cm_np1_fr_med", "h_nm_np2_le_bad", "l_cm_np1_ri_goo")


def make_hmdb51_official(root: Path) -> dict[str, str]:
    """HMDB-51 with the official naming; each split file keeps a source video's clips on one side (like the
    real files). Returns clip path -> source video."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    source_of = {}
    for cls, sources in HMDB_SOURCES.items():
        for s in (1, 2, 3):
            lines = []
            for i, (src, n) in enumerate(sorted(sources.items())):
                code = "2" if (i + s) % 3 == 0 else "1"  # about a third of the sources test
                for c in range(n):
                    name = f"{src}_{_ATTRS[(i + c) % len(_ATTRS)]}_{c}.avi"
                    _touch(root / cls / name)
                    source_of[f"{cls}/{name}"] = src
                    lines.append(f"{name} {code} \n")
            (splits / f"{cls}_test_split{s}.txt").write_text("".join(lines))
    return source_of


def test_hmdb51_clips_of_one_source_stay_on_one_side_of_val(tmp_path: Path) -> None:
    source_of = make_hmdb51_official(tmp_path)
    m, rep = index_dataset(tmp_path, val_fraction=0.3, seed=0, probe=False)
    assert rep.layout == "hmdb51" and rep.ok and len(m) == len(source_of)
    assert {r.path: r.group for r in m.records} == source_of
    sides: dict[str, set[str]] = {}
    for r in m.records:
        sides.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in sides.values()), {g: s for g, s in sides.items() if len(s) > 1}
    val = [g for g, s in sides.items() if s == {"val"}]
    assert val and any(HMDB_SOURCES[cls].get(g, 0) >= 2 for g in val for cls in HMDB_SOURCES)
    assert not any("train and test" in n for n in rep.notes)


def test_hmdb51_split_files_that_separate_a_source_are_reported(tmp_path: Path) -> None:
    make_hmdb51_official(tmp_path)
    f = tmp_path / "testTrainMulti_7030_splits" / "pour_test_split1.txt"
    lines = f.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace(" 1 ", " 2 ") if " 1 " in lines[0] else lines[0].replace(" 2 ", " 1 ")
    f.write_text("".join(lines))
    _, rep = index_dataset(tmp_path, val_fraction=0.0, probe=False)
    assert any("1 source video(s) have clips in both train and test" in n for n in rep.notes)


# ----------------------------------------------------------------------------------- val never splits a group


def _tree(layout: str, root: Path) -> None:
    if layout == "ucf101":
        make_ucf101(root / "UCF-101", root / "ucfTrainTestlist", clips=3, classes=["Diving", "YoYo"])
    elif layout == "hmdb51":
        make_hmdb51_official(root)
    elif layout == "kinetics":
        make_kinetics(root)
    elif layout == "ucf11":
        for cls in ("biking", "diving"):
            for g in range(1, 11):
                for c in range(1, 4):
                    _touch(root / cls / f"v_{cls}_{g:02d}" / f"v_{cls}_{g:02d}_{c:02d}.mpg")
    else:
        for cls in ("clap", "wave"):
            for g in range(1, 13):
                for c in range(1, 4):
                    _touch(root / cls / f"{cls}_g{g:02d}_c{c}.mp4")


@pytest.mark.parametrize("val_fraction", [None, 0.2, 0.5])
@pytest.mark.parametrize("layout", NAMES)
def test_val_fraction_never_splits_a_group(tmp_path: Path, layout: str, val_fraction: float | None) -> None:
    _tree(layout, tmp_path)
    kw = {} if val_fraction is None else {"val_fraction": val_fraction}
    m, rep = index_dataset(tmp_path, seed=3, probe=False, **kw)
    assert rep.layout == layout
    split_of: dict[tuple[str, str], str] = {}
    for r in m.records:
        assert split_of.setdefault((r.label, r.group), r.split) == r.split, f"{r.group} in two splits"
    assert "val" in m.splits(), "every layout has a validation split by default"
    if layout in ("ucf101", "hmdb51"):  # carved from train groups, whole groups only
        before, _ = index_dataset(tmp_path, val_fraction=0.0, probe=False)
        official = {r.path: r.split for r in before.records}
        assert all(official[r.path] == ("train" if r.split == "val" else r.split) for r in m.records)


def test_default_validation_is_a_tenth_of_train_groups(tmp_path: Path) -> None:
    assert DEFAULT_VAL_FRACTION == 0.1
    make_ucf101(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist", clips=1)
    m, rep = index_dataset(tmp_path, probe=False)
    groups = {s: {r.group for r in m.records if r.split == s} for s in m.splits()}
    assert len(groups["val"]) == round(0.1 * 18) and len(groups["train"]) == 18 - len(groups["val"])
    assert any(n.startswith("val: 2 of 18 train groups") for n in rep.notes)
    none, _ = index_dataset(tmp_path, val_fraction=0.0, probe=False)
    assert set(none.splits()) == {"train", "test"}


def test_kinetics_keeps_its_own_val_split(tmp_path: Path) -> None:
    make_kinetics(tmp_path)
    for kw in ({}, {"val_fraction": 0.5}, {"val_fraction": 0.0}):
        m, rep = index_dataset(tmp_path, probe=False, **kw)
        assert rep.counts == {"train": 4, "val": 2}
        assert {r.path for r in m.split("val")} == {"val/massaging person's head/qwErtyuiop1_000002_000012.mp4",
                                                    "val/abseiling/abseilVal01_000007_000017.mp4"}
        said = any("the kinetics val split as shipped" in n for n in rep.notes)
        assert said == (kw.get("val_fraction", DEFAULT_VAL_FRACTION) > 0)


def test_detect_layout_is_the_dispatcher_order(tmp_path: Path) -> None:
    make_kinetics(tmp_path / "k")
    assert detect_layout(tmp_path / "k")[0] == "kinetics"
    make_ucf101(tmp_path / "k" / "UCF-101", tmp_path / "k" / "ucfTrainTestlist", clips=1, classes=["YoYo"])
    assert detect_layout(tmp_path / "k")[0] == "ucf101"  # ucf101 is tried first
