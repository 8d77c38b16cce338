"""actionlab: recognize human actions in short video clips.

The pipeline, one stage per subpackage, imports flowing one way (``docs/architecture.md``)::

    data -> features -> models -> train -> evaluate -> runs -> report -> sweep | predict -> serve | cli

``from actionlab import Predictor`` is the public way to use a trained run or an export
(:class:`actionlab.predict.predictor.Predictor`); it is loaded on first use, so ``import actionlab`` stays
light (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actionlab._version import __version__

if TYPE_CHECKING:
    from actionlab.predict.predictor import Predictor

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":  # loaded on first use: the prediction stage imports torch
        from actionlab.predict.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'actionlab' has no attribute {name!r}")
