"""Escaping for text that comes from datasets and configs (class names, file names, overrides, sweep labels).

A class folder may be called ``<script>alert(1)</script>``: it must show as text in the HTML report and in a
rendered Markdown summary, never run. Every report writer escapes through these two functions.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

__all__ = ["esc", "md_escape", "script_json"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(text: str) -> str:
    """Control characters (ANSI escapes, bell, CR) and bidi overrides as visible ``\\x1b``-style escapes: they
    mean nothing in a report and would act if the file were shown on a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included, safe inside attributes)."""
    return html.escape(_visible(str(value)), quote=True)


def md_escape(value: Any) -> str:
    """Make text inert in a Markdown table cell or line.

    ``&``, ``<`` and ``>`` become entities (Markdown renderers pass raw HTML through, so a live ``<script>``
    would run), ``|`` is escaped (it would split a table cell) and newlines become spaces (they would end the
    table row).
    """
    text = html.escape(_visible(str(value).replace("\r", " ").replace("\n", " ")), quote=False)
    return text.replace("|", "\\|")


def script_json(value: Any) -> str:
    """JSON for an inline ``<script type="application/json">``: ``<``, ``>`` and ``&`` become ``\\u003c``...,
    so a string holding ``</script>`` cannot end the element; ``JSON.parse`` gives the text back unchanged."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
