"""Saliency maps: where in space and time a model's score for one class comes from (pure functions of a model
and its inputs; :mod:`actionlab.predict.explain` applies them to a run and a video file).

- :func:`grad_cam`: Grad-CAM (Selvaraju et al. 2017) with the ``grad-cam`` package (``pytorch_grad_cam``).
  Its ``GradCAM`` takes 5-D activations ``(B, C, T, h, w)`` as they are (hooks, channel weights = gradients
  averaged over time and space, the weighted sum), so 3D networks need no Grad-CAM code of ours; only the
  upsampling to the input is ours (its 3-D zoom aligns corners, which shifts a strided map by up to half a
  cell). Networks that fold frames into the batch (LRCN, the fusion models) give 4-D activations
  ``(B*T, C, h, w)``; a ``reshape_transform`` unfolds them to ``(B, C, T, h, w)``, so their maps are
  spatio-temporal too. A 2D model over a stack of frames (a two-stage run's backbone followed by its temporal
  model, or a frame classifier whose frame scores are averaged) gives one map per frame.
- :func:`cam_layer`: which layer to take the activations of (the deepest convolutional feature map that still
  has ``min_size`` cells across; found by one probing forward pass, so every registered architecture works).
- :func:`step_occlusion`: which time steps a temporal model's video score rests on: each step replaced by the
  train-set mean feature (zero after normalization), with ``captum``'s ``FeatureAblation``.
- :func:`temporal_video_logprobs`: a temporal model's video log-probabilities as a differentiable function of
  its ``(T, D)`` features, windows and step weighting as :mod:`actionlab.evaluate.inference` computes them.

Both packages are the ``explain`` extra (``pip install 'actionlab[explain]'``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import InferenceConfig
from actionlab.data.sampling import step_weights
from actionlab.evaluate.inference import window_indices

__all__ = ["cam_layer", "grad_cam", "step_occlusion", "temporal_video_logprobs"]

INSTALL = "pip install 'actionlab[explain]'"
_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _missing(package: str, err: ImportError) -> ImportError:
    return ImportError(f"saliency maps need the {package!r} package: {INSTALL}")


def cam_layer(model: nn.Module, x: torch.Tensor, min_size: int = 4) -> tuple[str, int]:
    """``(name, frames per item or 0)`` of the layer Grad-CAM should read for input ``x``.

    Candidates are the modules whose output is a feature map: 5-D ``(B, C, T, h, w)``, or 4-D ``(N, C, h, w)``
    (frames folded into the batch: ``N = B*T`` for a 5-D input). Left out: modules called more than once (their
    activations would be ambiguous) and adaptive pooling (it may blow a small map up). The answer is the last
    candidate to finish whose map is at least ``min_size`` cells across (the deepest, most class-specific map
    that still localizes), else the candidate with the largest map. A convolution followed by an in-place ReLU
    counts as its rectified output (the same tensor). The second value is
    ``T`` when the chosen 4-D map folds ``T`` frames per clip (for :func:`grad_cam`'s ``fold``), else 0.
    """
    seen: list[tuple[str, torch.Tensor]] = []
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(_m: nn.Module, _inp: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor) and out.ndim in (4, 5):
                seen.append((name, out))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if n and not isinstance(m, _POOLS)]
    x = x[:1]  # the shapes are all it needs
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    frames = x.shape[2] if x.ndim == 5 else 0
    cands = []
    for name, out in seen:
        if calls[name] > 1:
            continue
        if out.ndim == 4 and frames and out.shape[0] != x.shape[0] * frames:
            continue  # a 4-D map of a 5-D input must be its frames folded into the batch
        cands.append((name, min(out.shape[-2:]), frames if out.ndim == 4 else 0))
    if not cands and any(calls[name] > 1 for name, _ in seen):
        raise ValueError(f"{type(model).__name__} runs its convolutional layers more than once per clip (towers "
                         "sharing weights, as late fusion's): Grad-CAM needs one map per layer; explain another "
                         "network of the run's comparison")
    if not cands:
        raise ValueError(f"{type(model).__name__} has no convolutional feature map for Grad-CAM (no module "
                         "returns a (B, C, T, h, w) or (N, C, h, w) tensor)")
    big = [c for c in cands if c[1] >= min_size]
    name, _, fold = big[-1] if big else max(cands, key=lambda c: c[1])
    return name, fold


@contextlib.contextmanager
def _gradients_through_frozen(model: nn.Module) -> Iterator[None]:
    """LRCN runs a frozen CNN under ``no_grad``; Grad-CAM needs the gradient at its feature map."""
    frozen = [m for m in model.modules() if getattr(m, "freeze_backbone", False)]
    for m in frozen:
        m.freeze_backbone = False
    try:
        yield
    finally:
        for m in frozen:
            m.freeze_backbone = True


def grad_cam(model: nn.Module, x: torch.Tensor, target: int, layer: str | None = None, min_size: int = 4
             ) -> tuple[np.ndarray, str]:
    """Grad-CAM of class ``target``; returns ``(heat, layer name)`` with ``heat`` in ``[0, 1]``.

    ``x (B, 3, T, H, W)`` clips with ``model(x) -> (B, K)``: heat ``(B, T, H, W)``.
    ``x (N, 3, H, W)`` frames with ``model(x) -> (1, K)`` (a video score from N frames): heat ``(N, H, W)``.
    Maps are upsampled with cell centres aligned (``align_corners=False``) and scaled by their common peak.
    ``layer``: a module name (``"layer3"``), default :func:`cam_layer` (``model(x[:1])`` must run).
    """
    try:
        import pytorch_grad_cam as cam_mod
        import pytorch_grad_cam.utils.model_targets as targets_mod
    except ImportError as err:
        raise _missing("grad-cam", err) from err
    model.eval()
    with _gradients_through_frozen(model):
        if layer is None:
            layer, fold = cam_layer(model, x, min_size)
        else:
            names = dict(model.named_modules())
            if layer not in names or not layer:
                some = ", ".join(n for n in list(names)[1:] if n.count(".") <= 1)[:300]
                raise ValueError(f"{type(model).__name__} has no layer {layer!r}; its modules: {some}, ...")
            fold = x.shape[2] if x.ndim == 5 and _output_ndim(model, layer, x[:1]) == 4 else 0
        reshape = None
        if fold:
            def reshape(a: torch.Tensor) -> torch.Tensor:  # (B*T, C, h, w) -> (B, C, T, h, w)
                return a.reshape(-1, fold, *a.shape[1:]).transpose(1, 2)

        module = model.get_submodule(layer)
        items = x.shape[0] if x.ndim == 5 else 1
        targets = [targets_mod.ClassifierOutputTarget(int(target))] * items
        # the input asks for gradients, so a frozen backbone's maps have them as well
        inp = x.detach().clone().requires_grad_(True)
        with cam_mod.GradCAM(model=model, target_layers=[module], reshape_transform=reshape) as cam:
            cam(input_tensor=inp, targets=targets)  # runs the hooks, forward and backward
            acts = cam.activations_and_grads.activations[0].numpy()
            grads = cam.activations_and_grads.gradients[0].numpy()
            raw = np.maximum(cam.get_cam_image(inp, module, targets, acts, grads), 0)  # (B, t, h, w) | (N, h, w)
    # Upsampled here rather than by GradCAM, which zooms 3-D maps corner to corner (scipy.ndimage.zoom) and so
    # shifts a strided map by up to half a cell; and scaled over all items at once (GradCAM scales each clip or
    # frame on its own), so a frame the score hardly depends on stays cold next to one it rests on.
    size = tuple(x.shape[2:])  # (T, H, W) or (H, W)
    heat = F.interpolate(torch.from_numpy(np.ascontiguousarray(raw, np.float32))[:, None], size=size,
                         mode="trilinear" if len(size) == 3 else "bilinear", align_corners=False)[:, 0].numpy()
    peak = heat.max()
    return (heat / peak if peak > 0 else heat).astype(np.float32), layer


def _output_ndim(model: nn.Module, layer: str, x: torch.Tensor) -> int:
    out: list[int] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, o: out.append(o.ndim))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return out[0]


def temporal_video_logprobs(model: nn.Module, x: torch.Tensor, inf: InferenceConfig) -> torch.Tensor:
    """``x (B, T, D)`` normalized features -> ``(B, K)`` video log-probabilities, differentiable.

    The windows of :func:`~actionlab.evaluate.inference.window_indices`, each window's step log-probabilities
    weighted by ``inf.step_weighting``, windows averaged in log space (``vote`` is explained by this soft
    average, which it breaks ties with).
    """
    b, t, _ = x.shape
    idx = torch.from_numpy(window_indices(t, inf)).to(x.device)  # (W, L)
    w, length = idx.shape
    logits = model(x[:, idx].reshape(b * w, length, -1))  # (B*W, L, K)
    logp = F.log_softmax(logits.float(), -1)
    weights = torch.as_tensor(step_weights(length, inf.step_weighting), dtype=x.dtype, device=x.device)  # (L,)
    pooled = torch.einsum("nlk,l->nk", logp, weights).view(b, w, -1)
    return F.log_softmax(F.log_softmax(pooled, -1).mean(1), -1)


def step_occlusion(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: int) -> np.ndarray:
    """``(T,)``: how much the target's score drops when step ``t`` of ``x (T, D)`` is replaced by zero (the
    train-set mean of normalized features). ``forward(x (B, T, D)) -> (B, K)`` scores; positive values are
    steps the prediction rests on. Uses ``captum.attr.FeatureAblation`` (all steps in one batch)."""
    try:
        import captum.attr as attr
    except ImportError as err:
        raise _missing("captum", err) from err
    t = x.shape[0]
    mask = torch.arange(t, device=x.device).view(1, t, 1).expand(1, t, x.shape[1])
    with torch.no_grad():
        out = attr.FeatureAblation(forward).attribute(x[None], target=int(target), baselines=0.0,
                                                       feature_mask=mask, perturbations_per_eval=t)
    return out[0, :, 0].float().cpu().numpy()
