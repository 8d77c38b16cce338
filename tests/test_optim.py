"""Optimizer construction (weight-decay groups) and the pure learning-rate schedule (property tests)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actionlab.config import OptimConfig
from actionlab.models import create_model
from actionlab.train.optim import build_optimizer, lr_at, param_groups

configs = st.builds(
    OptimConfig,
    lr=st.floats(1e-5, 1.0),
    schedule=st.sampled_from(["constant", "step", "cosine"]),
    step_size=st.integers(1, 5),
    gamma=st.floats(0.05, 0.9),
    warmup_epochs=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
)
shapes = st.tuples(st.integers(1, 20), st.integers(1, 8))  # (steps_per_epoch, epochs)


@settings(max_examples=100, deadline=None)
@given(cfg=configs, shape=shapes, data=st.data())
def test_lr_is_positive_bounded_and_pure(cfg, shape, data):
    spe, epochs = shape
    total = spe * epochs
    step = data.draw(st.integers(0, total - 1))
    lr = lr_at(step, total, spe, cfg)
    assert 0.0 <= lr <= cfg.lr * (1 + 1e-12)
    assert lr == lr_at(step, total, spe, cfg)
    if cfg.schedule != "cosine" or step == 0:
        assert lr > 0


@settings(max_examples=60, deadline=None)
@given(cfg=configs, shape=shapes)
def test_warmup_rises_linearly_then_schedule_never_rises(cfg, shape):
    spe, epochs = shape
    total = spe * epochs
    lrs = [lr_at(s, total, spe, cfg) for s in range(total)]
    warmup = round(cfg.warmup_epochs * spe)
    ups = lrs[: min(warmup, total)]
    plain = OptimConfig(lr=cfg.lr, schedule=cfg.schedule, step_size=cfg.step_size, gamma=cfg.gamma)
    for s, v in enumerate(ups):  # warm-up scales the schedule by (s + 1) / warmup; cosine starts after it
        base = cfg.lr if cfg.schedule == "cosine" else lr_at(s, total, spe, plain)
        assert math.isclose(v, base * (s + 1) / warmup)
    if cfg.schedule != "step":  # the others are flat during warm-up, so the rate strictly rises
        assert all(a < b for a, b in zip(ups, ups[1:]))
    if warmup and cfg.schedule == "constant":
        assert math.isclose(lrs[0], cfg.lr / warmup)
    after = lrs[warmup:]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(after, after[1:]))


@settings(max_examples=60, deadline=None)
@given(cfg=configs, shape=shapes)
def test_each_schedule_shape(cfg, shape):
    spe, epochs = shape
    total = spe * epochs
    cfg = OptimConfig(lr=cfg.lr, schedule=cfg.schedule, step_size=cfg.step_size, gamma=cfg.gamma)  # no warm-up
    lrs = [lr_at(s, total, spe, cfg) for s in range(total)]
    if cfg.schedule == "constant":
        assert all(v == cfg.lr for v in lrs)
    elif cfg.schedule == "step":
        for s, v in enumerate(lrs):  # constant within an epoch, times gamma every step_size epochs
            assert math.isclose(v, cfg.lr * cfg.gamma ** ((s // spe) // cfg.step_size))
    else:
        assert lrs[0] == cfg.lr
        mid = total // 2
        assert math.isclose(lrs[mid], cfg.lr * 0.5 * (1 + math.cos(math.pi * mid / total)))
        if total > 2:  # from the base rate down toward 0 at the end
            assert lrs[-1] < cfg.lr / 2 < lrs[0]


def test_lr_at_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lr_at(0, 10, 0, OptimConfig())
    with pytest.raises(ValueError):
        lr_at(-1, 10, 1, OptimConfig())


def _model() -> torch.nn.Module:
    return create_model("lstm", num_classes=3, input_dim=4, hidden_size=4, fc_size=4, batch_norm=True)


def test_no_weight_decay_on_biases_and_norms():
    model = _model()
    groups = param_groups(model, 5e-4)
    decay, no_decay = groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    decayed = {names[id(p)] for p in decay["params"]}
    assert "rnns.0.weight_ih_l0" in decayed and "head.layers.1.weight" in decayed
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"rnns.0.bias_ih_l0", "norms.0.weight", "norms.0.bias"} <= skipped
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_decay_everything_on_request_and_frozen_params_skipped():
    model = _model()
    model.head.layers[1].weight.requires_grad_(False)
    groups = param_groups(model, 1e-3, decay_bias_and_norm=True)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 1e-3
    assert len(groups[0]["params"]) == len(list(model.parameters())) - 1


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_build_optimizer_and_weight_decay_effect(name, cls):
    cfg = OptimConfig(name=name, lr=1e-3, weight_decay=0.5)
    layer = torch.nn.Linear(3, 2)
    opt = build_optimizer(layer, cfg)
    assert isinstance(opt, cls)
    if name in ("sgd", "rmsprop"):
        assert opt.param_groups[0]["momentum"] == cfg.momentum
    # With a zero loss gradient only the decay moves the parameters: weights shrink, bias stays.
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    (layer(torch.zeros(1, 3)) * 0).sum().backward()
    layer.bias.grad = torch.zeros_like(layer.bias)
    opt.step()
    assert layer.weight.abs().sum() < w0.abs().sum()
    torch.testing.assert_close(layer.bias.detach(), b0)
