"""Convert Mistral-form training conversations back to Punie's Qwen3 form (tool output as a
user turn), refusing what would not come back unchanged.

The other direction is to_mistral; call ids pair results with calls there, while Qwen3
pairs them by order, so a result answering any call but the next one waiting is rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from punie_gates.formats import qwen3 as q3
from punie_gates.formats.qwen3 import Call
from punie_gates.formats.records import ConversionResult, Rejected, convert_lines, json_type, record_messages
from punie_gates.formats.turns import Turn, check_tools, check_turns
from punie_gates.inputs import readers


def _arguments(raw: Any, where: str) -> dict:
    if isinstance(raw, str):
        try:
            raw = readers.parse_json(raw)
        except json.JSONDecodeError as exc:
            raise Rejected(f"{where} arguments are not JSON: {exc.msg}") from None
        except readers.NestingError as exc:
            raise Rejected(f"{where} arguments are {exc}") from None
    if not isinstance(raw, dict):
        raise Rejected(f"{where} arguments are {json_type(raw)}, not an object")
    return raw


def _mistral_turns(record: dict) -> list[Turn]:
    turns: list[Turn] = []
    waiting: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for number, role, content, message in record_messages(record, content_may_be_null=True):
        origin = f"{role} message {number}"
        calls: list[Call] = []
        if role == "assistant":
            raw_calls = message.get("tool_calls") or []
            if not isinstance(raw_calls, list):
                raise Rejected(f"{origin} tool_calls is not a list")
            waiting = []
            for k, raw in enumerate(raw_calls, 1):
                where = f"{origin}, tool call {k}"
                function = raw.get("function") if isinstance(raw, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise Rejected(f'{where} is not {{"id", "type": "function", "function": {{"name", "arguments"}}}}')
                if raw.get("type", "function") != "function":
                    raise Rejected(f"{where} has type {raw.get('type')!r}; only function calls exist")
                call_id = raw.get("id")
                if not isinstance(call_id, str) or not call_id or call_id in waiting:
                    raise Rejected(f"{where} has a missing or repeated id {call_id!r}")
                waiting.append(call_id)
                calls.append(Call(function["name"], _arguments(function.get("arguments", {}), where)))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if waiting and call_id != waiting[0]:
                raise Rejected(
                    f"{origin} answers call id {call_id!r} but the next call waiting is {waiting[0]!r} "
                    "(Qwen3 pairs results with calls by order)"
                )
            waiting = waiting[1:]
        turns.append(Turn(role, content, tuple(calls), origin))
    return turns


def _qwen3_record(turns: list[Turn]) -> dict:
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

    def parse(record: dict) -> list[Turn]:
        tools = record.get("tools")
        if tools is not None:
            try:
                check_tools(tools)
            except ValueError as exc:
                raise Rejected(f'"tools": {exc}') from None
        turns = _mistral_turns(record)
        check_turns(turns, tools)
        for tool in tools or ():
            seen_tools.setdefault(tool["function"]["name"], tool)
        return turns

    parsed, rejects, read = convert_lines(lines, parse)
    return ConversionResult(
        records=tuple(_qwen3_record(turns) for _, turns in parsed),
        rejects=tuple(rejects),
        read=read,
        tools=tuple(seen_tools.values()),
        record_lines=tuple(number for number, _ in parsed),
    )
