"""The training loop, sequence batching and checkpoints: real training steps on tiny in-memory features."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actionlab.config import TrainConfig, apply_overrides
from actionlab.models import create_model, model_entry
from actionlab.models.checkpoint import load_checkpoint, load_model_from_checkpoint, save_checkpoint
from actionlab.models.temporal import detach_state
from actionlab.train.loop import fit, sequence_loss, step_weights_tensor, train_one_epoch
from actionlab.train.optim import build_optimizer
from actionlab.train.sequences import SequenceBatches, fit_length, item_rng, sliding_windows

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def order_task(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Videos of a rising (class 0) or falling (class 1) scalar plus a noise channel: only order tells them apart."""
    rng = np.random.default_rng(seed)
    feats, labels = [], np.arange(n) % 2
    for label in labels:
        v = np.sort(rng.random(int(rng.integers(4, 16))))
        v = v[::-1] if label else v
        feats.append(np.stack([v, rng.random(len(v))], 1).astype(np.float16))  # (T_i, 2)
    return feats, labels


def config(**overrides) -> TrainConfig:
    # the loop's mechanics, tested on the plain settings: no weight decay, every step in the loss, segments
    base = {"epochs": 3, "batch_size": 8, "sequence.seq_len": 6, "optim.lr": 0.01, "seed": 0, "patience": 0,
            "optim.weight_decay": 0.0, "sequence.loss_weighting": "uniform", "sequence.sampling": "segment"}
    return apply_overrides(TrainConfig(), {**base, **overrides})


