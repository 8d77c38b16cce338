"""Temporal models over cached per-frame features (the course handout, part 3, and the LSTM ablation study).

Every model maps a feature sequence ``x (B, T, D)`` to per-step logits ``(B, T, K)``; a video-level
prediction is an aggregate of the steps (the evaluation stage decides how). Read top-down:

- ``Head``: the course handout's starter code after the temporal layer: ``dropout -> Linear(fc_size) -> [BN] -> ReLU ->
  dropout -> Linear(K)`` (``fc_size=0`` leaves only the output layer).
- ``RecurrentClassifier`` (``lstm``, ``gru``): stacked recurrent layers, optional batch norm between them
  over the feature dim, ``forward_with_state`` for truncated BPTT.
- ``AvgPool`` (``avgpool``): no temporal modelling: a per-step MLP whose logits are averaged over time.
- ``SingleFrame`` (``single_frame``): the per-frame classifier baseline.
- ``TCN`` (``tcn``): causal dilated 1D convolutions (WaveNet-style cycles of dilations).
- ``CausalTransformer`` (``transformer``): a small pre-norm encoder with a causal mask.

All of them are causal except bidirectional recurrent models: the logits at step ``t`` only depend on steps
``<= t`` (in eval mode), which is what makes "weight later steps more" (the course handout) meaningful.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from actionlab.models.registry import register_model

State = Any
"""Recurrent state: ``(h, c)`` tensors for LSTM, ``h`` for GRU, or a list of those (one per layer)."""


def detach_state(state: State) -> State:
    """Detach every tensor in a (nested tuple/list) recurrent state: gradients stop at the chunk boundary."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


class SeqBatchNorm(nn.BatchNorm1d):
    """Batch norm over the feature dim of ``(B, T, H)`` sequences (statistics over batch and time)."""

    def forward(self, x: Tensor) -> Tensor:
        b, t, h = x.shape
        return super().forward(x.reshape(b * t, h)).view(b, t, h)


