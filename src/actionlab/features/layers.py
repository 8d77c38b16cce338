"""Operations on a network's layers that extraction, flow and the video models share: a pooling that keeps
where things are, a network's first convolution, and giving that convolution more input channels."""

from __future__ import annotations

import torch
from torch import nn


def grid_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 4 C)``: the averages of a 2x2 grid of cells, cell by cell (top-left, top-right,
    bottom-left, bottom-right; each ``C`` values).

    The cells are those of ``adaptive_avg_pool2d(x, 2)`` (an odd side's middle row or column belongs to both), but
    written as slices of the input's own size, so an ONNX export keeps height and width dynamic (``view=full``
    frames of any aspect; the exporter's adaptive pooling needs sizes fixed at export).
    """
    h, w = x.shape[-2], x.shape[-1]
    rows = (x[:, :, :(h + 1) // 2], x[:, :, h // 2:])  # (B, C, ceil(H/2), W), (B, C, H - floor(H/2), W)
    cells = [cell.mean(dim=(2, 3)) for row in rows for cell in (row[..., :(w + 1) // 2], row[..., w // 2:])]
    return torch.cat(cells, dim=1)


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d | nn.Conv3d]:
    """``(name, layer)`` of the first convolution that reads the input: the first ``Conv2d``/``Conv3d`` in
    registration order (every backbone and video network here defines its stem first)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            return name, m
    raise ValueError(f"{type(module).__name__} has no convolution")


def cross_modality_init(module: nn.Module, channels: int) -> nn.Module:
    """Make ``module``'s first convolution read ``channels`` inputs: its RGB kernels averaged over colour and
    replicated over the new channels (TSN's cross-modality initialisation; 2D and 3D convolutions). In place;
    returns ``module``. A first convolution that already reads ``channels`` is left as it is."""
    name, conv = first_conv(module)
    if conv.in_channels == channels:
        return module
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(f"{type(module).__name__}.{name}, its first convolution, does not read RGB (in_channels "
                         f"{conv.in_channels}, groups {conv.groups}): cannot give it {channels} input channels")
    with torch.no_grad():
        weight = conv.weight.mean(dim=1, keepdim=True)  # (out, 1, k...)
        weight = weight.repeat(1, channels, *([1] * (weight.ndim - 2))).contiguous()
    conv.weight = nn.Parameter(weight, requires_grad=conv.weight.requires_grad)
    conv.in_channels = channels
    return module
