"""Dense optical flow as a modality: OpenCV flow between consecutive frames, stored the way TSN and denseflow
store it, and the ImageNet 2D CNN that reads it.

For each position the frame sampler chooses (the RGB sampler's, so RGB and flow stores align step by step),
the ``L = flow.stack`` fields between frames ``t, t+s, ..., t+L*s`` (``s = flow.step``, 1 by default; the
window shifted back to fit the video; repeated last frames give zero flow in videos shorter than ``L*s + 1``
frames) are computed on grey frames decoded at short side ``flow.size`` (shrunk by ``flow.downscale`` for the
estimator, its field resized back) and quantised::

    q = round((clip(f, -bound, bound) + bound) * 255 / (2 * bound))      uint8; zero flow -> 128 (127.5)

A sampled position becomes ``(2L, H, W)`` uint8, channels ``x_1, y_1, ..., x_L, y_L``. ``flow.output=raw``
stores exactly that for video networks. ``features`` runs the backbone over it in one of two encodings
(``flow.encoding``):

- ``image`` (the default, :func:`flow_image`): the L fields summed (the displacement over L frames), less its
  median over the frame (camera motion, as in Simonyan & Zisserman's mean flow subtraction), centre-cropped
  and drawn as an RGB image the backbone reads with its own weights: x and y map ``[-bound, bound]`` to
  ``[0, 1]`` and the third channel is the magnitude over ``bound`` (Gkioxari & Malik's flow images);
- ``stack`` (:func:`flow_stack_input`): the 2L fields centre-cropped and scaled to ``[-1, 1]`` (``(q / 255 -
  0.5) / 0.5``, mmaction2's flow normalisation) into a first convolution whose RGB weights are averaged over
  colour and replicated over the 2L channels (TSN's cross-modality initialisation, :func:`cross_modality_init`).
  That is a starting point for fine-tuning: frozen, the convolution sees only the sum of the 2L channels.

Estimators (:func:`create_estimator`): Farneback (the default), DIS (8-12x faster, but it sees motion in
flat, noisy regions), and TV-L1 where OpenCV's contrib build provides ``cv2.optflow``. Their parameters go
into the store's provenance. OpenCV is imported lazily. ``mv`` is no estimator: the fields are the motion
vectors the decoder already has (:mod:`actionlab.features.motion_vectors`), read without decoding a frame to
RGB; everything from the quantisation on is the same.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actionlab.config import ExtractConfig, FlowConfig
from actionlab.data.transforms import centre_crop_box
from actionlab.data.video.decode import VideoInfo, VideoReader
from actionlab.features.backbones import get_backbone_spec
from actionlab.features.frames import (
    FramePipeline,
    check_frame_count,
    engine_features,
    load_backbone,
    sample_frame_indices,
    sampler_params,
)
from actionlab.features.layers import cross_modality_init
from actionlab.features.motion_vectors import MV_PARAMS, MotionVectorReader
from actionlab.features.preprocess import Preprocess
from actionlab.features.weights import finetuned_input

logger = logging.getLogger(__name__)

FLOW_MEAN, FLOW_STD = 0.5, 0.5
"""With ``flow.encoding=stack`` the CNN reads ``(q / 255 - FLOW_MEAN) / FLOW_STD``: quantised flow in ``[-1, 1]``."""
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*
_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
              "flags": 0}

Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``estimate(grey0 (H, W) uint8, grey1 (H, W) uint8) -> flow (H, W, 2) float32`` in pixels (x, y)."""


class FlowUnavailableError(RuntimeError):
    """The asked-for flow algorithm is not in this OpenCV build."""


def tvl1_available() -> bool:
    import cv2

    return hasattr(cv2, "optflow")


