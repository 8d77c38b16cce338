"""Plain-language diagnoses of a training run from its numbers (pure functions; no files, no logging).

Used by the report's run sections, and meant for ``train`` and ``evaluate`` to print the same warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEMORISATION_GAP", "best_epoch_accuracies", "memorisation_warning"]

MEMORISATION_GAP = 0.15
"""Train accuracy this far (15 points) or more above validation accuracy is worth a warning."""


def memorisation_warning(train_acc: float, val_acc: float) -> str | None:
    """A one-paragraph warning when training accuracy is far above validation accuracy, else ``None``.

    Both accuracies are fractions in ``[0, 1]``. ``None`` when the gap is under :data:`MEMORISATION_GAP` or
    either number is missing (NaN).
    """
    if not (math.isfinite(train_acc) and math.isfinite(val_acc)):
        return None
    gap = train_acc - val_acc
    if gap < MEMORISATION_GAP - 1e-9:  # the tolerance keeps e.g. 0.95 - 0.80 (float 0.1499...) a warning
        return None
    return (f"Training accuracy ({train_acc:.1%}) is {gap * 100:.1f} points above validation accuracy "
            f"({val_acc:.1%}): the model is memorising its training videos instead of learning what carries "
            "over to new ones. Worth trying: more dropout (`model.dropout`), more weight decay "
            "(`optim.weight_decay`), a smaller `model.hidden_size`, or more frames per video (a longer "
            "`sequence.seq_len` or another `sequence.sampling`).")


def _number(row: Mapping[str, Any] | None, key: str) -> float | None:
    value = row.get(key) if row is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def best_epoch_accuracies(history: Sequence[Mapping[str, Any]],
                          metrics: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(train_acc, val_top1)`` of a run, or ``None`` when either is unknown.

    ``history`` is ``metrics.jsonl`` (one dict per epoch), ``metrics`` is ``metrics.json``. The numbers come
    from the row of the best epoch (``metrics["best_epoch"]``, the checkpoint that was evaluated); what that
    row lacks comes from ``metrics.json`` itself (``best_train_acc`` before ``train_acc``, the last epoch's),
    then from the last epoch that has it.
    """
    best = metrics.get("best_epoch")
    best_row = next((r for r in history if r.get("epoch") == best), None) if best is not None else None
    found = {}
    for key, saved_keys in (("train_acc", ("best_train_acc", "train_acc")), ("val_top1", ("val_top1",))):
        candidates = [_number(best_row, key), *(_number(metrics, k) for k in saved_keys),
                      *(_number(r, key) for r in reversed(history))]
        found[key] = next((v for v in candidates if v is not None), None)
    if found["train_acc"] is None or found["val_top1"] is None:
        return None
    return found["train_acc"], found["val_top1"]
