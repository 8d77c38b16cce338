"""The preprocessing that travels with a 2D backbone's weights (torchvision's ``weights.transforms()``).

Importing it loads no torch: an export's predictor preprocesses with numpy (:meth:`Preprocess.preprocess_array`);
extraction's torch path (:meth:`Preprocess.preprocess_batch`) imports torch when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actionlab.config import VIEWS
from actionlab.data.eval_arrays import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    centre_crop_box,
    resize_antialiased,
    resize_uint8,
)

if TYPE_CHECKING:
    import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess"]


@dataclass(frozen=True)
class Preprocess:
    """Eval-time preprocessing of a backbone's weights (torchvision's ``weights.transforms()``).

    Resize the short side to ``resize`` (long side ``int(resize * long / short)``, as torchvision), centre-crop
    ``crop`` x ``crop``, scale to [0, 1], normalise with ``mean``/``std``. With ``view="full"`` the short side
    goes to ``crop`` instead and nothing is cropped: the network sees the whole frame, its aspect kept (the 2D
    CNNs pool over any size).
    """

    resize: int
    """Short side after resizing."""
    crop: int
    """Side of the square centre crop fed to the network."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    """``bilinear`` or ``bicubic`` (antialiased, like torchvision's tensor transforms)."""
    view: str = "centre"
    """``centre``: the ImageNet centre crop; ``full``: the whole frame, short side ``crop`` (see above)."""

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"need 1 <= crop <= resize, got crop={self.crop}, resize={self.resize}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be bilinear or bicubic, got {self.interpolation!r}")
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")

    def record(self) -> dict[str, object]:
        """The fields as a store's provenance records them; ``view`` only when it is ``full`` (stores made before
        it existed, all centre crops, keep matching their reruns)."""
        out: dict[str, object] = {"resize": self.resize, "crop": self.crop, "mean": list(self.mean),
                                  "std": list(self.std), "interpolation": self.interpolation}
        if self.view != "centre":
            out["view"] = self.view
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Preprocess:
        """The inverse of :meth:`record`: a store's or run's ``preprocessing`` (no ``view``: the centre crop)."""
        return cls(resize=int(rec["resize"]), crop=int(rec["crop"]), mean=tuple(rec["mean"]),
                   std=tuple(rec["std"]), interpolation=rec.get("interpolation", "bilinear"),
                   view=rec.get("view", "centre"))

    @property
    def short_side(self) -> int:
        """The short side frames are resized to: ``resize`` (then centre-cropped), or ``crop`` (whole frame)."""
        return self.crop if self.view == "full" else self.resize

    def decode_size(self, video_h: int, video_w: int) -> tuple[int, int]:
        """``(H, W)`` to ask the decoder for so only the crop (if any) and normalisation remain."""
        if video_h <= 0 or video_w <= 0:
            raise ValueError(f"video size must be positive, got {video_h}x{video_w}")
        side = self.short_side
        # the long side: truncated as torchvision does for the centre crop; rounded for the whole frame, as the
        # decoder scales it (actionlab.data.video.decode), so frames in memory and decoded files give the same input
        long = round if self.view == "full" else int
        if video_h <= video_w:
            return side, long(side * video_w / video_h)
        return long(side * video_h / video_w), side

    def view_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of what the network sees of a frame resized to :meth:`decode_size`."""
        if self.view == "full":
            return 0, 0, h, w
        top, left, _, _ = centre_crop_box(h, w, self.crop)
        return top, left, self.crop, self.crop

    def preprocess_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB frames ``(N, H, W, 3)`` -> normalised float32 ``(N, 3, crop, crop)`` (contiguous NCHW;
        ``view="full"``: ``(N, 3, h, w)``, the whole frame at :meth:`decode_size`).

        Frames whose short side already equals :attr:`short_side` (decoded at :meth:`decode_size`) skip the resize.
        The resize runs on the uint8 batch in torch (channels-last, antialiased), then crop and normalisation
        are one fused copy plus one in-place multiply-add.
        """
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected frames of shape (N, H, W, 3), got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames, got {x.dtype}; decoders return uint8 RGB")
        x = x.permute(0, 3, 1, 2)  # (N, 3, H, W), channels-last strides: a view, no copy
        h, w = x.shape[-2:]
        if min(h, w) != self.short_side:
            out_h, out_w = self.decode_size(h, w)
            if self.interpolation == "bilinear":  # native uint8 antialiased kernel
                x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True)
            else:
                x = F.interpolate(x.float(), size=(out_h, out_w), mode="bicubic", align_corners=False,
                                  antialias=True).round_().clamp_(0, 255)
            h, w = out_h, out_w
        if min(h, w) < self.crop:
            raise ValueError(f"frames of {h}x{w} are smaller than the {self.crop}px crop")
        top, left, vh, vw = self.view_box(h, w)
        x = x[:, :, top:top + vh, left:left + vw]
        out = torch.empty((x.shape[0], 3, vh, vw), dtype=torch.float32)
        out.copy_(x)  # dtype + layout change in one pass
        return self.normalise_(out, 255.0)

    def normalise_(self, x: torch.Tensor, full_scale: float = 1.0) -> torch.Tensor:
        """In place: ``(x / full_scale - mean) / std`` of float32 ``(N, 3, H, W)`` (``full_scale`` 255 for
        uint8 pixel values, 1 for an image already in ``[0, 1]``), as one multiply-add."""
        import torch

        std = torch.tensor(self.std, dtype=torch.float32)
        scale = (1.0 / (full_scale * std)).view(1, 3, 1, 1)
        shift = (torch.tensor(self.mean, dtype=torch.float32) / std).view(1, 3, 1, 1)
        return x.mul_(scale).sub_(shift)

    def preprocess_array(self, frames: np.ndarray) -> np.ndarray:
        """:meth:`preprocess_batch` in numpy, to the bit: uint8 RGB ``(N, H, W, 3)`` -> float32 ``(N, 3, crop,
        crop)`` (``view="full"``: ``(N, 3, h, w)``). Frames at another short side are resized one at a time as
        torch resizes them (:mod:`actionlab.data.eval_arrays`: bilinear gives torch's integers; bicubic, computed in
        float64, may round a rare pixel one grey level apart)."""
        x = np.asarray(frames)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected frames of shape (N, H, W, 3), got {tuple(x.shape)}")
        if x.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames, got {x.dtype}; decoders return uint8 RGB")
        h, w = x.shape[1:3]
        if min(h, w) != self.short_side:
            size = self.decode_size(h, w)
            if self.interpolation == "bilinear":
                x = np.stack([resize_uint8(f, size) for f in x])
            else:  # torch resizes bicubic in float, then rounds (half to even, as np.rint) and clamps
                x = np.stack([np.clip(np.rint(resize_antialiased(f.astype(np.float32), size, "bicubic", (0, 1))),
                                      0, 255).astype(np.uint8) for f in x])
            h, w = size
        if min(h, w) < self.crop:
            raise ValueError(f"frames of {h}x{w} are smaller than the {self.crop}px crop")
        top, left, vh, vw = self.view_box(h, w)
        out = np.ascontiguousarray(x[:, top:top + vh, left:left + vw].transpose(0, 3, 1, 2), dtype=np.float32)
        # the same float32 constants and the same two roundings as normalise_
        std = np.asarray(self.std, np.float32)
        scale = (np.float32(1.0) / (np.float32(255.0) * std)).reshape(1, 3, 1, 1)
        shift = (np.asarray(self.mean, np.float32) / std).reshape(1, 3, 1, 1)
        out *= scale
        out -= shift
        return out
