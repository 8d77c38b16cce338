"""The front door and the guides stay true to the tree: every relative link in README.md and docs/*.md reaches an
existing file (and heading, for ``#anchor`` links), every ``actionlab VERB`` they show is a real verb, every file
path they name exists (and the function or class after ``path.py:`` is defined there), and every guide is linked
from the README."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from actionlab.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250  # a front door of about 200 lines; the manual lives in docs/

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# `actionlab VERB` inside code, but not `from actionlab import ...`
VERB = re.compile(r"(?<![\w./-])(?<!from )actionlab +([a-z][a-z_-]*)")
PATH = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.(?:py|sh))(?![\w-])(?::(\w+))?")
SEARCHED = ("src", "tests", "benchmarks", "scripts", "examples")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans (where Markdown links live)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def code(text: str) -> list[str]:
    """The fenced code blocks and inline code spans of a page."""
    return FENCE.findall(text) + CODE_SPAN.findall(FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every ``#anchor`` a page's headings give (repeated headings get ``-1``, ``-2``... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: ... are not ours to check


def cli_verbs() -> set[str]:
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert subs, "build_parser() has no sub-commands"
    return set(subs[0].choices)


def repo_files() -> list[str]:
    return [p.relative_to(ROOT).as_posix() for top in SEARCHED for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in (".py", ".sh") and "egg-info" not in p.as_posix()]


def test_pages_exist_and_readme_is_short() -> None:
    assert README.is_file() and len(PAGES) > 1, "README.md and docs/*.md are missing"
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (f"README.md has {lines} lines: keep it a front door (about 200) and move "
                                       "the details to a docs/ page")


def test_slug_follows_github() -> None:
    assert slug("What the CNN sees (`--view`)") == "what-the-cnn-sees---view"
    assert slug("Two streams: late and early fusion") == "two-streams-late-and-early-fusion"
    assert slug("Generated families (`actionlab synth`)") == "generated-families-actionlab-synth"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(broken)


def test_every_guide_is_linked_from_readme() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs pages not linked from README.md: {orphans}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_verbs_exist(page: Path) -> None:
    verbs = cli_verbs()
    named = {m for block in code(page.read_text(encoding="utf-8")) for m in VERB.findall(block)}
    if page == README:
        assert len(named) >= 10, f"README.md shows only {sorted(named)}: it should show the core commands"
    unknown = sorted(named - verbs)
    assert not unknown, f"{page.relative_to(ROOT)} shows `actionlab {unknown[0]}`, not a verb of {sorted(verbs)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_files_and_symbols_exist(page: Path) -> None:
    files = repo_files()
    missing = []
    for block in code(page.read_text(encoding="utf-8")):
        for path, symbol in PATH.findall(block):
            hits = [f for f in files if f == path or f.endswith("/" + path)]
            if not hits:
                missing.append(f"{path}: no such file under {', '.join(SEARCHED)}")
                continue
            defined = re.compile(rf"^\s*(?:def|class)\s+{symbol}\b|^{symbol}\s*[:=]", re.M)
            if symbol and not any(defined.search((ROOT / f).read_text(encoding="utf-8")) for f in hits):
                missing.append(f"{path}:{symbol}: {symbol} is not defined in {hits}")
    assert not missing, f"{page.relative_to(ROOT)} names what the tree does not have:\n  " + "\n  ".join(missing)


def shown_commands(text: str) -> list[str]:
    """The ``actionlab ...`` command lines of a page's fenced blocks (continuations joined, comments and ``&&``
    chains split off)."""
    commands = []
    for block in FENCE.findall(text):
        body = re.sub(r"\\\n\s*", " ", block)
        for line in body.splitlines():
            for part in re.split(r"\s&&\s", re.sub(r"\s#.*$", "", line).strip()):
                if part.startswith("actionlab "):
                    commands.append(part)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shown_commands_parse(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command a page shows in a code block is accepted by the parser (options, choices, required ones)."""
    parser = build_parser()
    rejected = []
    for command in shown_commands(page.read_text(encoding="utf-8")):
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            rejected.append(f"{command}\n    {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not rejected, f"{page.relative_to(ROOT)}: the parser rejects:\n  " + "\n  ".join(rejected)
