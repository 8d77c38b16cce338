"""Temporal models over feature sequences: shapes, gradients, causality, options, chunked state."""

from __future__ import annotations

import pytest
import torch

from actionlab.config import ModelConfig
from actionlab.models import create_model, list_models, model_entry, model_kind
from actionlab.models.temporal import detach_state
from actionlab.runs.train import model_kwargs

B, T, D, K = 2, 5, 16, 3
SMALL = dict(hidden_size=8, fc_size=8)
TEMPORAL = ["avgpool", "gru", "lstm", "single_frame", "tcn", "transformer"]
CAUSAL = TEMPORAL  # every unidirectional model is causal


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    # sizes (and the depth of parametrized tests) only where the model has them
    sizes = {k: v for k, v in {**SMALL, **kwargs}.items()
             if k in model_entry(name).params or k not in (*SMALL, "num_layers")}
    return create_model(name, num_classes=K, input_dim=D, **sizes)


def test_registry_lists_the_temporal_models():
    assert set(TEMPORAL) <= set(list_models("temporal"))
    assert all(model_kind(n) == "temporal" for n in TEMPORAL)


@pytest.mark.parametrize("name", TEMPORAL)
def test_forward_backward_per_step_logits(name):
    model = build(name)
    x = torch.randn(B, T, D, requires_grad=True)
    out = model(x)
    assert out.shape == (B, T, K)
    assert torch.isfinite(out).all()
    out.logsumexp(-1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", TEMPORAL)
def test_builds_from_a_full_model_config(name):
    """One ``ModelConfig`` builds any temporal model: fields a model does not take are left out at their
    defaults, and refused, naming the models that take them, when set."""
    cfg = ModelConfig(name=name, fc_size=0)
    model = create_model(name, num_classes=K, **model_kwargs(cfg, model_entry(name), {"input_dim": D}))
    assert model(torch.randn(1, 3, D)).shape == (1, 3, K)
    with pytest.raises(ValueError, match=r"model\.width=0\.25 does not apply.*c3d, c3d_small, .*r2plus1d_18"):
        model_kwargs(ModelConfig(name=name, width=0.25), model_entry(name), {"input_dim": D})
    with pytest.raises(TypeError, match="does not take width"):
        create_model(name, num_classes=K, input_dim=D, width=0.25)


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_causal_models_ignore_the_future(name, num_layers):
    model = build(name, num_layers=num_layers).eval()
    x = torch.randn(B, T, D)
    y = x.clone()
    y[:, 3:] = torch.randn(B, T - 3, D) * 5  # change only steps 3 and 4
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :3], b[:, :3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-3)


def test_bidirectional_sees_the_future_and_doubles_the_width():
    model = build("lstm", bidirectional=True).eval()
    assert model.rnn.hidden_size == 8 and model.head.layers[1].in_features == 16
    x = torch.randn(B, T, D)
    y = x.clone()
    y[:, -1] += 5
    with torch.no_grad():
        assert not torch.allclose(model(x)[:, 0], model(y)[:, 0])
    with pytest.raises(ValueError, match="unidirectional"):
        model(x, return_state=True)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_batch_norm_sits_between_separate_layers(name):
    model = build(name, num_layers=3, batch_norm=True)
    assert len(model.rnns) == 3 and all(r.num_layers == 1 for r in model.rnns)
    assert model.rnns[1].input_size == 8  # layer 2 reads the normalized output of layer 1
    assert len(model.norms) == 3
    model.train()
    model(torch.randn(4, T, D) * 3 + 1)
    assert all(n.num_batches_tracked.item() == 1 for n in model.norms)
    # In train mode the normalized layer output has ~zero mean over (batch, time) per feature.
    captured = {}

    def keep(module, inputs, output):
        captured["out"] = output

    model.norms[0].register_forward_hook(keep)
    model(torch.randn(4, T, D))
    torch.testing.assert_close(captured["out"].mean(dim=(0, 1)), torch.zeros(8), atol=1e-5, rtol=0)


