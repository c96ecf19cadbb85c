"""Tool calls in a model's reply, parsed with mlx-lm's own tool parsers (the ones Punie's
runtime uses), so a call counts only if the runtime would see it: Mistral's
`[TOOL_CALLS]name[ARGS]{json}` (or the older `[TOOL_CALLS][{"name", "arguments"}]`
array) and Qwen3's `<tool_call><function=...>...</tool_call>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from punie_gates.inputs import readers

FORMATS = ("auto", "mistral", "qwen3")


MISTRAL_START = "[TOOL_CALLS]"


QWEN3_START = "<tool_call>"


# Only for explaining a failure: the parser itself is mlx-lm's.
_MISTRAL_HEADER = re.compile(r"([\w-]+)\s*\[ARGS\]\s*")


_QWEN3_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|\Z)", re.DOTALL)


_QWEN3_NAME = re.compile(r"<function=\s*([^\s<>]+)")


_DROPPED = (
    "parses alone, but another call after [TOOL_CALLS] does not, and mlx-lm drops "
    "every call of the reply when one fails"
)


@dataclass(frozen=True)
class ParsedCall:
    name: str  # "" when even the name could not be read
    arguments: Mapping | None
    error: str | None  # set when the call is malformed (the runtime would drop it)


def detect_format(text: str) -> str:
    """Which tool-call format a reply uses: "mistral", "qwen3" or "none" (first marker wins)."""
    mistral, qwen3 = text.find(MISTRAL_START), text.find(QWEN3_START)
    if mistral < 0 and qwen3 < 0:
        return "none"
    if qwen3 < 0 or 0 <= mistral < qwen3:
        return "mistral"
    return "qwen3"


def parse_calls(text: str, fmt: str = "auto", tools: list[dict] | None = None) -> tuple[ParsedCall, ...]:
    """Every tool call in a reply; malformed ones carry `error`. `tools` (OpenAI schemas)
    lets the Qwen3 parser convert parameter types, as the runtime does."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(text)
    try:
        calls = _parse_mistral(text) if fmt == "mistral" else _parse_qwen3(text, tools) if fmt == "qwen3" else ()
    except RecursionError:  # a degenerate reply (or saved answer): brackets nested past what a JSON parser takes
        return (ParsedCall("", None, f"arguments are {readers.NestingError(readers.ARGUMENTS_DEPTH)}"),)
    deep = readers.NestingError(readers.ARGUMENTS_DEPTH)
    return tuple(ParsedCall(c.name, None, f"arguments are {deep}")
                 if c.arguments is not None and readers.too_deep(dict(c.arguments), readers.ARGUMENTS_DEPTH) else c
                 for c in calls)  # fmt: skip


def _call(name: str, arguments) -> ParsedCall:
    if not isinstance(arguments, dict):
        return ParsedCall(name, None, f"arguments are {type(arguments).__name__}, not a JSON object")
    return ParsedCall(name, MappingProxyType(arguments), None)


def _parse_mistral(text: str) -> tuple[ParsedCall, ...]:
    from mlx_lm.tool_parsers import mistral

    start = text.find(MISTRAL_START)
    if start < 0:
        return ()
    # As in mlx-lm: everything after the first marker is one tool text (Mistral has no
    # end marker; a call ends at </s>), and later markers are skipped by the parser.
    tail = text[start + len(MISTRAL_START) :].split("</s>", 1)[0].strip()
    try:
        parsed = mistral.parse_tool_call(tail)
    except (ValueError, json.JSONDecodeError):
        return _diagnose_mistral(tail)
    return tuple(_call(c["name"], c["arguments"]) for c in (parsed if isinstance(parsed, list) else [parsed]))


def _diagnose_mistral(tail: str) -> tuple[ParsedCall, ...]:
    """mlx-lm rejected the tool text: say which call is broken and which were lost with it."""
    from mlx_lm.tool_parsers import mistral

    calls: list[ParsedCall] = []
    decoder = json.JSONDecoder()
    for piece in (p.strip() for p in tail.split(MISTRAL_START)):
        headers = list(_MISTRAL_HEADER.finditer(piece))
        if not headers:
            try:
                parsed = mistral.parse_tool_call(piece)
            except (ValueError, json.JSONDecodeError):
                calls.append(ParsedCall("", None, f"not a tool call mlx-lm can parse: {_clip(piece)!r}"))
                continue
            for c in parsed if isinstance(parsed, list) else [parsed]:
                calls.append(ParsedCall(c["name"], None, _DROPPED))
            continue
        for index, header in enumerate(headers):
            end = headers[index + 1].start() if index + 1 < len(headers) else len(piece)
            text = piece[:end].rstrip()
            try:
                decoder.raw_decode(text, header.end())
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated") or exc.pos >= len(text)
                detail = "cut off before the JSON ends" if cut else f"{exc.msg} at char {exc.pos - header.end()}"
                calls.append(ParsedCall(header.group(1), None, f"arguments are not valid JSON ({detail})"))
            else:
                calls.append(ParsedCall(header.group(1), None, _DROPPED))
    if not any(c.error != _DROPPED for c in calls):
        calls.append(ParsedCall("", None, f"mlx-lm could not parse the tool calls: {_clip(tail)!r}"))
    return tuple(calls)


def _parse_qwen3(text: str, tools: list[dict] | None) -> tuple[ParsedCall, ...]:
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
            calls.append(ParsedCall(name, None, f"not a tool call mlx-lm can parse ({exc}){hint}"))
            continue
        calls.append(_call(parsed["name"], parsed["arguments"]))
    return tuple(calls)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
