"""Acceptance check of ``actionlab export`` on a trained run: every test video gets the same top-1 label (and
nearly the same log-probs) from the run's own ``predictions_test.npz``, from plain ONNX Runtime following the
export's manifest (``examples/onnx_predict.py``: no actionlab, no torch), from ``Predictor(export)`` and from
``Predictor(run)``. Exits 1 when any top-1 label differs.

    .venv/bin/python scripts/check_export.py demo/runs/lstm demo/manifest.csv
    .venv/bin/python scripts/check_export.py demo/runs/tsm demo/manifest.csv -o tsm.actionlab
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlab.data.manifest import read_manifest
from actionlab.evaluate.predictions import load_predictions
from actionlab.predict.export import export_run
from actionlab.predict.predictor import Predictor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from onnx_predict import Export  # the plain-onnxruntime reader, kept as an example


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("manifest", type=Path, help="the manifest the run was trained on")
    parser.add_argument("-o", "--output", type=Path, help="keep the export here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check_export-") as tmp:
        export = args.output or Path(tmp) / f"{args.run.name}.actionlab"
        t0 = time.perf_counter()
        report = export_run(args.run, export, overwrite=True)
        print(f"export {export}: {report['max_abs_diff']} ({time.perf_counter() - t0:.0f} s)")
        preds = load_predictions(args.run / "predictions_test.npz")
        m = read_manifest(args.manifest)
        readers = {"plain onnxruntime": Export(export), "Predictor(export)": Predictor(export),
                   "Predictor(run)": Predictor(args.run, device="cpu")}
        same = dict.fromkeys(readers, 0)
        worst = dict.fromkeys(readers, 0.0)
        records = m.split("test")
        for rec in records:
            expected = preds.scores[list(preds.keys).index(rec.path)]
            path = m.abspath(rec)
            for name, reader in readers.items():
                got = reader(path) if name == "plain onnxruntime" else reader.scores(path).video
                same[name] += int(got.argmax() == expected.argmax())
                worst[name] = max(worst[name], float(np.abs(got - expected).max()))
        top1 = float((preds.scores.argmax(1) == np.asarray(preds.labels)).mean())
        print(f"{args.run}: {len(records)} test videos, the run's test top-1 {top1:.3f}")
        for name in readers:
            print(f"  {name:18s} same top-1 {same[name]}/{len(records)}, max |log-prob difference| {worst[name]:.2e}")
    return 0 if all(v == len(records) for v in same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
