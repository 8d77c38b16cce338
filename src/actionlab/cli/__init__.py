"""The ``actionlab`` command: the verbs (:mod:`actionlab.cli.main`) and their terminal text (:mod:`actionlab.cli.text`)."""

from actionlab.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
