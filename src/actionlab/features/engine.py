"""Inference engines over a backbone's ``forward_features`` (+ optional head) for feature extraction.

``create_engine(model, spec, device, engine)`` returns a callable ``engine(batch) -> (features, logits | None)``:

- ``onnx``: ONNX Runtime on CPU. The backbone is exported once with ``torch.onnx.export`` (dynamic batch axis,
  opset 17), cached under ``$ACTIONLAB_CACHE/onnx`` (default ``~/.cache/actionlab/onnx``) keyed by a hash of the
  backbone's weights, written atomically and checked against eager PyTorch right after export.
  On a 2-core CPU it runs MobileNetV2 several times faster than eager PyTorch (``benchmarks/bench_extract.py``).
- ``torch``: eager PyTorch under ``torch.inference_mode()`` in channels-last; on CUDA with autocast
  (bf16 where supported, else fp16) and pinned host memory for the inputs.
- ``auto``: ``onnx`` on CPU when onnxruntime is installed (falling back to ``torch`` if export or the check
  fails), ``torch`` on CUDA.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from actionlab.features.backbones import Backbone, BackboneSpec
from actionlab.features.layers import first_conv
from actionlab.utils import atomic_path, cpu_threads, select_device

logger = logging.getLogger(__name__)

ENGINES = ("auto", "onnx", "torch")
ONNX_OPSET = 17
ENV_CACHE = "ACTIONLAB_CACHE"

Batch = np.ndarray | torch.Tensor
Output = tuple[np.ndarray, np.ndarray | None]


class Engine(Protocol):
    """What extraction calls: ``engine(batch (N, 3, H, W) float) -> (features (N, D), logits (N, K) | None)``."""

    name: str
    with_head: bool

    def __call__(self, batch: Batch) -> Output: ...


def cache_dir() -> Path:
    """Where exported ONNX models live: ``$ACTIONLAB_CACHE/onnx`` or ``~/.cache/actionlab/onnx``."""
    root = os.environ.get(ENV_CACHE)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "actionlab") / "onnx"


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


class _FeaturesAndHead(nn.Module):
    """Export wrapper: ``x (B,3,H,W) -> features (B,D)`` or ``(features, logits (B,K))``."""

    def __init__(self, backbone: Backbone, with_head: bool) -> None:
        super().__init__()
        self.backbone, self.with_head = backbone, with_head

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone.forward_features(x)
        return (f, self.backbone.forward_head(f)) if self.with_head else f


class TorchEngine:
    """Eager PyTorch: channels-last, ``inference_mode``; autocast and pinned inputs on CUDA."""

    name = "torch"

    def __init__(self, backbone: Backbone, device: torch.device, with_head: bool = False,
                 amp_dtype: torch.dtype | None = None) -> None:
        self.device, self.with_head = device, with_head
        self.model = _FeaturesAndHead(backbone, with_head).eval().to(device, memory_format=torch.channels_last)
        if amp_dtype is None and device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.amp_dtype = amp_dtype if device.type == "cuda" else None

    def _to_device(self, batch: Batch) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        if self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        return x.float().contiguous(memory_format=torch.channels_last)

    def __call__(self, batch: Batch) -> Output:
        """``(N, 3, H, W)`` float -> ``(features (N, D) float32, logits (N, K) float32 or None)``."""
        x = self._to_device(batch)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype,
                                                    enabled=self.amp_dtype is not None):
            out = self.model(x)
        f, logits = (out if self.with_head else (out, None))
        return (f.float().cpu().numpy(), logits.float().cpu().numpy() if logits is not None else None)


class OnnxEngine:
    """ONNX Runtime session over an exported backbone (CPU execution provider unless told otherwise)."""

    name = "onnx"

    def __init__(self, onnx_path: str | Path, with_head: bool = False, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = False) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_threads()
        opts.inter_op_num_threads = 1
        # Idle ORT threads busy-wait by default; that steals the cores the decoding workers need (and, on a
        # shared machine, measured ~20% slower at batch 32), so they sleep unless asked to spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.path, self.with_head = Path(onnx_path), with_head
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: Batch) -> Output:
        """``(N, 3, H, W)`` float -> ``(features (N, D) float32, logits (N, K) float32 or None)``."""
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        outs = self.session.run(None, {self.input_name: x})
        return outs[0], (outs[1] if self.with_head else None)


def _state_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def onnx_cache_path(backbone: Backbone, spec: BackboneSpec, with_head: bool, directory: str | Path | None = None
                    ) -> Path:
    """Cache file for this backbone's weights (content hash), input size, head and exporter versions."""
    key = hashlib.sha256("|".join([  # the pooling is no weight: named, so a grid never reuses an average's graph
        spec.name, getattr(backbone, "pool", "avg"), _state_hash(backbone),
        f"{spec.preprocess.crop}, any height and width", str(with_head),
        str(ONNX_OPSET),
        torch.__version__.split("+")[0]]).encode()).hexdigest()[:20]
    suffix = "feat+head" if with_head else "feat"
    return Path(directory or cache_dir()) / f"{spec.name}-{suffix}-{key}.onnx"


