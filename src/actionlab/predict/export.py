"""``actionlab export``: a run as a directory that predicts without actionlab's training code.

Layout (one for every run kind, so one loader reads them all)::

    NAME.actionlab/
      manifest.json     classes, preprocessing, frame sampler, feature normalization, inference technique,
                        timeline window, graph inputs, and how PyTorch and the export agreed when it was written
      backbone.onnx     temporal runs: frames (N, 3, S, S) -> features (N, D)
      head.onnx         temporal runs: raw features (W, L, D) -> per-step logits (W, L, K)
      model.onnx        video networks: clips (N, 3, T, S, S) -> logits (N, K); frame classifiers: (N, 3, S, S)

Why two graphs and a manifest for a temporal run rather than one graph: the backbone runs once per frame while
the head runs on windows that overlap (a timeline reuses each frame's features in several windows), so one
fused graph would compute every frame's features several times, or would need the windowing inside the graph.
The head graph starts where the backbone ends: it rounds the features to the store's dtype and normalizes them
with the train-set mean/std itself (both are also written in the manifest), so the two graphs chain with
nothing in between. Aggregating per-step logits (the step weighting) and per-window scores stays in a few lines
of numpy, described by ``manifest["inference"]``.

Every graph is checked against PyTorch before anything is written (two batch sizes; the largest absolute
difference is reported); one over the tolerance refuses the export. The directory appears at once (written
beside it, then renamed). ONNX graphs come from the TorchScript-based exporter (``dynamo=False``, opset 17),
which needs nothing beyond torch and onnx offline; a temporal head's window length is fixed unless the run
reads whole sequences (``inference.mode=full``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionlab._version import __version__
from actionlab.predict.graphs import Net, onnx_net
from actionlab.predict.predictor import EXPORT_FORMAT, run_card
from actionlab.predict.torch_nets import FeatureHead, script_net
from actionlab.rundir import RunDir
from actionlab.utils import atomic_write_text, strict_json

logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 17

HOW = {
    "temporal": "decode the frames the sampler picks; short side to preprocessing.resize, centre crop "
                "preprocessing.crop, RGB /255, (x - mean) / std, NCHW float32 -> backbone -> features (T, D); "
                "take the steps of inference.mode (spread: inference.window evenly spaced steps) -> head "
                "(W, L, D) -> logits (W, L, K); log_softmax, weight the steps by inference.step_weighting "
                "(last: the final step), average the windows in log space",
    "video": "decode preprocessing.test_clips evenly spaced clips of clip_len frames, frame_interval apart; short "
             "side to resize, centre crop size (test_crops 3: left/centre/right), RGB /255, (x - mean) / std, "
             "(N, 3, T, S, S) float32 -> model -> logits (N, K); log_softmax, average over clips and crops",
    "frames": "decode preprocessing.test_per_video evenly spaced frames; short side to resize, centre crop, RGB "
              "/255, (x - mean) / std, (N, 3, S, S) float32 -> model -> logits (N, K); average the softmax "
              "probabilities",
}


class BackboneFeatures(nn.Module):
    """A 2D backbone's ``forward_features`` as the module's ``forward``: ``(N, 3, S, S) -> (N, D)``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)  # type: ignore[operator]


