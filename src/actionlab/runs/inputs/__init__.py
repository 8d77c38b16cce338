"""What a training run reads, one class per input kind; :func:`actionlab.runs.train.train_run` drives them.

- :class:`FeatureInputs`: cached feature sequences (an HDF5 store, or several aligned stores whose features are
  concatenated per step: early fusion of RGB and flow) for ``temporal`` models.
- :class:`ClipInputs`: clips decoded from the videos of a manifest for ``video`` networks.
- :class:`FlowClipInputs`: clips of quantised optical flow from a raw flow store for ``video`` networks built
  with ``in_channels=2L`` (:mod:`actionlab.runs.inputs.flow`).
- :class:`FrameInputs`: single frames of a manifest's videos for ``frames`` classifiers (fine-tuning).

Each one knows its classes and splits, the extra builder arguments its models need (``input_dim``,
``clip_len``...), the preprocessing to record next to the weights, the training batches, and how to predict a
split with a model (through :mod:`actionlab.evaluate.inference`, the one inference path).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from actionlab.config import TrainConfig
from actionlab.runs.inputs.base import RunInputs, StorePaths
from actionlab.runs.inputs.features import FeatureInputs
from actionlab.runs.inputs.flow import FlowClipInputs, FlowFrameInputs
from actionlab.runs.inputs.videos import ClipInputs, FrameInputs

if TYPE_CHECKING:
    import torch

__all__ = ["ClipInputs", "FeatureInputs", "FlowClipInputs", "FlowFrameInputs", "FrameInputs", "RunInputs", "StorePaths", "open_inputs"]


def open_inputs(kind: str, cfg: TrainConfig, device: torch.device, rank: int, world: int,
                features: StorePaths | None, manifest: str | Path | None) -> RunInputs:
    """The inputs of a ``kind`` model (``temporal``: feature store(s), checked against ``manifest`` when both are
    given; ``video``/``frames``: a manifest, or a raw optical flow store)."""
    name = cfg.model.name
    if kind == "temporal":
        if features is None:
            raise ValueError(f"model {name!r} is a temporal model over cached features: pass --features "
                             "STORE.h5 (make one with `actionlab extract`)")
        return FeatureInputs(features, cfg, device, rank, world, manifest=manifest)
    if features is not None:  # a raw optical flow store
        if manifest is not None:
            raise ValueError(f"model {name!r} trains on the videos of --manifest or on a raw optical flow store "
                             f"(--features), not both: drop --manifest {manifest} or --features {features}")
        return (FlowClipInputs if kind == "video" else FlowFrameInputs)(features, cfg, device, rank, world)
    if manifest is None:
        what = "a video network trained on clips" if kind == "video" else "a frame classifier trained on frames"
        raise ValueError(f"model {name!r} is {what}: pass --manifest MANIFEST.csv (make one with "
                         "`actionlab index`)")
    return (ClipInputs if kind == "video" else FrameInputs)(manifest, cfg, device, rank, world)