def test_fused_stack_without_batch_norm():
    model = build("lstm", num_layers=2, dropout=0.3)
    assert model.rnn.num_layers == 2 and model.rnn.dropout == 0.3


@pytest.mark.parametrize("name", TEMPORAL)
def test_dropout_is_random_in_train_and_off_in_eval(name):
    model = build(name, dropout=0.5, num_layers=2)
    x = torch.randn(B, T, D)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_with_state_chains_chunks_exactly(name, batch_norm):
    """Running chunks with the carried state equals one pass over the whole sequence."""
    model = build(name, num_layers=2, batch_norm=batch_norm).eval()
    assert model.is_recurrent
    x = torch.randn(B, 7, D)
    with torch.no_grad():
        full = model(x)
        a, state = model(x[:, :3], return_state=True)
        b, state = model(x[:, 3:], detach_state(state), return_state=True)
        zero, _ = model(x[:, 3:], return_state=True)  # a fresh state forgets the first chunk
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(zero, full[:, 3:], atol=1e-4)


def test_detach_state_cuts_the_graph_and_keeps_values():
    model = build("lstm", num_layers=2, batch_norm=True)
    _, state = model(torch.randn(B, T, D), return_state=True)
    assert state[0][0].requires_grad
    detached = detach_state(state)
    assert isinstance(detached, list) and isinstance(detached[0], tuple)
    assert not any(t.requires_grad for s in detached for t in s)
    torch.testing.assert_close(detached[1][1], state[1][1].detach())


def test_avgpool_last_step_is_the_mean_of_per_step_logits_and_order_free():
    model = build("avgpool").eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        out = model(x)
        per_step = model.head(x)
        rev = model(x.flip(1))
    torch.testing.assert_close(out[:, -1], per_step.mean(1))
    torch.testing.assert_close(rev[:, -1], out[:, -1])  # no temporal order


def test_single_frame_classifies_each_step_alone():
    model = build("single_frame").eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, 2], model(x[:, 2:3])[:, 0])


def test_tcn_receptive_field():
    model = build("tcn", num_layers=1, dilations=(1, 2))
    assert model.receptive_field == 1 + 2 * 3
    model.eval()
    x = torch.randn(1, 12, D)
    y = x.clone()
    y[:, 0] += 10  # step 0 is outside the field of step 7 and later
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, 7:], b[:, 7:])
    assert not torch.allclose(a[:, 6], b[:, 6])


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_transformer_positions(positions):
    model = build("transformer", positions=positions, max_len=8, num_heads=2).eval()
    x = torch.randn(1, 1, D).expand(1, 6, D)  # same input at every step: only positions tell them apart
    with torch.no_grad():
        out = model(x)
    assert not torch.allclose(out[:, 0], out[:, 5], atol=1e-4)
    if positions == "learned":
        with pytest.raises(ValueError, match="max_len"):
            model(torch.randn(1, 9, D))


def test_transformer_rejects_bad_heads():
    with pytest.raises(ValueError, match="divisible"):
        build("transformer", hidden_size=10, num_heads=4)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_input_stage_feeds_deltas_dropout_and_projection(name):
    """``input_deltas`` gives each step ``[x_t, x_t - x_(t-1)]``; ``input_proj`` projects it to that width."""
    model = build(name, input_deltas=True, input_proj=6, input_dropout=0.5).eval()
    seen = []
    model.input.register_forward_hook(lambda m, inp, out: seen.append((inp[0], out)))
    x = torch.randn(B, T, D)
    with torch.no_grad():
        model(x)
    inp, out = seen[0]
    torch.testing.assert_close(inp[..., :D], x)
    torch.testing.assert_close(inp[:, 1:, D:], x[:, 1:] - x[:, :-1])
    assert torch.all(inp[:, 0, D:] == 0) and out.shape == (B, T, 6)
    assert isinstance(model.input[0], torch.nn.Dropout) and model.input[0].p == 0.5
