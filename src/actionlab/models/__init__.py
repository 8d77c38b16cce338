"""Models: temporal heads over cached features and end-to-end video networks, one registry.

Importing the package imports every model file, which registers its builders (``@register_model``).
"""

import importlib.util

from actionlab.models import c3d, frame, fusion, i3d, lrcn, r2plus1d, s3d, tsm, tv_video  # noqa: F401  (register models)
from actionlab.models.registry import create_model, list_models, model_entry, model_kind, register_model

if importlib.util.find_spec("actionlab.models.temporal") is not None:  # temporal heads (their own file)
    from actionlab.models import temporal  # noqa: F401

__all__ = ["create_model", "list_models", "model_entry", "model_kind", "register_model"]
