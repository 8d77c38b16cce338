"""The ``actionlab`` command: one verb per pipeline stage, each a typed function over parsed arguments.

    actionlab synth OUT                      generate a small action dataset (real XviD videos + split files)
    actionlab index ROOT -o manifest.csv     read a dataset in its public layout
    actionlab extract MANIFEST -o feats.h5   cache per-frame CNN features (resumable, torchrun-aware)
    actionlab finetune MANIFEST --out RUN    fine-tune a 2D backbone on single frames (or FLOW_RAW.h5: on flow)
    actionlab train --features feats.h5 ...  train a temporal model (or --manifest for end-to-end video nets)
    actionlab fuse RUN_RGB RUN_FLOW --run OUT  two-stream late fusion (weight chosen on val) as a run
    actionlab evaluate RUN [--baseline RUN]  metrics, confusion, improved/hurt classes
    actionlab predict VIDEO... --run RUN     top-5 labels and a timeline (--output annotated.mp4)
    actionlab explain RUN VIDEO... -o DIR    heat maps over the frames and per-frame weights (PNG, MP4, JSON)
    actionlab export RUN -o NAME.actionlab   ONNX/TorchScript graphs + manifest, checked against PyTorch
    actionlab serve RUN                      a page and a JSON API on http://127.0.0.1:8000
    actionlab sweep --features feats.h5 ...  grid/random/TPE search with Optuna, resumable
    actionlab report RUN|SWEEP... -o r.html  one self-contained HTML report (+ Markdown)
    actionlab demo                           the whole pipeline on a generated dataset
    actionlab list models|backbones|presets

Exit status: 0 done; 1 done, but with defects found (index/extract --strict: listed videos missing, unreadable,
skipped or misplaced; train: the training loss diverged); 2 an error, printed as one line ``error: <file>:
<what> (<fix>)`` (-v adds the traceback); 130 interrupted. Every command resumes where a crash left it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionlab.cli.prepare import cmd_extract, cmd_index, cmd_synth
from actionlab.cli.text import csv_list, emit, fail, print_json
from actionlab.cli.use import cmd_explain, cmd_export, cmd_predict, cmd_serve
from actionlab.config import VIEWS, ExtractConfig

logger = logging.getLogger("actionlab")

FAMILIES = ("demo", "textures", "gestures", "outdoor")  # actionlab.synth.families.FAMILIES, without importing it at start-up


# ----------------------------------------------------------------------------------- verbs


def _train_config(args: argparse.Namespace, base_preset: str | None = None) -> Any:
    from actionlab.config import TrainConfig, apply_overrides, load_yaml
    from actionlab.presets import preset

    cfg = load_yaml(TrainConfig, args.config) if getattr(args, "config", None) else TrainConfig()
    for name in (base_preset, getattr(args, "preset", None)):
        if name:
            cfg = preset(name, cfg)
    flags = {"model.name": getattr(args, "model", None), "epochs": args.epochs, "batch_size": args.batch_size,
             "optim.lr": args.lr, "seed": args.seed, "device": args.device}
    for flag, field in (("backbone", "model.backbone"), ("layers", "model.train_layers"),
                        ("frames_per_video", "frames.per_video")):
        flags[field] = getattr(args, flag, None)
    cfg = apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None})
    return apply_overrides(cfg, list(args.set or []))


def cmd_finetune(args: argparse.Namespace) -> int:
    import h5py

    from actionlab.runs.train import train_run

    flow = Path(args.source).is_file() and h5py.is_hdf5(args.source)  # a raw optical flow store, else a manifest
    cfg = _train_config(args, base_preset="finetune_flow" if flow else "finetune")
    source = {"features": args.source} if flow else {"manifest": args.source}
    result = train_run(cfg, args.out, **source, resume=args.resume, log=print)
    print_json(result)
    use = "extract --modality flow --weights" if flow else "extract --weights"
    print(f"fine-tuned backbone: {Path(args.out) / 'backbone.pt'} (use it with `actionlab {use}`)")
    return 0


def _features(args: argparse.Namespace) -> str | list[str] | None:
    """``--features`` once: that store; several times: aligned stores concatenated per step (early fusion)."""
    stores = args.features
    return stores[0] if stores and len(stores) == 1 else stores


def cmd_train(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_seeds
    from actionlab.runs.train import divergence_message, train_run, train_seeds

    cfg = _train_config(args)
    if args.seeds:
        seeds = [int(s) for s in csv_list(args.seeds) or []]
        summary = train_seeds(cfg, args.run, seeds, features=_features(args), manifest=args.manifest,
                              resume=args.resume, log=print, tensorboard=args.tensorboard)
        print(format_seeds(summary))
        print(f"per-seed runs in {args.run}/seed-*/, summary: {Path(args.run) / 'seeds.json'}")
        for seed in summary.get("diverged", []):
            epoch = summary["runs"][str(seed)].get("diverged_epoch", "?")
            fail(divergence_message(Path(args.run) / f"seed-{seed}", cfg, epoch))
        return 1 if summary.get("diverged") else 0
    result = train_run(cfg, args.run, features=_features(args), manifest=args.manifest, resume=args.resume,
                       log=print, tensorboard=args.tensorboard)
    print_json(result)
    if result.get("diverged"):
        fail(divergence_message(Path(args.run), cfg, result.get("diverged_epoch", "?")))
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_evaluation
    from actionlab.runs.evaluate import evaluate_run, single_frame_run

    if Path(args.run).suffix in (".h5", ".hdf5") and Path(args.run).is_file():
        # a feature store with per-frame predictions: the single-frame baseline, averaged per video
        args.run = single_frame_run(args.run, split=args.split)
        logger.info("single-frame baseline saved as a run: %s", args.run)
    emit(evaluate_run(args.run, split=args.split, baseline=args.baseline), args.json, format_evaluation)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from actionlab.sweep.training import sweep_run

    cfg = _train_config(args)
    study = args.study
    result = sweep_run(cfg, args.out, features=_features(args), manifest=args.manifest, study=study,
                       grid=list(args.grid or []), seeds=[int(s) for s in csv_list(args.seeds) or [0]],
                       sampler=args.sampler, n_trials=args.n_trials, n_jobs=args.n_jobs, storage=args.storage,
                       scale=args.scale, log=print)
    print(result)
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_evaluation
    from actionlab.rundir import RunDir
    from actionlab.runs.evaluate import evaluate_run
    from actionlab.runs.fuse import fuse_runs

    fuse_runs(args.first, args.second, args.run)
    record = RunDir(args.run).read_fusion() or {}
    weights = record.get("weights", [])
    print(f"weights chosen on {record.get('chosen_on')}: {args.first} x {weights[0]:g}, {args.second} x "
          f"{weights[1]:g} (val top-1 {record.get('val_top1', float('nan')):.3f})")
    print(format_evaluation(evaluate_run(args.run)))
    print(f"fused run: {args.run}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from actionlab.report.make import make_report

    strips = None
    if args.saliency:
        from actionlab.predict.explain import strip_maker

        strips = strip_maker
    html, md = make_report(args.paths, args.output, baseline=args.baseline, videos=args.videos, saliency=strips)
    print(Path(md).read_text(encoding="utf-8"))
    print(f"report: {html}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from actionlab.cli.demo import run_demo
    from actionlab.cli.text import format_comparison, format_per_class

    result = run_demo(Path(args.out), quick=args.quick, device=args.device, log=print)
    print(format_comparison(result["runs"]))
    print()
    print(format_per_class(result["runs"]))
    print(f"\nreport: {result['report']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "models":
        from actionlab.models import list_models
        from actionlab.models.registry import model_entry

        for name in list_models():
            e = model_entry(name)
            print(f"{name:22s} {e.kind:9s} {e.doc}")
    elif args.what == "backbones":
        from actionlab.features.backbones import get_backbone_spec, list_backbones

        for name in list_backbones():
            spec = get_backbone_spec(name)
            print(f"{name:20s} {spec.feature_dim:5d}-d")
    else:
        from actionlab.presets import PRESETS
        from actionlab.sweep.studies import STUDIES

        for name, p in PRESETS.items():
            print(f"{name:18s} {p.doc}\n{'':18s} {p.overrides}")
        print("\nstudies (actionlab sweep --study NAME):")
        for name, build in STUDIES.items():
            print(f"{name:18s} {(build.__doc__ or '').strip().splitlines()[0]}")
    return 0


# ----------------------------------------------------------------------------------- parser


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", action="append",
                   help="HDF5 feature store (temporal models); repeat it to concatenate aligned stores per step "
                        "(early fusion: --features rgb.h5 --features flow.h5); a raw flow store for video networks")
    p.add_argument("--manifest", help="manifest CSV (end-to-end video models decode clips; with --features: the "
                                      "manifest the store must have been extracted from)")
    p.add_argument("--config", help="start from a saved config.yaml")
    p.add_argument("--preset", help="named starting point (actionlab list presets)")
    p.add_argument("--model", help="registered model name (actionlab list models)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="any config field, dotted (repeatable): --set model.num_layers=2 --set optim.weight_decay=5e-4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actionlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate a small action dataset as real encoded videos")
    p.add_argument("out")
    p.add_argument("--layout", default="ucf101", choices=["ucf101", "hmdb51", "kinetics", "folders"])
    p.add_argument("--family", default="demo", choices=list(FAMILIES),
                   help="which generated actions (each its own shapes, motions, textures, lengths, fps)")
    p.add_argument("--classes", help="comma-separated subset of the family's classes")
    p.add_argument("--groups", type=int)
    p.add_argument("--clips-per-group", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("index", help="index a dataset in its public layout into a manifest")
    p.add_argument("root")
    p.add_argument("-o", "--output", default="manifest.csv")
    p.add_argument("--layout", default="auto", choices=["auto", "ucf101", "hmdb51", "kinetics", "ucf11", "folders"])
    p.add_argument("--split", type=int, default=1, help="official split number (UCF-101/HMDB-51: 1-3)")
    p.add_argument("--classes", help="comma-separated class subset")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="carve a group-aware val split of this fraction of the train groups when the layout has "
                        "none (default 0.1; 0 = no val split; Kinetics keeps its own val split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-probe", action="store_true", help="skip reading frame counts (faster, less checked)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--strict", action="store_true",
                   help="exit 1 (manifest not written) when a listed video is missing, unreadable, skipped or in "
                        "another class's folder")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("extract", help="cache per-frame CNN features to HDF5")
    p.add_argument("manifest")
    p.add_argument("-o", "--output", default="features.h5")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--weights", default="imagenet", help="imagenet, none, or a .pth / fine-tuned checkpoint path")
    p.add_argument("--sampler", default="uniform", choices=["all", "stride", "uniform"])
    p.add_argument("--view", default=ExtractConfig.view, choices=("auto", *VIEWS),
                   help="what of each frame (or flow image) the CNN sees: full, the whole frame at short side 224 "
                        "(keeps what happens at the sides of wide video), or centre, the ImageNet centre crop; auto: "
                        "full for RGB, centre for flow (default: %(default)s)")
    p.add_argument("--num-frames", type=int, default=25)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--predictions", action="store_true", help="also store per-frame class scores")
    p.add_argument("--modality", default="rgb", choices=["rgb", "flow"],
                   help="rgb frames, or dense optical flow from each sampled frame on (OpenCV)")
    p.add_argument("--flow-algorithm", choices=["dis", "farneback", "tvl1"],
                   help="flow estimator (default farneback; dis is 3-4x faster to extract but sees motion in flat, "
                        "noisy areas; tvl1 needs OpenCV's contrib build)")
    p.add_argument("--flow-preset", choices=["ultrafast", "fast", "medium"], help="DIS preset (default fast)")
    p.add_argument("--flow-bound", type=float, help="flow clipped to +-bound pixels, then uint8 (default 20)")
    p.add_argument("--flow-stack", type=int, help="L flow fields stacked per sampled frame (default 5)")
    p.add_argument("--flow-size", type=int, help="short side flow is computed at (default: the backbone's resize)")
    p.add_argument("--flow-output", choices=["features", "raw"],
                   help="features of the backbone over the flow (temporal models; default), or the raw "
                        "quantised flow (video networks: --sampler all --flow-stack 1 --flow-size 64)")
    p.add_argument("--flow-encoding", choices=["image", "stack"],
                   help="how the backbone reads flow: image (the L fields summed, camera motion removed, drawn as "
                        "x, y, magnitude; default) or stack (2L channels, TSN's cross-modality first convolution)")
    p.add_argument("--flow-from", metavar="FLOW_RAW.h5",
                   help="flow features: read the flow from this raw flow store (--flow-output raw, same manifest, "
                        "sampler and flow settings) instead of computing it again; the store made is the same")
    p.add_argument("--splits", help="comma-separated splits to extract (default: all)")
    p.add_argument("--skip-bad", action="store_true", help="list undecodable videos and go on")
    p.add_argument("--overwrite", action="store_true", help="replace a store made with other settings")
    p.add_argument("--device", default="auto")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a video was left out as undecodable (with --skip-bad; the store is kept)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("finetune", help="fine-tune an ImageNet 2D CNN on single frames of a manifest's videos (the "
                                        "`finetune` preset) or on optical flow images of a raw flow store "
                                        "(`finetune_flow`)")
    p.add_argument("source", metavar="MANIFEST_OR_FLOW_RAW",
                   help="a manifest (RGB frames), or a raw flow store: `extract --modality flow --flow-output raw` "
                        "with the sampler and flow settings the flow features will be extracted with")
    p.add_argument("--out", required=True, help="run directory; RUN/backbone.pt feeds `extract --weights`")
    p.add_argument("--backbone", help="2D backbone (default mobilenet_v2; actionlab list backbones)")
    p.add_argument("--layers", choices=["top", "all"],
                   help="train the top block and classifier (RGB default) or all layers (flow default)")
    p.add_argument("--frames-per-video", type=int,
                   help="training frames (flow images) per video per epoch (default 4; flow 3)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any config field, dotted (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("train", help="train a temporal model on features, or a video network on clips")
    _add_train_flags(p)
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.pt")
    p.add_argument("--seeds", help="comma-separated seeds: one run each in RUN/seed-<s>/, mean ± std in "
                                   "RUN/seeds.json (e.g. 0,1,2)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files (metrics per epoch, the test confusion matrix) into "
                        "RUN/tensorboard/ (pip install 'actionlab[tensorboard]')")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("fuse", help="two-stream late fusion of two runs (weight chosen on val), saved as a run")
    p.add_argument("first", help="a run (e.g. the RGB stream)")
    p.add_argument("second", help="a run on the same videos (e.g. the flow stream)")
    p.add_argument("--run", required=True, help="the fused run directory to write")
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("evaluate", help="evaluate a run: top-k, mean class accuracy, confusion, changes")
    p.add_argument("run", help="run directory, or a feature store extracted with --predictions")
    p.add_argument("--split", default="test")
    p.add_argument("--baseline", help="another run to compare per-class accuracy against")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top labels and a timeline for video files with a trained run or export")
    p.add_argument("videos", nargs="+")
    p.add_argument("--run", required=True, help="a run directory, or an export (actionlab export)")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="the whole answer as JSON (top, timeline and segments)")
    p.add_argument("--segments", action="store_true",
                   help="print the timeline merged into segments (smoothed) instead of every window")
    p.add_argument("--output", help="write the video with the current label drawn on each frame (.mp4/.avi/.mkv)")
    p.add_argument("--window", type=float, help="timeline window in seconds (default: the training videos' median)")
    p.add_argument("--hop", type=float, help="seconds between timeline windows (default: half a window)")
    p.add_argument("--smoothing", type=int, default=3, help="windows averaged when merging segments (1 = none)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="where a run's prediction for a video comes from: heat maps and per-frame "
                                       "weights as a PNG strip, an MP4 and JSON")
    p.add_argument("run", help="run directory")
    p.add_argument("videos", nargs="+", help="video file(s)")
    p.add_argument("-o", "--output", default="explain", help="output directory (default: explain/)")
    p.add_argument("--target", help="class to explain, by name or index (default: the predicted class)")
    p.add_argument("--layer", help="module whose activations Grad-CAM reads, e.g. layer3 (default: the deepest "
                                   "feature map at least 4 cells across)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto ...")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="a run as ONNX (or TorchScript) graphs + manifest.json, checked against PyTorch")
    p.add_argument("run")
    p.add_argument("-o", "--output", required=True, help="export directory, e.g. lstm.actionlab")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest accepted |PyTorch - export|, relative to the outputs' scale (default 1e-3)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="a web page and a JSON API for a run or an export (FastAPI + uvicorn)")
    p.add_argument("run", help="a run directory, or an export (actionlab export)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="larger uploads get 413 (default 200)")
    p.add_argument("--workers", type=int, help="inference threads (default: 1 up to 4 cores, else cores/4)")
    p.add_argument("--queue", type=int, default=32, help="requests that may wait for a worker (503 past it)")
    p.add_argument("--timeout-s", type=float, default=120.0,
                   help="time limit of a request, waiting included (503 while queued, 504 while running)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("sweep", help="grid/random/TPE search over config fields with Optuna (resumable)")
    _add_train_flags(p)
    p.add_argument("--out", required=True, help="sweep directory")
    p.add_argument("--study", help="a named study, e.g. lstm_ablation (actionlab list presets)")
    p.add_argument("--grid", action="append", metavar="FIELD=V1,V2", help="a swept field (repeatable)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sampler", default="grid", choices=["grid", "random", "tpe"])
    p.add_argument("--n-trials", type=int)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite in the sweep directory)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply a study's epochs (e.g. 0.2 for a quick look)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="one self-contained HTML report (+ Markdown) of runs and sweeps")
    p.add_argument("paths", nargs="+", help="run and/or sweep directories")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--baseline", help="run to compare the others against (e.g. the single-frame run)")
    p.add_argument("--videos", type=int, default=6, help="test videos per run shown as frame strips: the most "
                                                         "wrong, and those fixed against --baseline (0: none)")
    p.add_argument("--saliency", action="store_true", help="draw the strips with each run's heat maps "
                                                           "(`actionlab explain`; slower: seconds per video)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the whole pipeline on a generated dataset, in a few minutes on a CPU")
    p.add_argument("--out", default="demo")
    p.add_argument("--quick", action="store_true", help="smaller dataset and fewer epochs (for tests)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list models, backbones or presets")
    p.add_argument("what", choices=["models", "backbones", "presets"])
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from actionlab.cli.text import SafeFormatter, TerminalSafe, error_message

    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(TerminalSafe(sys.stdout)):
            code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `actionlab ... | head`: the reader left; the work itself is done and saved
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if args.verbose:
            raise
        fail(error_message(exc, args.command))
        return 2
    logger.debug("%s took %.1fs", args.command, time.perf_counter() - start)
    return code


if __name__ == "__main__":
    sys.exit(main())
