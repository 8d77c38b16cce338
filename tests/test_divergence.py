"""A run whose loss or weights blow up: detected, stopped, flagged in strict-JSON metrics, exit status 1, and
every later command (report, evaluate, a resume) still works; settings that make no sense are refused up front;
a feature that is constant over the train set never divides by zero."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from actionlab.cli import main
from actionlab.config import TrainConfig, apply_overrides
from actionlab.features.store import FeatureStore
from tiny_data import TRAIN_ARGS, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _strict(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"a bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_dataset(tmp_path_factory.mktemp("diverge"))


def test_a_diverging_run_stops_flags_itself_and_exits_1(data: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--features", str(data[1]), "--run", str(run), *TRAIN_ARGS, "--set", "optim.lr=1e30"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"error: {run}: training diverged at epoch 0" in err and "optim.grad_clip" in err
    metrics = _strict((run / "metrics.json").read_text())
    assert metrics["diverged"] is True and metrics["diverged_epoch"] == 0 and metrics["top1"] is None
    rows = [_strict(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1  # stopped at the diverged epoch instead of training 3 more on NaN weights
    # resuming a diverged run does not train on
    assert main([*args, "--resume"]) == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    # the report renders it (the single-epoch chart once failed with "math domain error")
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 0
    assert "diverged" in (tmp_path / "report.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    assert "no model to evaluate" in capsys.readouterr().err


def test_a_loss_that_explodes_but_stays_finite_is_divergence_too(data: tuple[Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``optim.lr=1e6`` keeps the loss finite (~1e5) but far past a uniform guess's ln K: not a run that learns."""
    from actionlab.features.store import FeatureStore
    from actionlab.train.loop import EXPLODED_LOSS

    run = tmp_path / "run"
    assert main(["train", "--features", str(data[1]), "--run", str(run), *TRAIN_ARGS, "--set", "optim.lr=1e6"]) == 1
    assert "training diverged at epoch" in capsys.readouterr().err
    rows = [_strict(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    with FeatureStore(data[1]) as store:
        classes = len(store.classes)
    assert math.isfinite(rows[-1]["train_loss"]) and rows[-1]["train_loss"] > EXPLODED_LOSS * math.log(classes)
    assert all(r["train_loss"] <= EXPLODED_LOSS * math.log(classes) for r in rows[:-1])  # it stopped at the first


@pytest.mark.parametrize(("setting", "message"), [
    ("optim.grad_clip=nan", "optim.grad_clip: expected a finite number, got 'nan'"),
    ("optim.lr=inf", "optim.lr: expected a finite number, got 'inf'"),
    ("optim.momentum=-0.5", "optim.momentum must be in [0, 1)"),
    ("optim.gamma=0", "optim.gamma > 0"),
    ("seed=-3", "seed >= 0"),
])
def test_settings_that_make_no_sense_are_refused(setting: str, message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--features", str(tmp_path / "never-read.h5"), "--run", str(tmp_path / "r"),
                 "--set", setting])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError):
        apply_overrides(TrainConfig(), [setting])


def test_nan_from_the_lr_flag_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "--features", "x.h5", "--run", str(tmp_path / "r"), "--lr", "nan"]) == 2
    assert "optim.lr: expected a finite number" in capsys.readouterr().err


def test_a_constant_feature_is_normalized_to_zero_not_divided_by_zero(data: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    """The checkpoint's feature_std (what ``predict`` divides by) has no zeros when a feature is constant."""
    from actionlab.models.checkpoint import load_checkpoint

    with FeatureStore(data[1]) as store:
        assert store.std[2] == 0.0  # the dead feature
        assert np.isfinite(store.features(store.keys()[0])).all()
    run = tmp_path / "run"
    assert main(["train", "--features", str(data[1]), "--run", str(run), *TRAIN_ARGS, "--epochs", "1"]) == 0
    meta = load_checkpoint(run / "checkpoints" / "best.pt")["meta"]
    std = np.asarray(meta["feature_std"])
    assert std[2] == 1.0 and (std > 0).all()
    x = (np.zeros(4) - np.asarray(meta["feature_mean"])) / std  # as RunPredictor applies them
    assert np.isfinite(x).all()