def lstm(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    name = kwargs.pop("name", "lstm")
    sizes = {k: 8 for k in ("hidden_size", "fc_size") if k in model_entry(name).params}
    return create_model(name, num_classes=2, input_dim=2, **{**sizes, **kwargs})


def run(cfg: TrainConfig, run_dir=None, model=None, validate=None, resume=False, log=None, data_seed=0):
    feats, labels = order_task(32, data_seed)
    model = model or lstm(dropout=cfg.model.dropout)
    batches = SequenceBatches(feats, labels, cfg.batch_size, cfg.sequence.seq_len, seed=cfg.seed)
    opt = build_optimizer(model, cfg.optim)
    hist = fit(model, batches, opt, cfg, run_dir, validate, resume=resume, device="cpu",
               log=log or (lambda row: None),
               meta={"model_name": "lstm", "model_kwargs": {"num_classes": 2, "input_dim": 2, "hidden_size": 8,
                                                            "fc_size": 8, "dropout": cfg.model.dropout},
                     "classes": ["rising", "falling"]})
    return model, hist


def no_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ----------------------------------------------------------------------------------- sequence batches


def test_batches_gather_the_fit_length_sample_of_each_video():
    feats, labels = order_task(10)
    batches = SequenceBatches(feats, labels, batch_size=4, seq_len=6, seed=3, policy="reverse_repeat")
    assert len(batches) == 3 and batches.feature_dim == 2
    order = batches.order(epoch=1)
    seen = []
    for i, (x, y) in enumerate(batches(1)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (6, 2)
        for row, v in enumerate(order[i * 4:(i + 1) * 4]):
            idx = fit_length(len(feats[v]), 6, item_rng(3, 1, int(v)), policy="reverse_repeat")
            np.testing.assert_array_equal(x[row].numpy(), feats[v][idx].astype(np.float32))
            assert y[row] == labels[v]
            seen.append(int(v))
    assert sorted(seen) == list(range(10)) and len(x) == 2  # last batch is partial


def test_samples_depend_only_on_seed_epoch_and_video():
    feats, labels = order_task(12)
    a = SequenceBatches(feats, labels, batch_size=4, seq_len=5, seed=0, shuffle=False)
    b = SequenceBatches(feats, labels, batch_size=6, seq_len=5, seed=0, shuffle=False)
    xa = torch.cat([x for x, _ in a(2)])
    torch.testing.assert_close(xa, torch.cat([x for x, _ in b(2)]))  # batch size does not matter
    torch.testing.assert_close(xa, torch.cat([x for x, _ in a(2)]))  # an epoch replays
    assert not torch.equal(xa, torch.cat([x for x, _ in a(3)]))  # another epoch draws anew
    assert not np.array_equal(a.order(0), SequenceBatches(feats, labels, 4, 5, seed=0).order(0))


def test_ranks_split_every_global_batch():
    feats, labels = order_task(17)
    single = list(SequenceBatches(feats, labels, batch_size=8, seq_len=5, seed=1, drop_last=True)(0))
    shards = [list(SequenceBatches(feats, labels, batch_size=4, seq_len=5, seed=1, rank=r, world_size=2)(0))
              for r in range(2)]
    assert len(single) == len(shards[0]) == len(shards[1]) == 2  # the incomplete global batch is dropped
    for (x, y), (x0, y0), (x1, y1) in zip(single, *shards):
        torch.testing.assert_close(x, torch.cat([x0, x1]))
        torch.testing.assert_close(y, torch.cat([y0, y1]))


def test_short_videos_are_reverse_repeated_and_full_length_batches_pad():
    feats = [np.arange(3, dtype=np.float16)[:, None] * np.ones((1, 2), np.float16),
             np.arange(7, dtype=np.float16)[:, None] * np.ones((1, 2), np.float16)]
    x, _ = next(iter(SequenceBatches(feats, [0, 1], batch_size=2, seq_len=7, shuffle=False,
                                     policy="reverse_repeat", sampling="segment")(0)))
    np.testing.assert_array_equal(x[0, :, 0].numpy(), [0, 1, 2, 1, 0, 1, 2])
    x, _ = next(iter(SequenceBatches(feats, [0, 1], batch_size=2, seq_len=7, shuffle=False)(0)))
    np.testing.assert_array_equal(x[0, :, 0].numpy(), [0, 0, 0, 1, 1, 2, 2])  # default: in time order
    np.testing.assert_array_equal(x[1, :, 0].numpy(), np.arange(7))
    x, _ = next(iter(SequenceBatches(feats, [0, 1], batch_size=2, seq_len=0, shuffle=False)(0)))
    assert x.shape == (2, 7, 2)  # seq_len=0: whole videos, padded to the longest in the batch


def test_batches_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="label"):
        SequenceBatches([np.zeros((3, 2), np.float16)], [0, 1], 1, 2)
    with pytest.raises(ValueError, match="one D"):
        SequenceBatches([np.zeros((3, 2), np.float16), np.zeros((3, 4), np.float16)], [0, 1], 1, 2)


def test_sliding_windows_cover_the_end():
    w = sliding_windows(10, 4, 3)
    np.testing.assert_array_equal(w[:, 0], [0, 3, 6])
    assert w[-1, -1] == 9 and w.shape == (3, 4)
    assert sliding_windows(2, 4, 1).shape == (1, 4)


# ----------------------------------------------------------------------------------- loss weighting


def test_step_weights():
    torch.testing.assert_close(step_weights_tensor(4, "uniform"), torch.full((4,), 0.25))
    torch.testing.assert_close(step_weights_tensor(4, "linear"), torch.tensor([1, 2, 3, 4]) / 10.0)
    torch.testing.assert_close(step_weights_tensor(3, "last"), torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="weighting"):
        step_weights_tensor(3, "quadratic")


def test_sequence_loss_is_the_weighted_mean_of_per_step_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(3, 4, 5), torch.tensor([0, 4, 2])
    w = step_weights_tensor(4, "linear")
    expected = sum(w[t] * F.cross_entropy(logits[:, t], y) for t in range(4))
    torch.testing.assert_close(sequence_loss(logits, y, w), expected)
    torch.testing.assert_close(sequence_loss(logits, y, step_weights_tensor(4, "last")), F.cross_entropy(logits[:, -1], y))


# ----------------------------------------------------------------------------------- truncated BPTT


def _one_batch_update(tbptt: int, x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    cfg = config(epochs=1, **{"sequence.tbptt": tbptt, "optim.name": "sgd", "optim.momentum": 0.0,
                              "optim.lr": 0.5})
    model = lstm()
    opt = build_optimizer(model, cfg.optim)
    train_one_epoch(model, [(x, y)], opt, cfg, epoch=0, steps_per_epoch=1, device=CPU)
    return model


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_tbptt_equals_full_bptt_when_chunks_cover_the_sequence():
    torch.manual_seed(1)
    x, y = torch.randn(4, 6, 2), torch.tensor([0, 1, 1, 0])
    full = _params(_one_batch_update(0, x, y))
    torch.testing.assert_close(_params(_one_batch_update(6, x, y)), full)
    torch.testing.assert_close(_params(_one_batch_update(10, x, y)), full)
    assert not torch.allclose(_params(_one_batch_update(4, x, y)), full, atol=1e-6)


@pytest.mark.parametrize("carry", [True, False])
def test_tbptt_updates_per_chunk_and_carries_the_detached_state(carry):
    torch.manual_seed(1)
    x, y = torch.randn(4, 6, 2), torch.tensor([0, 1, 1, 0])
    loop_result = _params(_one_batch_update(4, x, y))
    # By hand: chunk [0, 4) -> update -> chunk [4, 6) from the detached state -> update.
    model = lstm()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    state = None
    for start, end in [(0, 4), (4, 6)]:
        logits, state = model(x[:, start:end], state if carry else None, return_state=True)
        loss = F.cross_entropy(logits.reshape(-1, 2), y.repeat_interleave(end - start))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state = detach_state(state)
    if carry:
        torch.testing.assert_close(_params(model), loop_result)
    else:
        assert not torch.allclose(_params(model), loop_result, atol=1e-6)


def test_tbptt_with_last_step_weighting_only_updates_on_the_last_chunk():
    torch.manual_seed(2)
    x, y = torch.randn(4, 6, 2), torch.tensor([1, 1, 0, 0])
    cfg = config(epochs=1, **{"sequence.tbptt": 3, "sequence.loss_weighting": "last", "optim.name": "sgd",
                              "optim.momentum": 0.0, "optim.lr": 0.5})
    model = lstm()
    stats = train_one_epoch(model, [(x, y)], build_optimizer(model, cfg.optim), cfg, epoch=0, steps_per_epoch=1,
                            device=CPU)
    ref = lstm()
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    with torch.no_grad():
        _, state = ref(x[:, :3], return_state=True)  # no loss on steps 0-2: no update
    logits, _ = ref(x[:, 3:], state, return_state=True)
    loss = F.cross_entropy(logits[:, -1], y)
    loss.backward()
    opt.step()
    torch.testing.assert_close(_params(model), _params(ref))
    assert math.isclose(stats["train_loss"], loss.item(), rel_tol=1e-5)


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(1)
    x, y = torch.randn(4, 6, 2) * 10, torch.tensor([0, 1, 1, 0])
    cfg = config(epochs=1, **{"optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": 1.0, "optim.grad_clip": 1e-3})
    model = lstm()
    before = _params(model)
    train_one_epoch(model, [(x, y)], build_optimizer(model, cfg.optim), cfg, epoch=0, steps_per_epoch=1,
                    device=CPU)
    assert (_params(model) - before).norm() <= 1e-3 * (1 + 1e-4)


def test_clip_level_models_train_with_plain_cross_entropy():
    """``(B, K)`` outputs (video models) get plain cross-entropy; 5-D clips pass through unchanged on CPU."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 3))
    x, y = torch.randn(4, 3, 2, 4, 4), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()
    cfg = config(epochs=1)
    stats = train_one_epoch(model, [(x, y)], build_optimizer(model, cfg.optim), cfg, epoch=0,
                            steps_per_epoch=1, device=CPU)
    assert math.isclose(stats["train_loss"], expected, rel_tol=1e-6) and stats["steps"] == 1


def test_fit_trains_2d_convolutions_channels_last_with_the_same_result(tmp_path):
    """``fit`` keeps 4-D conv weights channels-last (oneDNN's fast layout on CPU; 1.5x per TSM step); the same
    Parameter objects stay in the optimizer, and the trained model matches a contiguous reference."""
    from actionlab.train.loop import _place

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 2))

    model = make()
    conv = model[0].weight
    placed, device, amp = _place(model, config(), "cpu", 0, 1, 0)
    assert placed[0].weight is conv and amp is None
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x, y = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 1, 0])
    ref = make()
    for m in (placed, ref):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        F.cross_entropy(m(x), y).backward()
        opt.step()
    torch.testing.assert_close(placed[0].weight.contiguous(), ref[0].weight, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------- fit


def test_lstm_learns_an_order_only_task_that_avgpool_cannot():
    cfg = config(epochs=8, batch_size=16, **{"optim.lr": 0.02, "sequence.loss_weighting": "last",
                                             "sequence.seq_len": 8})
    feats, labels = order_task(64)
    test_feats, test_labels = order_task(64, seed=1)
    accs = {}
    for name in ("lstm", "avgpool"):
        model = lstm(name=name)
        fit(model, SequenceBatches(feats, labels, 16, 8), build_optimizer(model, cfg.optim), cfg, device="cpu",
            log=lambda row: None)
        model.eval()
        with torch.no_grad():
            pred = [model(torch.from_numpy(f.astype(np.float32))[None])[0, -1].argmax().item() for f in test_feats]
        accs[name] = float(np.mean(np.array(pred) == test_labels))
    assert accs["lstm"] >= 0.95, accs
    assert accs["avgpool"] <= 0.75, accs  # the task carries no order-free signal


def test_same_seed_same_metrics_and_files(tmp_path):
    cfg = config(**{"model.dropout": 0.3})
    _, h1 = run(cfg, tmp_path / "a")
    _, h2 = run(cfg, tmp_path / "b")
    assert no_seconds(h1.epochs) == no_seconds(h2.epochs)
    _, h3 = run(config(seed=1, **{"model.dropout": 0.3}), None)
    assert no_seconds(h3.epochs) != no_seconds(h1.epochs)
    lines = [json.loads(s) for s in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2]
    assert {"epoch", "lr", "train_loss", "train_acc", "seconds"} <= set(lines[0])
    assert (tmp_path / "a" / "checkpoints" / "last.pt").is_file()


def test_resume_ends_where_an_uninterrupted_run_would(tmp_path):
    cfg = config(epochs=4, **{"model.dropout": 0.3, "optim.schedule": "cosine"})
    straight, h_straight = run(cfg, tmp_path / "straight")

    def crash_after_two(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt  # the process dies after epoch 1's checkpoint is written

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "resumed", log=crash_after_two)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed, h_resumed = run(cfg, tmp_path / "resumed", resume=True, model=lstm(dropout=0.3))
    torch.testing.assert_close(_params(resumed), _params(straight))
    assert no_seconds(h_resumed.epochs) == no_seconds(h_straight.epochs)
    rows = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0, 1, 2, 3]


def test_early_stopping_and_best_checkpoint(tmp_path):
    losses = iter([1.0, 0.5, 0.7, 0.6, 0.9, 0.1])

    def validate(model):
        assert not model.training
        return {"val_loss": next(losses), "val_top1": 0.5}

    _, hist = run(config(epochs=6, patience=3), tmp_path, validate=validate)
    assert hist.stopped_early and len(hist.epochs) == 5  # epochs 2, 3, 4 bring no improvement on 0.5
    assert hist.best_epoch == 1 and hist.best_loss == 0.5
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 4
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])["val_top1"] == 0.5
    _, again = run(config(epochs=6, patience=3), tmp_path, validate=validate, resume=True)
    assert len(again.epochs) == 5  # a finished run stays finished


# ----------------------------------------------------------------------------------- checkpoints


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_model(tmp_path):
    model, _ = run(config(epochs=1), tmp_path)
    path = tmp_path / "checkpoints" / "last.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["meta"]["config"]["optim"]["lr"] == 0.01 and raw["meta"]["classes"] == ["rising", "falling"]
    rebuilt, meta = load_model_from_checkpoint(path)
    assert meta["model_name"] == "lstm" and meta["epoch"] == 0 and not rebuilt.training
    x = torch.randn(2, 5, 2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_checkpoint_refuses_non_primitive_extras_and_foreign_files(tmp_path):
    model = lstm()
    with pytest.raises(TypeError, match="extra.bad"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"bad": object()})
    save_checkpoint(tmp_path / "ok.pt", model, extra={"path": tmp_path, "arr": np.arange(3), "n": np.int64(2)})
    meta = load_checkpoint(tmp_path / "ok.pt")["meta"]
    assert meta["path"] == str(tmp_path) and meta["n"] == 2 and meta["arr"].tolist() == [0, 1, 2]
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an actionlab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="train first"):
        load_checkpoint(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------------- DDP

DDP_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    import torch.distributed as dist

    from actionlab.config import TrainConfig, apply_overrides
    from actionlab.models import create_model, model_entry
    from actionlab.train.loop import fit
    from actionlab.train.optim import build_optimizer
    from actionlab.train.sequences import SequenceBatches
    from actionlab.utils import distributed_info


    def main(out: Path) -> None:
        torch.set_num_threads(1)
        rank, world, _ = distributed_info()
        rng = np.random.default_rng(0)
        feats = [rng.standard_normal((int(rng.integers(3, 9)), 2)).astype(np.float16) for _ in range(16)]
        labels = np.arange(16) % 2
        cfg = apply_overrides(TrainConfig(), {"epochs": 2, "batch_size": 8, "sequence.seq_len": 5,
                                              "optim.lr": 0.05, "optim.grad_clip": 1.0})
        torch.manual_seed(0)
        model = create_model("lstm", num_classes=2, input_dim=2, hidden_size=8, fc_size=8)
        batches = SequenceBatches(feats, labels, cfg.batch_size // world, 5, seed=0, rank=rank,
                                  world_size=world)
        hist = fit(model, batches, build_optimizer(model, cfg.optim), cfg, out, device="cpu")
        if rank == 0:
            torch.save({"params": model.state_dict(), "loss": [r["train_loss"] for r in hist.epochs]},
                       out / "result.pt")
        if dist.is_initialized():
            dist.destroy_process_group()


    if __name__ == "__main__":
        main(Path(sys.argv[1]))
""")


@pytest.mark.slow  # three Python processes importing torch: ~10-30 s on a shared 2-core machine
def test_ddp_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "ddp")], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = importlib.util.spec_from_file_location("ddp_run", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path / "single")
    ddp = torch.load(tmp_path / "ddp" / "result.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "result.pt", weights_only=True)
    np.testing.assert_allclose(ddp["loss"], single["loss"], rtol=1e-5)
    for k, v in single["params"].items():
        torch.testing.assert_close(ddp["params"][k], v, atol=1e-5, rtol=1e-4)
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 wrote once