class Head(nn.Module):
    """Per-step classifier ``(B, T, H) -> (B, T, K)``: the course handout's linear + nonlinearity + output layer."""

    def __init__(self, in_dim: int, num_classes: int, fc_size: int = 512, dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if fc_size > 0:
            layers.append(nn.Linear(in_dim, fc_size))
            if batch_norm:
                layers.append(SeqBatchNorm(fc_size))
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_dim = fc_size
        layers.append(nn.Linear(in_dim, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


# ----------------------------------------------------------------------------------- recurrent


class RecurrentClassifier(nn.Module):
    """Stacked LSTM/GRU -> ``Head``, per-step logits ``(B, T, K)``.

    Without batch norm the stack is one fused ``nn.LSTM``/``nn.GRU`` (cuDNN runs all layers at once,
    dropout between layers). With batch norm each layer is its own single-layer module so that a
    ``SeqBatchNorm`` sits after every recurrent layer (between layers and before the head; the LSTM ablation study, section 3);
    the state is then a list with one entry per layer.
    """

    is_recurrent = True

    def __init__(self, cell: str, num_classes: int, input_dim: int, hidden_size: int = 512,
                 num_layers: int = 1, fc_size: int = 512, bidirectional: bool = False,
                 batch_norm: bool = False, dropout: float = 0.0, input_dropout: float = 0.0,
                 input_proj: int = 0, input_deltas: bool = False) -> None:
        super().__init__()
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.input_deltas = input_deltas
        if input_deltas:  # each step also sees how the features changed since the previous step
            input_dim *= 2
        # Input stage: dropout on the (wide, pretrained) features, then an optional linear projection, so the
        # recurrent layer sees a small, regularized input rather than memorising 1280-d frame features.
        self.input = nn.Sequential(nn.Dropout(input_dropout),
                                   *([nn.Linear(input_dim, input_proj)] if input_proj > 0 else []))
        input_dim = input_proj if input_proj > 0 else input_dim
        self.cell, self.bidirectional, self.batch_norm = cell, bidirectional, batch_norm
        out_dim = hidden_size * (2 if bidirectional else 1)
        if batch_norm:
            self.rnns = nn.ModuleList(
                rnn_cls(input_dim if i == 0 else out_dim, hidden_size, batch_first=True,
                        bidirectional=bidirectional) for i in range(num_layers))
            self.norms = nn.ModuleList(SeqBatchNorm(out_dim) for _ in range(num_layers))
            self.drop = nn.Dropout(dropout)
        else:
            self.rnn = rnn_cls(input_dim, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.head = Head(out_dim, num_classes, fc_size, dropout, batch_norm)

    def forward(self, x: Tensor, state: State = None, return_state: bool = False) -> Any:
        """``x (B, T, D)`` -> logits ``(B, T, K)``, or ``(logits, state)`` with ``return_state=True``.

        Taking the state through ``forward`` (not only ``forward_with_state``) lets the training loop call
        a ``DistributedDataParallel``-wrapped model, whose gradient sync hooks run in ``forward``. Chunks of a
        longer sequence (truncated BPTT) pass the returned state to the next chunk; only unidirectional models
        can be chunked, since a backward direction would need the future.
        """
        if return_state and self.bidirectional:
            raise ValueError("truncated BPTT (sequence.tbptt > 0) needs a unidirectional model; "
                             "set model.bidirectional=false or sequence.tbptt=0")
        if self.input_deltas:  # (B, T, D) -> (B, T, 2D): [x_t, x_t - x_{t-1}], no change at the first step
            x = torch.cat([x, x - torch.cat([x[:, :1], x[:, :-1]], dim=1)], dim=-1)
        x = self.input(x)  # (B, T, D) -> (B, T, input_proj or D)
        if self.batch_norm:
            states = state if state is not None else [None] * len(self.rnns)
            new_states = []
            for rnn, norm, s in zip(self.rnns, self.norms, states):
                x, s = rnn(x, s)  # (B, T, H * dirs)
                x = norm(x)
                if len(new_states) < len(self.rnns) - 1:
                    x = self.drop(x)
                new_states.append(s)
            state = new_states
        else:
            x, state = self.rnn(x, state)  # (B, T, H * dirs)
        logits = self.head(x)  # (B, T, K)
        return (logits, state) if return_state else logits

    @staticmethod
    def detach_state(state: State) -> State:
        return detach_state(state)


@register_model("temporal")
def lstm(num_classes: int, input_dim: int, hidden_size: int = 512, num_layers: int = 1, fc_size: int = 512,
         bidirectional: bool = False, batch_norm: bool = False, dropout: float = 0.0, input_dropout: float = 0.0,
         input_proj: int = 0, input_deltas: bool = False) -> RecurrentClassifier:
    """LSTM over feature sequences: [deltas, input dropout, projection] -> LSTM layers -> [linear + ReLU] -> output."""
    return RecurrentClassifier("lstm", num_classes, input_dim, hidden_size, num_layers, fc_size,
                               bidirectional, batch_norm, dropout, input_dropout, input_proj, input_deltas)


@register_model("temporal")
def gru(num_classes: int, input_dim: int, hidden_size: int = 512, num_layers: int = 1, fc_size: int = 512,
        bidirectional: bool = False, batch_norm: bool = False, dropout: float = 0.0, input_dropout: float = 0.0,
        input_proj: int = 0, input_deltas: bool = False) -> RecurrentClassifier:
    """GRU over feature sequences (same input stage, head and options as ``lstm``)."""
    return RecurrentClassifier("gru", num_classes, input_dim, hidden_size, num_layers, fc_size,
                               bidirectional, batch_norm, dropout, input_dropout, input_proj, input_deltas)


# ----------------------------------------------------------------------------------- order-free baselines


class AvgPool(nn.Module):
    """Per-step MLP whose logits are averaged over time: the control without temporal modelling.

    Step ``t`` returns the running mean of the per-step logits over steps ``0..t`` (causal), so the last
    step is the whole-sequence average and ``sequence.loss_weighting=last`` trains exactly that average.
    """

    def __init__(self, num_classes: int, input_dim: int, fc_size: int = 512, dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.head = Head(input_dim, num_classes, fc_size, dropout, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.head(x)  # (B, T, K), each step alone
        steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=logits.dtype)
        return logits.cumsum(dim=1) / steps[None, :, None]


class SingleFrame(nn.Module):
    """Per-frame classifier ``(B, T, D) -> (B, T, K)``: every step alone (the single-frame baseline).

    Train it on frames (``sequence.seq_len=1``) and average its predictions per video at evaluation.
    """

    def __init__(self, num_classes: int, input_dim: int, fc_size: int = 512, dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.head = Head(input_dim, num_classes, fc_size, dropout, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x)


@register_model("temporal")
def avgpool(num_classes: int, input_dim: int, fc_size: int = 512, batch_norm: bool = False,
            dropout: float = 0.0) -> AvgPool:
    """Per-step MLP with logits averaged over time (no temporal model; the order-free control)."""
    return AvgPool(num_classes, input_dim, fc_size, dropout, batch_norm)


@register_model("temporal")
def single_frame(num_classes: int, input_dim: int, fc_size: int = 512, batch_norm: bool = False,
                 dropout: float = 0.0) -> SingleFrame:
    """Per-frame classifier: the single-frame baseline (train on frames, average per video)."""
    return SingleFrame(num_classes, input_dim, fc_size, dropout, batch_norm)


# ----------------------------------------------------------------------------------- temporal convolution


class CausalConvBlock(nn.Module):
    """Residual block: causal dilated ``Conv1d`` (left padding only) -> [BN] -> ReLU -> dropout, plus skip."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.norm = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, H, T) -> (B, H, T)
        y = self.conv(nn.functional.pad(x, (self.pad, 0)))
        return x + self.drop(torch.relu(self.norm(y)))


class TCN(nn.Module):
    """Causal temporal convolution network: ``num_layers`` cycles of blocks with ``dilations``.

    With kernel 3 and dilations (1, 2, 4, 8) one cycle sees 31 steps; each extra cycle adds 30.
    """

    def __init__(self, num_classes: int, input_dim: int, hidden_size: int = 512, num_layers: int = 1,
                 fc_size: int = 512, batch_norm: bool = False, dropout: float = 0.0, kernel_size: int = 3,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.proj = nn.Conv1d(input_dim, hidden_size, 1)
        self.blocks = nn.Sequential(*(CausalConvBlock(hidden_size, kernel_size, d, dropout, batch_norm)
                                      for _ in range(num_layers) for d in dilations))
        self.receptive_field = 1 + (kernel_size - 1) * sum(dilations) * num_layers
        self.head = Head(hidden_size, num_classes, fc_size, dropout, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.proj(x.transpose(1, 2)))  # (B, H, T)
        return self.head(h.transpose(1, 2))  # (B, T, K)


@register_model("temporal")
def tcn(num_classes: int, input_dim: int, hidden_size: int = 512, num_layers: int = 1, fc_size: int = 512,
        batch_norm: bool = False, dropout: float = 0.0, kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8)) -> TCN:
    """Causal dilated temporal convolutions; ``num_layers`` cycles of dilations (1, 2, 4, 8)."""
    return TCN(num_classes, input_dim, hidden_size, num_layers, fc_size, batch_norm, dropout, kernel_size,
               tuple(dilations))


# ----------------------------------------------------------------------------------- transformer


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """``(length, dim)`` fixed sin/cos position codes (Vaswani et al.); works for any length."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class CausalTransformer(nn.Module):
    """Linear input projection + positions -> pre-norm ``TransformerEncoder`` with a causal mask -> ``Head``.

    The causal mask keeps step ``t`` from attending to later steps, so per-step logits are predictions
    from the past only (like an LSTM's), and late-step weighting at training/inference stays meaningful.
    """

    def __init__(self, num_classes: int, input_dim: int, hidden_size: int = 256, num_layers: int = 1,
                 fc_size: int = 512, dropout: float = 0.0, num_heads: int = 4, positions: str = "sinusoidal",
                 max_len: int = 512) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"transformer: hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"transformer: positions must be 'sinusoidal' or 'learned', got {positions!r}")
        self.positions, self.max_len = positions, max_len
        self.proj = nn.Linear(input_dim, hidden_size)
        if positions == "learned":
            self.pos = nn.Parameter(torch.zeros(1, max_len, hidden_size))
            nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(hidden_size, num_heads, dim_feedforward=2 * hidden_size,
                                           dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(hidden_size),
                                             enable_nested_tensor=False)
        self.head = Head(hidden_size, num_classes, fc_size, dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        h = self.proj(x)  # (B, T, H)
        if self.positions == "learned":
            if t > self.max_len:
                raise ValueError(f"transformer: sequence of {t} steps exceeds max_len={self.max_len} "
                                 "of learned positions; raise max_len or use positions='sinusoidal'")
            h = h + self.pos[:, :t]
        else:
            h = h + sinusoidal_positions(t, h.shape[-1]).to(h)
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=x.device, dtype=h.dtype)
        h = self.encoder(h, mask=mask, is_causal=True)  # (B, T, H)
        return self.head(h)


@register_model("temporal")
def transformer(num_classes: int, input_dim: int, hidden_size: int = 256, num_layers: int = 1,
                fc_size: int = 512, dropout: float = 0.0, num_heads: int = 4, positions: str = "sinusoidal",
                max_len: int = 512) -> CausalTransformer:
    """Small causal transformer encoder (sinusoidal or learned positions)."""
    return CausalTransformer(num_classes, input_dim, hidden_size, num_layers, fc_size, dropout, num_heads,
                             positions, max_len)
