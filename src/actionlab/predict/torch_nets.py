"""The PyTorch engines of :mod:`actionlab.predict.graphs`: a run directory's modules and TorchScript exports as
:data:`~actionlab.predict.graphs.Net` functions. Only the run path, TorchScript exports and ``actionlab export``
import this module (an ONNX export predicts without torch).

:class:`FeatureHead` is what a temporal run's head means outside the training code: raw backbone features in,
rounded to the feature store's dtype and normalized with the train-set mean/std, then the temporal model. Both
the PyTorch path and the exported graph run it, so a run and its export read the same inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actionlab.predict.graphs import Net

STORE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class FeatureHead(nn.Module):
    """``features (W, L, D)`` straight from the backbone -> per-step logits ``(W, L, K)``.

    The features are rounded to ``dtype`` (what the feature store held when the model trained), normalized as
    ``(x - mean) / std`` with the train-set statistics, and fed to the temporal ``model``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], dtype: str = "float16") -> None:
        super().__init__()
        if dtype not in STORE_DTYPES:
            raise ValueError(f"feature dtype must be one of {sorted(STORE_DTYPES)}, got {dtype!r}")
        self.model, self.dtype = model, dtype
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(STORE_DTYPES[self.dtype]).float()  # the precision the store kept
        return self.model((x - self.mean) / self.std)  # (W, L, D) -> (W, L, K)


def torch_net(module: nn.Module, device: torch.device) -> Net:
    """A PyTorch module in eval mode as a function of float32 arrays (inputs moved to ``device``)."""
    module = module.eval().to(device)

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        with torch.inference_mode():
            return module(t).float().cpu().numpy()

    return run


def script_net(path: str | Path) -> Net:
    """A TorchScript graph (``torch.jit.save``) on CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; ONNX is the default
        module = torch.jit.load(str(path), map_location="cpu")
    return torch_net(module, torch.device("cpu"))
