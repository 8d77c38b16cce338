"""Hostile and careless inputs: damaged run files and stores give one ``error:`` line naming the file and the fix
(exit 2, no traceback); crafted pickles in ``.pt`` files and HDF5 attributes are refused without running;
names from datasets are escaped in report.md and on the terminal; ``index --strict`` and the index summary say
what was left out, in words that fit the layout."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.features.store import FeatureStore
from actionlab.models.checkpoint import load_checkpoint
from actionlab.utils import FileError
from test_index import make_ucf101
from tiny_data import TRAIN_ARGS, one_error_line, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    manifest, store = tiny_dataset(folder)
    run = folder / "run"
    assert main(["train", "--features", str(store), "--run", str(run), *TRAIN_ARGS, "--epochs", "2"]) == 0
    return {"manifest": manifest, "store": store, "run": run}


def _copy_run(trained: dict[str, Path], tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    return run


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------------- damaged files


def test_truncated_predictions_name_the_file_and_the_fix(trained: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(trained, tmp_path)
    _truncate(run / "predictions_test.npz")
    assert main(["evaluate", str(run)]) == 2
    line = one_error_line(capsys)
    assert f"{run}/predictions_test.npz: not a readable predictions file, truncated or damaged" in line
    assert "--resume" in line
    # the fix works: a finished run resumed is evaluated again
    assert main(["train", "--features", str(trained["store"]), "--run", str(run), *TRAIN_ARGS, "--epochs", "2",
                 "--resume"]) == 0
    assert main(["evaluate", str(run)]) == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("model: {name: lstm\n", "config.yaml: line 2, column 1: not valid YAML"),
    ("model: !!python/object/apply:os.system ['touch {marker}']\n",
     "config.yaml: line 1: YAML tag !!python/object/apply:os.system refused"),
])
def test_a_damaged_or_tagged_config_yaml_is_one_line(trained: dict[str, Path], tmp_path: Path, text: str,
                                                    expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(trained, tmp_path)
    marker = tmp_path / "marker"
    (run / "config.yaml").write_text(text.replace("{marker}", str(marker)))
    for argv in (["report", str(run), "-o", str(tmp_path / "r.html")],
                 ["train", "--features", str(trained["store"]), "--run", str(run), *TRAIN_ARGS, "--epochs", "2",
                  "--resume"]):
        assert main(argv) == 2
        assert f"error: {run}/{expected}" in one_error_line(capsys)
    assert not marker.exists()


def test_truncated_metrics_json_names_the_file(trained: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(trained, tmp_path)
    _truncate(run / "metrics.json")
    for argv in (["report", str(run), "-o", str(tmp_path / "r.html")], ["evaluate", str(run)]):
        assert main(argv) == 2
        line = one_error_line(capsys)
        assert f"{run}/metrics.json: not valid JSON, truncated or damaged" in line and "--resume" in line


def test_truncated_checkpoint_and_store_name_the_file(trained: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(trained, tmp_path)
    _truncate(run / "checkpoints" / "last.pt")
    args = ["train", "--features", str(trained["store"]), "--run", str(run), *TRAIN_ARGS, "--epochs", "2"]
    assert main([*args, "--resume"]) == 2
    line = one_error_line(capsys)
    assert f"{run}/checkpoints/last.pt: the checkpoint is truncated or damaged" in line
    store = tmp_path / "store.h5"
    shutil.copy(trained["store"], store)
    _truncate(store, 0.6)
    assert main(["train", "--features", str(store), "--run", str(tmp_path / "other"), *TRAIN_ARGS]) == 2
    line = one_error_line(capsys)
    assert f"{store}: unreadable feature store, truncated or damaged" in line and "actionlab extract" in line


def test_garbage_weights_for_extract(trained: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights.pth"
    weights.write_bytes(np.random.default_rng(0).bytes(5000))
    assert main(["extract", str(trained["manifest"]), "-o", str(tmp_path / "f.h5"), "--weights", str(weights)]) == 2
    line = one_error_line(capsys)
    assert f"{weights}: the weights file is not a PyTorch file" in line and "--weights imagenet" in line
    assert "file an issue" not in line


# ----------------------------------------------------------------------------------- untrusted files stay data


class _CreatesAFile:
    """Unpickling this opens (creates) a file: what a crafted checkpoint would do with something worse."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.path, "w")


def test_crafted_pickles_in_pt_files_are_refused(trained: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "actionlab-checkpoint-v1", "model": {}, "meta": _CreatesAFile(marker)}, evil)
    torch.load(evil, weights_only=False)  # proof that the payload is live when unpickled ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(FileError, match="holds pickled Python objects, which are never loaded"):
        load_checkpoint(evil)
    assert main(["extract", str(trained["manifest"]), "-o", str(tmp_path / "f.h5"), "--weights", str(evil)]) == 2
    assert "holds pickled Python objects" in one_error_line(capsys)
    run = _copy_run(trained, tmp_path)
    shutil.copy(evil, run / "checkpoints" / "last.pt")
    assert main(["train", "--features", str(trained["store"]), "--run", str(run), *TRAIN_ARGS, "--epochs", "2",
                 "--resume"]) == 2
    assert "last.pt: the checkpoint holds pickled Python objects" in one_error_line(capsys)
    assert not marker.exists()  # ... and that nothing ran


def test_a_pickle_in_an_hdf5_attribute_is_never_unpickled(trained: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_CreatesAFile(marker))
    store = tmp_path / "store.h5"
    shutil.copy(trained["store"], store)
    with h5py.File(store, "r+") as h5:
        h5.attrs["provenance"] = np.void(payload)
    with pytest.raises(FileError, match="attribute 'provenance' is not JSON.*never unpickled"):
        FeatureStore(store)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live
    assert marker.exists()


