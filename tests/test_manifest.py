"""The manifest CSV: round trip, header, validation, subsets, checksums."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from actionlab.data.manifest import (
    COLUMNS,
    SIZE_COLUMNS,
    Manifest,
    ManifestError,
    manifest_text,
    read_manifest,
    resolve_class_names,
    write_manifest,
)
from actionlab.types import VideoRecord


def _manifest(root: Path) -> Manifest:
    classes = ["ApplyEyeMakeup", "playing guitar", 'say "hi", (loud)']
    records = [
        VideoRecord("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup", 0, "train", "g08", 121, 25.0, 4.84),
        VideoRecord("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup", 0, "test", "g01", 99,
                    29.97002997002997, 3.3033),
        VideoRecord("train/playing guitar/a,b_000001_000011.mp4", "playing guitar", 1, "val", "a,b", -1, 0.0, 0.0),
        VideoRecord("x/#20_(Rad)Schlag_die_Bank!.avi", 'say "hi", (loud)', 2, "unused", "#20_(Rad)", 7, 30.0, 0.2333),
    ]
    return Manifest(root, classes, records, "kinetics")


def test_round_trip_is_exact(tmp_path: Path) -> None:
    m = _manifest(tmp_path / "data")
    path = write_manifest(m, tmp_path / "out" / "manifest.csv")
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].startswith("# actionlab-manifest v1 ")
    meta = json.loads(lines[0][len("# actionlab-manifest v1 "):])
    assert meta == {"root": str(tmp_path / "data"), "layout": "kinetics", "classes": m.classes}
    assert lines[1] == ",".join(COLUMNS)
    assert "\r" not in path.read_text(encoding="utf-8")

    back = read_manifest(path)
    assert back == m
    assert back.records == m.records  # floats round-trip exactly (repr)
    assert back.checksum() == m.checksum()
    assert back.abspath(back.records[0]) == tmp_path / "data" / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"


def test_manifest_resaved_by_a_spreadsheet_is_read(tmp_path: Path) -> None:
    """What Excel/LibreOffice write back: a byte-order mark, CRLF, the header line split at its commas into
    quoted cells, rows padded with empty cells, 25.0 shown as 25. The same manifest comes back."""
    import csv
    import io

    m = _manifest(tmp_path / "data")
    path = write_manifest(m, tmp_path / "manifest.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    width = max(len(r) for r in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        row = [c[:-2] if c.endswith(".0") and c[:-2].isdigit() else c for c in row]
        writer.writerow(row + [""] * (width - len(row)))
    resaved = tmp_path / "resaved.csv"
    resaved.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    assert resaved.read_bytes().count(b'""') > 4  # the header line really was re-quoted
    back = read_manifest(resaved)
    assert back.records == m.records and back.classes == m.classes and back.checksum() == m.checksum()


def test_no_temp_files_left_and_overwrite(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    write_manifest(m, tmp_path / "m.csv")
    write_manifest(m.subset(["playing guitar"]), tmp_path / "m.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]
    assert read_manifest(tmp_path / "m.csv").classes == ["playing guitar"]


def test_checksum_tracks_content_not_location(tmp_path: Path) -> None:
    m = _manifest(tmp_path / "a")
    moved = Manifest(tmp_path / "b", m.classes, m.records, m.layout)
    assert moved.checksum() == m.checksum()
    relabeled = Manifest(m.root, m.classes, [replace(m.records[0], split="val"), *m.records[1:]], m.layout)
    assert relabeled.checksum() != m.checksum()
    assert len(m.checksum()) == 64


def test_relative_root_resolves_against_manifest_folder(tmp_path: Path) -> None:
    m = Manifest(Path("videos"), ["a"], [VideoRecord("a/x.avi", "a", 0, "train", "x")], "folders")
    write_manifest(m, tmp_path / "sub" / "m.csv")
    back = read_manifest(tmp_path / "sub" / "m.csv")
    assert back.root == (tmp_path / "sub" / "videos").resolve()
    assert read_manifest(tmp_path / "sub" / "m.csv", root=tmp_path / "elsewhere").root == tmp_path / "elsewhere"


def test_split_and_summary(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    assert [r.path for r in m.split("test")] == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"]
    assert m.splits() == ["train", "val", "test", "unused"]
    with pytest.raises(ManifestError, match="unknown split 'validation'"):
        m.split("validation")
    s = m.summary()
    assert s["videos_per_split"] == {"train": 1, "val": 1, "test": 1, "unused": 1}
    assert s["per_class"]["ApplyEyeMakeup"] == {"train": 1, "val": 0, "test": 1, "unused": 0}
    assert s["frames"]["known"] == 3 and s["frames"]["min"] == 7 and s["frames"]["max"] == 121
    assert s["num_classes"] == 3 and s["num_videos"] == 4


def test_subset_reindexes_in_given_order(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    sub = m.subset(["playing_guitar", "ApplyEyeMakeup"])  # loose spelling accepted, dataset spelling kept
    assert sub.classes == ["playing guitar", "ApplyEyeMakeup"]
    assert {(r.label, r.label_index) for r in sub.records} == {("playing guitar", 0), ("ApplyEyeMakeup", 1)}
    assert len(sub) == 3
    with pytest.raises(ManifestError) as err:
        m.subset(["ApplyEyeMakup"])
    assert "ApplyEyeMakeup" in str(err.value) and "did you mean" in str(err.value)
    with pytest.raises(ManifestError, match="twice"):
        m.subset(["ApplyEyeMakeup", "applyeyemakeup"])


def test_resolve_class_names_ambiguous_loose_match_is_an_error() -> None:
    with pytest.raises(ManifestError):
        resolve_class_names(["a b"], ["a_b", "A B"])
    assert resolve_class_names(["A B"], ["a_b", "A B"]) == ["A B"]


def test_invalid_records_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not match the class list"):
        Manifest(tmp_path, ["a", "b"], [VideoRecord("x.avi", "a", 1, "train", "x")])
    with pytest.raises(ManifestError, match="twice"):
        Manifest(tmp_path, ["a"], [VideoRecord("x.avi", "a", 0, "train", "x")] * 2)


@pytest.mark.parametrize(("text", "match"), [
    ("path,label\n", r"bad\.csv:1: not an actionlab manifest"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\npath,label\n', r"bad\.csv:2: missing column\(s\) label_index, split"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\n' + ",".join(COLUMNS) + "\nx.avi,a,0,train,x,1,2.0\n",
     r"bad\.csv:3: expected 8 fields"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\n' + ",".join(COLUMNS) + "\nx.avi,a,0,trian,x,1,2.0,1.0\n",
     r"bad\.csv:3: column 'split': expected one of"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\n' + ",".join(COLUMNS) + "\nx.avi,b,0,train,x,1,2.0,1.0\n",
     r"bad\.csv:3: column 'label': 'b' is not in the header's class list"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\n' + ",".join(COLUMNS) + "\nx.avi,a,0,train,x,12x,2.0,1.0\n",
     r"bad\.csv:3: column 'num_frames': expected an integer frame count .*'12x'"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\n' + ",".join(COLUMNS) + "\nx.avi,a,0,train,x,7.5,2.0,1.0\n",
     r"bad\.csv:3: column 'num_frames'"),
    ('# actionlab-manifest v1 {"classes": ["a", "b"]}\n' + ",".join(COLUMNS) + "\nx.avi,a,1,train,x,7,2.0,1.0\n",
     r"bad\.csv:3: column 'label_index': 1 does not match label 'a', which is class 0"),
    ('# actionlab-manifest v1 {"classes": ["a"]}\npath,label,split,label_index,group,num_frames,fps,duration\n',
     r"bad\.csv:2: the columns are in another order"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "bad.csv")


def test_missing_manifest_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="actionlab index"):
        read_manifest(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------------- displayed sizes


def _sized(root: Path) -> Manifest:
    m = _manifest(root)
    sizes = [(320, 240), (480, 640), (0, 0), (34, 26)]  # a portrait phone clip; one video of unknown size
    return Manifest(m.root, m.classes, [replace(r, width=w, height=h) for r, (w, h) in zip(m.records, sizes)],
                    m.layout)


def test_sizes_round_trip_and_leave_the_checksum_alone(tmp_path: Path) -> None:
    plain, sized = _manifest(tmp_path), _sized(tmp_path)
    path = write_manifest(sized, tmp_path / "m.csv")
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[1] == ",".join(COLUMNS + SIZE_COLUMNS)
    assert lines[3].endswith(",480,640") and lines[4].endswith(",0,0")
    back = read_manifest(path)
    assert back.records == sized.records and back.has_sizes
    assert [(r.width, r.height) for r in back.records] == [(320, 240), (480, 640), (0, 0), (34, 26)]
    # recording sizes does not orphan the stores and runs built from the manifest before
    assert sized.checksum() == plain.checksum()
    assert replace(sized, records=[replace(sized.records[0], num_frames=120), *sized.records[1:]]).checksum() \
        != plain.checksum()


def test_manifest_without_size_columns_reads_and_writes_as_before(tmp_path: Path) -> None:
    plain = _manifest(tmp_path)
    path = write_manifest(plain, tmp_path / "old.csv")
    old_text = path.read_text(encoding="utf-8")
    assert old_text.split("\n")[1] == ",".join(COLUMNS)  # no size known: the header of before
    back = read_manifest(path)
    assert all(r.width == 0 and r.height == 0 for r in back.records) and not back.has_sizes
    assert manifest_text(back) == old_text  # byte for byte


def test_sized_manifest_resaved_by_a_spreadsheet_is_read(tmp_path: Path) -> None:
    path = write_manifest(_sized(tmp_path), tmp_path / "m.csv")
    lines = path.read_text(encoding="utf-8").split("\n")
    padded = [lines[0], *(line + ",," for line in lines[1:] if line)]
    path.write_text("\r\n".join(padded) + "\r\n", encoding="utf-8")
    assert read_manifest(path).records == _sized(tmp_path).records


@pytest.mark.parametrize(("header", "row", "match"), [
    (",".join(COLUMNS) + ",width,height,fourcc", "x.avi,a,0,train,x,1,2.0,1.0,4,3,avc1",
     r"bad\.csv:2: unknown column\(s\) fourcc"),
    (",".join(COLUMNS) + ",rotation", "x.avi,a,0,train,x,1,2.0,1.0,90", r"bad\.csv:2: unknown column\(s\) rotation"),
    (",".join(COLUMNS) + ",width", "x.avi,a,0,train,x,1,2.0,1.0,4", r"bad\.csv:2: missing column\(s\) height"),
    (",".join(COLUMNS) + ",height,width", "x.avi,a,0,train,x,1,2.0,1.0,4,3", r"bad\.csv:2: .*another order"),
    (",".join(COLUMNS) + ",width,height", "x.avi,a,0,train,x,1,2.0,1.0,4", r"bad\.csv:3: expected 10 fields"),
    (",".join(COLUMNS) + ",width,height", "x.avi,a,0,train,x,1,2.0,1.0,4,3.5",
     r"bad\.csv:3: column 'height': expected a whole number of pixels"),
    (",".join(COLUMNS) + ",width,height", "x.avi,a,0,train,x,1,2.0,1.0,-4,3",
     r"bad\.csv:3: columns 'width','height': -4x3 is negative"),
])
def test_malformed_size_columns_name_file_and_line(tmp_path: Path, header: str, row: str, match: str) -> None:
    (tmp_path / "bad.csv").write_text(f'# actionlab-manifest v1 {{"classes": ["a"]}}\n{header}\n{row}\n')
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "bad.csv")


def test_record_rejects_negative_size() -> None:
    with pytest.raises(ValueError, match="width and height must be >= 0"):
        VideoRecord("x.avi", "a", 0, "train", "x", width=-1, height=10)
