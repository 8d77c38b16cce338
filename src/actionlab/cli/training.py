"""The verbs that train: ``finetune`` (a 2D CNN on frames or flow), ``train`` (a temporal model or a video network,
one seed or several), ``fuse`` (two runs as a two-stream run) and ``sweep`` (a search over settings)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from actionlab.cli.text import csv_list, fail, print_json
from actionlab.rundir import RunDir


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


def _features(args: argparse.Namespace) -> str | list[str] | None:
    """``--features`` once: that store; several times: aligned stores concatenated per step (early fusion)."""
    stores = args.features
    return stores[0] if stores and len(stores) == 1 else stores


def cmd_finetune(args: argparse.Namespace) -> int:
    import h5py

    from actionlab.runs.train import train_run

    flow = Path(args.source).is_file() and h5py.is_hdf5(args.source)  # a raw optical flow store, else a manifest
    cfg = _train_config(args, base_preset="finetune_flow" if flow else "finetune")
    source = {"features": args.source} if flow else {"manifest": args.source}
    result = train_run(cfg, args.out, **source, resume=args.resume)
    print_json(result)
    use = "extract --modality flow --weights" if flow else "extract --weights"
    print(f"fine-tuned backbone: {Path(args.out) / 'backbone.pt'} (use it with `actionlab {use}`)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_seeds
    from actionlab.runs.train import divergence_message, train_run, train_seeds

    cfg = _train_config(args)
    if args.seeds:
        seeds = [int(s) for s in csv_list(args.seeds) or []]
        summary = train_seeds(cfg, args.run, seeds, features=_features(args), manifest=args.manifest,
                              resume=args.resume, tensorboard=args.tensorboard)
        print(format_seeds(summary))
        print(f"per-seed runs in {args.run}/seed-*/, summary: {RunDir(args.run).seeds}")
        for seed in summary.get("diverged", []):
            epoch = summary["runs"][str(seed)].get("diverged_epoch", "?")
            fail(divergence_message(RunDir(args.run).seed(seed).path, cfg, epoch))
        return 1 if summary.get("diverged") else 0
    result = train_run(cfg, args.run, features=_features(args), manifest=args.manifest, resume=args.resume,
                       tensorboard=args.tensorboard)
    print_json(result)
    if result.get("diverged"):
        fail(divergence_message(Path(args.run), cfg, result.get("diverged_epoch", "?")))
        return 1
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


def cmd_sweep(args: argparse.Namespace) -> int:
    from actionlab.sweep.training import sweep_run

    cfg = _train_config(args)
    study = args.study
    result = sweep_run(cfg, args.out, features=_features(args), manifest=args.manifest, study=study,
                       grid=list(args.grid or []), seeds=[int(s) for s in csv_list(args.seeds) or [0]],
                       sampler=args.sampler, n_trials=args.n_trials, n_jobs=args.n_jobs, storage=args.storage,
                       scale=args.scale)
    print(result)
    return 0


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


def register(sub: Any) -> None:
    """Add this module's verbs (``finetune``, ``train``, ``fuse``, ``sweep``) to the ``actionlab`` parser."""
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
