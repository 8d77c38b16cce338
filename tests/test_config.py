"""Typed configs: overrides, validation, YAML round-trip, presets."""

from __future__ import annotations

import pytest

from actionlab.config import (
    ExtractConfig,
    TrainConfig,
    apply_overrides,
    flatten,
    from_dict,
    load_yaml,
    save_yaml,
    to_dict,
)
from actionlab.presets import PRESETS, preset


def test_overrides_coerce_types_and_nest() -> None:
    cfg = apply_overrides(TrainConfig(), ["optim.lr=0.01", "model.num_layers=2", "model.batch_norm=true",
                                          "sequence.loss_weighting=linear", "epochs=5"])
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.model.num_layers == 2 and cfg.model.batch_norm is True
    assert cfg.sequence.loss_weighting == "linear" and cfg.epochs == 5
    # the original is untouched (frozen dataclasses)
    assert TrainConfig().optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("bad", ["optim.lrr=0.1", "nosuch.lr=1", "model.num_layers=two", "optim.name=lbfgs",
                                 "model.dropout=1.5", "epochs"])
def test_bad_overrides_are_clear_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        apply_overrides(TrainConfig(), [bad])


def test_unknown_field_message_lists_known_fields() -> None:
    with pytest.raises(ValueError, match="optim.lr"):
        apply_overrides(TrainConfig(), {"optim.lrate": 1})


def test_yaml_round_trip(tmp_path) -> None:
    cfg = preset("lstm_batchnorm_wd")
    save_yaml(cfg, tmp_path / "config.yaml", extra={"git": "abc"})
    assert load_yaml(TrainConfig, tmp_path / "config.yaml") == cfg
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_flatten_is_dotted_view() -> None:
    flat = flatten(TrainConfig())
    assert flat["optim.lr"] == TrainConfig().optim.lr and "model.num_layers" in flat


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name: str) -> None:
    assert isinstance(preset(name), TrainConfig)


def test_extract_config_validates() -> None:
    with pytest.raises(ValueError):
        ExtractConfig(sampler="every")
    with pytest.raises(ValueError):
        ExtractConfig(num_frames=0)
