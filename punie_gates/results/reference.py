"""docs/report.md, written from the results classes' field docstrings (the reference of every
key of gate-report.json).

Python keeps no attribute docstrings at run time, so they are read from the results
modules' source with `ast`. `python -m punie_gates.results.reference docs/report.md`
rewrites the page; a self-test (tests/selftest/test_docs.py) fails when the page and the
classes differ, and another (tests/selftest/test_results.py) when a field has no docstring.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union

from punie_gates.results.codec import field_hints
from punie_gates.results.document import FIGURES_BY_GATE, GateEntry, RunResults
from punie_gates.results.shared import GateFigures

PACKAGE = Path(__file__).resolve().parent

HEAD = """# The report

<!-- Generated from the field docstrings of punie_gates/results/ by
     `python -m punie_gates.results.reference docs/report.md`; do not edit by hand. -->

Every run writes its report into the report folder (`--report-dir`, default `reports/`),
whatever its verdict, also when it ends in `ERROR` or is interrupted. This page says
which files there are and what every key of `gate-report.json` means.

## Files

| file | what it holds |
|---|---|
| `gate-report.html` | the report to read (below) |
| `gate-report.json` | the whole report, for programs: every key below |
| `gate-report.md` | the same as a markdown summary, with the "Resources per step" table |
| `run.json` | the run's id and every file it wrote |
| `gateN-responses.jsonl` | the candidate's answers, `{"id", "response"}` (and `tool_calls` when asked through a server): what `punie-gates score` and `punie-gates compare` re-score |
| `gateN-baseline-responses.jsonl` | the `--baseline` model's answers, in the same form |
| `gateN-conversations.jsonl` | the multi-turn pass, whole conversations (`punie-gates score --conversations`) |
| `gateN-server.log`, `gateN-baseline-server.log` | the log of each `mlx_lm.server` the gate started |
| `bench.json` | `--bench`'s figures (Gate 2) |
| `gateN-loss-curve.png` | a training gate's loss curve (also inside the HTML) |
| `previous/<when>-<run id>/` | the previous runs' files, moved aside at the start of a run (the newest 5 are kept) |

## gate-report.html

`gate-report.html` is the report to read: one self-contained file (no network; loss
curves, styles and data inside) with the verdict and why at the top, a row per gate
(status, seconds, peak memory, key figures, first reason), Gate 0's marker table,
Gate 5's categories against their minimums, the loss curves, and every query's answer
in full with the tools and fields found and the scorer's reason, filterable by
category and by passed/failed/disagreement. Where the report holds them it also shows
a baseline's answers side by side, follow-up turns, Wilson intervals, McNemar counts
and per-step resources. Replies are shown as text, never as markup. With pytest-html
installed, `pytest --html=FILE` also gets the verdict table on its page.

## What a verdict costs: the steps

