"""The verbs that prepare data for training: ``synth`` (a generated dataset), ``index`` (a manifest) and
``extract`` (cached features of RGB frames or optical flow)."""

from __future__ import annotations

import argparse
from typing import Any

from actionlab.cli.text import csv_list, fail, progress_bar, progress_callback


def cmd_synth(args: argparse.Namespace) -> int:
    from actionlab.synth.families import make_synthetic_dataset

    kwargs: dict[str, Any] = {"layout": args.layout, "seed": args.seed, "family": args.family}
    if args.classes:
        kwargs["classes"] = csv_list(args.classes)
    for name in ("groups", "clips_per_group"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    root = make_synthetic_dataset(args.out, **kwargs)
    print(f"wrote a synthetic {args.layout} dataset of the {args.family!r} family to {root}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_index_report
    from actionlab.data.index import index_dataset
    from actionlab.data.manifest import write_manifest

    with progress_bar("probing videos") as bar:
        manifest, report = index_dataset(
            args.root, layout=args.layout, split=args.split, classes=csv_list(args.classes),
            val_fraction=args.val_fraction, seed=args.seed, probe=not args.no_probe,
            workers=args.workers, progress=progress_callback(bar))
    refused = args.strict and not report.ok
    if not refused:
        write_manifest(manifest, args.output)
    print(format_index_report(manifest, report))
    if refused:
        fail(f"{report.root}: {report.defect_summary()} (--strict: {args.output} not written; fix the dataset, "
              "or index without --strict to keep what is there)")
        return 1
    print(f"manifest: {args.output}")
    return 0


FLOW_FLAGS = {"flow_algorithm": "algorithm", "flow_preset": "preset", "flow_bound": "bound", "flow_stack": "stack",
              "flow_size": "size", "flow_output": "output", "flow_encoding": "encoding"}


def cmd_extract(args: argparse.Namespace) -> int:
    from actionlab.config import ExtractConfig, FlowConfig
    from actionlab.data.manifest import read_manifest
    from actionlab.features.extract import extract_features

    given = [flag for flag in FLOW_FLAGS if getattr(args, flag) is not None]
    if given and args.modality != "flow":
        raise ValueError(f"--{given[0].replace('_', '-')} and the other --flow-* options apply to --modality flow "
                         "only")
    flow = {FLOW_FLAGS[flag]: getattr(args, flag) for flag in given}
    cfg = ExtractConfig(backbone=args.backbone, weights=args.weights, sampler=args.sampler, view=args.view,
                        num_frames=args.num_frames, stride=args.stride, dtype=args.dtype,
                        batch_size=args.batch_size, workers=args.workers, engine=args.engine,
                        predictions=args.predictions, modality=args.modality, flow=FlowConfig(**flow))
    manifest = read_manifest(args.manifest)
    with progress_bar("extracting", total=len(manifest.records)) as bar:
        report = extract_features(manifest, args.output, cfg, splits=csv_list(args.splits),
                                  skip_bad=args.skip_bad, device=args.device, overwrite=args.overwrite,
                                  progress=progress_callback(bar), flow_from=args.flow_from)
    print(report.summary() if hasattr(report, "summary") else report)
    if args.strict and report.failed:
        fail(f"{args.output}: {len(report.failed)} video(s) of {args.manifest} left out as undecodable (--strict; "
              "the store holds the others: fix or remove those videos and rerun `actionlab index`)")
        return 1
    return 0
