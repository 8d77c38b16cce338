"""The demo: the whole pipeline on a generated dataset, in a few minutes on a CPU.

synth -> index -> extract (MobileNetV2, ImageNet; RGB and optical flow) -> single-frame baseline -> LSTM on RGB ->
LSTM on flow -> the two fused late (two-stream) -> a video network (TSM) on raw clips -> evaluate -> report. Every
stage is resumable: rerunning the demo reuses what is already on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from actionlab.config import ExtractConfig, TrainConfig, apply_overrides
from actionlab.presets import preset

logger = logging.getLogger(__name__)


def demo_configs(quick: bool = False, device: str = "auto") -> dict[str, TrainConfig]:
    """The runs the demo trains, each with the library's defaults: the single-frame baseline and the default LSTM
    on the same cached RGB features, the default LSTM on optical-flow features (fused late with the RGB one into
    ``two_stream``, not a training run), and the ``video_cpu`` preset's video network trained end to end on raw
    clips."""
    common: dict[str, object] = {"device": device, "seed": 0}
    if quick:
        common["epochs"] = 12
    single = apply_overrides(preset("single_frame"), common)
    lstm = apply_overrides(TrainConfig(), {**common, "model.name": "lstm"})
    video = apply_overrides(preset("video_cpu"), {**common, **({"epochs": 4} if quick else {})})
    return {"single_frame": single, "lstm": lstm, "flow_lstm": lstm, "tsm": video}


def run_demo(out: Path, quick: bool = False, device: str = "auto",
             log: Callable[[str], Any] = logger.info) -> dict[str, Any]:
    """Run the pipeline into ``out``; returns the evaluation of every run and the report path."""
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import read_manifest, write_manifest
    from actionlab.features.extract import extract_features
    from actionlab.models import model_kind
    from actionlab.report.make import make_report
    from actionlab.runs.evaluate import evaluate_run
    from actionlab.runs.fuse import fuse_runs
    from actionlab.runs.tensorboard import tensorboard_available
    from actionlab.runs.train import train_run
    from actionlab.synth.families import make_synthetic_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = demo_configs(quick, device)
    step = _Steps(len(configs) + 6, log)  # synth, index, two extractions, one per run, fuse, evaluate + report
    data_root = out / "data"
    size = {"groups": 4, "clips_per_group": 2} if quick else {}
    with step("generate the dataset", f"a synthetic UCF-101-style dataset in {data_root}"):
        if (data_root / ".complete").exists():
            log(f"      reusing the synthetic dataset in {data_root}")
        else:
            make_synthetic_dataset(data_root, layout="ucf101", seed=0, **size)
            (data_root / ".complete").write_text("ok\n")

    manifest_path = out / "manifest.csv"
    with step("index", f"the videos -> {manifest_path}"):
        if not manifest_path.exists():
            manifest, report = index_dataset(data_root, layout="ucf101", split=1, seed=0)
            write_manifest(manifest, manifest_path)
        manifest = read_manifest(manifest_path)
        log(f"      {len(manifest.records)} videos of {len(manifest.classes)} classes")

    ext = ExtractConfig(num_frames=16, workers=1) if quick else ExtractConfig()
    stores = {"rgb": out / "features.h5", "flow": out / "flow.h5"}
    for modality, store in stores.items():
        what = "MobileNetV2 (ImageNet) features" if modality == "rgb" else f"optical flow ({ext.flow.algorithm}) features"
        with step(f"extract {modality}", f"{what} -> {store}"):
            rep = extract_features(manifest, store, dataclasses.replace(ext, modality=modality), device=device)
            log(f"      {rep.summary() if hasattr(rep, 'summary') else rep}")

    for name, cfg in configs.items():
        video = model_kind(cfg.model.name) == "video"
        data = "raw clips" if video else f"the cached {'flow' if name == 'flow_lstm' else 'RGB'} features"
        with step(f"train {name}", f"{cfg.model.name}, {cfg.epochs} epochs, on {data}"):
            features = None if video else stores["flow" if name == "flow_lstm" else "rgb"]
            train_run(cfg, out / "runs" / name, features=features, manifest=manifest_path if video else None,
                      resume=True, tensorboard=tensorboard_available())  # event files when TensorBoard is installed
    with step("fuse", "two-stream: lstm and flow_lstm fused late (weight chosen on val)"):
        fuse_runs(out / "runs" / "lstm", out / "runs" / "flow_lstm", out / "runs" / "two_stream")
    base = out / "runs" / "single_frame"
    runs = [out / "runs" / name for name in ("single_frame", "lstm", "flow_lstm", "two_stream", "tsm")]
    results: dict[str, Any] = {}
    with step("evaluate + report", f"the runs on the test split -> {out / 'report.html'}"):
        for run in runs:
            results[run.name] = evaluate_run(run, baseline=None if run == base else base)
        html, md = make_report(runs, out / "report.html", baseline=base)
    return {"runs": results, "report": str(html), "markdown": str(md), "seconds": step.seconds}


class _Steps:
    """``with step(name, what):`` logs ``[i/n] name: what``, then how long the step took; ``seconds`` keeps
    each step's time by name, so a newcomer sees what the minutes buy."""

    def __init__(self, total: int, log: Callable[[str], Any]) -> None:
        self.total, self.log, self.seconds = total, log, {}  # type: dict[str, float]

    @contextlib.contextmanager
    def __call__(self, name: str, what: str) -> Iterator[None]:
        self.log(f"[{len(self.seconds) + 1}/{self.total}] {name}: {what}")
        t0 = time.perf_counter()
        yield
        took = time.perf_counter() - t0
        self.seconds[name] = took
        self.log(f"      ({took:.0f} s)")


def cmd_demo(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_comparison, format_per_class

    result = run_demo(Path(args.out), quick=args.quick, device=args.device, log=print)
    print(format_comparison(result["runs"]))
    print()
    print(format_per_class(result["runs"]))
    print("\ntime per step:")
    for name, seconds in result["seconds"].items():
        print(f"  {seconds:7.1f} s  {name}")
    print(f"  {sum(result['seconds'].values()):7.1f} s  in all")
    print(f"\nreport: {result['report']}")
    return 0


def register(sub: Any) -> None:
    """Add this module's verbs (``demo``) to the ``actionlab`` parser."""
    p = sub.add_parser("demo", help="the whole pipeline on a generated dataset, in a few minutes on a CPU")
    p.add_argument("--out", default="demo")
    p.add_argument("--quick", action="store_true", help="smaller dataset and fewer epochs (for tests)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)