def _graphs(card: dict[str, Any], model: nn.Module, meta: dict[str, Any]
            ) -> dict[str, tuple[nn.Module, list[np.ndarray], dict[int, str]]]:
    """``name -> (module, check inputs (two batch sizes), dynamic axes)`` of a run's graphs."""
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    kind, pre = card["kind"], card["preprocessing"]
    if kind == "temporal":
        from actionlab.config import recorded_extract
        from actionlab.features.modalities import build_backbone
        from actionlab.features.preprocess import Preprocess

        _, backbone = build_backbone(recorded_extract(meta.get("extract")))
        f, inf = card["features"], card["inference"]
        head = FeatureHead(model, f["mean"], f["std"], f["dtype"])
        mean, std = np.asarray(f["mean"], np.float32), np.asarray(f["std"], np.float32)
        steps = inf["window"]
        axes = {0: "windows", 1: "steps"} if inf["mode"] == "full" else {0: "windows"}
        feats = [mean + std * normal(2, steps, f["dim"]),
                 mean + std * normal(3, steps + 3 if inf["mode"] == "full" else steps, f["dim"])]
        crop = pre["crop"]
        if Preprocess.from_record(pre).view == "full":  # the whole frame, short side crop: any aspect
            frames, frame_axes = [normal(2, 3, crop, crop * 16 // 9), normal(3, 3, crop * 4 // 3, crop)], {
                0: "frames", 2: "height", 3: "width"}
        else:
            frames, frame_axes = [normal(2, 3, crop, crop), normal(3, 3, crop, crop)], {0: "frames"}
        return {"backbone": (BackboneFeatures(backbone), frames, frame_axes), "head": (head, feats, axes)}
    if kind == "video":
        shape = (3, pre["clip_len"], pre["size"], pre["size"])
    else:
        shape = (3, pre["crop"], pre["crop"])
    return {"model": (model, [normal(2, *shape), normal(3, *shape)], {0: "batch"})}


def _save_graph(module: nn.Module, example: np.ndarray, path: Path, fmt: str, axes: dict[int, str]) -> None:
    x = torch.from_numpy(example)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # Attention's fused inference kernel has no ONNX form; the plain operations it stands for do.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter and tracer announce their deprecation
            if fmt == "onnx":
                out_dims = module(x).dim()
                torch.onnx.export(module, (x,), str(path), input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": axes, "output": {d: n for d, n in axes.items() if d < out_dims}},
                                  opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
            else:
                torch.jit.trace(module, (x,), check_trace=False).save(str(path))
    except Exception as e:
        hint = "; try --format torchscript" if fmt == "onnx" else ""
        raise RuntimeError(f"{fmt} export of {type(module).__name__} failed: {str(e).splitlines()[0]}{hint}") from e
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _max_difference(module: nn.Module, net: Net, inputs: list[np.ndarray], tolerance: float) -> float:
    """Largest ``|PyTorch - export|`` over ``inputs``; raises when it exceeds ``tolerance * (1 + max |PyTorch|)``."""
    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = module(torch.from_numpy(x)).float().numpy()
        got = net(x)
        if got.shape != ref.shape:
            raise RuntimeError(f"the exported graph returns {got.shape} for an input of {x.shape}, PyTorch {ref.shape}")
        diff = float(np.max(np.abs(ref - got)))
        if not diff <= tolerance * (1.0 + float(np.max(np.abs(ref)))):
            raise RuntimeError(f"the exported graph differs from PyTorch by {diff:.3g} (tolerance {tolerance:g} "
                               f"relative to outputs up to {float(np.max(np.abs(ref))):.3g}) on an input of {x.shape}")
        worst = max(worst, diff)
    return worst


def export_graph(module: nn.Module, inputs: list[np.ndarray], axes: dict[int, str], file: Path, fmt: str,
                 tolerance: float) -> tuple[Path, float, list[int | str]]:
    """Write one graph and check it on ``inputs``: ``(file, max |PyTorch - export|, input shape)``, the shape's
    variable axes named. A graph the ONNX exporter only takes at fixed shapes (pooling that must know its input
    size) is written for one item at a time; :func:`~actionlab.predict.graphs.onnx_net` feeds it so."""
    module = module.eval()
    example = inputs[0]
    try:
        _save_graph(module, example, file, fmt, axes)
    except RuntimeError as e:
        if fmt != "onnx" or not axes:
            raise
        logger.warning("%s: %s; exporting it for one item at a time", file.name, e)
        axes, example = {}, inputs[0][:1]
        _save_graph(module, example, file, fmt, axes)
    net = onnx_net(file, threads=1) if fmt == "onnx" else script_net(file)
    diff = _max_difference(module, net, inputs, tolerance)
    return file, diff, [axes.get(d, int(n)) for d, n in enumerate(example.shape)]


def export_run(run_dir: str | Path, out: str | Path, fmt: str = "onnx", overwrite: bool = False,
               tolerance: float = 1e-3) -> dict[str, Any]:
    """Export ``run_dir`` into the directory ``out`` (see the module doc); returns ``{"path", "format",
    "kind", "graphs", "max_abs_diff": {graph: float}}``. Nothing is written when a graph disagrees with PyTorch."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.suffix in (".onnx", ".pt", ".pth"):
        raise ValueError(f"{out}: an export is a directory (manifest.json + its graphs), not one {out.suffix} file; "
                         f"use -o {out.with_suffix('.actionlab')}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    if RunDir(run_dir).is_fused():
        raise ValueError(f"{run_dir} is a two-stream fused run: exports hold graphs, and its optical flow is OpenCV "
                         "code; predict and serve the run directory itself (`actionlab serve "
                         f"{run_dir}`), or export its RGB member")
    card, model, meta = run_card(run_dir)
    if meta.get("stores") or (meta.get("extract") or {}).get("modality", "rgb") != "rgb":
        raise ValueError(f"{run_dir} reads features of several frames per step (optical flow or frame differences): "
                         "exports hold graphs of one frame's network, and those inputs are made by code outside "
                         f"it; predict and serve the run directory itself (`actionlab serve {run_dir}`)")
    model = model.float().eval()
    graphs = _graphs(card, model, meta)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files, diffs, shapes = {}, {}, {}
        for name, (module, inputs, axes) in graphs.items():
            file, diffs[name], shapes[name] = export_graph(module, inputs, axes, staging / f"{name}{FORMATS[fmt]}",
                                                           fmt, tolerance)
            files[name] = file.name
            logger.info("%s: %s, max |PyTorch - %s| = %.2e", name, file.name, fmt, diffs[name])
        manifest = {"format": EXPORT_FORMAT, "engine": fmt, **card, "graphs": files,
                    "inputs": {n: {"shape": s, "dtype": "float32"} for n, s in shapes.items()},
                    "how": HOW[card["kind"]],
                    "verification": {"max_abs_diff": diffs, "tolerance": tolerance},
                    "actionlab_version": __version__, "torch": torch.__version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(staging / "manifest.json", strict_json(manifest, indent=2) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"path": str(out), "format": fmt, "kind": card["kind"], "graphs": files, "max_abs_diff": diffs}
