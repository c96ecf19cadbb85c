"""Honest scoring of model replies: what the model called and which result fields it read.

Replies are parsed with mlx-lm's own tool parsers (the ones Punie's runtime uses), so
a call counts only if the runtime would see it: Mistral's `[TOOL_CALLS]name[ARGS]{json}`
(or the older `[TOOL_CALLS][{"name", "arguments"}]` array) and Qwen3's
`<tool_call><function=...>...</tool_call>`. Code passed to `execute_code` is analysed
with `ast` (punie_gates.code_analysis) and never run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from punie_gates.catalog import Catalog, CatalogError, load_catalog
from punie_gates.code_analysis import CodeFacts, analyse_code
from punie_gates.inputs.facts import missing_facts
from punie_gates.queries import Query, QueryFileError, QuerySet, load_queries

FORMATS = ("auto", "mistral", "qwen3")
_MISTRAL_START = "[TOOL_CALLS]"
_QWEN3_START, _QWEN3_END = "<tool_call>", "</tool_call>"
# Only for explaining a failure: the parser itself is mlx-lm's.
_MISTRAL_HEADER = re.compile(r"([\w-]+)\s*\[ARGS\]\s*")
_QWEN3_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|\Z)", re.DOTALL)
_QWEN3_NAME = re.compile(r"<function=\s*([^\s<>]+)")
_DROPPED = (
    "parses alone, but another call after [TOOL_CALLS] does not, and mlx-lm drops "
    "every call of the reply when one fails"
)


@dataclass(frozen=True)
class Call:
    name: str  # "" when even the name could not be read
    arguments: Mapping | None
    error: str | None  # set when the call is malformed (the runtime would drop it)


@dataclass(frozen=True)
class Score:
    id: str
    passed: bool
    tools: tuple[str, ...]  # typed tools called (inside execute_code or directly)
    fields: tuple[str, ...]  # result fields read, sorted
    reason: str
    calls: tuple[Call, ...]

    def to_json(self) -> dict:
        return {"id": self.id, "passed": self.passed, "tools": list(self.tools), "fields": list(self.fields), "reason": self.reason}


# --- parsing -------------------------------------------------------------------------


def detect_format(text: str) -> str:
    """Which tool-call format a reply uses: "mistral", "qwen3" or "none" (first marker wins)."""
    mistral, qwen3 = text.find(_MISTRAL_START), text.find(_QWEN3_START)
    if mistral < 0 and qwen3 < 0:
        return "none"
    if qwen3 < 0 or 0 <= mistral < qwen3:
        return "mistral"
    return "qwen3"


def parse_calls(text: str, fmt: str = "auto", tools: list[dict] | None = None) -> tuple[Call, ...]:
    """Every tool call in a reply; malformed ones carry `error`. `tools` (OpenAI schemas)
    lets the Qwen3 parser convert parameter types, as the runtime does."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "mistral":
        return _parse_mistral(text)
    if fmt == "qwen3":
        return _parse_qwen3(text, tools)
    return ()


def _call(name: str, arguments) -> Call:
    if not isinstance(arguments, dict):
        return Call(name, None, f"arguments are {type(arguments).__name__}, not a JSON object")
    return Call(name, MappingProxyType(arguments), None)


def _parse_mistral(text: str) -> tuple[Call, ...]:
    from mlx_lm.tool_parsers import mistral

    start = text.find(_MISTRAL_START)
    if start < 0:
        return ()
    # As in mlx-lm: everything after the first marker is one tool text (Mistral has no
    # end marker; a call ends at </s>), and later markers are skipped by the parser.
    tail = text[start + len(_MISTRAL_START) :].split("</s>", 1)[0].strip()
    try:
        parsed = mistral.parse_tool_call(tail)
    except (ValueError, json.JSONDecodeError):
        return _diagnose_mistral(tail)
    return tuple(_call(c["name"], c["arguments"]) for c in (parsed if isinstance(parsed, list) else [parsed]))


