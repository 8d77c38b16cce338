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

from actionlab.cli import demo, prepare, results, training, use
from actionlab.cli.text import fail

logger = logging.getLogger("actionlab")



VERB_MODULES = (prepare, training, results, use, demo)
"""Each module registers its own verbs (``register(sub)``), in the order ``actionlab --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actionlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in VERB_MODULES:
        module.register(sub)
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
