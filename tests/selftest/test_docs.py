"""The commands the README, docs/ and the workflows show use options that exist.

Users copy these lines; a renamed flag must break a test here, not their run. Each
`pytest ...` and `punie-gates COMMAND ...` line is checked against the options the
real parsers know (`--help` of the installed commands); docs/options.md is the page
generated from the options themselves, and must match them; the README stays short
and every doc page it and the docs link to exists.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from punie_gates.inputs import options_page
from punie_gates.inputs.options import OPTIONS
from punie_gates.results import reference

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
COMMANDS = ("convert", "score", "demo-model", "bench", "compare", "work")
# Words that select another parser with its own --help: a subcommand, or bench's --fusion mode.
SUBPARSERS = {"work": ("list", "rm", "prune"), "bench": ("--fusion",)}


def _code_lines(text: str) -> list[str]:
    """Shell lines inside ```bash blocks, continuation lines joined, comments dropped."""
    lines, inside, pending = [], False, ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            inside = raw.strip() in ("```bash", "```sh", "```console") if not inside else False
            continue
        if not inside:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def _workflow_lines(path: Path) -> list[str]:
    out = []
    for job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].values():
        for step in job.get("steps", []):
            out += [ln.strip() for ln in str(step.get("run", "")).splitlines()]
    return out


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    sources = [(p, _code_lines(p.read_text(encoding="utf-8"))) for p in DOCS]
    sources += [(p, _workflow_lines(p)) for p in WORKFLOWS]
    for path, lines in sources:
        for line in lines:
            words = shlex.split(line, comments=True)
            while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
                words = words[1:]
            if words[:1] in (["pytest"], ["punie-gates"]):
                found.append((f"{path.relative_to(REPO)}: {line}", words))
    return found


@cache
def _help(*argv: str) -> str:
    proc = subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _known(words: list[str]) -> str:
    if words[0] == "pytest":
        return _help("-m", "pytest", "-p", "no:cacheprovider")
    assert len(words) > 1 and words[1] in COMMANDS, f"unknown punie-gates command in {words}"
    sub = next((w for w in words[2:] if w in SUBPARSERS.get(words[1], ())), None)
    return _help("-m", "punie_gates", words[1]) + (_help("-m", "punie_gates", words[1], sub) if sub else "")


COMMAND_LINES = _commands()


def test_the_docs_show_commands():
    shown = {words[0] for _, words in COMMAND_LINES}
    assert shown == {"pytest", "punie-gates"}, shown
    assert any(w[:3] == ["pytest", "--candidate", "demo"] for _, w in COMMAND_LINES)  # the quick start


@pytest.mark.parametrize(("where", "words"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_documented_command_uses_known_options(where, words):
    known = _known(words)
    for word in words[1:]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", known), f"{where}: {flag} is not an option"


def test_the_options_page_is_generated_from_the_options():
    page = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    assert page == options_page.render(), (
        "docs/options.md is out of date: run `python -m punie_gates.inputs.options_page docs/options.md`"
    )
    named = {
        flag
        for ln in page.splitlines()
        if ln.startswith("| `--")
        for flag in re.findall(r"`(--[\w-]+)`", ln.split("|")[1])
    }
    assert named == {o.flag for o in OPTIONS}


def test_the_report_page_is_generated_from_the_results_classes():
    page = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    assert page == reference.render(), (
        "docs/report.md is out of date: run `python -m punie_gates.results.reference docs/report.md`"
    )


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move the detail into docs/"


# Pages other branches write; linked before they land (the lead removes an entry at merge).
PENDING_PAGES: set[str] = set()


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = [ln.lstrip("#").strip() for ln in page.read_text(encoding="utf-8").splitlines() if ln.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_links_between_pages_resolve(path):
    text = path.read_text(encoding="utf-8")
    missing = []
    for target, anchor in re.findall(r"\]\(([^)#\s]+\.md)(?:#([^)\s]*))?\)", text):
        resolved = (path.parent / target).resolve()
        if str(resolved.relative_to(REPO)) in PENDING_PAGES:
            continue
        if not resolved.is_file():
            missing.append(target)
        elif anchor and anchor not in _anchors(resolved):
            missing.append(f"{target}#{anchor}")
    assert not missing, f"{path.relative_to(REPO)} links to pages or headings that do not exist: {missing}"
