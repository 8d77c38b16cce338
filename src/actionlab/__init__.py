"""actionlab: recognize human actions in short video clips.

The pipeline, one stage per subpackage, imports flowing one way::

    data -> features -> models -> train -> evaluate -> experiments -> cli
"""

__version__ = "0.1.0"
