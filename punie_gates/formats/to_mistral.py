"""Convert Punie's Qwen3 training conversations to the chat form mlx-lm trains Mistral on.

Qwen3 in: `{"messages": [...]}` with calls written as `<tool_call>` XML inside the
assistant text (see qwen3_format) and results as `<tool_response>` user turns or
`tool` messages. Mistral out: `{"messages": [...], "tools": [...]}` with structured
`tool_calls` and `tool` messages; the chat template renders the control tokens,
so no text written here ever holds one. Every record of a run carries the same
`tools` list: the functions the input calls (names and parameter names seen,
string-typed) unless a catalog is given. The way back is to_qwen3; what both
directions refuse is in turns, how lines are read and rejected in records.

Decisions worth knowing:
- Call ids are 9 letters/digits (Mistral's rule) hashed from the converted
  conversation and the call's position, so converting again gives the same ids
  and a Qwen3 round trip reproduces them.
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
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from punie_gates.formats import qwen3 as q3
from punie_gates.formats.qwen3 import FormatError
from punie_gates.formats.records import ConversionResult, Rejected, convert_lines, read_jsonl_bytes, record_messages
from punie_gates.formats.turns import Turn, check_tools, check_turns

ID_LENGTH = 9
_ID_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


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


def _qwen3_turns(record: dict, tools: list[dict] | None) -> list[Turn]:
    turns: list[Turn] = []
    for number, role, content, _ in record_messages(record):
        origin = f"{role} message {number}"
        try:
            if role == "assistant":
                preamble, calls = q3.parse_assistant(content, tools)
                if not calls and _result_follows(record["messages"], number - 1):
                    legacy = q3.parse_legacy_json_call(content)
                    if legacy is not None:
                        preamble, calls = legacy[0], (legacy[1],)
                turns.append(Turn("assistant", preamble, calls, origin))
            elif role in ("user", "tool") and (outputs := q3.split_tool_responses(content)) is not None:
                # Some of Punie's datasets also wrap a `tool` message's content in
                # <tool_response>: the same result, unwrapped the same way.
                turns += [Turn("tool", out, (), f"{origin} (tool result {k})") for k, out in enumerate(outputs, 1)]
            else:
                turns.append(Turn(role, content, (), origin))
        except FormatError as exc:
            raise Rejected(f"{origin} {exc}") from None
    return turns


def make_call_id(digest: bytes, turn: int, call: int) -> str:
    number = int.from_bytes(hashlib.sha256(digest + f"{turn}.{call}".encode()).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def _mistral_record(turns: list[Turn], tools: list[dict]) -> dict:
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


def derive_tools(conversations: Iterable[list[Turn]]) -> list[dict]:
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


def _parse_qwen3(lines: Iterable[bytes | str], tools: list[dict] | None):
    catalog = None if tools is None else {t["function"]["name"] for t in tools}

    def parse(record: dict) -> list[Turn]:
        turns = _qwen3_turns(record, tools)
        check_turns(turns, tools, catalog)
        return turns

    return convert_lines(lines, parse)


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
