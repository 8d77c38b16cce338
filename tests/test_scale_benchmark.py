"""``scripts/scale_benchmark.sh`` end to end on a tiny 101-class-style benchmark (3 classes): every stage of the
two-stage RGB pipeline and of the frame-difference stream runs through the real CLI, each gets its row in
``timings.tsv``, and a second call skips what exists."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actionlab.features.store import FeatureStore
from actionlab.synth.benchmark import make_benchmark
from actionlab.synth.primitives import draw_classes, pairs

pytest.importorskip("cv2")
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scale_benchmark.sh"
STAGES = "index,extract,single,lstm,evaluate,report,diff,diff_lstm,rgb_diff"


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="the script times stages with /usr/bin/time")
def test_scale_benchmark_times_the_rgb_pipeline_and_the_frame_difference_stream(tmp_path: Path) -> None:
    first, second, _ = pairs(draw_classes(0))[0]
    root, work = tmp_path / "bench", tmp_path / "work"
    make_benchmark(root, scale=0.03, seed=0, workers=1, classes=[first, second], max_frames=8, size=(96, 128))
    bindir = Path(sys.executable).parent
    env = {**os.environ, "SEEDS": "0", "TRAIN_FLAGS": "--epochs 2 --device cpu", "EXTRACT_FLAGS": "--workers 0",
           "ACTIONLAB": str(bindir / "actionlab") if (bindir / "actionlab").exists() else shutil.which("actionlab")
           or "actionlab", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), str(root), str(work), STAGES], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(work / "timings.tsv", newline="") as f:
        rows = {r["stage"]: r for r in csv.DictReader(f, delimiter="\t")}
    expected = ["index", "extract", "single", "lstm", "evaluate", "report", "diff", "diff_lstm", "rgb_diff_0"]
    assert list(rows) == expected
    assert all(r["status"] == "ok" and float(r["wall_s"]) > 0 for r in rows.values())
    assert int(rows["diff"]["items"]) == int(rows["extract"]["items"]) > 0
    with FeatureStore(work / "diff.h5") as diff, FeatureStore(work / "rgb.h5") as rgb:
        assert diff.provenance["modality"] == "diff" and rgb.provenance["modality"] == "rgb"
        assert diff.keys() == rgb.keys()
    assert (work / "runs" / "rgb_diff" / "seed-0" / "metrics.json").exists()
    assert (work / "report" / "report.html").exists()

    again = subprocess.run(["bash", str(SCRIPT), str(root), str(work), "diff,diff_lstm"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("exists, skipped") == 2, again.stdout