# ----------------------------------------------------------------------------------- names from datasets


def test_class_names_are_escaped_in_report_md_and_on_the_terminal(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    classes = ["<script>alert(1)</script>", "evil\x1b]0;owned\x07\x1b[2Jname"]
    manifest, store = tiny_dataset(tmp_path / "data", classes=classes)
    run = tmp_path / "run"
    assert main(["train", "--features", str(store), "--run", str(run), *TRAIN_ARGS, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out  # shown, escaped
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in md and "&lt;script&gt;" in md
    assert "<script>alert" not in html and "\x1b" not in html


def test_control_characters_in_file_names_do_not_reach_the_terminal(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    for name in ("run/clip\x1b[31mred.mp4", "walk/clip\rover.mp4"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not a video")
    assert main(["index", str(root), "-o", str(tmp_path / "m.csv"), "--layout", "folders", "--workers", "0"]) == 0
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "\x1b" not in text and "\r" not in text
    assert "clip\\x1b[31mred.mp4" in captured.out and "clip\\rover.mp4" in captured.out


# ----------------------------------------------------------------------------------- index: strict, defects


def _ucf_with_defects(tmp_path: Path) -> Path:
    root = tmp_path / "ucf"
    names = make_ucf101(root / "UCF-101", root / "ucfTrainTestlist", clips=1, classes=["Basketball", "YoYo"])
    (root / "UCF-101" / names[0]).unlink()  # missing
    moved = root / "UCF-101" / names[-1]
    moved.rename(root / "UCF-101" / "Basketball" / moved.name)  # a YoYo clip in Basketball's folder
    return root


def test_index_summary_counts_what_was_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _ucf_with_defects(tmp_path)
    out = tmp_path / "m.csv"
    assert main(["index", str(root), "-o", str(out), "--no-probe", "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "misplaced (listed, found in another class's folder; indexed with the listed label): 1" in text
    assert "YoYo/v_YoYo_g25_c01.avi -> Basketball/v_YoYo_g25_c01.avi" in text
    assert text.rstrip().splitlines()[-2] == ("left out: 1 of 50 listed videos left out (1 missing); 1 found in "
                                              "another class's folder")
    assert out.is_file()


def test_index_strict_exits_1_and_writes_no_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _ucf_with_defects(tmp_path)
    out = tmp_path / "m.csv"
    assert main(["index", str(root), "-o", str(out), "--no-probe", "--workers", "0", "--strict"]) == 1
    line = one_error_line(capsys)
    assert "1 of 50 listed videos left out (1 missing); 1 found in another class's folder (--strict" in line
    assert not out.exists()
    ok = make_ucf101(tmp_path / "ok" / "UCF-101", tmp_path / "ok" / "ucfTrainTestlist", clips=1, classes=["YoYo"])
    assert ok
    assert main(["index", str(tmp_path / "ok"), "-o", str(out), "--no-probe", "--workers", "0", "--strict"]) == 0
    assert out.is_file() and "left out: none of 25 listed videos left out" in capsys.readouterr().out


def test_kinetics_with_only_val_and_test_gets_notes_that_apply(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    rows = {"val": [("abseiling", "abcdefghij1"), ("bowling", "abcdefghij2")],
            "test": [("abseiling", "abcdefghij3"), ("bowling", "abcdefghij4"), ("", "abcdefghij5")]}
    for split, items in rows.items():
        lines = ["label,youtube_id,time_start,time_end,split"] + [f"{lab},{y},0,10,{split}" for lab, y in items]
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
        for label, yid in items:
            if label:
                (root / split / label).mkdir(parents=True, exist_ok=True)
                (root / split / label / f"{yid}_000000_000010.mp4").write_bytes(b"")
    assert main(["index", str(root), "-o", str(tmp_path / "m.csv"), "--no-probe", "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "fraction" not in text
    assert "note: no train videos: test.csv, val.csv list none (`actionlab train` needs a train split)" in text
    assert "skipped (listed, cannot be used): 1" in text and "test.csv:4: abcdefghij5 (no label)" in text
    assert "left out: 1 of 5 listed videos left out (1 skipped)" in text
    assert os.path.exists(tmp_path / "m.csv")


def test_extract_strict_exits_1_when_a_video_was_left_out(synth_ucf101: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import Manifest, write_manifest
    from actionlab.types import VideoRecord

    full, _ = index_dataset(synth_ucf101, workers=0)
    bad = tmp_path / "v_Broken_g01_c01.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + np.random.default_rng(0).bytes(3000))
    records = [*full.records[:2], VideoRecord(str(bad), full.classes[0], 0, "train", "broken", 24, 25.0, 0.96)]
    manifest = write_manifest(Manifest(full.root, full.classes, records, full.layout), tmp_path / "m.csv")
    store = tmp_path / "f.h5"
    args = ["extract", str(manifest), "-o", str(store), "--skip-bad", "--num-frames", "1", "--workers", "0",
            "--engine", "torch", "--weights", "none"]
    assert main([*args, "--strict"]) == 1
    captured = capsys.readouterr()
    assert "left out: 1 of 3 videos (undecodable, skipped with --skip-bad)" in captured.out
    line = [x for x in captured.err.splitlines() if x.startswith("error: ")]
    assert line == [f"error: {store}: 1 video(s) of {manifest} left out as undecodable (--strict; the store holds "
                    "the others: fix or remove those videos and rerun `actionlab index`)"]
    assert store.is_file()
    assert main(args) == 0  # without --strict: done, and the summary still says what is missing
    assert "left out: 1 of 3 videos" in capsys.readouterr().out
