"""The confusion matrix as a picture: cell colours shared by the HTML report and TensorBoard's image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["RASTER_ABOVE", "confusion_colors", "confusion_picture", "heat_color"]

_DEEP = np.array([30, 64, 175], dtype=np.float64)
RASTER_ABOVE = 30
"""Confusion matrices of more classes than this are drawn as an image (:func:`confusion_raster`)."""


def heat_color(frac: float) -> str:
    """White -> deep blue, perceptually even enough for reading counts."""
    frac = min(max(frac, 0.0), 1.0)
    r, g, b = (round(255 - frac * (255 - c)) for c in _DEEP)
    return f"rgb({r},{g},{b})"


def confusion_colors(cm: np.ndarray) -> np.ndarray:
    """``(K, K, 3)`` uint8: each cell coloured by its share of the true class (row), as :func:`heat_color`."""
    support = cm.sum(axis=1, keepdims=True)
    frac = np.clip(np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0), 0, 1)[..., None]
    return np.round(255 - frac * (255 - _DEEP)).astype(np.uint8)


def confusion_picture(cm: np.ndarray, classes: Sequence[str], cell: int | None = None) -> Image.Image:
    """A PIL image of the confusion matrix (for TensorBoard): coloured cells, class names on both axes up to
    :data:`RASTER_ABOVE` classes, counts in the cells when they fit."""
    from PIL import Image, ImageDraw, ImageFont

    k = len(classes)
    cell = cell or max(2, min(28, 560 // max(k, 1)))
    labels = k <= RASTER_ABOVE
    font = ImageFont.load_default(size=min(12, max(cell - 4, 8)))
    pad = 8 + max((int(font.getlength(c[:24])) for c in classes), default=0) if labels else 4
    img = Image.new("RGB", (pad + k * cell + 4, pad + k * cell + 4), "white")
    colours = np.repeat(np.repeat(confusion_colors(cm), cell, 0), cell, 1)
    img.paste(Image.fromarray(colours), (pad, pad))
    d = ImageDraw.Draw(img)
    if labels:
        support = cm.sum(axis=1)
        for i, name in enumerate(classes):
            y = pad + i * cell + cell / 2
            d.text((pad - 4, y), name[:24], fill=(30, 41, 59), font=font, anchor="rm")
            col = Image.new("RGBA", (pad, cell), (255, 255, 255, 0))
            ImageDraw.Draw(col).text((pad - 4, cell / 2), name[:24], fill=(30, 41, 59), font=font, anchor="rm")
            col = col.rotate(90, expand=True)
            img.paste(col, (int(pad + i * cell), 0), col)
            for j in range(k):
                if cm[i, j] and cell >= 18:
                    dark = support[i] and cm[i, j] / support[i] > 0.55
                    d.text((pad + j * cell + cell / 2, y), str(int(cm[i, j])), font=font, anchor="mm",
                           fill="white" if dark else (30, 41, 59))
    return img
