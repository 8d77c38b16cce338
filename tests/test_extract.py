"""Feature extraction end to end on real encoded videos: contents, resume after kill -9, bad videos, DDP.

All runs use MobileNetV2 with its real ImageNet weights (the offline package) through the default engine
(ONNX Runtime on CPU), 3 uniform frames per video, on 12 tiny XviD videos of the synthetic UCF-101 layout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from actionlab.config import ExtractConfig
from actionlab.data.index import index_dataset
from actionlab.data.manifest import Manifest, write_manifest
from actionlab.data.sampling import uniform_indices
from actionlab.data.video.decode import read_frames
from actionlab.features.backbones import create_backbone, get_backbone_spec
from actionlab.features.extract import ExtractError, extract_features, parts_dir
from actionlab.features.parts import part_contents
from actionlab.features.store import FeatureStore, video_key
from actionlab.types import VideoRecord

CFG = ExtractConfig(backbone="mobilenet_v2", weights="imagenet", sampler="uniform", num_frames=3, batch_size=5,
                    workers=1, engine="auto", predictions=True)
ATOL = 2e-2  # float16 storage of features up to ~10, plus batch-composition noise of the engine

DRIVER = """
import json, os, sys, time
from actionlab.config import ExtractConfig, from_dict
from actionlab.features.extract import extract_features

args = json.loads(sys.argv[1])

def slow(done, total):
    time.sleep(args["sleep"])

report = extract_features(args["manifest"], args["out"], from_dict(ExtractConfig, args["cfg"]),
                          part_videos=args["part_videos"], progress=slow if args["sleep"] else None)
rank = int(os.environ.get("RANK", 0))
with open(args["out"] + f".report-{rank}.json", "w") as fh:  # one file per rank: stdout lines interleave
    json.dump({"rank": rank, "done": report.done, "skipped": report.skipped, "frames": report.frames}, fh)
"""


@pytest.fixture(scope="module")
def manifest(synth_ucf101: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:
    """12 videos (3 per class, train and test) and the manifest CSV they were written to."""
    full, _ = index_dataset(synth_ucf101, workers=1)
    records: list[VideoRecord] = []
    for c in full.classes:
        mine = [r for r in full.records if r.label == c]
        records += [r for r in mine if r.split == "train"][:2] + [r for r in mine if r.split == "test"][:1]
    m = Manifest(full.root, full.classes, records, full.layout)
    path = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    write_manifest(m, path)
    return m, path


@pytest.fixture(scope="module")
def reference(manifest: tuple[Manifest, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted single-process extraction."""
    out = tmp_path_factory.mktemp("ref") / "features.h5"
    report = extract_features(manifest[0], out, CFG)
    assert report.done == len(manifest[0].records) and report.skipped == 0 and report.failed == []
    assert report.frames == 3 * len(manifest[0].records)
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    with FeatureStore(a) as fa, FeatureStore(b) as fb:
        assert fa.keys() == fb.keys() and fa.classes == fb.classes
        for k in fa.keys():
            assert fa.record(k) == fb.record(k)
            np.testing.assert_array_equal(fa.frame_indices(k), fb.frame_indices(k))
            np.testing.assert_allclose(fa.features(k, normalize=False), fb.features(k, normalize=False), atol=ATOL)
        np.testing.assert_allclose(fa.mean, fb.mean, atol=ATOL)
        for field in ("backbone", "weights", "weights_sha256", "preprocessing", "sampler", "manifest_checksum"):
            assert fa.provenance[field] == fb.provenance[field]


