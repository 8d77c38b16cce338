"""The verbs that take a trained run out of the lab: ``predict``, ``export``, ``serve`` and ``explain``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actionlab.cli.text import emit


def cmd_predict(args: argparse.Namespace) -> int:
    from actionlab.cli.text import format_predictions
    from actionlab.data.video.decode import VideoDecodeError
    from actionlab.predict.predictor import Predictor

    if args.output and len(args.videos) != 1:
        raise ValueError(f"--output writes one annotated video: give one input video, not {len(args.videos)}")
    if args.live and (len(args.videos) != 1 or args.output or args.segments):
        raise ValueError("--live reads one stream (a URL, - for stdin, /dev/video0) and prints its windows as they "
                         "complete: give one source, without --output or --segments")
    predictor = Predictor(args.run, top_k=args.top, device=args.device, window_s=args.window, hop_s=args.hop,
                          smoothing=args.smoothing)
    if args.live:
        return predict_live(predictor, args)
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


def predict_live(predictor: Any, args: argparse.Namespace) -> int:
    """``predict SOURCE --live``: one line (or JSON object) per window while the stream plays, then a summary on
    stderr; 0 when the stream ends (or ``--max-seconds`` pass), 130 on Ctrl-C."""
    import json

    live = predictor.stream(args.videos[0], max_seconds=args.max_seconds, read_timeout_s=args.read_timeout)
    code = 0
    try:
        for w in live:
            if args.json:
                print(json.dumps(w), flush=True)
            else:
                dropped = f"  dropped {w['dropped']}" if w["dropped"] else ""
                print(f"{w['time']:8.2f}s  {w['label']:24s} {w['score']:.2f}  latency {w['latency_s']:.2f}s  "
                      f"behind {w['behind_s']:.2f}s{dropped}", flush=True)
    except KeyboardInterrupt:
        code = 130
    finally:
        live.close()
    s = live.summary()
    stopped = "interrupted" if code == 130 else s["stopped"]
    print(f"live: {s['windows']} windows, {s['dropped']} dropped, {s['frames']} frames in {s['seconds']:.1f}s; "
          f"latency mean {s['latency_s']['mean']:.2f}s max {s['latency_s']['max']:.2f}s; behind at most "
          f"{s['behind_max_s']:.2f}s; ring {s['ring']['max_held']}/{s['ring']['size']} frames "
          f"({s['ring']['lost']} lost); stopped: {stopped}", file=sys.stderr, flush=True)
    return code


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


def register(sub: Any) -> None:
    """Add this module's verbs (``predict``, ``explain``, ``export``, ``serve``) to the ``actionlab`` parser."""
    p = sub.add_parser("predict", help="top labels and a timeline for video files (or a live stream: --live) with a "
                                       "trained run or export")
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
    p.add_argument("--live", action="store_true",
                   help="VIDEO is a live stream or device FFmpeg can open (rtsp://, http://, udp://, tcp://, - for "
                        "stdin, /dev/video0): print each window's label as it completes, until the stream ends")
    p.add_argument("--max-seconds", type=float, help="--live: stop after this many seconds")
    p.add_argument("--read-timeout", type=float, default=5.0,
                   help="--live: seconds without data after which the stream counts as ended (default 5)")
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