def create_estimator(cfg: FlowConfig) -> tuple[Estimator, dict[str, Any]]:
    """``(estimate, params)``: an OpenCV flow estimator and the parameters it runs with (for provenance).
    ``mv`` has no pairwise estimator (its fields come from the decoder, :func:`motion_vector_windows`): its
    ``estimate`` raises."""
    import cv2

    if cfg.algorithm == "mv":
        def no_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            raise ValueError("flow.algorithm=mv reads the decoder's motion vectors from the video file, not from "
                             "frame pairs: use FlowStep (or motion_vectors.MotionVectorReader)")
        return no_pairs, dict(MV_PARAMS)
    if cfg.algorithm == "dis":
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[cfg.preset])
        params = {"preset": cfg.preset, "finest_scale": dis.getFinestScale(), "patch_size": dis.getPatchSize(),
                  "patch_stride": dis.getPatchStride(),
                  "gradient_descent_iterations": dis.getGradientDescentIterations(),
                  "variational_refinement_iterations": dis.getVariationalRefinementIterations(),
                  "mean_normalization": bool(dis.getUseMeanNormalization()),
                  "spatial_propagation": bool(dis.getUseSpatialPropagation())}
        return (lambda a, b: dis.calc(a, b, None)), params
    if cfg.algorithm == "farneback":
        p = _FARNEBACK
        return (lambda a, b: cv2.calcOpticalFlowFarneback(
            a, b, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"],
            p["flags"])), dict(p)
    if not tvl1_available():
        raise FlowUnavailableError(
            f"flow algorithm 'tvl1' needs OpenCV's contrib modules (cv2.optflow), which this OpenCV "
            f"{cv2.__version__} lacks: install opencv-contrib-python-headless=={cv2.__version__} instead of "
            "opencv-python-headless, or use --flow-algorithm farneback (the default) or dis")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    params = {"tau": tvl1.getTau(), "lambda": tvl1.getLambda(), "theta": tvl1.getTheta(),
              "scales": tvl1.getScalesNumber(), "warps": tvl1.getWarpingsNumber(), "epsilon": tvl1.getEpsilon()}
    return (lambda a, b: tvl1.calc(a, b, None)), params


def quantise(flow: np.ndarray, bound: float) -> np.ndarray:
    """``flow (H, W, 2)`` float32 pixels -> ``(H, W, 2)`` uint8: clipped to ``[-bound, bound]``, mapped to
    ``[0, 255]`` and rounded (denseflow / TSN). Modifies ``flow`` in place."""
    import cv2

    np.maximum(flow, -bound, out=flow)  # the upper bound saturates in the cast: 255
    # saturate(|f * 127.5 / bound + 127.5|), and f >= -bound makes the argument of |.| non-negative
    return cv2.convertScaleAbs(flow, alpha=127.5 / bound, beta=127.5)


def dequantise(q: np.ndarray, bound: float) -> np.ndarray:
    """uint8 flow -> float32 pixels in ``[-bound, bound]`` (the inverse of :func:`quantise` up to rounding)."""
    return q.astype(np.float32) * np.float32(2 * bound / 255) - np.float32(bound)


def flow_windows(num_frames: int, positions: np.ndarray, stack: int, step: int = 1) -> np.ndarray:
    """``(T, L+1) int64``: the frames ``t, t+step, ..., t+L*step`` whose ``L = stack`` flow fields describe each
    position.

    A window starts at its position, shifted back so that it ends inside the video (TSN); in a video shorter
    than ``L*step + 1`` frames the window is cut at the last frame (a shorter last field, then repeats: zero
    flow)."""
    starts = np.clip(np.asarray(positions, np.int64), 0, max(num_frames - 1 - stack * step, 0))
    offsets = np.arange(stack + 1, dtype=np.int64)[None, :] * step
    return np.minimum(starts[:, None] + offsets, num_frames - 1)


def decode_windows(path: str | Path, size: int, cfg: ExtractConfig, expected_frames: int, stack: int, step: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, VideoInfo]:
    """``(positions (T,) int64, frames (U, H, W, 3) uint8, windows (T, L+1) indices into frames, info)``: the
    sampled positions of one video file and the frames of their :func:`flow_windows`, each decoded once at short
    side ``size`` (what a motion modality's step reads: optical flow, frame differences)."""
    with VideoReader(path, size=size) as reader:
        info = reader.info
        n = check_frame_count(path, info.num_frames, expected_frames)
        positions = np.asarray(sample_frame_indices(n, cfg), np.int64)
        windows = flow_windows(n, positions, stack, step)
        needed, local = np.unique(windows, return_inverse=True)
        frames = reader.get_frames(needed)
    return positions, frames, local.reshape(windows.shape), info


