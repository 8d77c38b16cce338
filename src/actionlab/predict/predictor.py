"""A trained model as a function of videos: ``Predictor(run or export)(video) -> top labels + timeline``.

::

    from actionlab import Predictor

    p = Predictor("runs/lstm")        # a run directory: PyTorch (CUDA when there is one)
    p = Predictor("lstm.actionlab")   # an export (``actionlab export``): ONNX Runtime on CPU, no training code
    p("clip.mp4")                     # {"top": [{"label", "score"}...], "timeline": [...], "segments": [...]}
    p(["a.mp4", "b.avi"])             # one result per video
    p(frames)                         # (T, H, W, 3) uint8 RGB frames (fps=25 unless given)

Everything a run needs to predict comes from its checkpoint and config (the *card*, :func:`run_card`: classes,
preprocessing, frame sampler, feature normalization, inference technique); an export carries the same card in
its ``manifest.json``. The work is done by the run kind's scorer (:mod:`actionlab.predict.scorers`), so a
run and its export differ only in the engine that runs the graphs.

An ONNX export loads no torch: this module and the scorers import only numpy, PyAV and ONNX Runtime, and the
run path (:func:`run_card`, :func:`load_run`, :func:`load_fused`) imports PyTorch inside the functions that load
a run (``actionlab serve EXPORT`` starts and runs in a fraction of the memory).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actionlab.config import recorded_extract, resolved_inference, to_dict
from actionlab.evaluate.timeline import segments
from actionlab.evaluate.video_scores import top_labels
from actionlab.predict.graphs import FeatureEngine, Net, onnx_net
from actionlab.predict.scorers import (
    FrameScorer,
    KindScorer,
    TemporalScorer,
    Timeline,
    Video,
    VideoScorer,
    VideoScores,
)
from actionlab.rundir import RunDir
from actionlab.utils import select_device

if TYPE_CHECKING:
    import torch

EXPORT_FORMAT = "actionlab-export v1"
SCORERS: dict[str, type[KindScorer]] = {"temporal": TemporalScorer, "video": VideoScorer, "frames": FrameScorer}


# ----------------------------------------------------------------------------------- runs and exports


def run_card(run_dir: str | Path) -> tuple[dict[str, Any], torch.nn.Module, dict[str, Any]]:
    """``(card, model on CPU, checkpoint meta)`` of a run: everything prediction needs besides the weights."""
    from actionlab.features.backbones import get_backbone_spec
    from actionlab.features.frame_sampling import sampler_params
    from actionlab.features.store import safe_std
    from actionlab.models.checkpoint import load_model_from_checkpoint

    run_dir = Path(run_dir)
    model, meta = load_model_from_checkpoint(RunDir(run_dir).checkpoint(), map_location="cpu")
    kind = meta.get("kind", "temporal")
    card: dict[str, Any] = {"run": run_dir.resolve().name, "model": meta["model_name"], "kind": kind,
                            "classes": list(meta["classes"]), "epoch": int(meta.get("epoch", -1)),
                            "timeline": {"clip_seconds": meta.get("clip_seconds")}}
    if kind == "temporal":
        extract = recorded_extract(meta.get("extract"))
        card["backbone"] = extract.backbone
        card["preprocessing"] = dict(meta.get("preprocessing")
                                     or dataclasses.asdict(get_backbone_spec(extract.backbone).preprocess))
        card["sampler"] = sampler_params(extract)
        card["features"] = {"dim": len(meta["feature_mean"]), "dtype": extract.dtype,
                            "mean": [float(v) for v in meta["feature_mean"]],
                            "std": [float(v) for v in safe_std(np.asarray(meta["feature_std"]))]}
        card["inference"] = to_dict(resolved_inference(RunDir(run_dir).train_config()))
    else:
        pre = dict(meta.get("preprocessing") or {})
        if pre.get("input") == "optical flow":
            raise ValueError(f"{run_dir} fine-tuned a 2D CNN on optical flow images: it is a feature extractor, not "
                             f"a classifier of videos. Extract flow features with it (`actionlab extract MANIFEST "
                             f"--modality flow --weights {run_dir}/backbone.pt`), train a temporal model on them and "
                             "use that run (fused with an RGB run: `actionlab fuse`)")
        if "mean" not in pre:
            raise ValueError(f"{run_dir}: its checkpoint records no preprocessing (trained by an older "
                             "actionlab); retrain it, or resume it once with this version")
        card["preprocessing"] = pre
    return card, model, meta


def load_run(run_dir: str | Path, device: str = "auto", timeline: Timeline = Timeline(),
             backbone_engine: str | None = None) -> KindScorer:
    """The scorer of a run directory, on PyTorch. A temporal run's backbone runs on ``backbone_engine``
    (``auto``, ``onnx`` or ``torch``; default: the engine its features were extracted with)."""
    card, model, meta = run_card(run_dir)
    dev = select_device(device)
    if card["kind"] == "temporal":
        from actionlab.features.engine import create_engine
        from actionlab.features.modalities import build_backbone
        from actionlab.predict.stream_scorers import FileFeatureScorer, stream_parts
        from actionlab.predict.torch_nets import FeatureHead, torch_net

        f = card["features"]
        head = torch_net(FeatureHead(model, f["mean"], f["std"], f["dtype"]), dev)
        parts = stream_parts(meta, dev, backbone_engine)
        if parts is not None:  # optical flow, or RGB and flow stores side by side: computed from the file
            card["modality"] = " + ".join(cfg.modality for cfg, _, _ in parts)
            return FileFeatureScorer(card["classes"], card, parts, head)  # type: ignore[return-value]
        extract = recorded_extract(meta.get("extract"))
        spec, module = build_backbone(extract)
        backbone = create_engine(module, spec, device=dev, engine=backbone_engine or extract.engine)
        batch = 32 if dev.type == "cuda" else None  # default: CPU_BACKBONE_BATCH (memory, not speed, on a CPU)
        return TemporalScorer(card["classes"], card, timeline, backbone, head, batch=batch)
    from actionlab.predict.torch_nets import torch_net

    return SCORERS[card["kind"]](card["classes"], card, timeline, torch_net(model, dev))  # type: ignore[call-arg]


def load_fused(run_dir: Path, device: str, timeline: Timeline, backbone_engine: str | None) -> Any:
    """The scorer of a fused run (``actionlab fuse``): both member runs (either may be fused itself), combined
    with its weights."""
    from actionlab.predict.stream_scorers import FusedScorer, fused_card

    record = RunDir(run_dir).read_fusion() or {}
    members = []
    for given, resolved in zip(record.get("members", []), record.get("resolved", [])):
        member = Path(resolved) if Path(resolved).is_dir() else run_dir / given
        if not member.is_dir():
            raise FileNotFoundError(f"{run_dir}/fusion.json: member run {given} ({resolved}) is missing; put it back "
                                    "or fuse again")
        loader = load_fused if RunDir(member).is_fused() else load_run  # a fused run fused again: three streams
        members.append(loader(member, device, timeline, backbone_engine))
    if len(members) != 2:
        raise ValueError(f"{run_dir}/fusion.json names {len(members)} member runs, not 2: fuse again")
    return FusedScorer(fused_card(run_dir, members, record), members, record)


def is_export(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def read_export_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}/manifest.json is not readable JSON ({e}); export the run again") from e
    if manifest.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}/manifest.json is not an actionlab export (format {manifest.get('format')!r}, "
                         f"expected {EXPORT_FORMAT!r})")
    return manifest


def load_export(path: str | Path, timeline: Timeline = Timeline(), threads: int | None = None) -> KindScorer:
    """The scorer of an export directory: ONNX Runtime on CPU (no torch), or TorchScript; no checkpoint, no
    config."""
    path = Path(path)
    card = read_export_manifest(path)
    graphs = {name: path / file for name, file in card["graphs"].items()}
    for name, file in graphs.items():
        if not file.is_file():
            raise FileNotFoundError(f"{path}: the manifest names {file.name} ({name}) but it is missing; export "
                                    "the run again")
    net: Callable[[Path], Net]
    if card["engine"] == "onnx":
        net = functools.partial(onnx_net, threads=threads)
    else:  # TorchScript: the one export that needs torch
        from actionlab.predict.torch_nets import script_net as net
    if card["kind"] == "temporal":
        backbone = FeatureEngine(net(graphs["backbone"]), card["engine"])
        return TemporalScorer(card["classes"], card, timeline, backbone, net(graphs["head"]))
    if card["kind"] not in SCORERS:
        raise ValueError(f"{path}: unknown run kind {card['kind']!r} (this actionlab knows {sorted(SCORERS)})")
    return SCORERS[card["kind"]](card["classes"], card, timeline, net(graphs["model"]))  # type: ignore[call-arg]


# ----------------------------------------------------------------------------------- the public API


class Predictor:
    """Top-k labels and a timeline for videos, from a run directory (PyTorch) or an export (ONNX Runtime).

    Args:
        source: a run directory (``runs/lstm``) or an export directory (``actionlab export``).
        top_k: labels per video.
        device: for a run: ``auto`` (CUDA when available), ``cpu``, ``cuda:1``...; an export runs on CPU.
        window_s, hop_s: timeline windows (seconds; default: the median length of the training videos, and half
            of it; a video network's window is its clip).
        smoothing: windows averaged when merging the timeline into segments (1 = none).
        threads: ONNX Runtime threads of an export (default: the cores this process may use).
        backbone_engine: a temporal run's backbone: ``auto`` (ONNX Runtime on CPU), ``onnx`` or ``torch``
            (default: the engine its features were extracted with).
    """

    def __init__(self, source: str | os.PathLike[str], top_k: int = 5, device: str = "auto",
                 window_s: float | None = None, hop_s: float | None = None, smoothing: int = 3,
                 threads: int | None = None, backbone_engine: str | None = None) -> None:
        path = Path(source)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such run or export directory")
        if top_k < 1 or smoothing < 1:
            raise ValueError(f"top_k and smoothing must be >= 1, got {top_k} and {smoothing}")
        timeline = Timeline(window_s, hop_s)
        self.scorer: KindScorer  # or a motion run's (predict/stream_scorers.py), same interface
        if is_export(path):
            if device not in ("auto", "cpu") or backbone_engine is not None:
                raise ValueError(f"{path} is an export: it runs its own graphs on the CPU; drop the device and "
                                 "backbone engine")
            self.scorer = load_export(path, timeline, threads)
            self.engine: str = self.scorer.card["engine"]
        elif RunDir(path).is_fused():
            self.scorer, self.engine = load_fused(path, device, timeline, backbone_engine), "pytorch"
        elif RunDir(path).is_trained():
            self.scorer, self.engine = load_run(path, device, timeline, backbone_engine), "pytorch"
        else:
            raise FileNotFoundError(f"{path} is neither a run directory (checkpoints/best.pt) nor an export "
                                    "(manifest.json)")
        self.top_k, self.smoothing = top_k, smoothing

    @property
    def classes(self) -> list[str]:
        return self.scorer.classes

    @property
    def kind(self) -> str:
        return self.scorer.kind

    def describe(self) -> dict[str, Any]:
        """The model card without paths or large arrays: run name, kind, classes, preprocessing, sampler,
        inference, engine."""
        card = {k: v for k, v in self.scorer.describe().items() if k not in ("graphs", "verification")}
        if "features" in card:
            card["features"] = {k: v for k, v in card["features"].items() if k not in ("mean", "std")}
        return {**card, "engine": self.engine}

    def scores(self, video: Video, fps: float | None = None) -> VideoScores:
        """The raw scores of one video (log-probs, windows, timings); see :class:`VideoScores`."""
        return self.scorer.score(video, fps)

    def predict(self, video: Video, fps: float | None = None, name: str | None = None) -> dict[str, Any]:
        """One video -> ``{"video", "frames", "fps", "duration", "top", "timeline", "segments"}``; times in seconds."""
        s = self.scores(video, fps)
        return self.result(s, name if name is not None else (str(video) if not isinstance(video, np.ndarray)
                                                              else "<frames>"))

    def result(self, s: VideoScores, name: str) -> dict[str, Any]:
        """The JSON-ready answer for :class:`VideoScores`."""
        fps = s.info.fps or 25.0
        n = s.info.num_frames
        timeline = []
        for (a, b), w in zip(s.spans.tolist(), s.windows):
            best = top_labels(w, self.classes, 1)[0]
            timeline.append({"start": round(a / fps, 3), "end": round((b + 1) / fps, 3), **best})
        segs = [{"start": round(a / fps, 3), "end": round(b / fps, 3), "label": self.classes[k], "score": score}
                for a, b, k, score in segments(s.windows, s.spans, n, self.smoothing)]
        return {"video": name, "frames": n, "fps": fps, "duration": round(s.info.duration or n / fps, 3),
                "top": top_labels(s.video, self.classes, min(self.top_k, len(self.classes))),
                "timeline": timeline, "segments": segs}

    def annotate(self, video: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
        """:meth:`predict` a video file and write it to ``out`` with the current label and score drawn on every
        frame (the smoothed segments); the result gains ``"annotated": {"path", "frames"}``."""
        from actionlab.report.annotate import write_annotated

        s = self.scores(video)
        segs = [(a, b, self.classes[k], score)
                for a, b, k, score in segments(s.windows, s.spans, s.info.num_frames, self.smoothing)]
        frames = write_annotated(video, segs, out)
        return {**self.result(s, str(video)), "annotated": {"path": str(out), "frames": frames}}

    def __call__(self, videos: Video | Sequence[Video], fps: float | None = None
                 ) -> dict[str, Any] | list[dict[str, Any]]:
        """One result for a file or a frame array; a list of results for a list of them."""
        if isinstance(videos, (list, tuple)):
            return [self.predict(v, fps) for v in videos]
        return self.predict(videos, fps)  # type: ignore[arg-type]

    def stream(self, source: str | os.PathLike[str], **options: Any) -> Any:
        """Label a live stream or device (an RTSP/HTTP/UDP URL, ``-`` for stdin, ``/dev/video0``) as it plays:
        an iterable :class:`~actionlab.predict.live.LiveStream` of one dict per completed window (``time``,
        ``label``, ``score``, ``top``, ``latency_s``, ``behind_s``, ``dropped``); ``options`` are its own
        (``max_seconds``, ``ring``, ``fps``, ``read_timeout_s``...)."""
        from actionlab.predict.live import LiveStream

        return LiveStream(self.scorer, source, self.classes, self.top_k, **options)
