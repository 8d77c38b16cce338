"""The verbs that take a trained run out of the lab: ``predict``, ``export``, ``serve`` and ``explain``."""

from __future__ import annotations

import argparse
import sys

from actionlab.cli.text import emit


def cmd_predict(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_predictions
    from actionlab.data.video.decode import VideoDecodeError
    from actionlab.predict.predictor import Predictor

    if args.output and len(args.videos) != 1:
        raise ValueError(f"--output writes one annotated video: give one input video, not {len(args.videos)}")
    predictor = Predictor(args.run, top_k=args.top, device=args.device, window_s=args.window, hop_s=args.hop,
                          smoothing=args.smoothing)
    results, failed = [], 0
    for video in args.videos:  # a bad file is reported and skipped; the others are still answered
        try:
            results.append(predictor.annotate(video, args.output) if args.output else predictor.predict(video))
        except (VideoDecodeError, OSError, ValueError, IndexError) as e:
            failed += 1
            why = e.reason if isinstance(e, VideoDecodeError) else str(e).replace(f"{video}: ", "")
            print(f"actionlab predict: error: {video}: {why}", file=sys.stderr)
    emit(results, args.json, lambda r: format_predictions(r, segments=args.segments))
    if failed:
        print(f"actionlab predict: {failed} of {len(args.videos)} videos failed", file=sys.stderr)
    return 2 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from actionlab.predict.export import export_run

    report = export_run(args.run, args.output, fmt=args.format, overwrite=args.overwrite, tolerance=args.tolerance)
    for name, diff in report["max_abs_diff"].items():
        print(f"{name:9s} {report['graphs'][name]:14s} max |PyTorch - {args.format}| = {diff:.2e}")
    print(f"export: {report['path']} ({report['kind']} run; use it with actionlab predict/serve, "
          f"actionlab.Predictor, or the graphs and manifest.json alone)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from actionlab.serve.app import ServeConfig, default_workers, serve

    cfg = ServeConfig(max_upload_mb=args.max_upload_mb, workers=args.workers or default_workers(),
                      queue=args.queue, timeout_s=args.timeout_s)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this machine can upload videos",
              file=sys.stderr)
    serve(args.run, host=args.host, port=args.port, cfg=cfg, device=args.device)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from actionlab.predict.explain import RunExplainer, write_explanation

    explainer = RunExplainer(args.run, device=args.device, layer=args.layer)
    target = int(args.target) if args.target is not None and args.target.isdigit() else args.target
    for video in args.videos:
        e = explainer(video, target=target)
        paths = write_explanation(e, args.output)
        print(f"{video}: predicted {e.classes[e.predicted]} ({e.probs()[e.predicted]:.0%}), explaining "
              f"{e.classes[e.target]}; {e.map_method}")
        print("  " + "  ".join(str(p) for p in paths.values()))
    return 0
