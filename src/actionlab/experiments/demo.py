"""The demo: the whole pipeline on a generated dataset, in a few minutes on a CPU.

synth -> index -> extract (MobileNetV2, ImageNet) -> single-frame baseline -> LSTM -> evaluate -> report.
Every stage is resumable: rerunning the demo reuses what is already on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actionlab.config import ExtractConfig, TrainConfig, apply_overrides, preset

logger = logging.getLogger(__name__)


def demo_configs(quick: bool = False, device: str = "auto") -> dict[str, TrainConfig]:
    """The two runs the demo compares: the single-frame baseline and an LSTM with seed 000's best knobs."""
    epochs = 12 if quick else 60
    common: dict[str, object] = {"epochs": epochs, "batch_size": 16, "device": device, "seed": 0, "patience": 0}
    single = apply_overrides(preset("single_frame"), {**common, "optim.lr": 1e-3, "model.fc_size": 0})
    lstm = apply_overrides(TrainConfig(), {
        **common, "model.name": "lstm", "model.hidden_size": 128, "model.fc_size": 128, "model.dropout": 0.5,
        "optim.lr": 2e-3, "optim.weight_decay": 5e-4, "optim.grad_clip": 5.0,
        "sequence.seq_len": 16, "sequence.loss_weighting": "linear",
        "inference.mode": "windows", "inference.window": 16, "inference.stride": 4,
        "inference.step_weighting": "linear",
    })
    return {"single_frame": single, "lstm": lstm}


def run_demo(out: Path, quick: bool = False, device: str = "auto",
             log: Callable[[str], Any] = logger.info) -> dict[str, Any]:
    """Run the pipeline into ``out``; returns the evaluation of both runs and the report paths."""
    from actionlab.data.index import format_report, index_dataset
    from actionlab.data.manifest import read_manifest, write_manifest
    from actionlab.data.synth import make_synthetic_dataset
    from actionlab.experiments.runs import evaluate_run, format_comparison, make_report, train_run
    from actionlab.features.extract import extract_features

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data"
    size = {"groups": 4, "clips_per_group": 2} if quick else {}
    if not (data_root / ".complete").exists():
        log(f"[1/6] generating a synthetic UCF-101-style dataset in {data_root}")
        make_synthetic_dataset(data_root, layout="ucf101", seed=0, **size)
        (data_root / ".complete").write_text("ok\n")
    else:
        log(f"[1/6] reusing the synthetic dataset in {data_root}")

    manifest_path = out / "manifest.csv"
    if not manifest_path.exists():
        manifest, report = index_dataset(data_root, layout="ucf101", split=1, val_fraction=0.25, seed=0)
        write_manifest(manifest, manifest_path)
        log("[2/6] indexed\n" + format_report(manifest, report))
    manifest = read_manifest(manifest_path)

    store = out / "features.h5"
    log(f"[3/6] extracting MobileNetV2 (ImageNet) features -> {store}")
    ext = ExtractConfig(backbone="mobilenet_v2", weights="imagenet", sampler="uniform",
                        num_frames=16 if quick else 24, batch_size=64, workers=1 if quick else 2)
    rep = extract_features(manifest, store, ext, device=device)
    log(f"      {rep.summary() if hasattr(rep, 'summary') else rep}")

    results: dict[str, Any] = {}
    for i, (name, cfg) in enumerate(demo_configs(quick, device).items()):
        log(f"[{4 + i}/6] training {name} ({cfg.model.name}, {cfg.epochs} epochs)")
        train_run(cfg, out / "runs" / name, features=store, resume=True, log=lambda line: log("      " + line))
    base = out / "runs" / "single_frame"
    results["single_frame"] = evaluate_run(base)
    results["lstm"] = evaluate_run(out / "runs" / "lstm", baseline=base)
    html, md = make_report([base, out / "runs" / "lstm"], out / "report.html", baseline=base)
    log("[6/6] single-frame vs LSTM on the test split\n" + format_comparison(results))
    log(f"report: {html}\nmarkdown: {md}")
    results["report"] = str(html)
    return results
