"""The verbs that read results: ``evaluate`` (a run's metrics, or against a baseline), ``report`` (HTML + Markdown
of runs and sweeps) and ``list`` (models, backbones, presets and studies)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from actionlab.cli.text import emit

logger = logging.getLogger("actionlab")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_evaluation
    from actionlab.runs.evaluate import evaluate_run, single_frame_run

    if Path(args.run).suffix in (".h5", ".hdf5") and Path(args.run).is_file():
        # a feature store with per-frame predictions: the single-frame baseline, averaged per video
        args.run = single_frame_run(args.run, split=args.split)
        logger.info("single-frame baseline saved as a run: %s", args.run)
    emit(evaluate_run(args.run, split=args.split, baseline=args.baseline), args.json, format_evaluation)
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


def register(sub: Any) -> None:
    """Add this module's verbs (``evaluate``, ``report``, ``list``) to the ``actionlab`` parser."""
    p = sub.add_parser("evaluate", help="evaluate a run: top-k, mean class accuracy, confusion, changes")
    p.add_argument("run", help="run directory, or a feature store extracted with --predictions")
    p.add_argument("--split", default="test")
    p.add_argument("--baseline", help="another run to compare per-class accuracy against")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("report", help="one self-contained HTML report (+ Markdown) of runs and sweeps")
    p.add_argument("paths", nargs="+", help="run and/or sweep directories")
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--baseline", help="run to compare the others against (e.g. the single-frame run)")
    p.add_argument("--videos", type=int, default=6, help="test videos per run shown as frame strips: the most "
                                                         "wrong, and those fixed against --baseline (0: none)")
    p.add_argument("--saliency", action="store_true", help="draw the strips with each run's heat maps "
                                                           "(`actionlab explain`; slower: seconds per video)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("list", help="list models, backbones or presets")
    p.add_argument("what", choices=["models", "backbones", "presets"])
    p.set_defaults(func=cmd_list)
