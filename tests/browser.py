"""The headless browser the page and report tests drive: Debian's chromium through Playwright (never downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
NO_CHROMIUM = "no chromium installed (apt-get install chromium); browser test skipped"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def launch(playwright: Any) -> Any:
    """A headless chromium with no network side traffic (updates, sync, first-run pages)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
