"""docs/options.md, written from the options themselves (inputs.option_table.OPTIONS).

`python -m punie_gates.inputs.options_page docs/options.md` rewrites the page; a
self-test (tests/selftest/test_docs.py) fails when the page and OPTIONS differ, so
a new or renamed option cannot go undocumented.
"""

from __future__ import annotations

import sys
from pathlib import Path

from punie_gates.inputs.option_table import OPTIONS, Option

HEAD = """# Options

<!-- Generated from punie_gates/inputs/option_table.py by
     `python -m punie_gates.inputs.options_page docs/options.md`; do not edit by hand. -->

Every option is a command-line flag of the gates (`pytest --candidate demo`); most are
also ini keys (under `[tool.pytest.ini_options]` in pyproject.toml, or pytest.ini) and
some environment variables. The flag wins, then the environment, then the ini key,
then the default (from `data/gates.toml` where the figure is a threshold).

| flag | ini key | environment | default | meaning |
|---|---|---|---|---|
"""

TAIL = """
`PUNIE_GATES_CACHE` moves the cache (demo models and the default work folder).
Switches (`bench`, `PUNIE_GATES_BENCH`) take 1/true/yes/on or 0/false/no/off; a value
that is not one of these, or a number that is not a number, stops the run and names
the variable or ini key it came from.

Path options work with a space or `=` (`--candidate PATH`, `--training-data=PATH`):
the plugin is a `pytest11` entry point, so pytest knows its options before it parses
the command line in full, and it puts the run back on the checkout's `pyproject.toml`
when pytest, which looks for its config from the first paths it sees before loading
any plugin, started from an option's value instead. After pulling this change into an
existing checkout, run `pip install -e .` once more to register the entry point.
"""


def _default(option: Option) -> str:
    if option.action == "store_true":
        return "off"
    if option.default is None:
        return "see meaning" if "default" in option.help else "none"
    return f"`{option.default}`"


def _cell(text: str | None) -> str:
    return f"`{text}`" if text else ""


def _meaning(option: Option) -> str:
    choices = f" (one of {', '.join(f'`{c}`' for c in option.choices)})" if option.choices else ""
    return option.help.replace("|", "\\|").replace("<", "&lt;") + choices


def render() -> str:
    """The whole page, one table row per option in OPTIONS' order."""
    rows = [f"| `{o.flag}` | {_cell(o.ini)} | {_cell(o.env)} | {_default(o)} | {_meaning(o)} |" for o in OPTIONS]
    return HEAD + "\n".join(rows) + "\n" + TAIL


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m punie_gates.inputs.options_page docs/options.md", file=sys.stderr)
        return 2
    Path(args[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
