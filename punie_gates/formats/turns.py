"""A conversation as format-neutral turns, and the rules its turns, calls and tools meet in
either format (Qwen3 and Mistral), so no direction writes what the other cannot read back.

- Text holding a Mistral control token (`[TOOL_CALLS]`, `</s>`, ...) or a Qwen3
  marker (`<tool_call>`, `<tool_response>`, ...) outside a parsed call is
  rejected: training on it teaches a literal marker. Control tokens are refused
  inside argument values too: transformers' tokenizer would read one there as
  the control token itself, and its ids would stop matching mistral-common's.
- A record must read as a training example for mistral-common's finetuning
  validator: system prompt first, a user turn before the first assistant turn,
  each call answered by one result (a final turn's calls may go unanswered),
  ending with an assistant turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from punie_gates.formats import qwen3 as q3
from punie_gates.formats.qwen3 import Call
from punie_gates.formats.records import Rejected, json_type

_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Turn:
    """One message in a format-neutral form; a Qwen3 user turn of N results is N tool turns."""

    role: str
    text: str
    calls: tuple[Call, ...] = ()
    origin: str = field(default="", compare=False)  # "assistant message 3", for reasons


# ---------------------------------------------------------------- markers


@cache
def mistral_marker() -> re.Pattern:
    # mistral-common's list of control tokens (lazy: it imports pydantic), the
    # `[/TOOL_CALLS]` that Devstral's format does not have, and tekken's fillers.
    from mistral_common.tokens.tokenizers.base import SpecialTokens

    names = sorted({t.value for t in SpecialTokens} | {"[/TOOL_CALLS]"}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names)) + r"|<SPECIAL_\d+>")


_QWEN3_MARKER = re.compile("|".join(map(re.escape, q3.QWEN3_MARKERS)))


def _check_string(value: str, where: str, *, free_text: bool) -> None:
    if (m := mistral_marker().search(value)) or (free_text and (m := _QWEN3_MARKER.search(value))):
        raise Rejected(
            f"{where} contains the marker {m.group()!r} as text; the chat template writes markers, "
            "and training on a literal one teaches the model to emit it"
        )
    if m := _SURROGATE.search(value):
        raise Rejected(f"{where} contains a lone surrogate {m.group()!r}, which is not valid Unicode text")


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
        raise Rejected(f"{where} names function {call.name!r}; Mistral allows letters, digits, '_' and '-'")
    if catalog is not None and call.name not in catalog:
        raise Rejected(f"{where} calls {call.name!r}, which is not in the tools catalog")
    for name in call.arguments:
        if not q3.PARAMETER_NAME.fullmatch(name):
            raise Rejected(f"{where} has parameter {name!r}; names are letters, digits, '_', '.', '-'")
    for text in _walk_strings(call.arguments):
        _check_string(text, f"{where} ({call.name})", free_text=False)
    if problem := _qwen3_problem(call, tools):
        raise Rejected(f"{where} ({call.name}): {problem}")


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


def check_turns(turns: list[Turn], tools: list[dict] | None = None, catalog: set[str] | None = None) -> None:
    if not turns:
        raise Rejected('"messages" is empty')
    waiting: Turn | None = None  # the assistant turn whose calls still wait for results
    answered = 0
    seen_user = False
    for index, turn in enumerate(turns):
        if turn.role == "tool":
            if waiting is None:
                raise Rejected(
                    f"{turn.origin} is a tool result but no call is waiting for one "
                    "(results must follow the assistant turn that made the calls, one per call)"
                )
            if answered == len(waiting.calls):
                raise Rejected(
                    f"{turn.origin} is one tool result more than the {len(waiting.calls)} call(s) of {waiting.origin}"
                )
            answered += 1
        else:
            if waiting is not None and answered < len(waiting.calls):
                raise Rejected(
                    f"{waiting.origin} made {len(waiting.calls)} call(s) but {answered} result(s) "
                    f"follow before {turn.origin}"
                )
            waiting, answered = None, 0
        if turn.role == "system" and index != 0:
            raise Rejected(f"{turn.origin} is a system prompt after the start; it must be the first message")
        if turn.role in ("system", "user") and not turn.text:
            raise Rejected(f"{turn.origin} is empty")
        if turn.role == "user":
            seen_user = True
        if turn.role == "assistant":
            if not seen_user:
                raise Rejected(f"{turn.origin} comes before any user message")
            if not turn.text and not turn.calls:
                raise Rejected(f"{turn.origin} is empty: no text and no tool call")
            if turn.calls:
                waiting = turn
        _check_string(turn.text, turn.origin, free_text=True)
        for number, call in enumerate(turn.calls, 1):
            _check_call(call, f"{turn.origin}, tool call {number}", tools, catalog)
    if turns[-1].role != "assistant":
        raise Rejected(f"the conversation ends with {turns[-1].origin}; a training record ends with an assistant turn")


def check_tools(tools: Any) -> list[dict]:
    """Tool schemas in OpenAI function-tool form; ValueError says what is wrong."""
    if not isinstance(tools, list):
        raise ValueError(f"tools must be a JSON list of schemas, got {json_type(tools)}")
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
        if m := mistral_marker().search(json.dumps(tool, ensure_ascii=False)):
            raise ValueError(f"tool {name!r} contains the control token {m.group()!r}")
    return tools
