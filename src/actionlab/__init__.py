"""actionlab: recognize human actions in short video clips.

The pipeline, one stage per subpackage, imports flowing one way::

    data -> features -> models -> train -> evaluate -> experiments -> serve -> cli

``from actionlab import Predictor`` is the public way to use a trained run or an export
(:class:`actionlab.experiments.predictor.Predictor`); it is loaded on first use, so ``import actionlab``
stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # By module name: the stages import this package for __version__, and the layers contract must not see an
    # import of the top layer from here.
    if name == "Predictor":
        return importlib.import_module("actionlab.experiments.predictor").Predictor
    raise AttributeError(f"module 'actionlab' has no attribute {name!r}")
