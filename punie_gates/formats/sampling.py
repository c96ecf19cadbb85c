"""Strata of converted training records and a seeded sample that keeps their mix.

Gate 4 trains on 100 of Punie's 993 conversations; a plain random 100 can drift
several points from the data's mix of tool families and multi-turn share. The
sample here is allocated per stratum by largest remainder, in two levels
(single/multi-turn first, then family within each), so the multi-turn share is
off by less than one record and each stratum by less than two.
"""

from __future__ import annotations

import ast
import builtins
import json
import random
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar

MULTI_SUFFIX = "+multi"
_BUILTINS = frozenset(dir(builtins))


def _first_external_call(code: str) -> str | None:
    """Name of the first function the code calls that it neither defines nor gets from Python."""
    tree = ast.parse(code)
    local = {
        node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    calls = sorted(
        (node.lineno, node.col_offset, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id not in _BUILTINS and node.func.id not in local
    )
    return calls[0][2] if calls else None


def _call_family(function: dict) -> str:
    arguments: Any = function.get("arguments", {})
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    code = arguments.get("code") if isinstance(arguments, dict) else None
    if not isinstance(code, str):
        return f"call:{function.get('name')}"
    # Code Mode: the tool that matters is the one the code calls (typecheck, run_command, ...).
    try:
        name = _first_external_call(code)
    except SyntaxError:
        return "code:unparsed"
    return f"code:{name or 'none'}"


def record_family(record: dict) -> str:
    """The stratum of a Mistral-form record.

    `direct` (no call), `code:NAME` (the first tool called inside a Code Mode
    `code` argument, e.g. `code:typecheck`, `code:run_command`) or `call:NAME`
    (a plain call), with `+multi` when the record has more than one assistant turn.
    """
    messages = record["messages"]
    first = next(
        (call["function"] for m in messages if m.get("role") == "assistant" for call in m.get("tool_calls") or ()),
        None,
    )
    family = "direct" if first is None else _call_family(first)
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    return family + (MULTI_SUFFIX if turns > 1 else "")


Group = TypeVar("Group", bound=Hashable)


def _largest_remainder(sizes: dict[Group, int], n: int) -> dict[Group, int]:
    """Split n over the groups in proportion to their sizes; floors plus the biggest remainders."""
    total = sum(sizes.values())
    quotas = {key: size * n / total for key, size in sizes.items()}
    counts = {key: int(q) for key, q in quotas.items()}
    # Ties go to the bigger group, then the key's order, so the split is deterministic.
    order = sorted(sizes, key=lambda k: (-(quotas[k] - counts[k]), -sizes[k], str(k)))
    for key in order[: n - sum(counts.values())]:
        counts[key] += 1
    return counts


def stratified_sample(records: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """n records keeping each stratum's share; same seed, same records, in input order."""
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    if n >= len(records):
        return list(records)
    strata: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        strata.setdefault(record_family(record), []).append(index)
    levels: dict[bool, dict[str, int]] = {}
    for name, members in strata.items():
        levels.setdefault(name.endswith(MULTI_SUFFIX), {})[name] = len(members)
    per_level = _largest_remainder({key: sum(v.values()) for key, v in levels.items()}, n)
    rng = random.Random(seed)
    chosen: list[int] = []
    for level in sorted(levels):
        allocation = _largest_remainder(levels[level], per_level[level])
        for name in sorted(allocation):
            chosen += rng.sample(strata[name], allocation[name])
    return [records[i] for i in sorted(chosen)]