def _driver(tmp_path: Path, manifest_path: Path, out: Path, cfg: ExtractConfig, sleep: float = 0.0,
            part_videos: int = 64) -> tuple[Path, str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    args = json.dumps({"manifest": str(manifest_path), "out": str(out), "cfg": asdict(cfg), "sleep": sleep,
                       "part_videos": part_videos})
    return script, args


def test_store_holds_what_the_backbone_computes(reference: Path, manifest: tuple[Manifest, Path]) -> None:
    m = manifest[0]
    pre = replace(get_backbone_spec("mobilenet_v2").preprocess, view="full")
    model = create_backbone("mobilenet_v2", weights="imagenet")
    with FeatureStore(reference) as fs:
        assert fs.keys() == [video_key(r.path) for r in m.records] and fs.classes == m.classes
        prov = fs.provenance
        assert prov["backbone"] == "mobilenet_v2" and prov["weights"] == "mobilenet_v2-b0353104.pth"
        assert prov["weights_sha256"].startswith("b0353104")
        assert prov["preprocessing"]["resize"] == 256 and prov["preprocessing"]["crop"] == 224
        assert prov["preprocessing"]["view"] == "full"  # the default: the whole frame, short side 224
        assert prov["sampler"] == {"name": "uniform", "num_frames": 3}
        assert prov["manifest_checksum"] == m.checksum() and prov["feature_dim"] == 1280
        assert prov["skipped"] == [] and prov["engine"]["engine"] in ("onnx", "torch")
        # Two videos recomputed independently: decode -> preprocess -> eager PyTorch.
        for rec in (m.records[0], m.records[-1]):
            k = video_key(rec.path)
            assert fs.record(k) == rec
            idx = uniform_indices(rec.num_frames, 3)
            np.testing.assert_array_equal(fs.frame_indices(k), idx)
            x = pre.preprocess_batch(read_frames(m.abspath(rec), idx, size=pre.short_side))
            with torch.inference_mode():
                f = model.forward_features(x)
                logits = model.forward_head(f)
            stored = fs.features(k, normalize=False)
            assert stored.shape == (3, 1280)
            np.testing.assert_allclose(stored, f.numpy(), atol=ATOL, rtol=1e-2)
            np.testing.assert_allclose(fs.predictions(k), logits.numpy(), atol=ATOL, rtol=1e-2)
        train = np.concatenate([fs.features(k, normalize=False) for k in fs.keys("train")]).astype(np.float64)
        np.testing.assert_allclose(fs.mean, train.mean(axis=0), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(fs.std, train.std(axis=0), rtol=1e-8, atol=1e-10)
    with h5py.File(reference, "r") as h5:
        assert h5["videos"][video_key(m.records[0].path)]["features"].dtype == np.float16
    assert not parts_dir(reference).exists()


def test_rerun_is_a_noop_and_other_settings_are_refused(reference: Path, manifest: tuple[Manifest, Path],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    out.write_bytes(reference.read_bytes())
    before = out.stat().st_mtime_ns
    report = extract_features(manifest[0], out, CFG)
    assert report.done == 0 and report.skipped == len(manifest[0].records) and report.frames == 0
    assert out.stat().st_mtime_ns == before
    other = replace(CFG, num_frames=2)
    with pytest.raises(ExtractError, match=r"sampler\.num_frames.*overwrite"):
        extract_features(manifest[0], out, other)
    assert out.stat().st_mtime_ns == before
    report = extract_features(manifest[0], out, other, overwrite=True)
    assert report.done == len(manifest[0].records)
    with FeatureStore(out) as fs:
        assert fs.provenance["sampler"] == {"name": "uniform", "num_frames": 2}
        assert all(fs.features(k).shape == (2, 1280) for k in fs.keys())


@pytest.mark.slow  # a process killed with SIGKILL mid-extraction, then a second one: ~10-30 s on 2 cores
def test_kill_9_then_resume_finishes_without_redoing_videos(reference: Path, manifest: tuple[Manifest, Path],
                                                            tmp_path: Path) -> None:
    m, manifest_path = manifest
    out = tmp_path / "features.h5"
    # One part file per video, slowed down so the kill lands mid-run. (A fresh interpreter, not a fork: a
    # fork of a process that already runs ONNX Runtime/torch thread pools can deadlock.)
    script, args = _driver(tmp_path, manifest_path, out, CFG, sleep=0.3, part_videos=1)
    proc = subprocess.Popen([sys.executable, str(script), args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    parts = parts_dir(out)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.h5"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, output
    assert not out.exists()
    finished = set()
    for p in parts.glob("part-*.h5"):
        finished.update(part_contents(p)[1])
    assert 3 <= len(finished) < len(m.records)
    # What a writer killed mid-write leaves behind: temp files of a part and of the final store.
    (parts / ".part-000-000099.h5.abc.h5.tmp").write_bytes(b"half an HDF5 file")
    (tmp_path / ".features.h5.xyz.h5.tmp").write_bytes(b"half an HDF5 file")

    seen: list[int] = []
    report = extract_features(manifest_path, out, CFG, progress=lambda done, total: seen.append(done))
    assert report.skipped == len(finished)
    assert report.done == len(m.records) - len(finished)  # no finished video was extracted again
    assert report.frames == 3 * report.done
    assert seen[0] == len(finished) and seen[-1] == len(m.records)
    assert not parts.exists() and not list(tmp_path.glob(".features.h5.*"))
    _assert_same_store(reference, out)


def test_bad_video_names_the_file_unless_skipped(synth_ucf101: Path, manifest: tuple[Manifest, Path],
                                                 tmp_path: Path) -> None:
    m = manifest[0]
    bad = tmp_path / "v_Broken_g01_c01.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + np.random.default_rng(0).bytes(3000))
    records = [*m.records[:3], VideoRecord(str(bad), m.classes[0], 0, "train", "broken", 24, 25.0, 0.96)]
    bad_manifest = Manifest(m.root, m.classes, records, m.layout)
    out = tmp_path / "features.h5"
    with pytest.raises(ExtractError, match=r"v_Broken_g01_c01\.avi.*skip_bad"):
        extract_features(bad_manifest, out, CFG)
    assert not out.exists()
    report = extract_features(bad_manifest, out, CFG, skip_bad=True)
    assert report.done + report.skipped == 3  # the good videos (some already saved by the failed run)
    assert [p for p, _ in report.failed] == [str(bad)]
    with FeatureStore(out) as fs:
        assert len(fs) == 3 and video_key(str(bad)) not in fs
        assert [p for p, _ in fs.skipped] == [str(bad)]
        assert [p for p, _ in fs.provenance["skipped"]] == [str(bad)]


@pytest.mark.slow  # two fresh interpreters importing torch: ~20-60 s on a busy 2-core machine
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_torchrun_two_processes_equal_single_process(reference: Path, manifest: tuple[Manifest, Path],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    script, args = _driver(tmp_path, manifest[1], out, replace(CFG, workers=0), part_videos=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads(Path(f"{out}.report-{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    n = len(manifest[0].records)
    assert all(r["done"] == n and r["frames"] == 3 * n for r in reports)  # summed over the two shards
    assert not parts_dir(out).exists()
    _assert_same_store(reference, out)


def test_sampler_choice_and_its_provenance() -> None:
    from actionlab.features.frames import sample_frame_indices, sampler_params

    assert sample_frame_indices(10, replace(CFG, sampler="all")).tolist() == list(range(10))
    assert sample_frame_indices(10, replace(CFG, sampler="stride", stride=4)).tolist() == [0, 4, 8]
    np.testing.assert_array_equal(sample_frame_indices(24, CFG), uniform_indices(24, 3))
    assert sampler_params(replace(CFG, sampler="stride", stride=4)) == {"name": "stride", "stride": 4}
    with pytest.raises(ValueError, match="at least one frame"):
        sample_frame_indices(0, CFG)


def test_batcher_packs_frames_across_videos_and_routes_results_back() -> None:
    from actionlab.features.batching import Batcher, Job

    sizes: list[int] = []

    def run(batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        sizes.append(batch.shape[0])
        v = batch.flatten(1)[:, :1].numpy()  # (n, 1): each frame's id
        return np.repeat(v, 2, axis=1), v * 10

    batcher = Batcher(run, batch_size=4)
    jobs, finished = [], []
    for vid, t in enumerate([3, 6, 1, 2]):  # 12 frames -> batches of 4, 4, 4
        ids = torch.arange(t, dtype=torch.float32) + 100 * vid
        job = Job(VideoRecord(f"c/v{vid}.avi", "c", 0, "train", "g"), np.arange(t), np.zeros((t, 2), np.float32), None)
        jobs.append(job)
        finished += batcher.add(job, ids.view(t, 1, 1, 1).expand(t, 3, 2, 2).contiguous())
    finished += batcher.flush()
    assert sizes == [4, 4, 4] and finished == jobs
    for vid, job in enumerate(jobs):
        expected = np.arange(len(job.indices)) + 100 * vid
        np.testing.assert_array_equal(job.features, np.stack([expected, expected], 1))
        np.testing.assert_array_equal(job.predictions[:, 0], expected * 10)


def test_batcher_runs_frames_of_another_size_apart() -> None:
    """Whole frames (``view=full``) of videos of other aspects cannot share a batch: what is queued runs first."""
    from actionlab.features.batching import Batcher, Job

    shapes: list[tuple[int, ...]] = []

    def run(batch: torch.Tensor) -> tuple[np.ndarray, None]:
        shapes.append(tuple(batch.shape))
        return batch.flatten(1)[:, :1].numpy(), None

    batcher = Batcher(run, batch_size=4)
    jobs, finished = [], []
    for vid, (t, w) in enumerate([(3, 5), (2, 5), (2, 7), (1, 5)]):
        job = Job(VideoRecord(f"c/v{vid}.avi", "c", 0, "train", "g"), np.arange(t), np.zeros((t, 1), np.float32), None)
        jobs.append(job)
        finished += batcher.add(job, torch.full((t, 3, 4, w), float(vid)))
    finished += batcher.flush()
    assert shapes == [(4, 3, 4, 5), (1, 3, 4, 5), (2, 3, 4, 7), (1, 3, 4, 5)] and finished == jobs
    for vid, job in enumerate(jobs):
        np.testing.assert_array_equal(job.features[:, 0], vid)
