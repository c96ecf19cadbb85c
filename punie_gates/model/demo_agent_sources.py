"""The conversations the demo-agent is built from: Punie's and the fixtures', in Mistral form,
those holding a validation query's text, tool result or distinctive fact left out, and
which of their turns it learns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from punie_gates.formats.records import read_jsonl_bytes
from punie_gates.formats.to_mistral import to_mistral
from punie_gates.inputs import paths
from punie_gates.inputs.facts import alternatives

# -- what is held out ---------------------------------------------------------------

_DISTINCTIVE = re.compile(r"[._/]|[a-z][A-Z]|\d[A-Za-z]|[A-Za-z]\d")


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def held_out_strings(query_set) -> dict[str, tuple[str, ...]]:
    """What no training conversation may hold, by kind: the queries' texts, their tool
    result texts, and their distinctive answer facts.

    A fact counts as distinctive when it names something (a file, a symbol, a code:
    it holds '.', '_', '/', a camel-case join or letters glued to digits) and has at
    least 5 characters: a plain number ("3") or a plain word ("generator", "function")
    is said in any Python conversation and proves nothing. Compared case-insensitively,
    whitespace collapsed.
    """

    texts = tuple(sorted({_normal(q.text) for q in query_set.queries}))
    results = tuple(sorted({_normal(r) for q in query_set.queries for r in q.results.values()}))
    facts = tuple(
        sorted(
            {
                _normal(term)
                for q in query_set.queries
                for fact in q.answer_facts
                for term in alternatives(fact)
                if len(term) >= 5 and _DISTINCTIVE.search(term)
            }
        )
    )
    return {"query_text": texts, "tool_result": results, "answer_fact": facts}


def held_out_hits(text: str, held_out: Mapping[str, Sequence[str]]) -> list[str]:
    """Which held-out strings `text` holds ("kind: string")."""
    normal = _normal(text)
    return [f"{kind}: {s}" for kind, strings in held_out.items() for s in strings if s in normal]


def _record_text(record: Mapping) -> str:
    return json.dumps(record.get("messages", []), ensure_ascii=False)


# -- the conversations ---------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """The conversations the weights are trained on, and what was dropped."""

    records: tuple[dict, ...]
    files: tuple[Path, ...]
    read: int
    rejected: int  # lines the converter rejected
    held_out: int  # conversations dropped for holding a held-out string


def source_files(phase27_dir: Path | None) -> tuple[Path, ...]:
    files = [paths.fixtures_dir() / "demo-training" / "train.jsonl"]
    if phase27_dir is not None:
        files.insert(0, Path(phase27_dir) / "train.jsonl")
    return tuple(files)


def load_sources(phase27_dir: Path | None, catalog, query_set) -> Sources:
    """The training conversations in Mistral form, held-out ones dropped."""

    files = source_files(phase27_dir)
    held_out = held_out_strings(query_set)
    records: list[dict] = []
    read = rejected = dropped = 0
    for path in files:
        result = to_mistral(read_jsonl_bytes(path), tools=catalog.native_schemas(), source=str(path))
        read += result.read
        rejected += result.rejected
        for record in result.records:
            if held_out_hits(_record_text(record), held_out):
                dropped += 1
            else:
                records.append(record)
    return Sources(tuple(records), files, read, rejected, dropped)


# -- examples ------------------------------------------------------------------------


def with_system(messages: list[dict], prompt: str) -> list[dict]:
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": prompt}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def target_turns(messages: Sequence[Mapping]) -> list[tuple[int, str]]:
    """Indexes of the assistant turns trained on: the first one, and each one after a tool result."""
    out = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        if not out:
            out.append((i, "first"))
        elif messages[i - 1].get("role") == "tool":
            out.append((i, "after_result"))
    return out