@dataclass(frozen=True)
class FlowFields:
    """The quantised flow of one video's frame windows.

    A fresh estimator per video: OpenCV's DIS keeps buffers between calls that change its result in the last
    digits (measured: 0.0025 px on 32 x 40 frames), so a video's flow must not depend on which videos a process
    saw before: a resumed or sharded extraction and ``predict`` then compute exactly what one run stores."""

    cfg: FlowConfig

    def __call__(self, frames: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """``frames (N, H, W, 3)`` uint8 RGB, ``windows (T, L+1)`` indices into them -> ``(T, 2L, H, W)``
        uint8. Each pair is computed once, however many windows share it."""
        estimate, _ = create_estimator(self.cfg)
        t, length = windows.shape[0], windows.shape[1] - 1
        h, w = frames.shape[1:3]
        out = np.empty((t, length, h, w, 2), np.uint8)
        grey: dict[int, np.ndarray] = {}
        done: dict[tuple[int, int], np.ndarray] = {}
        for i, row in enumerate(windows.tolist()):
            for j in range(length):
                a, b = row[j], row[j + 1]
                if (a, b) not in done:
                    if a == b:  # a repeated last frame: no motion
                        done[a, b] = np.full((h, w, 2), 128, np.uint8)
                    else:
                        for k in (a, b):
                            if k not in grey:
                                grey[k] = self._grey(frames[k])
                        done[a, b] = quantise(self._upscale(estimate(grey[a], grey[b]), h, w), self.cfg.bound)
                out[i, j] = done[a, b]
        return out.transpose(0, 1, 4, 2, 3).reshape(t, 2 * length, h, w)  # x_1, y_1, ..., x_L, y_L

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        """An RGB frame -> the grey image the estimator reads: shrunk by ``flow.downscale`` (area resampling)."""
        import cv2

        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        k = self.cfg.downscale
        if k == 1:
            return grey
        h, w = grey.shape
        return cv2.resize(grey, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)

    def _upscale(self, flow: np.ndarray, h: int, w: int) -> np.ndarray:
        """A field of the shrunk frames -> ``(h, w, 2)`` float32 in pixels of the full size (bilinear; each
        vector multiplied by the size ratio of its axis)."""
        import cv2

        fh, fw = flow.shape[:2]
        if (fh, fw) == (h, w):
            return flow
        up = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        up[..., 0] *= w / fw
        up[..., 1] *= h / fh
        return up


def motion_vector_windows(reader: MotionVectorReader, windows: np.ndarray, bound: float) -> np.ndarray:
    """``windows (T, L+1)`` consecutive frame indices -> ``(T, 2L, H, W)`` uint8, like :class:`FlowFields`
    but from the decoder's motion vectors: the pair ``(a, a+1)`` is frame ``a+1``'s motion field (the motion
    from ``a`` to ``a+1``); a repeated last frame is zero flow. One decode of the file for all pairs; the fields
    are quantised per cell and only then expanded to the output size (the same result, a fraction of the work)."""
    a, b = windows[:, :-1], windows[:, 1:]
    moving = b != a
    if np.any(b[moving] != a[moving] + 1):
        raise ValueError("motion-vector flow needs windows of consecutive frames (flow_windows)")
    need = np.unique(b[moving])
    grids = reader.grids(need)  # (U, 2, gh, gw) float32 px/frame of the output size
    q = np.empty((len(need) + 1, *grids.shape[1:]), np.uint8)
    q[0] = 128  # zero flow, for repeated last frames
    if len(need):
        q[1:] = quantise(grids.reshape(-1, grids.shape[-1]), bound).reshape(grids.shape)
    which = np.where(moving, np.searchsorted(need, b) + 1, 0)  # (T, L) rows of q
    out = reader.expand(q[which])  # (T, L, 2, H, W): channels x_1, y_1, ..., x_L, y_L
    return out.reshape(windows.shape[0], -1, reader.height, reader.width)


def flow_size(cfg: ExtractConfig, resize: int) -> int:
    """Short side of the frames flow is computed on: ``flow.size``, or the backbone's ``resize``."""
    return cfg.flow.size or resize


@dataclass(frozen=True)
class FlowStep:
    """The decoding workers' step for flow: a video file -> ``(positions (T,), x, info)``.

    ``x`` is the CNN's input (:func:`flow_input`) when ``preprocess`` (the backbone's) is set, else the quantised
    fields ``(T, 2L, H, W)`` uint8 (``flow.output=raw``)."""

    cfg: ExtractConfig
    size: int
    preprocess: Preprocess | None

    def __call__(self, path: str | Path, expected_frames: int = 0) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
        if torch.utils.data.get_worker_info() is not None:
            import cv2

            cv2.setNumThreads(1)  # one process per core already: OpenCV's own threads would oversubscribe
        if self.cfg.flow.algorithm == "mv":  # no RGB frames: the fields come from the decoder's vectors
            mv = MotionVectorReader(path, size=self.size)
            n = check_frame_count(path, mv.info.num_frames, expected_frames)
            positions = sample_frame_indices(n, self.cfg)
            q = torch.from_numpy(motion_vector_windows(mv, flow_windows(n, positions, self.cfg.flow.stack),
                                                       self.cfg.flow.bound))
            return self._output(positions, q, mv.info)
        positions, frames, windows, info = decode_windows(path, self.size, self.cfg, expected_frames,
                                                          self.cfg.flow.stack, self.cfg.flow.step)
        q = FlowFields(self.cfg.flow)(frames, windows)  # (T, 2L, H, W) uint8
        return self._output(positions, torch.from_numpy(q), info)

    def _output(self, positions: np.ndarray, q: torch.Tensor, info: VideoInfo
                ) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
        if self.preprocess is None:
            return positions, q, info
        return positions, flow_input(q.numpy(), self.cfg.flow, self.preprocess), info


@dataclass(frozen=True)
class StoredFlowStep:
    """``extract --flow-from RAW.h5``: :class:`FlowStep` with the quantised fields read from a raw flow store of
    the same manifest, sampler and flow settings instead of computed again (:func:`stored_flow_step`). The
    features, and so the store, are the same as computing the flow would give."""

    store: Any
    """The raw store (:class:`~actionlab.features.store.FeatureStore`)."""
    keys: dict[str, str]
    """Absolute video path -> the store's key of that video."""
    cfg: ExtractConfig
    preprocess: Preprocess

    def __call__(self, path: str | Path, expected_frames: int = 0) -> tuple[np.ndarray, torch.Tensor, VideoInfo]:
        key = self.keys.get(str(path))
        if key is None or key not in self.store:
            raise ValueError(f"{self.store.path} holds no flow of {path} (left out when it was extracted): extract "
                             "this store without --flow-from, or with --skip-bad")
        rec = self.store.record(key)
        info = VideoInfo(str(path), rec.num_frames, rec.fps, 0, 0, rec.duration, "stored flow")
        return self.store.frame_indices(key), flow_input(self.store.array(key), self.cfg.flow, self.preprocess), info


def stored_flow_step(raw_path: str | Path, manifest: Any, cfg: ExtractConfig, spec: Any) -> StoredFlowStep:
    """The step that reads ``raw_path``'s flow for the videos of ``manifest`` (``spec``: the flow backbone's),
    after checking that the store holds exactly the flow ``cfg`` would compute: its manifest, sampler and flow
    settings (naming what differs)."""
    from actionlab.features.store import FeatureStore, compare_provenance, video_key

    if cfg.modality != "flow" or cfg.flow.output != "features":
        raise ValueError("--flow-from reads stored flow to extract flow features: use it with --modality flow and "
                         "the default --flow-output features")
    store = FeatureStore(raw_path)
    if store.content != "flow_fields":
        raise ValueError(f"--flow-from {raw_path} holds {store.describe()}, not raw flow: give a store made with "
                         "`extract --modality flow --flow-output raw`")

    def computed(flow: dict[str, Any]) -> dict[str, Any]:  # what the flow is, not how it is stored or read
        return {k: v for k, v in flow.items() if k not in ("output", "encoding")}

    have = {**store.provenance, "flow": computed(store.provenance.get("flow") or {})}
    expected = {"manifest_checksum": manifest.checksum(), "sampler": sampler_params(cfg),
                "flow": computed(flow_provenance(cfg, get_backbone_spec(cfg.backbone).preprocess.resize))}
    diffs = compare_provenance(have, expected, labels=("raw store", "this extraction"))
    if diffs:
        store.close()
        raise ValueError(f"--flow-from {raw_path} holds other flow than this extraction computes ({'; '.join(diffs)})"
                         ": extract with the manifest, sampler and flow settings of that store, or drop --flow-from")
    keys = {str(manifest.abspath(r)): video_key(r.path) for r in manifest.records}
    return StoredFlowStep(store, keys, cfg, spec.preprocess)


def flow_input(q: np.ndarray, cfg: FlowConfig, pre: Preprocess) -> torch.Tensor:
    """Quantised flow ``(T, 2L, H, W)`` uint8 -> the CNN's input in ``cfg.encoding``: ``(T, 3, crop, crop)``
    (:func:`flow_image`) or ``(T, 2L, crop, crop)`` (:func:`flow_stack_input`), float32; with ``pre.view``
    ``full``, the whole frame with its short side at ``crop`` instead of the centre square."""
    h, w = q.shape[-2:]
    if min(h, w) < pre.crop:
        raise ValueError(f"flow of {h}x{w} is smaller than the backbone's {pre.crop}px crop; raise flow.size")
    if cfg.encoding == "stack":
        return flow_stack_input(q, pre)
    return flow_image(q, cfg.bound, pre)


def _view(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """What the CNN sees of float ``x (T, C, H, W)``: the centre ``crop`` square, or (``view=full``) the whole
    of it resized (area) to short side ``crop``."""
    h, w = x.shape[-2:]
    if pre.view == "full":
        size = pre.decode_size(h, w)
        return x if (h, w) == size else F.interpolate(x, size=size, mode="area")
    top, left, _, _ = centre_crop_box(h, w, pre.crop)
    return x[..., top:top + pre.crop, left:left + pre.crop]


def flow_stack_input(q: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """``flow.encoding=stack``: ``(T, 2L, crop, crop)`` float32 in ``[-1, 1]``, the centre crop (or the whole
    frame, ``pre.view``) of ``(q / 255 - 0.5) / 0.5``."""
    x = _view(torch.from_numpy(np.ascontiguousarray(q)).float(), pre).contiguous()
    return x.mul_(1.0 / (255.0 * FLOW_STD)).sub_(FLOW_MEAN / FLOW_STD)


def flow_image(q: np.ndarray, bound: float, pre: Preprocess) -> torch.Tensor:
    """``flow.encoding=image``: quantised flow ``(T, 2L, H, W)`` uint8 -> ``(T, 3, crop, crop)`` float32, an RGB
    image normalised like the backbone's frames (``pre.mean``, ``pre.std``).

    The L fields are summed into the displacement ``d`` over L frames, and each component's median over the
    whole frame (the camera's motion) is subtracted before the centre crop (or the whole frame's resize). The channels are ``0.5 + d_x / 2
    bound``, ``0.5 + d_y / 2 bound`` and ``|d| / bound``, clipped to ``[0, 1]``."""
    t, c, h, w = q.shape
    d = torch.from_numpy(np.ascontiguousarray(q)).view(t, c // 2, 2, h, w).sum(1, dtype=torch.float32)
    d.mul_(2 * bound / 255).sub_(c // 2 * bound)  # sum of dequantise() over the L fields, in pixels
    d.sub_(d.view(t, 2, h * w).median(dim=2).values.view(t, 2, 1, 1))
    d = _view(d, pre)
    img = torch.empty((t, 3, *d.shape[-2:]), dtype=torch.float32)
    torch.addcmul(torch.tensor(0.5), d, torch.tensor(0.5 / bound), out=img[:, :2])
    torch.hypot(d[:, 0], d[:, 1], out=img[:, 2]).mul_(1.0 / bound)
    return pre.normalise_(img.clamp_(0.0, 1.0))


# ----------------------------------------------------------------------------------- the network


def flow_preprocessing(cfg: ExtractConfig, resize: int, pre: Preprocess | None) -> dict[str, Any]:
    """What a flow store's rows are, recorded in its provenance and in the checkpoints of runs trained on it."""
    out: dict[str, Any] = {"input": "optical flow", "resize": flow_size(cfg, resize), "channels": 2 * cfg.flow.stack,
                           "bound": cfg.flow.bound, "quantisation": "uint8 q = round((clip(f, -bound, bound) + "
                                                                    "bound) * 255 / (2 * bound))"}
    if pre is not None and cfg.flow.encoding == "stack":
        out.update(encoding="stack", crop=pre.crop, mean=[FLOW_MEAN] * 2, std=[FLOW_STD] * 2,
                   first_conv="RGB kernels averaged over colour, replicated over the flow channels (TSN)")
    elif pre is not None:
        out.update(encoding="image", crop=pre.crop, mean=list(pre.mean), std=list(pre.std),
                   image="RGB = (0.5 + d_x / 2 bound, 0.5 + d_y / 2 bound, |d| / bound) clipped to [0, 1], d the "
                         "L fields' sum less its median over the frame; the backbone's own RGB weights")
    if pre is not None and pre.view != "centre":
        out["view"] = pre.view
    return out


def flow_provenance(cfg: ExtractConfig, resize: int) -> dict[str, Any]:
    """The flow settings two stores must share: algorithm and its parameters, bound, stack, size, output."""
    _, params = create_estimator(cfg.flow)
    return {**dataclasses.asdict(cfg.flow), "size": flow_size(cfg, resize), "params": params}


def check_flow_weights(cfg: ExtractConfig, resize: int) -> None:
    """Refuse a fine-tuned backbone that was not trained on the flow ``cfg`` computes (naming what differs)."""
    from actionlab.features.store import compare_provenance

    trained = finetuned_input(cfg.weights)
    if trained is None:
        return
    if trained[0] != "optical flow":
        raise ValueError(f"--weights {cfg.weights} was fine-tuned on {trained[0]}, not optical flow: extract flow "
                         "features with ImageNet weights (--weights imagenet) or with a backbone fine-tuned on flow "
                         "(`actionlab finetune FLOW_RAW.h5`)")
    have = {**flow_provenance(cfg, resize), "encoding": cfg.flow.encoding}
    diffs = compare_provenance(have, trained[1], labels=("this extraction", "fine-tuned on"))
    if diffs:
        raise ValueError(f"--weights {cfg.weights} was fine-tuned on other optical flow than this extraction "
                         f"computes ({'; '.join(diffs)}): extract with the flow settings it was trained on, or "
                         "fine-tune a backbone on a raw store of these settings")


def build_backbone(cfg: ExtractConfig) -> tuple[Any, nn.Module]:
    """``(spec, module)``: ``cfg.backbone`` reading the flow (``2L`` channels for ``encoding=stack``), its spec's
    decode size set to ``flow.size`` (the crop stays the backbone's). Weights fine-tuned on flow must have been
    trained on this flow (:func:`check_flow_weights`)."""
    check_flow_weights(cfg, get_backbone_spec(cfg.backbone).preprocess.resize)
    spec, module = load_backbone(dataclasses.replace(cfg, modality="rgb", flow=FlowConfig(), view=cfg.resolved_view))
    if cfg.flow.encoding == "stack":
        cross_modality_init(module, 2 * cfg.flow.stack)
    pre = dataclasses.replace(spec.preprocess, resize=flow_size(cfg, spec.preprocess.resize))
    return dataclasses.replace(spec, preprocess=pre), module.eval()


def file_features(path: str | Path, cfg: ExtractConfig, spec: Any, engine: Callable[..., Any]
                        ) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(positions (T,), features (T, D) float32, info)`` of one video file's flow, exactly as extraction
    computes them (``spec``, ``engine``: from :func:`build_backbone` and ``create_engine``)."""
    positions, x, info = FlowStep(cfg, spec.preprocess.resize, spec.preprocess)(path)
    return positions, engine_features(x, engine, cfg.batch_size), info


def video_flow_fields(path: str | Path, cfg: ExtractConfig) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """``(positions (T,), quantised flow (T, 2L, H, W) uint8, info)`` of one video file, as a raw flow store
    made with ``cfg`` holds it (what a video network trained on flow clips reads)."""
    positions, q, info = FlowStep(cfg, flow_size(cfg, get_backbone_spec(cfg.backbone).preprocess.resize), None)(path)
    return positions, q.numpy(), info


NAME = "flow"


def build_pipeline(cfg: ExtractConfig) -> FramePipeline:
    """Extraction of optical flow: features of the flow through the backbone, or the quantised fields
    themselves (``flow.output=raw``)."""
    resize = get_backbone_spec(cfg.backbone).preprocess.resize
    settings = flow_provenance(cfg, resize)
    if cfg.flow.output == "raw":
        return FramePipeline(FlowStep(cfg, flow_size(cfg, resize), None), None, None, 2 * cfg.flow.stack,
                             flow_preprocessing(cfg, resize, None), settings, fresh_workers=True)
    spec, module = build_backbone(cfg)
    return FramePipeline(FlowStep(cfg, spec.preprocess.resize, spec.preprocess), spec, module,
                         int(spec.feature_dim), flow_preprocessing(cfg, resize, spec.preprocess), settings,
                         fresh_workers=True)
