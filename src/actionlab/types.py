"""The nouns shared by every stage, and the tensor-layout glossary.

Tensor layouts used across actionlab (letters as in the shapes in docstrings):

- ``B`` batch, ``T`` time (frames or feature steps), ``C`` channels, ``H``/``W`` height/width,
  ``D`` feature dimension, ``K`` number of classes.
- Decoded frames: ``(T, H, W, 3)`` uint8 RGB (numpy), the layout decoders produce.
- Frame batches for 2D CNNs: ``(B, 3, H, W)`` float.
- Feature sequences: ``(B, T, D)``; temporal models return per-step logits ``(B, T, K)``.
- Clips for 3D CNNs: ``(B, C, T, H, W)`` float (torchvision's video convention); they return ``(B, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "val", "test", "unused")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset: a row of a manifest."""

    path: str
    """Path relative to the manifest's root (or absolute)."""
    label: str
    """Class name as the dataset spells it (e.g. ``ApplyEyeMakeup``)."""
    label_index: int
    """Index into the manifest's class list (0-based)."""
    split: str
    """One of ``train``, ``val``, ``test``, ``unused``."""
    group: str
    """Videos of one group share a scene/actor; splits never separate a group."""
    num_frames: int = -1
    """Exact number of decodable frames; -1 when unknown or unreadable."""
    fps: float = 0.0
    duration: float = 0.0
    """Seconds."""
    width: int = 0
    """Displayed width in pixels (after the stream's rotation and sample aspect ratio, what a player shows
    and what the decoder outputs at its natural size); 0 when unknown."""
    height: int = 0
    """Displayed height in pixels; 0 when unknown."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r} for {self.path}")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"width and height must be >= 0 (0: unknown), got {self.width}x{self.height} "
                             f"for {self.path}")
