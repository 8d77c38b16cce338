"""The networks a prediction runs, as plain functions of arrays, from any of three engines.

A trained run is one network (a video network or a frame classifier) or two (a 2D backbone, then a temporal
head over its features). Prediction only needs ``float32 array in -> float32 array out``:

- :func:`onnx_net`: an ONNX graph of an export, in ONNX Runtime on CPU (this module: no torch);
- :func:`~actionlab.predict.torch_nets.torch_net`: a PyTorch module of a run directory (any device);
- :func:`~actionlab.predict.torch_nets.script_net`: a TorchScript graph of an export.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from actionlab.utils import cpu_threads

Net = Callable[[np.ndarray], np.ndarray]
"""``x float32 -> y float32``: ``(N, 3, S, S) -> (N, D | K)``, ``(N, C, T, S, S) -> (N, K)`` or
``(W, L, D) -> (W, L, K)``."""


def onnx_session(path: str | Path, threads: int | None = None):  # type: ignore[no-untyped-def]
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (default: the cores this process may use)."""
    import onnxruntime as ort

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


class FeatureEngine:
    """A backbone :data:`Net` as the extraction engine interface: ``engine(x) -> (features, None)``."""

    with_head = False

    def __init__(self, net: Net, name: str) -> None:
        self.net, self.name = net, name

    def __call__(self, x: Any) -> tuple[np.ndarray, None]:
        """``(N, 3, S, S)`` float32 (numpy, or a CPU tensor) -> ``(features (N, D), None)``."""
        return self.net(x if isinstance(x, np.ndarray) else x.numpy()), None
