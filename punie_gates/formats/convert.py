"""Convert Punie's Qwen3 training conversations to the chat form mlx-lm trains Mistral on, and back.

Qwen3 in: `{"messages": [...]}` with calls written as `<tool_call>` XML inside the
assistant text (see qwen3_format) and results as `<tool_response>` user turns or
`tool` messages. Mistral out: `{"messages": [...], "tools": [...]}` with structured
`tool_calls` and `tool` messages; the chat template renders the control tokens,
so no text written here ever holds one. Every record of a run carries the same
`tools` list: the functions the input calls (names and parameter names seen,
string-typed) unless a catalog is given.

Decisions worth knowing:
- A line is rejected, never repaired: the reason names the message and what to fix.
  Blank lines are rejected too (counts stay simple: read == converted + rejected).
- Text holding a Mistral control token (`[TOOL_CALLS]`, `</s>`, ...) or a Qwen3
  marker (`<tool_call>`, `<tool_response>`, ...) outside a parsed call is
  rejected: training on it teaches a literal marker. Control tokens are refused
  inside argument values too: transformers' tokenizer would read one there as
  the control token itself, and its ids would stop matching mistral-common's.
- Call ids are 9 letters/digits (Mistral's rule) hashed from the converted
  conversation and the call's position, so converting again gives the same ids
  and a Qwen3 round trip reproduces them.
- A record must read as a training example for mistral-common's finetuning
  validator: system prompt first, a user turn before the first assistant turn,
  each call answered by one result (a final turn's calls may go unanswered),
  ending with an assistant turn.
- Tool output is unwrapped from `<tool_response>` whether it comes as a user turn
  or as a `tool` message (both spellings occur in Punie's datasets).
- An assistant turn that only calls tools is written without a `content` key, not
  with `content: ""`: mistral-common's `from_openai` and the official v13 templates
  render both alike, but a published v13 image-variant template drops the calls
  when content is the empty string (FACTS.md), and a missing key is what every
  template tested renders the same.
- Punie's older spelling of a call, a ```json {"name", "arguments"} fence ending
  an assistant turn, counts as a call when a tool result follows it (four
  Phase 27 conversations); otherwise a fence is text. A Qwen3 record's own keys
  other than "messages" are ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from punie_gates.formats import qwen3 as q3
from punie_gates.formats.qwen3 import Call, FormatError
from punie_gates.formats.sampling import record_family, stratified_sample
from punie_gates.inputs import readers

__all__ = [
    "ConversionResult",
    "Reject",
    "convert_training_folder",
    "read_jsonl_bytes",
    "record_family",
    "stratified_sample",
    "to_mistral",
    "to_qwen3",
]

ROLES = ("system", "user", "assistant", "tool")
ID_LENGTH = 9
_ID_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_TEXT_PREVIEW = 200
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    text: str


@dataclass(frozen=True)
class ConversionResult:
    records: tuple[dict, ...]
    rejects: tuple[Reject, ...]
    read: int
    tools: tuple[dict, ...]
    record_lines: tuple[int, ...] = ()  # input line of each record

    @property
    def converted(self) -> int:
        return len(self.records)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


@dataclass(frozen=True)
class _Turn:
    """One message in a format-neutral form; a Qwen3 user turn of N results is N tool turns."""

    role: str
    text: str
    calls: tuple[Call, ...] = ()
    origin: str = field(default="", compare=False)  # "assistant message 3", for reasons


class _Rejected(Exception):
    """A line that cannot be converted; the message is the reason."""


# ---------------------------------------------------------------- markers


@cache
def _mistral_marker() -> re.Pattern:
    # mistral-common's list of control tokens (lazy: it imports pydantic), the
    # `[/TOOL_CALLS]` that Devstral's format does not have, and tekken's fillers.
    from mistral_common.tokens.tokenizers.base import SpecialTokens

    names = sorted({t.value for t in SpecialTokens} | {"[/TOOL_CALLS]"}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names)) + r"|<SPECIAL_\d+>")


_QWEN3_MARKER = re.compile("|".join(map(re.escape, q3.QWEN3_MARKERS)))


def _check_string(value: str, where: str, *, free_text: bool) -> None:
    if (m := _mistral_marker().search(value)) or (free_text and (m := _QWEN3_MARKER.search(value))):
        raise _Rejected(
            f"{where} contains the marker {m.group()!r} as text; the chat template writes markers, "
            "and training on a literal one teaches the model to emit it"
        )
    if m := _SURROGATE.search(value):
        raise _Rejected(f"{where} contains a lone surrogate {m.group()!r}, which is not valid Unicode text")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _walk_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk_strings(item)


# ---------------------------------------------------------------- checks shared by both directions


def _check_call(call: Call, where: str, tools: list[dict] | None, catalog: set[str] | None) -> None:
    if not q3.FUNCTION_NAME.fullmatch(call.name):
        raise _Rejected(f"{where} names function {call.name!r}; Mistral allows letters, digits, '_' and '-'")
    if catalog is not None and call.name not in catalog:
        raise _Rejected(f"{where} calls {call.name!r}, which is not in the tools catalog")
    for name in call.arguments:
        if not q3.PARAMETER_NAME.fullmatch(name):
            raise _Rejected(f"{where} has parameter {name!r}; names are letters, digits, '_', '.', '-'")
    for text in _walk_strings(call.arguments):
        _check_string(text, f"{where} ({call.name})", free_text=False)
    if problem := _qwen3_problem(call, tools):
        raise _Rejected(f"{where} ({call.name}): {problem}")


def _qwen3_problem(call: Call, tools: list[dict] | None) -> str:
    """Why the call would not come back unchanged from Qwen3 XML ('' when it would).

    Checked in both directions, so to_qwen3 never loses a call to_mistral wrote.
    """
    for name, value in call.arguments.items():
        try:
            text = q3.value_text(value)
        except (TypeError, ValueError):
            return f"parameter {name!r} is not a JSON value"
        for closer in ("</parameter>", q3.TOOL_CALL_CLOSE):
            if closer in text:
                return f"parameter {name!r} holds {closer!r}, which Qwen3 XML cannot carry inside a value"
    try:
        _, (back,) = q3.parse_assistant(q3.render_assistant("", (call,)), tools)
    except ValueError as exc:  # FormatError, or not exactly one call came back
        return f"written as Qwen3 XML it does not read back ({exc})"
    for name, value in call.arguments.items():
        if (got := back.arguments.get(name)) != value:
            return f"parameter {name!r} = {value!r} reads back from Qwen3 XML as {got!r}"
    return ""


def _check_turns(turns: list[_Turn], tools: list[dict] | None = None, catalog: set[str] | None = None) -> None:
    if not turns:
        raise _Rejected('"messages" is empty')
    waiting: _Turn | None = None  # the assistant turn whose calls still wait for results
    answered = 0
    seen_user = False
    for index, turn in enumerate(turns):
        if turn.role == "tool":
            if waiting is None:
                raise _Rejected(
                    f"{turn.origin} is a tool result but no call is waiting for one "
                    "(results must follow the assistant turn that made the calls, one per call)"
                )
            if answered == len(waiting.calls):
                raise _Rejected(
                    f"{turn.origin} is one tool result more than the {len(waiting.calls)} call(s) of {waiting.origin}"
                )
            answered += 1
        else:
            if waiting is not None and answered < len(waiting.calls):
                raise _Rejected(
                    f"{waiting.origin} made {len(waiting.calls)} call(s) but {answered} result(s) "
                    f"follow before {turn.origin}"
                )
            waiting, answered = None, 0
        if turn.role == "system" and index != 0:
            raise _Rejected(f"{turn.origin} is a system prompt after the start; it must be the first message")
        if turn.role in ("system", "user") and not turn.text:
            raise _Rejected(f"{turn.origin} is empty")
        if turn.role == "user":
            seen_user = True
        if turn.role == "assistant":
            if not seen_user:
                raise _Rejected(f"{turn.origin} comes before any user message")
            if not turn.text and not turn.calls:
                raise _Rejected(f"{turn.origin} is empty: no text and no tool call")
            if turn.calls:
                waiting = turn
        _check_string(turn.text, turn.origin, free_text=True)
        for number, call in enumerate(turn.calls, 1):
            _check_call(call, f"{turn.origin}, tool call {number}", tools, catalog)
    if turns[-1].role != "assistant":
        raise _Rejected(f"the conversation ends with {turns[-1].origin}; a training record ends with an assistant turn")


# ---------------------------------------------------------------- reading lines


def read_jsonl_bytes(path) -> list[bytes]:
    """The lines of a file as bytes (decoded one by one later, so one bad line stays one reject)."""
    return list(readers.byte_lines(Path(path), "JSONL file"))


def _decode(raw: bytes | str, number: int) -> str:
    if isinstance(raw, readers.Overlong):
        raise _Rejected(raw.problem())
    if isinstance(raw, bytes):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Rejected(f"not valid UTF-8 (byte {exc.start} is {raw[exc.start : exc.start + 1]!r})") from None
    else:
        text = raw.removesuffix("\n")
    return text.removesuffix("\r")


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:_TEXT_PREVIEW]


def _load_record(text: str) -> dict:
    if not text.strip():
        raise _Rejected("empty line (JSONL holds one record per line; delete it)")
    try:
        record = readers.parse_json(text)
    except json.JSONDecodeError as exc:
        raise _Rejected(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except readers.NestingError as exc:
        raise _Rejected(str(exc)) from None
    if not isinstance(record, dict):
        raise _Rejected(f'the line is {_json_type(record)}, not an object with a "messages" list')
    if not isinstance(record.get("messages"), list):
        raise _Rejected('no "messages" list')
    return record


def _messages(record: dict, *, content_may_be_null: bool = False) -> Iterator[tuple[int, str, str, dict]]:
    """(number, role, content, message) for each message, checked for shape."""
    for number, message in enumerate(record["messages"], 1):
        if not isinstance(message, dict):
            raise _Rejected(f"message {number} is {_json_type(message)}, not an object")
        role = message.get("role")
        if role not in ROLES:
            raise _Rejected(f"message {number} has role {role!r}; expected one of {', '.join(ROLES)}")
        content = message.get("content")
        if content is None and content_may_be_null and role == "assistant":
            content = ""
        if not isinstance(content, str):
            kind = "missing" if "content" not in message else _json_type(content)
            raise _Rejected(f"{role} message {number} content is {kind}; only text content is supported")
        yield number, role, content, message


def _convert_lines(lines: Iterable[bytes | str], parse) -> tuple[list[tuple[int, Any]], list[Reject], int]:
    parsed: list[tuple[int, Any]] = []
    rejects: list[Reject] = []
    read = 0
    for number, raw in enumerate(lines, 1):
        read += 1
        try:
            parsed.append((number, parse(_load_record(_decode(raw, number)))))
        except _Rejected as exc:
            rejects.append(Reject(line=number, reason=str(exc), text=_preview(raw)))
    return parsed, rejects, read


# ---------------------------------------------------------------- Qwen3 -> Mistral


def _result_follows(messages: list, index: int) -> bool:
    """Whether message `index` (0-based) is followed by a tool result in either spelling."""
    if index + 1 >= len(messages) or not isinstance(nxt := messages[index + 1], dict):
        return False
    content = nxt.get("content")
    return nxt.get("role") == "tool" or (
        nxt.get("role") == "user"
        and isinstance(content, str)
        and content.lstrip(q3.LAYOUT_WS).startswith(q3.RESPONSE_OPEN)
    )


def _qwen3_turns(record: dict, tools: list[dict] | None) -> list[_Turn]:
    turns: list[_Turn] = []
    for number, role, content, _ in _messages(record):
        origin = f"{role} message {number}"
        try:
            if role == "assistant":
                preamble, calls = q3.parse_assistant(content, tools)
                if not calls and _result_follows(record["messages"], number - 1):
                    legacy = q3.parse_legacy_json_call(content)
                    if legacy is not None:
                        preamble, calls = legacy[0], (legacy[1],)
                turns.append(_Turn("assistant", preamble, calls, origin))
            elif role in ("user", "tool") and (outputs := q3.split_tool_responses(content)) is not None:
                # Some of Punie's datasets also wrap a `tool` message's content in
                # <tool_response>: the same result, unwrapped the same way.
                turns += [_Turn("tool", out, (), f"{origin} (tool result {k})") for k, out in enumerate(outputs, 1)]
            else:
                turns.append(_Turn(role, content, (), origin))
        except FormatError as exc:
            raise _Rejected(f"{origin} {exc}") from None
    return turns


def make_call_id(digest: bytes, turn: int, call: int) -> str:
    number = int.from_bytes(hashlib.sha256(digest + f"{turn}.{call}".encode()).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def _mistral_record(turns: list[_Turn], tools: list[dict]) -> dict:
    content = [[t.role, t.text, [[c.name, c.arguments] for c in t.calls]] for t in turns]
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).digest()
    messages: list[dict] = []
    pending: list[str] = []
    for index, turn in enumerate(turns):
        if turn.role == "tool":
            messages.append({"role": "tool", "content": turn.text, "tool_call_id": pending.pop(0)})
            continue
        # A call-only assistant turn has no `content` key: every official template and
        # mistral-common render that alike, while some published templates drop the
        # calls of a turn whose content is "" (see the module docstring).
        message: dict[str, Any] = {"role": turn.role}
        if turn.text or not turn.calls:
            message["content"] = turn.text
        if turn.calls:
            pending = [make_call_id(digest, index, k) for k in range(len(turn.calls))]
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for cid, c in zip(pending, turn.calls)
            ]
        messages.append(message)
    return {"messages": messages, "tools": copy.deepcopy(tools)}


def derive_tools(conversations: Iterable[list[_Turn]]) -> list[dict]:
    """A schema for every function called: parameters seen, string-typed; required if always passed."""
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for turns in conversations:
        for call in (c for t in turns for c in t.calls):
            names = set(call.arguments)
            every, required = seen.setdefault(call.name, (set(names), set(names)))
            every |= names
            required &= names
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"{name}, as called in the training data (schema inferred from its calls).",
                "parameters": {
                    "type": "object",
                    "properties": {p: {"type": "string"} for p in sorted(every)},
                    "required": sorted(required),
                },
            },
        }
        for name, (every, required) in sorted(seen.items())
    ]


def check_tools(tools: Any) -> list[dict]:
    """Tool schemas in OpenAI function-tool form; ValueError says what is wrong."""
    if not isinstance(tools, list):
        raise ValueError(f"tools must be a JSON list of schemas, got {_json_type(tools)}")
    names = set()
    for number, tool in enumerate(tools, 1):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise ValueError(f'tool {number} is not {{"type": "function", "function": {{...}}}}')
        name = function.get("name")
        if not isinstance(name, str) or not q3.FUNCTION_NAME.fullmatch(name):
            raise ValueError(f"tool {number} has name {name!r}; use letters, digits, '_' and '-' (at most 64)")
        if name in names:
            raise ValueError(f"tool {name!r} is listed twice")
        if not isinstance(function.get("parameters", {}), dict):
            raise ValueError(f"tool {name!r}: parameters must be a JSON schema object")
        names.add(name)
        if m := _mistral_marker().search(json.dumps(tool, ensure_ascii=False)):
            raise ValueError(f"tool {name!r} contains the control token {m.group()!r}")
    return tools


def _parse_qwen3(lines: Iterable[bytes | str], tools: list[dict] | None):
    catalog = None if tools is None else {t["function"]["name"] for t in tools}

    def parse(record: dict) -> list[_Turn]:
        turns = _qwen3_turns(record, tools)
        _check_turns(turns, tools, catalog)
        return turns

    return _convert_lines(lines, parse)


def _build_mistral(parsed, rejects, read, tools: list[dict]) -> ConversionResult:
    return ConversionResult(
        records=tuple(_mistral_record(turns, tools) for _, turns in parsed),
        rejects=tuple(rejects),
        read=read,
        tools=tuple(tools),
        record_lines=tuple(number for number, _ in parsed),
    )


def to_mistral(
    lines: Iterable[bytes | str], tools: list[dict] | None = None, source: str = "<input>"
) -> ConversionResult:
    """Convert Qwen3 JSONL lines; `tools` (a catalog) replaces the schemas derived from the calls.

    `source` names the input in error messages raised for the whole run (a bad catalog).
    """
    if tools is not None:
        try:
            tools = check_tools(tools)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    parsed, rejects, read = _parse_qwen3(lines, tools)
    return _build_mistral(parsed, rejects, read, tools if tools is not None else derive_tools(t for _, t in parsed))


def convert_training_folder(folder: Path, tools: list[dict] | None = None) -> tuple[ConversionResult, ConversionResult]:
    """Convert train.jsonl and valid.jsonl of a folder; both carry one tools list (their union)."""
    folder = Path(folder)
    if tools is not None:
        tools = check_tools(tools)
    runs = [_parse_qwen3(read_jsonl_bytes(folder / name), tools) for name in ("train.jsonl", "valid.jsonl")]
    if tools is None:
        tools = derive_tools(turns for parsed, _, _ in runs for _, turns in parsed)
    train, valid = (_build_mistral(parsed, rejects, read, tools) for parsed, rejects, read in runs)
    return train, valid


# ---------------------------------------------------------------- Mistral -> Qwen3


def _arguments(raw: Any, where: str) -> dict:
    if isinstance(raw, str):
        try:
            raw = readers.parse_json(raw)
        except json.JSONDecodeError as exc:
            raise _Rejected(f"{where} arguments are not JSON: {exc.msg}") from None
        except readers.NestingError as exc:
            raise _Rejected(f"{where} arguments are {exc}") from None
    if not isinstance(raw, dict):
        raise _Rejected(f"{where} arguments are {_json_type(raw)}, not an object")
    return raw


def _mistral_turns(record: dict) -> list[_Turn]:
    turns: list[_Turn] = []
    waiting: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for number, role, content, message in _messages(record, content_may_be_null=True):
        origin = f"{role} message {number}"
        calls: list[Call] = []
        if role == "assistant":
            raw_calls = message.get("tool_calls") or []
            if not isinstance(raw_calls, list):
                raise _Rejected(f"{origin} tool_calls is not a list")
            waiting = []
            for k, raw in enumerate(raw_calls, 1):
                where = f"{origin}, tool call {k}"
                function = raw.get("function") if isinstance(raw, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise _Rejected(f'{where} is not {{"id", "type": "function", "function": {{"name", "arguments"}}}}')
                if raw.get("type", "function") != "function":
                    raise _Rejected(f"{where} has type {raw.get('type')!r}; only function calls exist")
                call_id = raw.get("id")
                if not isinstance(call_id, str) or not call_id or call_id in waiting:
                    raise _Rejected(f"{where} has a missing or repeated id {call_id!r}")
                waiting.append(call_id)
                calls.append(Call(function["name"], _arguments(function.get("arguments", {}), where)))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if waiting and call_id != waiting[0]:
                raise _Rejected(
                    f"{origin} answers call id {call_id!r} but the next call waiting is {waiting[0]!r} "
                    "(Qwen3 pairs results with calls by order)"
                )
            waiting = waiting[1:]
        turns.append(_Turn(role, content, tuple(calls), origin))
    return turns


def _qwen3_record(turns: list[_Turn]) -> dict:
    messages = []
    for turn in turns:
        if turn.role == "tool":
            messages.append({"role": "user", "content": q3.render_tool_response(turn.text)})
        elif turn.role == "assistant":
            messages.append({"role": "assistant", "content": q3.render_assistant(turn.text, turn.calls)})
        else:
            messages.append({"role": turn.role, "content": turn.text})
    return {"messages": messages}


def to_qwen3(lines: Iterable[bytes | str], source: str = "<input>") -> ConversionResult:
    """Convert Mistral-form JSONL lines back to Punie's Qwen3 form (tool output as a user turn)."""
    seen_tools: dict[str, dict] = {}

    def parse(record: dict) -> list[_Turn]:
        tools = record.get("tools")
        if tools is not None:
            try:
                check_tools(tools)
            except ValueError as exc:
                raise _Rejected(f'"tools": {exc}') from None
        turns = _mistral_turns(record)
        _check_turns(turns, tools)
        for tool in tools or ():
            seen_tools.setdefault(tool["function"]["name"], tool)
        return turns

    parsed, rejects, read = _convert_lines(lines, parse)
    return ConversionResult(
        records=tuple(_qwen3_record(turns) for _, turns in parsed),
        rejects=tuple(rejects),
        read=read,
        tools=tuple(seen_tools.values()),
        record_lines=tuple(number for number, _ in parsed),
    )


# ---------------------------------------------------------------- command line
