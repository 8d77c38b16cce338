"""The networks a prediction runs, as plain functions of arrays, from any of three engines.

A trained run is one network (a video network or a frame classifier) or two (a 2D backbone, then a temporal
head over its features). Prediction only needs ``float32 array in -> float32 array out``:

- :func:`torch_net`: a PyTorch module of a run directory (any device);
- :func:`onnx_net`: an ONNX graph of an export, in ONNX Runtime on CPU;
- :func:`script_net`: a TorchScript graph of an export.

:class:`FeatureHead` is what a temporal run's head means outside the training code: raw backbone features in,
rounded to the feature store's dtype and normalized with the train-set mean/std, then the temporal model. Both
the PyTorch path and the exported graph run it, so a run and its export read the same inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

Net = Callable[[np.ndarray], np.ndarray]
"""``x float32 -> y float32``: ``(N, 3, S, S) -> (N, D | K)``, ``(N, C, T, S, S) -> (N, K)`` or
``(W, L, D) -> (W, L, K)``."""

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


def onnx_session(path: str | Path, threads: int | None = None):  # type: ignore[no-untyped-def]
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (default: the cores this process may use)."""
    import onnxruntime as ort

    from actionlab.features.engine import cpu_threads

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep (shared CPUs)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_net(path: str | Path, threads: int | None = None) -> Net:
    """An ONNX graph with one input and one output, run by ONNX Runtime on CPU. A graph exported for a fixed
    batch size gets its inputs in batches of that size."""
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    batch = session.get_inputs()[0].shape[0]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not isinstance(batch, int) or len(x) == batch:
            return session.run(None, {name: x})[0]
        out = []
        for i in range(0, len(x), batch):
            part = x[i:i + batch]
            padded = np.concatenate([part, np.repeat(part[-1:], batch - len(part), axis=0)])
            out.append(session.run(None, {name: padded})[0][:len(part)])
        return np.concatenate(out)

    return run


def script_net(path: str | Path) -> Net:
    """A TorchScript graph (``torch.jit.save``) on CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; ONNX is the default
        module = torch.jit.load(str(path), map_location="cpu")
    return torch_net(module, torch.device("cpu"))


class FeatureEngine:
    """A backbone :data:`Net` as the extraction engine interface: ``engine(x) -> (features, None)``."""

    with_head = False

    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name

    def __call__(self, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, None]:
        if isinstance(x, torch.Tensor):
            x = x.numpy()
        return self.net(x), None
