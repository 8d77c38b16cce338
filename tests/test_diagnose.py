"""Plain-language diagnoses: the memorisation warning and where its numbers come from."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from actionlab.evaluate.diagnose import MEMORISATION_GAP, best_epoch_accuracies, memorisation_warning


def test_no_warning_under_15_points():
    assert memorisation_warning(0.90, 0.80) is None
    assert memorisation_warning(0.50, 0.70) is None  # validation above train is no memorisation
    assert memorisation_warning(math.nan, 0.2) is None and memorisation_warning(0.9, math.nan) is None


def test_warning_names_the_gap_and_the_knobs():
    assert memorisation_warning(0.95, 0.80) is not None  # exactly 15 points (0.95 - 0.80 < 0.15 in floats)
    message = memorisation_warning(0.98, 0.63)
    assert message is not None and "\n" not in message
    assert "98.0%" in message and "63.0%" in message and "35.0 points" in message
    for knob in ("model.dropout", "optim.weight_decay", "model.hidden_size", "sequence.sampling"):
        assert f"`{knob}`" in message


@given(st.floats(0, 1), st.floats(0, 1))
def test_warns_exactly_when_the_gap_is_at_least_15_points(train, val):
    gap = train - val
    if abs(gap - MEMORISATION_GAP) > 1e-6:
        assert (memorisation_warning(train, val) is not None) == (gap > MEMORISATION_GAP)


def test_numbers_come_from_the_best_epoch():
    history = [{"epoch": 1, "train_acc": 0.6, "val_top1": 0.55}, {"epoch": 2, "train_acc": 0.99, "val_top1": 0.5}]
    assert best_epoch_accuracies(history, {"best_epoch": 1}) == (0.6, 0.55)
    assert best_epoch_accuracies(history, {}) == (0.99, 0.5)  # no best epoch: the last one
    # metrics.json fills in what the rows lack (best_train_acc is the best epoch's, train_acc the last one's)
    assert best_epoch_accuracies([{"epoch": 1, "train_loss": 1.0}],
                                 {"best_epoch": 1, "best_train_acc": 0.9, "train_acc": 0.95, "val_top1": 0.4}) == (0.9, 0.4)
    assert best_epoch_accuracies([{"epoch": 1, "train_acc": 0.9}], {"train_acc": 0.9}) is None  # no validation
    assert best_epoch_accuracies([], {"train_acc": math.nan, "val_top1": 0.5}) is None
