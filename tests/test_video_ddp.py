"""A video network trained under ``torchrun`` with 2 ``gloo`` processes equals one process with the same global
batch: same per-step batches (``GlobalBatchSampler``), same clip augmentation (drawn per item), gradients
averaged across ranks. Real XviD clips are decoded in both runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from actionlab.cli import main
from actionlab.train.sampler import GlobalBatchSampler

SCRIPT = textwrap.dedent("""
    import sys

    import torch
    import torch.distributed as dist

    from actionlab.config import TrainConfig, apply_overrides
    from actionlab.runs.train import train_run

    def main(manifest: str, run_dir: str, batch_size: int) -> None:
        torch.set_num_threads(1)
        # c3d_small has no batch norm and dropout 0 here: nothing in the model depends on the per-rank batch.
        cfg = apply_overrides(TrainConfig(), {
            "model.name": "c3d_small", "model.dropout": 0.0, "epochs": 2, "batch_size": batch_size,
            "device": "cpu", "clip.clip_len": 8, "clip.size": 32, "clip.resize": 40, "clip.augment": True,
            "optim.name": "sgd", "optim.lr": 0.01, "optim.weight_decay": 0.0, "val_split": "none"})
        train_run(cfg, run_dir, manifest=manifest)
        if dist.is_initialized():
            dist.destroy_process_group()

    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
""")


def test_global_batches_do_not_depend_on_the_number_of_processes() -> None:
    single = list(GlobalBatchSampler(10, 4, seed=3, drop_last=True).batches(epoch=2))
    ranks = [list(GlobalBatchSampler(10, 2, seed=3, rank=r, world_size=2).batches(epoch=2)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 2
    for step, batch in enumerate(single):
        np.testing.assert_array_equal(batch, np.concatenate([ranks[0][step], ranks[1][step]]))
    epoch3 = list(GlobalBatchSampler(10, 4, seed=3, drop_last=True).batches(epoch=3))
    assert not all(np.array_equal(a, b) for a, b in zip(single, epoch3))  # a new order every epoch
    with pytest.raises(ValueError, match="lower the batch size"):
        GlobalBatchSampler(3, 2, world_size=2)


@pytest.mark.slow  # two fresh interpreters importing torch and decoding clips: ~30-90 s on a busy 2-core machine
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_torchrun_video_training_matches_one_process(synth_ucf101: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    assert main(["index", str(synth_ucf101), "-o", str(manifest), "--workers", "0"]) == 0
    script = tmp_path / "ddp_video.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(manifest), str(tmp_path / "ddp"), "2"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, str(script), str(manifest), str(tmp_path / "single"), "4"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def history(run: str) -> list[dict[str, float]]:
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    ddp, single = history("ddp"), history("single")
    assert len(ddp) == len(single) == 2 and ddp[0]["steps"] == single[0]["steps"] >= 2
    np.testing.assert_allclose([r["train_loss"] for r in ddp], [r["train_loss"] for r in single], rtol=1e-4)
    np.testing.assert_allclose([r["train_acc"] for r in ddp], [r["train_acc"] for r in single])
    a = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "single" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in b:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    assert not torch.equal(b["fc3.weight"], torch.zeros_like(b["fc3.weight"]))
    assert (tmp_path / "ddp" / "predictions_test.npz").is_file()  # rank 0 evaluated the run
