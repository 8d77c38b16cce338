"""Config dataclasses to and from plain dicts, dotted overrides and YAML: the machinery under
:mod:`actionlab.config`, which re-exports it (import it from there). Unknown fields are errors."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config dataclass (YAML/JSON friendly)."""
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], name)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name}: expected a mapping, got {value!r}")
        return from_dict(tp, value, _prefix=f"{name}.")  # type: ignore[arg-type]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # NaN passes every range check (nan < 0 is False): refuse it here
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], _prefix: str = "") -> T:
    """Build a config dataclass from a nested mapping; unknown keys are an error (typos must not pass)."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config field(s) {', '.join(_prefix + u for u in unknown)}; "
                         f"known: {', '.join(sorted(_prefix + n for n in names))}")
    kwargs = {k: _coerce(v, hints[k], _prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: Mapping[str, Any] | list[str]) -> T:
    """Return ``cfg`` with dotted fields replaced, e.g. ``{"optim.lr": "0.01"}`` or ``["optim.lr=0.01"]``."""
    if isinstance(overrides, list):
        pairs: dict[str, Any] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} must look like field=value (e.g. optim.lr=0.01)")
            pairs[key.strip()] = value.strip()
        overrides = pairs
    data = to_dict(cfg)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise ValueError(f"unknown config section {part!r} in override {key!r}")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"unknown config field {key!r}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optim.lr": 0.001, ...}``: the dotted view used by sweeps and reports."""
    out: dict[str, Any] = {}
    for key, value in (to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg).items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def save_yaml(cfg: Any, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write a resolved config (plus ``extra`` such as the git revision) atomically as YAML."""
    from actionlab.utils import atomic_write_text

    data = {**to_dict(cfg), **(dict(extra) if extra else {})}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, read with ``yaml.safe_load`` (plain data: a tag such as ``!!python/object`` is
    refused, never constructed). A damaged file or a tag is a ``FileError`` naming the file, line and fix."""
    from actionlab.utils import FileError

    path = Path(path)
    fix = ("restore it, or delete it and rerun `actionlab train ... --resume`, which writes a run's config.yaml "
           "again from the settings given")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as exc:
        mark = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        tag = str(exc.problem).rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!") if exc.problem else "?"
        raise FileError(path, f"{mark}YAML tag {tag} refused: config files are plain data, nothing in them is "
                        "run", "remove the tag") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise FileError(path, f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})", fix) from None
    except UnicodeDecodeError as exc:
        raise FileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})", fix) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FileError(path, f"expected a mapping of config fields, got a {type(data).__name__}", fix)
    return data


def load_yaml(cls: type[T], path: str | Path, ignore: tuple[str, ...] = ("git", "meta")) -> T:
    data = read_yaml(path)
    return from_dict(cls, {k: v for k, v in data.items() if k not in ignore})
