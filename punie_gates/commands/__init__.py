"""The `punie-gates` command: a thin dispatcher over one module per subcommand.

Each module (`convert.py`, `score.py`, `demo_model.py`, `bench.py`) owns its argparse
and calls the library; nothing here computes anything. The top of the import
order, beside plugin/.
"""

from __future__ import annotations

import importlib
import sys

from punie_gates import __version__

# name -> (module:function, one-line help). Each function takes argv and returns
# an exit status; it owns its argparse so `punie-gates NAME --help` is complete.
COMMANDS = {
    "convert": ("punie_gates.commands.convert:main", "convert Qwen3 training JSONL to Mistral chat JSONL (and back)"),
    "score": ("punie_gates.commands.score:main", "score saved responses against the validation queries"),
    "demo-model": ("punie_gates.commands.demo_model:main", "build the offline demo candidate into a folder"),
    "bench": ("punie_gates.commands.bench:main", "time naive vs. the suite's validation generation side by side"),
    "work": ("punie_gates.commands.work:main", "list the work folder's cached artifacts, remove named or stale ones"),
    "compare": (
        "punie_gates.commands.compare:main",
        "runs' saved answers re-scored side by side: two paired, three or more ranked against a baseline",
    ),
}


def _usage() -> str:
    lines = ["usage: punie-gates COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "The gates themselves run under pytest: `pytest --candidate demo` (see README)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "--version":
        print(__version__)
        return 0
    if name not in COMMANDS:
        print(f"punie-gates: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
