"""The verbs that prepare data for training: ``synth`` (a generated dataset), ``index`` (a manifest) and
``extract`` (cached features of RGB frames or optical flow)."""

from __future__ import annotations

import argparse
from typing import Any

from actionlab.cli.text import csv_list, fail, progress_bar, progress_callback
from actionlab.config import FLOW_ALGORITHMS, MODALITY_NAMES, POOLS, VIEWS, ExtractConfig

FAMILIES = ("demo", "textures", "gestures", "outdoor")  # actionlab.synth.families.FAMILIES, without importing it at start-up
BENCHMARK = "actions101"  # actionlab.synth.benchmark.NAME


def _cmd_benchmark(args: argparse.Namespace) -> int:
    """``synth OUT --family actions101``: the 101-class benchmark (resumable; progress is logged)."""
    from actionlab.synth.benchmark import NAME, make_benchmark

    given = [flag for flag in ("groups", "clips_per_group") if getattr(args, flag) is not None]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} does not apply to --family {NAME} (25 groups of 4-7 clips, "
                         "like UCF-101); use --scale for a smaller version")
    if args.layout != "ucf101":
        raise ValueError(f"--family {NAME} is written in the ucf101 layout only, got --layout {args.layout}")
    classes = csv_list(args.classes)
    chosen: list[str] | int | None = int(classes[0]) if classes and len(classes) == 1 and classes[0].isdigit() \
        else classes
    root = make_benchmark(args.out, scale=args.scale if args.scale is not None else 1.0, seed=args.seed,
                          workers=args.workers, classes=chosen)
    print(f"wrote the {NAME} benchmark to {root} (classes and pairs: {root / 'README.txt'})")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from actionlab.synth.families import make_synthetic_dataset

    if args.family == BENCHMARK:
        return _cmd_benchmark(args)
    if args.scale is not None:
        raise ValueError(f"--scale applies to --family {BENCHMARK} only (the small families take --groups and "
                         "--clips-per-group)")
    kwargs: dict[str, Any] = {"layout": args.layout, "seed": args.seed, "family": args.family,
                              "workers": args.workers}
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
              "flow_size": "size", "flow_step": "step", "flow_downscale": "downscale", "flow_output": "output", "flow_encoding": "encoding"}


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
                        num_frames=args.num_frames, stride=args.stride, dtype=args.dtype, pool=args.pool,
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


def _add_flow_arguments(p: argparse.ArgumentParser) -> None:
    """``extract``'s ``--flow-*`` settings (:data:`FLOW_FLAGS`: each a field of :class:`FlowConfig`)."""
    p.add_argument("--flow-algorithm", choices=list(FLOW_ALGORITHMS),
                   help="flow estimator (default farneback; dis is 3-4x faster to extract but sees motion in flat, "
                        "noisy areas; tvl1 needs OpenCV's contrib build; mv reads the motion vectors of XviD/"
                        "MPEG-4 or H.264 files from the decoder, no estimation)")
    p.add_argument("--flow-preset", choices=["ultrafast", "fast", "medium"], help="DIS preset (default fast)")
    p.add_argument("--flow-bound", type=float, help="flow clipped to +-bound pixels, then uint8 (default 20)")
    p.add_argument("--flow-stack", type=int, help="L flow fields stacked per sampled frame (default 5)")
    p.add_argument("--flow-size", type=int, help="short side flow is computed at (default: the backbone's resize)")
    p.add_argument("--flow-step", type=int,
                   help="frames between the two images of each field (default 1: consecutive frames; "
                        "--flow-stack 1 --flow-step 5: one field over 5 frames, a fifth of the estimation)")
    p.add_argument("--flow-downscale", type=int,
                   help="run the estimator on frames shrunk by this factor, its field resized back and scaled "
                        "(default 1; 2: Farneback extraction at about 0.4x the CPU time)")
    p.add_argument("--flow-output", choices=["features", "raw"],
                   help="features of the backbone over the flow (temporal models; default), or the raw "
                        "quantised flow (video networks: --sampler all --flow-stack 1 --flow-size 64)")
    p.add_argument("--flow-encoding", choices=["image", "stack"],
                   help="how the backbone reads flow: image (the L fields summed, camera motion removed, drawn as "
                        "x, y, magnitude; default) or stack (2L channels, TSN's cross-modality first convolution)")


def register(sub: Any) -> None:
    """Add this module's verbs (``synth``, ``index``, ``extract``) to the ``actionlab`` parser."""
    p = sub.add_parser("synth", help="generate an action dataset as real encoded videos")
    p.add_argument("out")
    p.add_argument("--layout", default="ucf101", choices=["ucf101", "hmdb51", "kinetics", "folders"])
    p.add_argument("--family", default="demo", choices=[*FAMILIES, BENCHMARK],
                   help="which generated actions (each its own shapes, motions, textures, lengths, fps); "
                        f"{BENCHMARK}: 101 randomised classes, 13,320 videos in UCF-101's shape (resumable)")
    p.add_argument("--classes", help=f"comma-separated subset of the family's classes ({BENCHMARK}: or a number N, "
                                     "the first N)")
    p.add_argument("--groups", type=int)
    p.add_argument("--clips-per-group", type=int)
    p.add_argument("--scale", type=float, help=f"{BENCHMARK}: share of each class's clips, e.g. 0.1 (1,332 videos)")
    p.add_argument("--workers", type=int, help="rendering processes (default: all cores for large datasets)")
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
    p.add_argument("--pool", default=ExtractConfig.pool, choices=POOLS,
                   help="how the CNN pools a frame's feature map: avg, one global average; grid, a 2x2 grid of "
                        "averages that keeps where things are (1280-d); grid_wide, the grid over the last map "
                        "(5120-d); grids: mobilenet_v2 only (default: %(default)s)")
    p.add_argument("--num-frames", type=int, default=25)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--predictions", action="store_true", help="also store per-frame class scores")
    p.add_argument("--modality", default="rgb", choices=list(MODALITY_NAMES),
                   help="rgb frames; flow: dense optical flow from each sampled frame on (OpenCV); diff: the "
                        "differences of the next four frames as one image (motion at about RGB's cost)")
    _add_flow_arguments(p)
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