def export_onnx(backbone: Backbone, path: str | Path, size: int, with_head: bool = False) -> Path:
    """Export ``forward_features`` (+ head) to ONNX at ``path`` atomically; batch, height and width axes
    dynamic, opset 17.

    Uses the TorchScript-based exporter (``dynamo=False``), which needs no extra packages offline.
    """
    wrapper = _FeaturesAndHead(backbone, with_head).eval().cpu()
    dummy = torch.zeros(2, first_conv(backbone)[1].in_channels, size, size)  # 3, or 2L for flow.encoding=stack
    outputs = ["features", "logits"] if with_head else ["features"]
    axes = {n: {0: "batch"} for n in ["input", *outputs]}
    axes["input"].update({2: "height", 3: "width"})  # view=full feeds whole frames of any aspect
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation
        with torch.no_grad():
            torch.onnx.export(wrapper, (dummy,), str(tmp), input_names=["input"], output_names=outputs,
                              dynamic_axes=axes, opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
    logger.info("exported %s to %s", backbone.backbone_name or type(backbone).__name__, path)
    return path


def check_engines_agree(reference: Engine, other: Engine, size: int,
                        atol: float = 1e-3, rtol: float = 1e-3, seed: int = 0, channels: int = 3) -> float:
    """Run both engines on a random square batch and a 16:9 one (whole frames, ``view=full``); return the max
    |difference| of the features, raise when off."""
    rng, worst = np.random.default_rng(seed), 0.0
    for width in (size, size * 16 // 9):
        x = rng.standard_normal((2, channels, size, width)).astype(np.float32)
        (fa, la), (fb, lb) = reference(x), other(x)
        diff = float(np.max(np.abs(fa - fb)))
        bound = atol + rtol * float(np.max(np.abs(fa)))
        if la is not None and lb is not None:
            diff = max(diff, float(np.max(np.abs(la - lb))))
            bound = max(bound, atol + rtol * float(np.max(np.abs(la))))
        if not diff <= bound:
            raise RuntimeError(f"engines disagree on {size}x{width} input: max |difference| {diff:.3g} > {bound:.3g}")
        worst = max(worst, diff)
    return worst


def create_engine(backbone: Backbone, spec: BackboneSpec, device: str | torch.device = "auto",
                  engine: str = "auto", with_head: bool = False, onnx_dir: str | Path | None = None,
                  threads: int | None = None, verify: bool = True) -> Engine:
    """An inference engine ``engine(batch (N, 3, crop, crop)) -> (features (N, D), logits (N, K) | None)``.

    ``engine``: ``auto`` (ONNX Runtime on CPU when installed, else PyTorch), ``onnx`` or ``torch``. A freshly
    exported ONNX model is compared with eager PyTorch once (``verify``); ``auto`` falls back to PyTorch when
    export or that check fails, ``onnx`` raises.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    dev = select_device(device) if isinstance(device, str) else device
    backbone = backbone.eval()
    if engine == "torch" or (engine == "auto" and (dev.type != "cpu" or not onnxruntime_available())):
        logger.info("inference engine: torch on %s", dev)
        return TorchEngine(backbone, dev, with_head)
    if not onnxruntime_available():
        raise ImportError("engine='onnx' needs onnxruntime: pip install onnxruntime onnx (or use engine='torch')")
    providers = None
    if dev.type == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            logger.warning("onnxruntime has no CUDA provider here; the ONNX engine runs on CPU")
    size = spec.preprocess.crop
    try:
        # export and check on CPU without moving the caller's module off its device
        on_cpu = all(t.device.type == "cpu" for t in backbone.state_dict().values())
        cpu_backbone = backbone if on_cpu else copy.deepcopy(backbone).cpu()
        path = onnx_cache_path(cpu_backbone, spec, with_head, onnx_dir)
        fresh = not path.is_file()
        if fresh:
            export_onnx(cpu_backbone, path, size, with_head)
        ort_engine = OnnxEngine(path, with_head, threads, providers)
        if fresh and verify:
            reference = TorchEngine(cpu_backbone, torch.device("cpu"), with_head)
            try:
                diff = check_engines_agree(reference, ort_engine, size,
                                           channels=first_conv(cpu_backbone)[1].in_channels)
            except RuntimeError:
                path.unlink(missing_ok=True)
                raise
            logger.info("ONNX export verified against PyTorch (max |diff| %.2e)", diff)
    except Exception as e:  # auto mode must always give a working engine
        if engine == "onnx":
            raise
        logger.warning("ONNX engine unavailable (%s: %s); using PyTorch", type(e).__name__, e)
        return TorchEngine(backbone, dev, with_head)
    logger.info("inference engine: onnxruntime (%s), %s", path.name, providers or "CPU")
    return ort_engine


def describe_engine(engine: Any) -> dict[str, str]:
    """Provenance of an engine for feature-store metadata."""
    out = {"engine": getattr(engine, "name", type(engine).__name__)}
    if isinstance(engine, OnnxEngine):
        import onnxruntime as ort

        out.update(onnx_file=engine.path.name, onnxruntime=ort.__version__)
    else:
        out.update(device=str(engine.device), amp=str(engine.amp_dtype))
    out["torch"] = torch.__version__
    return out
