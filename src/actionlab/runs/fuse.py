"""Two-stream late fusion as a run: ``actionlab fuse RUN_RGB RUN_FLOW --run OUT``.

The fused run directory is a run like the others for ``evaluate``, ``report`` and ``--baseline``::

    fusion.json            the member runs (as given and resolved), their weights, and the validation table
    config.yaml            {model: {name: two_stream}, fusion: <the same record>}
    predictions_val.npz    fused validation predictions (the weight was chosen on them)
    predictions_test.npz   fused test predictions
    metrics.json           the evaluation of the test predictions (+ val_top1, the weights, the members, and
                           ``vs_members``: the fused run against each stream on the test videos, paired)
    labels.txt

The weight of the first run is chosen on the validation split alone (:func:`actionlab.evaluate.two_stream.
choose_weight`), from the ``predictions_val.npz`` that training writes; test labels never enter it. Both runs
must have predicted the same videos of the same manifest, with the same classes: anything else is refused,
naming what differs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from actionlab.evaluate.predictions import Predictions, load_predictions, save_predictions
from actionlab.evaluate.two_stream import choose_weight, fuse_log_probs
from actionlab.rundir import RunDir
from actionlab.runs.evaluate import compare_runs, paired_fields, save_evaluation
from actionlab.utils import atomic_write_text

logger = logging.getLogger(__name__)

MODEL_NAME = "two_stream"


def _manifest_checksum(run_dir: Path) -> str | None:
    """The manifest a run's data came from (its ``config.yaml``), when recorded."""
    meta = RunDir(run_dir).meta()
    if isinstance(meta.get("fusion"), dict):  # a fused run: its members'
        return meta["fusion"].get("manifest_checksum")
    return meta.get("manifest_checksum") or (meta.get("store_provenance") or {}).get("manifest_checksum")


def _split_predictions(run_dir: Path, split: str) -> Predictions:
    path = RunDir(run_dir).predictions(split)
    if not path.is_file():
        hint = ("fuse chooses its weight on the validation split: train the run on data with a val split "
                "(`actionlab index` carves one); runs trained before this version do not save predictions_val.npz"
                if split == "val" else "train or evaluate the run first")
        raise FileNotFoundError(f"{path} does not exist: {hint}")
    return load_predictions(path)


def same_videos(a: Predictions, b: Predictions, names: tuple[str, str], split: str) -> list[str]:
    """What differs between two runs' predictions of ``split`` (classes, videos, labels), as readable fields."""
    diffs = []
    if a.classes != b.classes:
        diffs.append(f"classes: {names[0]} has {list(a.classes)}, {names[1]} has {list(b.classes)}")
    ka, kb = set(a.keys.tolist()), set(b.keys.tolist())
    if ka != kb:
        diffs.append(f"{split} videos: {len(ka - kb)} only in {names[0]}, {len(kb - ka)} only in {names[1]} "
                     f"(e.g. {sorted(ka ^ kb)[:2]})")
    elif not np.array_equal(a.labels, b.align(a.keys.tolist()).labels):
        diffs.append(f"{split} labels differ for the same videos")
    return diffs


def fuse_runs(first: str | Path, second: str | Path, out: str | Path, val_split: str = "val",
              eval_split: str = "test") -> dict[str, Any]:
    """Late-fuse two runs (e.g. RGB and flow) into the run directory ``out``; returns its metrics."""
    runs = [Path(first), Path(second)]
    out = Path(out)
    names = (runs[0].name, runs[1].name)
    if out.resolve() in {r.resolve() for r in runs}:
        raise ValueError(f"--run {out} is one of the runs being fused; choose a new directory")
    target = RunDir(out)
    if target.checkpoints.exists() or (target.config.is_file() and not target.is_fused()):
        raise FileExistsError(f"{out} already holds a training run; choose another --run directory")
    diffs = []
    checksums = [_manifest_checksum(r) for r in runs]
    if None not in checksums and checksums[0] != checksums[1]:
        diffs.append(f"manifest_checksum: {names[0]}={checksums[0]} {names[1]}={checksums[1]}")
    val = [_split_predictions(r, val_split) for r in runs]
    test = [_split_predictions(r, eval_split) for r in runs]
    diffs += same_videos(*val, names, val_split) + same_videos(*test, names, eval_split)
    if diffs:
        raise ValueError(f"cannot fuse {runs[0]} and {runs[1]}: they were not evaluated on the same videos: "
                         f"{'; '.join(diffs)}. Train both on one manifest (the flow store extracted from the "
                         "manifest of the RGB run)")
    val[1], test[1] = val[1].align(val[0].keys.tolist()), test[1].align(test[0].keys.tolist())

    labelled = val[0].labels >= 0
    weight, table = choose_weight(val[0].scores[labelled], val[1].scores[labelled], val[0].labels[labelled])
    weights = [weight, round(1.0 - weight, 6)]
    fused = {s: Predictions(keys=p[0].keys, labels=p[0].labels, scores=fuse_log_probs([p[0].scores, p[1].scores],
                                                                                       weights), classes=p[0].classes)
             for s, p in ((val_split, val), (eval_split, test))}
    best_val = next(r for r in table if r["weight"] == weight)
    record = {"method": "late fusion: log_softmax(w1 * logp1 + w2 * logp2), w1 chosen on " + val_split,
              "members": [str(r) for r in runs], "resolved": [str(r.resolve()) for r in runs],
              "weights": weights, "chosen_on": val_split, "val_top1": best_val["top1"], "val_nll": best_val["nll"],
              "manifest_checksum": checksums[0], "table": table}
    out.mkdir(parents=True, exist_ok=True)
    target.write_fusion(record)
    atomic_write_text(target.config, yaml.safe_dump({"model": {"name": MODEL_NAME}, "meta": {"fusion": record}},
                                                         sort_keys=False))
    save_predictions(target.predictions(val_split), fused[val_split])
    extra = {"split": eval_split, "model": f"{MODEL_NAME} ({names[0]} x {weights[0]:g} + {names[1]} x "
                                           f"{weights[1]:g})", "val_top1": best_val["top1"],
             "fusion_weights": weights, "members": record["members"],
             "vs_members": against_members(fused[eval_split], test, runs, out)}
    metrics = save_evaluation(out, fused[eval_split], extra, split=eval_split)
    logger.info("fused %s (x%.2f) and %s (x%.2f): val top-1 %.3f, %s top-1 %.3f -> %s", runs[0], weights[0],
                runs[1], weights[1], best_val["top1"], eval_split, metrics["top1"], out)
    for member in extra["vs_members"]:
        logger.info("%s", member["verdict"])
    return metrics


def against_members(fused: Predictions, members: list[Predictions], runs: list[Path], out: Path
                    ) -> list[dict[str, Any]]:
    """The fused predictions against each member's on the same videos (paired): is fusion better than each
    stream alone by more than chance? One record per member (``member`` + the paired fields)."""
    names = [r.name if r.name != out.name else str(r) for r in runs]
    if names[0] == names[1]:
        names = [str(r) for r in runs]
    return [{"member": str(run), **paired_fields(compare_runs(member, fused, (name, out.name)))}
            for run, member, name in zip(runs, members, names)]