def _diagnose_mistral(tail: str) -> tuple[Call, ...]:
    """mlx-lm rejected the tool text: say which call is broken and which were lost with it."""
    from mlx_lm.tool_parsers import mistral

    calls: list[Call] = []
    decoder = json.JSONDecoder()
    for piece in (p.strip() for p in tail.split(_MISTRAL_START)):
        headers = list(_MISTRAL_HEADER.finditer(piece))
        if not headers:
            try:
                parsed = mistral.parse_tool_call(piece)
            except (ValueError, json.JSONDecodeError):
                calls.append(Call("", None, f"not a tool call mlx-lm can parse: {_clip(piece)!r}"))
                continue
            for c in parsed if isinstance(parsed, list) else [parsed]:
                calls.append(Call(c["name"], None, _DROPPED))
            continue
        for index, header in enumerate(headers):
            end = headers[index + 1].start() if index + 1 < len(headers) else len(piece)
            text = piece[:end].rstrip()
            try:
                decoder.raw_decode(text, header.end())
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated") or exc.pos >= len(text)
                detail = "cut off before the JSON ends" if cut else f"{exc.msg} at char {exc.pos - header.end()}"
                calls.append(Call(header.group(1), None, f"arguments are not valid JSON ({detail})"))
            else:
                calls.append(Call(header.group(1), None, _DROPPED))
    if not any(c.error != _DROPPED for c in calls):
        calls.append(Call("", None, f"mlx-lm could not parse the tool calls: {_clip(tail)!r}"))
    return tuple(calls)


def _parse_qwen3(text: str, tools: list[dict] | None) -> tuple[Call, ...]:
    from mlx_lm.tool_parsers import qwen3_coder

    # As in mlx-lm: each <tool_call> block is parsed on its own; an unclosed last block
    # still reaches the parser (generation may stop right after </function>).
    calls = []
    for block in _QWEN3_BLOCK.finditer(text):
        body, closed = block.group(1).strip(), bool(block.group(2))
        name_match = _QWEN3_NAME.search(body)
        name = name_match.group(1) if name_match else ""
        try:
            parsed = qwen3_coder.parse_tool_call(body, tools)
        except (ValueError, TypeError, SyntaxError) as exc:
            hint = "" if closed else "; no closing </tool_call>, so it was probably cut off"
            calls.append(Call(name, None, f"not a tool call mlx-lm can parse ({exc}){hint}"))
            continue
        calls.append(_call(parsed["name"], parsed["arguments"]))
    return tuple(calls)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- checking calls ------------------------------------------------------------------


