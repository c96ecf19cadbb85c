"""Punie's Qwen3 spelling of tool calls and tool results: locate, check, parse, render.

An assistant turn is `PREAMBLE` then one or more blocks
`<tool_call><function=NAME><parameter=P>VALUE</parameter>...</function></tool_call>`;
a tool result comes back as a user turn `<tool_response>\\nOUTPUT\\n</tool_response>`.
Finding the blocks and checking that they are closed and hold nothing but tags is
done here; reading NAME and the values inside a block is left to mlx-lm's
`qwen3_coder` parser, so the converter reads calls exactly as mlx-lm serves them.

Canonical layout written by `render_assistant` (Punie's dominant spacing, 581 of
861 blocks in Phase 27; the rest put no newline around the parameter tags):

    PREAMBLE\\n\\n<tool_call><function=NAME>\\n<parameter=P>\\nVALUE\\n</parameter>\\n</function></tool_call>

several blocks are joined by "\\n" (Qwen3-Coder's template does the same).
Canonicalised on the way in: whitespace between the preamble and the first
block, between blocks and after the last one (it is layout, not text), and the
one newline on each side of a VALUE or OUTPUT (the parsers strip exactly one).
Not representable: a VALUE holding `</parameter>` or `</tool_call>`, an OUTPUT
holding `</tool_response>`, text after a turn's calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
_FUNCTION_OPEN, _FUNCTION_CLOSE = "<function=", "</function>"
_PARAM_OPEN, _PARAM_CLOSE = "<parameter=", "</parameter>"
# Layout whitespace: what separates a preamble from its block and blocks from
# each other. Deliberately ASCII only, so Unicode spaces in text are kept.
LAYOUT_WS = " \t\r\n"
PREAMBLE_SEPARATOR = "\n\n"
BLOCK_SEPARATOR = "\n"

# Mistral's rule for function names (mistral-common validates tools and calls with it).
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Parameter names must survive qwen3_coder's name pattern `[^\s<>]+` unchanged.
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Text that would make Qwen3 read a turn differently, or that marks a Qwen3 chat turn.
QWEN3_MARKERS = (
    TOOL_CALL_OPEN, TOOL_CALL_CLOSE, RESPONSE_OPEN, RESPONSE_CLOSE,
    _FUNCTION_OPEN, _FUNCTION_CLOSE, _PARAM_OPEN, _PARAM_CLOSE,
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
)  # fmt: skip

_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_LEGACY_FENCE = re.compile(r"(?s)(?P<pre>.*?)```json[ \t]*\n(?P<body>.*?)```[ \t\r\n]*")


class FormatError(ValueError):
    """Text that is not well-formed Qwen3; the message says what and where."""


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


@cache
def _qwen3_coder():
    # mlx_lm's package import is heavy (~1 s); only pay it when a call is parsed.
    from mlx_lm.tool_parsers import qwen3_coder

    return qwen3_coder


def _snippet(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def split_assistant(text: str) -> tuple[str, list[str]]:
    """(preamble, raw blocks between `<tool_call>` and `</tool_call>`) of an assistant turn.

    The preamble loses its trailing layout whitespace; a turn without blocks is
    returned whole. Raises FormatError for unclosed blocks or text after a block.
    """
    first = text.find(TOOL_CALL_OPEN)
    head = text if first < 0 else text[:first]
    if TOOL_CALL_CLOSE in head:
        raise FormatError(f"has {TOOL_CALL_CLOSE} without {TOOL_CALL_OPEN}")
    if first < 0:
        return text, []
    blocks: list[str] = []
    pos = first
    while True:
        start = pos + len(TOOL_CALL_OPEN)
        end = text.find(TOOL_CALL_CLOSE, start)
        if end < 0:
            raise FormatError(f"has {TOOL_CALL_OPEN} without {TOOL_CALL_CLOSE} (tool call {len(blocks) + 1})")
        blocks.append(text[start:end])
        pos = end + len(TOOL_CALL_CLOSE)
        rest = text[pos:].lstrip(LAYOUT_WS)
        if not rest:
            break
        if not rest.startswith(TOOL_CALL_OPEN):
            raise FormatError(
                f"has text after tool call {len(blocks)}: {_snippet(rest)} "
                "(Mistral's format ends a turn with its calls; move the text to the next assistant turn)"
            )
        pos = len(text) - len(rest)
    return head.rstrip(LAYOUT_WS), blocks


def _function_span(block: str, index: int) -> tuple[int, int, str, list[str]]:
    """Check a block is `<function=NAME>` + parameters + `</function>` and nothing else.

    Returns the span of `<function=...</function>`, NAME and the parameter names.
    """
    where = f"tool call {index}"
    start = len(block) - len(block.lstrip(LAYOUT_WS))
    if not block.startswith(_FUNCTION_OPEN, start):
        raise FormatError(f"{where} does not start with <function=NAME>: {_snippet(block[start:])}")
    close = block.find(">", start)
    if close < 0:
        raise FormatError(f"{where} has an unclosed <function= tag")
    name = block[start + len(_FUNCTION_OPEN) : close]
    if not FUNCTION_NAME.fullmatch(name):
        raise FormatError(f"{where} names function {name!r}; Mistral allows letters, digits, '_' and '-', at most 64")
    params: list[str] = []
    pos = close + 1
    while True:
        pos = len(block) - len(block[pos:].lstrip(LAYOUT_WS))
        if block.startswith(_PARAM_OPEN, pos):
            tag_end = block.find(">", pos)
            param = block[pos + len(_PARAM_OPEN) : tag_end] if tag_end >= 0 else block[pos:]
            if tag_end < 0 or not PARAMETER_NAME.fullmatch(param):
                raise FormatError(f"{where} has a malformed parameter tag {_snippet(block[pos:])}")
            if param in params:
                raise FormatError(f"{where} passes parameter {param!r} twice")
            value_end = block.find(_PARAM_CLOSE, tag_end + 1)
            if value_end < 0:
                raise FormatError(f"{where} has <parameter={param}> without {_PARAM_CLOSE}")
            params.append(param)
            pos = value_end + len(_PARAM_CLOSE)
        elif block.startswith(_FUNCTION_CLOSE, pos):
            end = pos + len(_FUNCTION_CLOSE)
            if block[end:].strip(LAYOUT_WS):
                raise FormatError(f"{where} has text after {_FUNCTION_CLOSE}: {_snippet(block[end:])}")
            return start, end, name, params
        elif pos >= len(block):
            raise FormatError(f"{where} has <function={name}> without {_FUNCTION_CLOSE}")
        else:
            raise FormatError(f"{where} has text outside a parameter: {_snippet(block[pos:])}")


def parse_block(block: str, index: int, tools: list[dict] | None = None) -> Call:
    """One checked block read by mlx-lm's qwen3_coder parser (`tools` types the values)."""
    start, end, name, params = _function_span(block, index)
    try:
        parsed = _qwen3_coder().parse_tool_call(block[start:end], tools)
    except ValueError as exc:  # a value that does not fit its schema type
        raise FormatError(f"tool call {index} ({name}): {exc}") from exc
    if parsed["name"] != name or list(parsed["arguments"]) != params:
        # Our tag scan and mlx-lm's regexes must agree, or training and serving differ.
        raise FormatError(f"tool call {index}: qwen3_coder reads {parsed!r}, the tags say {name}({params})")
    return Call(name=name, arguments=parsed["arguments"])


