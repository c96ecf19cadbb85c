"""Honest scoring of model replies: what the model called and which result fields it read.

Replies are parsed with mlx-lm's own tool parsers (the ones Punie's runtime uses), so
a call counts only if the runtime would see it: Mistral's `[TOOL_CALLS]name[ARGS]{json}`
(or the older `[TOOL_CALLS][{"name", "arguments"}]` array) and Qwen3's
`<tool_call><function=...>...</tool_call>`. Code passed to `execute_code` is analysed
with `ast` (punie_gates.formats.code_analysis) and never run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from punie_gates.answering.conversation import reply_from_message
from punie_gates.errors import UserError
from punie_gates.formats.code_analysis import CodeFacts, analyse_code, arity_problem
from punie_gates.formats.tool_calls import MISTRAL_START, QWEN3_START, ParsedCall, detect_format, parse_calls
from punie_gates.inputs import readers
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.facts import missing_facts
from punie_gates.inputs.queries import Query, QuerySet


@dataclass(frozen=True)
class Score:
    id: str
    passed: bool
    tools: tuple[str, ...]  # typed tools called (inside execute_code or directly)
    fields: tuple[str, ...]  # result fields read, sorted
    reason: str
    calls: tuple[ParsedCall, ...]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "passed": self.passed,
            "tools": list(self.tools),
            "fields": list(self.fields),
            "reason": self.reason,
        }


# --- parsing -------------------------------------------------------------------------


# --- checking calls ------------------------------------------------------------------


def validate_call(call: ParsedCall, catalog: Catalog) -> str | None:
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
    bad_calls: dict[str, None] = field(default_factory=dict)  # calls Punie answers with TypeError


def _examine(calls: tuple[ParsedCall, ...], catalog: Catalog) -> _Findings:
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
            if problem := arity_problem(typed, 0, list(call.arguments or {})):
                found.bad_calls[problem] = None
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
    found.bad_calls.update(dict.fromkeys(facts.bad_calls))


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


def api_calls(tool_calls: Sequence[Mapping[str, Any]]) -> tuple[ParsedCall, ...]:
    """The calls of an API answer's `message.tool_calls` ({name, arguments} or OpenAI's
    {function: {name, arguments}}; arguments as JSON text or an object), taken as they are."""
    calls = [c.get("function", c) if isinstance(c, Mapping) else {} for c in tool_calls]
    message = {
        "tool_calls": [{"function": {"name": c.get("name"), "arguments": c.get("arguments", {})}} for c in calls]
    }
    return reply_from_message(message).calls


def unparsed_markup(text: str, limit: int = 120) -> str | None:
    """The tool-call markup left in an API answer's text, quoted from its first marker
    (None when there is none): the server did not parse it, so it was not a call."""
    starts = [i for i in (text.find(MISTRAL_START), text.find(QWEN3_START)) if i >= 0]
    if not starts:
        return None
    quote = text[min(starts) :]
    return quote if len(quote) <= limit else quote[:limit] + "..."


def score_response(
    query: Query,
    response: str,
    catalog: Catalog,
    fmt: str = "auto",
    *,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
) -> Score:
    """The verdict on one reply, with a reason that says expected, found and why.

    `response` is the raw text (calls parsed from it in `fmt`), unless `tool_calls` is
    given: then it is an API answer (mlx_lm.server's message.content) and its calls are
    `tool_calls` and nothing else. A call the server did not return was not made; markup
    left in the content is quoted in the reason.
    """
    structured = tool_calls is not None
    if structured:
        calls = api_calls(tool_calls)
        resolved, leftover = "api", unparsed_markup(response)
    else:
        calls = parse_calls(response, fmt, tools=catalog.native_schemas())
        resolved, leftover = (detect_format(response) if fmt == "auto" else fmt), None
    return _score_calls(query, response, calls, catalog, structured=structured, resolved=resolved, leftover=leftover)


def score_reply(query: Query, reply, catalog: Catalog) -> Score:
    """score_response on an answering path's Reply (answering.conversation.Reply): its calls as
    the path parsed or returned them, its text for the rest."""
    return _score_calls(
        query,
        reply.text,
        tuple(reply.calls),
        catalog,
        structured=False,
        resolved=detect_format(reply.text),
        leftover=None,
    )


def _score_calls(
    query: Query,
    response: str,
    calls: tuple[ParsedCall, ...],
    catalog: Catalog,
    *,
    structured: bool,
    resolved: str,
    leftover: str | None,
) -> Score:
    found = _examine(calls, catalog)
    problems: list[str] = []
    unreturned = (
        f"the content holds tool-call text the server did not return as tool_calls, so no call was made: {leftover!r}"
        if leftover
        else None
    )

    if query.expect == "direct":
        if calls:
            problems.append("a tool call on a question that needs none")
        elif unreturned:
            problems.append(unreturned)
        elif not response.strip():
            problems.append("the response is empty")
        elif missing := missing_facts(response, query.answer_facts):
            problems.append("the answer does not state " + ", ".join(repr(f) for f in missing))
    else:
        called = set(found.tools)
        if not calls:
            problems.append(
                ("no tool call returned by the server" if structured else "no tool call")
                + ("" if response.strip() else " (empty response)")
            )
            if unreturned:
                problems.append(unreturned)
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
        problems.extend(found.bad_calls)  # the call never returns a result in Punie

    found_text = "; ".join(found.described) if calls else ("text with no tool call" if response.strip() else "nothing")
    if structured and calls and leftover:
        found_text += f" (the content also holds tool-call text the server did not return: {leftover!r})"
    other = {"mistral": QWEN3_START, "qwen3": MISTRAL_START, "none": None}.get(resolved)
    if other and other in response:
        found_text += f" (the text also holds {other} markers, which the {resolved} format ignores)"
    verdict = "FAIL" if problems else "PASS"
    reason = f"{verdict}: expected {_expected(query)}; found {found_text}"
    if problems:
        reason += "; " + "; ".join(problems)
    fields = sorted({f for fs in found.fields.values() for f in fs})
    return Score(query.id, not problems, tuple(found.tools), tuple(fields), reason, calls)


# --- command line --------------------------------------------------------------------


@dataclass(frozen=True)
class SavedAnswer:
    """One saved answer, in either form (answering.answers.QueryAnswer.record)."""

    id: str
    """The query id."""
    response: str
    """The text: a raw reply, or an API answer's message.content."""
    tool_calls: tuple[Mapping[str, Any], ...] | None
    """An API answer's tool calls ({name, arguments}); None: calls are parsed from the text."""


def score_saved(query: Query, saved: SavedAnswer, catalog: Catalog, fmt: str = "auto") -> Score:
    """score_response on a saved answer of either form."""
    return score_response(query, saved.response, catalog, fmt, tool_calls=saved.tool_calls)


def score_answer(query: Query, answer, catalog: Catalog) -> Score:
    """score_response on a gate's answer (answering.answers.QueryAnswer: text, tool_calls)."""
    return score_response(query, answer.text, catalog, tool_calls=answer.tool_calls)


def read_responses(path: Path, queries: QuerySet) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, response) pairs and every problem found, each naming file and line."""
    answers, errors = read_answers(path, queries)
    return [(a.id, a.response) for a in answers], errors


def _tool_calls_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return "tool_calls must be a list"
    for n, call in enumerate(value):
        call = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return f"tool_calls[{n}] needs a string name"
        if not isinstance(call.get("arguments", {}), (str, dict)):
            return f"tool_calls[{n}].arguments must be JSON text or an object"
    return None


def read_answers(path: Path, queries: QuerySet) -> tuple[list[SavedAnswer], list[str]]:
    """Saved answers (either form) and every problem found, each naming file and line."""
    known = {q.id for q in queries.queries}
    records: list[SavedAnswer] = []
    errors: list[str] = []
    try:
        lines = readers.read_jsonl(path, "responses file")
    except UserError as exc:
        return [], [str(exc)]
    for line in lines:
        where, record = f"{path}:{line.number}", line.value
        if line.problem:
            errors.append(f"{where}: {line.problem}")
            continue
        if not isinstance(record, dict):
            errors.append(f"{where}: expected a JSON object with id and response")
            continue
        id, response = record.get("id"), record.get("response")
        if not isinstance(id, str) or not isinstance(response, str):
            errors.append(f"{where}: needs string fields id and response")
        elif id not in known:
            errors.append(f"{where}: unknown query id {id!r} (not in {queries.path})")
        elif (
            "tool_calls" in record
            and record["tool_calls"] is not None
            and (problem := _tool_calls_problem(record["tool_calls"]))
        ):
            errors.append(f"{where}: {problem}")
        else:
            calls = record.get("tool_calls")
            records.append(SavedAnswer(id, response, tuple(calls) if calls is not None else None))
    if not records and not errors:
        errors.append(f"{path}: no responses")
    return records, errors