def validate_call(call: Call, catalog: Catalog) -> str | None:
    """None if the call names a native tool and its arguments match that tool's JSON
    schema; otherwise why not. A typed tool called by name is not a native tool."""
    from jsonschema import Draft202012Validator

    if call.error:
        return call.error
    tool = catalog.native_tool(call.name)
    if tool is None:
        offered = ", ".join(t["name"] for t in catalog.native)
        if call.name in catalog.typed:
            return f"{call.name} is a typed tool, callable inside {offered} code, not a native tool"
        return f"no native tool named {call.name!r} (offered: {offered})"
    errors = sorted(
        Draft202012Validator(tool["parameters"]).iter_errors(dict(call.arguments or {})),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "arguments"
        return f"{call.name} arguments do not match its schema: {where}: {first.message}"
    return None


# --- scoring -------------------------------------------------------------------------


@dataclass
class _Findings:
    """What the calls of one reply amount to."""

    tools: dict[str, None]  # ordered set of typed tools called
    fields: dict[str, set[str]]
    unknown: dict[str, set[str]]
    well_formed: int
    described: list[str]


def _examine(calls: tuple[Call, ...], catalog: Catalog) -> _Findings:
    found = _Findings({}, {}, {}, 0, [])
    for call in calls:
        if call.error:
            of = f" of {call.name}" if call.name else ""
            found.described.append(f"a malformed call{of} ({call.error})")
            continue
        native = catalog.native_tool(call.name)
        if native is not None:
            problem = validate_call(call, catalog)
            if problem:
                found.described.append(f"an invalid call ({problem})")
                continue
            found.well_formed += 1
            code_param = native["code_param"]
            if code_param is None:
                if call.name in catalog.typed:  # e.g. read_file, offered directly and in code
                    found.tools[call.name] = None
                found.described.append(call.name)
                continue
            facts = analyse_code(call.arguments[code_param], catalog)
            found.described.append(_describe_code(call.name, facts))
            _merge(found, facts)
            continue
        typed = catalog.typed.get(call.name)
        if typed is not None:
            extra = sorted(set(call.arguments or {}) - set(typed.params))
            if extra:
                found.described.append(f"a call of {call.name} with arguments it does not take: {', '.join(extra)}")
                continue
            found.well_formed += 1
            found.tools[call.name] = None
            found.described.append(f"{call.name} called directly as a native tool (no result fields read)")
            continue
        found.described.append(f"a call of {call.name!r}, which is not a tool in the catalog")
    return found


def _describe_code(name: str, facts: CodeFacts) -> str:
    if not facts.parsed:
        return f"{name} with code that does not parse ({facts.error}), so it calls nothing"
    if not facts.calls:
        return f"{name} with code that calls no typed tool"
    text = f"{name} calling {', '.join(facts.calls)}"
    read = sorted({f for fields in facts.fields.values() for f in fields})
    return text + (f" (reads {', '.join(read)})" if read else " (reads no result field)")


def _merge(found: _Findings, facts: CodeFacts) -> None:
    for tool in facts.calls:
        found.tools[tool] = None
    for tool, fields in facts.fields.items():
        found.fields.setdefault(tool, set()).update(fields)
    for tool, fields in facts.unknown_fields.items():
        found.unknown.setdefault(tool, set()).update(fields)


def _expected(query: Query) -> str:
    if query.expect == "direct":
        stating = f" stating {', '.join(repr(f) for f in query.answer_facts)}" if query.answer_facts else ""
        return "a direct answer with no tool call" + stating
    parts = []
    if query.tools_any:
        parts.append(f"a call of {_any(query.tools_any)}")
    if query.tools_all:
        parts.append(f"calls of {'all of ' if len(query.tools_all) > 1 else ''}{', '.join(query.tools_all)}")
    text = " and ".join(parts)
    if query.fields_any:
        text += f", reading {_any(query.fields_any)}"
    return text


def _any(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else "any of " + ", ".join(names)


def score_response(query: Query, response: str, catalog: Catalog, fmt: str = "auto") -> Score:
    """The verdict on one reply, with a reason that says expected, found and why."""
    calls = parse_calls(response, fmt, tools=catalog.native_schemas())
    resolved = detect_format(response) if fmt == "auto" else fmt
    found = _examine(calls, catalog)
    problems: list[str] = []

    if query.expect == "direct":
        if calls:
            problems.append("a tool call on a question that needs none")
        elif not response.strip():
            problems.append("the response is empty")
        elif missing := missing_facts(response, query.answer_facts):
            problems.append("the answer does not state " + ", ".join(repr(f) for f in missing))
    else:
        called = set(found.tools)
        if not calls:
            problems.append("no tool call" + ("" if response.strip() else " (empty response)"))
        elif not found.well_formed:
            problems.append("no well-formed call")
        # With no usable call, "X not called" would only repeat the problem above.
        if found.well_formed and query.tools_any and not called & set(query.tools_any):
            problems.append(f"{_any(query.tools_any)} not called")
        missing = [t for t in query.tools_all if t not in called]
        if found.well_formed and missing:
            problems.append(f"{', '.join(missing)} not called")
        if found.well_formed and query.fields_any:
            read = {f for t in query.listed_tools for f in found.fields.get(t, ())}
            if not read & set(query.fields_any):
                problems.append(f"{_any(query.fields_any)} not read from {_any(query.listed_tools)}'s result")
        if found.unknown:
            wrong = "; ".join(f"{t}: {', '.join(sorted(f))}" for t, f in sorted(found.unknown.items()))
            problems.append(f"reads fields the results do not have ({wrong})")

    found_text = "; ".join(found.described) if calls else ("text with no tool call" if response.strip() else "nothing")
    other = {"mistral": _QWEN3_START, "qwen3": _MISTRAL_START, "none": None}.get(resolved)
    if other and other in response:
        found_text += f" (the text also holds {other} markers, which the {resolved} format ignores)"
    verdict = "FAIL" if problems else "PASS"
    reason = f"{verdict}: expected {_expected(query)}; found {found_text}"
    if problems:
        reason += "; " + "; ".join(problems)
    fields = sorted({f for fs in found.fields.values() for f in fs})
    return Score(query.id, not problems, tuple(found.tools), tuple(fields), reason, calls)


# --- command line --------------------------------------------------------------------

_EPILOG = """\
input:  RESPONSES is JSONL, one {"id": QUERY_ID, "response": TEXT} per line (other
        keys are ignored; an id may appear more than once).
output: stdout gets one JSON line per response, in order:
        {"id", "passed", "tools", "fields", "reason"}; stderr gets a summary
        (passed/total and each category against the query file's thresholds).
exit status:
  0  every response was scored; pass or fail is in the output, not the exit status
  2  bad input: an unreadable or invalid query or tool file, a line that is not a
     JSON object with string "id" and "response", or an id the query file lacks
     (each reported with file and line number; nothing is scored)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="punie-gates score",
        description="Score saved model responses against the validation queries.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", type=Path, help="query file (default: data/queries.toml)")
    parser.add_argument("--responses", type=Path, required=True, help="responses JSONL")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="tool-call format (default: detect by markers)")
    parser.add_argument("--tools", type=Path, help="tool catalog (default: data/tools.toml)")
    args = parser.parse_args(argv)

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog)
    except (CatalogError, QueryFileError) as exc:
        print(f"punie-gates score: {exc}", file=sys.stderr)
        return 2
    records, errors = read_responses(args.responses, queries)
    if errors:
        print("\n".join(f"punie-gates score: {e}" for e in errors), file=sys.stderr)
        return 2

    scores = []
    try:
        for id, response in records:
            score = score_response(queries.by_id(id), response, catalog, args.format)
            scores.append(score)
            print(json.dumps(score.to_json(), ensure_ascii=False), flush=True)
    except BrokenPipeError:  # e.g. `| head`: the reader left, so stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    print(summary(scores, queries), file=sys.stderr)
    return 0


def read_responses(path: Path, queries: QuerySet) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, response) pairs and every problem found, each naming file and line."""
    known = {q.id for q in queries.queries}
    records: list[tuple[str, str]] = []
    errors: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read responses: {exc}"]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            errors.append(f"{where}: expected a JSON object with id and response")
            continue
        id, response = record.get("id"), record.get("response")
        if not isinstance(id, str) or not isinstance(response, str):
            errors.append(f"{where}: needs string fields id and response")
        elif id not in known:
            errors.append(f"{where}: unknown query id {id!r} (not in {queries.path})")
        else:
            records.append((id, response))
    if not records and not errors:
        errors.append(f"{path}: no responses")
    return records, errors


def summary(scores: list[Score], queries: QuerySet) -> str:
    """Passed/total and each category against its minimum (judged on a complete set only)."""
    category = {q.id: q.category for q in queries.queries}
    ids = Counter(s.id for s in scores)
    complete = set(ids) == set(category) and all(n == 1 for n in ids.values())
    passed = sum(s.passed for s in scores)
    th = queries.thresholds
    lines = [f"passed {passed}/{len(scores)}"]
    if complete:
        lines[0] += f" (overall minimum {th.overall_min}: {'met' if passed >= th.overall_min else 'NOT met'})"
    else:
        lines[0] += (
            f" (responses cover {len(ids)} of {len(category)} queries"
            f"{', some more than once' if any(n > 1 for n in ids.values()) else ''}: thresholds not judged)"
        )
    for name in queries.categories:
        mine = [s for s in scores if category[s.id] == name]
        if not mine:
            continue
        ok = sum(s.passed for s in mine)
        line = f"  {name:<16} {ok}/{len(mine)}"
        if complete:
            minimum = th.category_min[name]
            line += f"  (minimum {minimum}: {'met' if ok >= minimum else 'NOT met'})"
        lines.append(line)
    if complete:
        below = [n for n in queries.categories if sum(s.passed for s in scores if category[s.id] == n) < th.category_min[n]]
        if passed < th.overall_min:
            below.insert(0, "overall")
        lines.append(f"thresholds: {'NOT met (' + ', '.join(below) + ')' if below else 'met'}")
    return "\n".join(lines)