def parse_assistant(text: str, tools: list[dict] | None = None) -> tuple[str, tuple[Call, ...]]:
    """(preamble, calls) of a Qwen3 assistant turn."""
    preamble, blocks = split_assistant(text)
    return preamble, tuple(parse_block(b, i, tools) for i, b in enumerate(blocks, 1))


def parse_legacy_json_call(text: str) -> tuple[str, Call] | None:
    """An older Punie spelling: a turn ending in a ```json {"name", "arguments"} fence.

    Four Phase 27 conversations call run_command/read_file this way, and their
    tool results follow. Only called when a tool result follows, so a fence
    that merely shows JSON to the user stays text.
    """
    match = _LEGACY_FENCE.fullmatch(text)
    if match is None:
        return None
    try:
        payload = json.loads(match["body"])
    except json.JSONDecodeError:
        # One of the four writes a shell regex as '\{' inside a JSON string: read a
        # backslash that starts no JSON escape as a literal backslash, as its author meant.
        try:
            payload = json.loads(_ESCAPE.sub(_keep_lone_backslash, match["body"]))
        except json.JSONDecodeError:
            return None
    if (
        not isinstance(payload, dict)
        or set(payload) != {"name", "arguments"}
        or not isinstance(payload["name"], str)
        or not isinstance(payload["arguments"], dict)
    ):
        return None
    return match["pre"].rstrip(LAYOUT_WS), Call(payload["name"], payload["arguments"])


def _keep_lone_backslash(escape: re.Match) -> str:
    return escape[0] if escape[1] in '"\\/bfnrtu' else "\\" + escape[0]


def split_tool_responses(text: str) -> list[str] | None:
    """Outputs of a user turn made of `<tool_response>` blocks, or None for an ordinary turn."""
    rest = text.lstrip(LAYOUT_WS)
    if not rest.startswith(RESPONSE_OPEN):
        return None
    outputs: list[str] = []
    while rest:
        if not rest.startswith(RESPONSE_OPEN):
            raise FormatError(
                f"has text after tool result {len(outputs)}: {_snippet(rest)} "
                "(a user turn is either tool results or a question, not both)"
            )
        end = rest.find(RESPONSE_CLOSE)
        if end < 0:
            raise FormatError(f"has {RESPONSE_OPEN} without {RESPONSE_CLOSE}")
        outputs.append(_strip_one_newline(rest[len(RESPONSE_OPEN) : end]))
        rest = rest[end + len(RESPONSE_CLOSE) :].lstrip(LAYOUT_WS)
    return outputs


def _strip_one_newline(text: str) -> str:
    text = text[1:] if text.startswith("\n") else text
    return text[:-1] if text.endswith("\n") else text


def value_text(value: Any) -> str:
    """How a parameter value is written in Qwen3 XML (qwen3_coder reads it back by schema type)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def render_block(call: Call) -> str:
    params = "".join(f"<parameter={k}>\n{value_text(v)}\n</parameter>\n" for k, v in call.arguments.items())
    return f"{TOOL_CALL_OPEN}<function={call.name}>\n{params}</function>{TOOL_CALL_CLOSE}"


def render_assistant(preamble: str, calls: tuple[Call, ...]) -> str:
    if not calls:
        return preamble
    blocks = BLOCK_SEPARATOR.join(render_block(c) for c in calls)
    return f"{preamble}{PREAMBLE_SEPARATOR}{blocks}" if preamble else blocks


def render_tool_response(output: str) -> str:
    return f"{RESPONSE_OPEN}\n{output}\n{RESPONSE_CLOSE}"