Every gate records what each of its steps cost (`quantize`, `load`, `smoke`, `answer`,
`bench`, `train`, `evaluate`, `fuse`, `retention`) in `gates.gateN.figures.steps` of
`gate-report.json`: one row per step, in run order ([StepRow](#steprow)). `peak_memory_gb` is
MLX's own peak allocation, `peak_rss_gb` the process's peak resident set, `cached` a
reused artifact (about 0 s); `evaluate` is the validation-loss passes inside `train`
(`part_of: train`, seconds only). A step run by a session fixture (the 5-bit
quantization) is charged to the gate that first needed it. `gate-report.md` has the same
as a table ("Resources per step"), the terminal one line per gate:

```
gate4  steps: train 844.6s 1.91/2.04 GB +327.3 kB, fuse 10.7s 0.22/0.95 GB +40.8 MB, retention 160.0s 0.28/0.94 GB, load 5.3s 0.01/0.77 GB, answer 11.5s 0.05/0.76 GB
```

(seconds, MLX / process peak in GB, bytes written; the demo with `--gate4-iters 2` on
2 shared CPU cores, where 734 of the 845 training seconds were its three
validation-loss passes). The report's `work_folder` gives the work folder and its size
at the end of the run; `punie-gates work` ([commands.md](commands.md)) shows what it holds.

## gate-report.json

Every key below is a field of a frozen dataclass in `punie_gates/results/`, and every
field may be absent (or null): absent means this run did not record it (a gate that did
not run records nothing; an older report lacks newer keys). A program reads the whole
document typed with one call, `punie_gates.results.document.read_results(json.load(f))`,
which names any value of the wrong type by its path (`gates.gate5.figures.correct:
expected an int, found "x"`) and leaves keys it does not know out. The gate tests record
their figures through `gate_record.update(field=value)`, which refuses a field the gate's
class does not have. Statistics: [statistics.md](statistics.md); serving:
[serving.md](serving.md); the gates: [gate0-tokenizer.md](gate0-tokenizer.md) to
[gate5-full.md](gate5-full.md).
"""

GATE_TITLES = {
    "gate0": "Gate 0",
    "gate1": "Gate 1",
    "gate2": "Gate 2",
    "gate3": "Gate 3",
    "gate4": "Gate 4",
    "gate5": "Gate 5",
}


@cache
def field_docstrings() -> dict[str, dict[str, str]]:
    """Each results class's field docstrings, by class name then field, read from the source."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            docs: dict[str, str] = {}
            body = node.body
            for here, after in zip(body, [*body[1:], None]):
                if isinstance(here, ast.AnnAssign) and isinstance(here.target, ast.Name):
                    text = ""
                    if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                        text = str(after.value.value)
                    docs[here.target.id] = " ".join(text.split())
            out[node.name] = docs
    return out


def doc_of(cls: type, name: str) -> str:
    """A field's docstring, from the class in `cls`'s MRO that declares it ("" when it has none)."""
    for klass in cls.__mro__:
        declared = field_docstrings().get(klass.__name__, {})
        if name in declared:
            return declared[name]
    return ""


def documented_classes() -> list[type]:
    """Every results class the report holds, the top-level ones first, each once."""
    roots: list[type] = [RunResults, GateEntry, *FIGURES_BY_GATE.values()]
    seen: list[type] = []
    todo = list(roots)
    while todo:
        cls = todo.pop(0)
        if cls in seen:
            continue
        seen.append(cls)
        for hint in field_hints(cls).values():
            todo += [c for c in _classes_in(hint) if c not in seen]
    return seen


def missing_docstrings() -> list[str]:
    """`Class.field` for every field (and `Class` for every class) of the report without a docstring."""
    missing = []
    for cls in documented_classes():
        if not _has_docstring(cls):
            missing.append(cls.__name__)
        missing += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls) if not doc_of(cls, f.name)]
    return missing


def render() -> str:
    """The whole page."""
    parts = [HEAD]
    parts.append(_table("Top level", "", RunResults))
    parts.append(_table("Per gate: gates.gateN", "gates.gateN.", GateEntry, skip=("figures",)))
    for gate, cls in FIGURES_BY_GATE.items():
        title = f"{GATE_TITLES.get(gate, gate)}: gates.{gate}.figures"
        parts.append(_table(title, f"gates.{gate}.figures.", cls))
    nested = [c for c in documented_classes() if c not in (RunResults, GateEntry, *FIGURES_BY_GATE.values())]
    parts.append("## The values inside\n\nThe objects the keys above hold, each once.")
    parts += [_table(cls.__name__, "", cls) for cls in nested]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def _table(title: str, prefix: str, cls: type, *, skip: Sequence[str] = ()) -> str:
    doc = " ".join((cls.__doc__ or "").split())
    lines = [f"### {title}", "", doc, "", "| key | holds | meaning |", "|---|---|---|"]
    hints = field_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meaning = (doc_of(cls, f.name) or "(no docstring)").replace("|", "\\|")
        lines.append(f"| `{prefix}{f.name}` | {_holds(hints[f.name])} | {meaning} |")
    if cls is GateEntry:
        lines.append("| `gates.gateN.figures` | the gate's figures | the gate's measurements: its own table below |")
    return "\n".join(lines)


def _holds(hint: Any) -> str:
    """A type hint in words, nested classes linked to their section."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_holds(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"[{hint.__name__}](#{hint.__name__.lower()})"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return "[" + ", ".join(_holds(a) for a in args) + "]"
    if origin in (tuple, list, Sequence):
        return f"list of {_holds(args[0])}" if args else "list"
    if origin in (dict, Mapping):
        return "object" if not args or args[1] is Any else f"object of {_holds(args[1])}"
    return {int: "int", float: "number", str: "string", bool: "bool"}.get(hint, "any")


def _classes_in(hint: Any) -> list[type]:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return [hint] if hint is not GateFigures else []
    return [c for a in typing.get_args(hint) for c in _classes_in(a)]


def _has_docstring(cls: type) -> bool:
    # dataclasses gives a class without a docstring one made of its signature: "Name(field: int = None, ...)"
    doc = (cls.__doc__ or "").strip()
    return bool(doc) and not doc.startswith(f"{cls.__name__}(")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    page = render()
    if args:
        Path(args[0]).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
