"""Training JSONL read record by record for conversion: a line that cannot be converted is
one reject, naming the line and what to fix.

A line is rejected, never repaired. Blank lines are rejected too (counts stay simple:
read == converted + rejected). Both directions (to_mistral, to_qwen3) read here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.inputs import readers

ROLES = ("system", "user", "assistant", "tool")
_TEXT_PREVIEW = 200


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


class Rejected(Exception):
    """A line that cannot be converted; the message is the reason."""


def json_type(value: Any) -> str:
    """What kind of JSON value `value` is, in words ("an object"), for a reject's reason."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def read_jsonl_bytes(path) -> list[bytes]:
    """The lines of a file as bytes (decoded one by one later, so one bad line stays one reject)."""
    return list(readers.byte_lines(Path(path), "JSONL file"))


def _decode(raw: bytes | str, number: int) -> str:
    if isinstance(raw, readers.Overlong):
        raise Rejected(raw.problem())
    if isinstance(raw, bytes):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(f"not valid UTF-8 (byte {exc.start} is {raw[exc.start : exc.start + 1]!r})") from None
    else:
        text = raw.removesuffix("\n")
    return text.removesuffix("\r")


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:_TEXT_PREVIEW]


def _load_record(text: str) -> dict:
    if not text.strip():
        raise Rejected("empty line (JSONL holds one record per line; delete it)")
    try:
        record = readers.parse_json(text)
    except json.JSONDecodeError as exc:
        raise Rejected(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except readers.NestingError as exc:
        raise Rejected(str(exc)) from None
    if not isinstance(record, dict):
        raise Rejected(f'the line is {json_type(record)}, not an object with a "messages" list')
    if not isinstance(record.get("messages"), list):
        raise Rejected('no "messages" list')
    return record


def record_messages(record: dict, *, content_may_be_null: bool = False) -> Iterator[tuple[int, str, str, dict]]:
    """(number, role, content, message) for each message, checked for shape."""
    for number, message in enumerate(record["messages"], 1):
        if not isinstance(message, dict):
            raise Rejected(f"message {number} is {json_type(message)}, not an object")
        role = message.get("role")
        if role not in ROLES:
            raise Rejected(f"message {number} has role {role!r}; expected one of {', '.join(ROLES)}")
        content = message.get("content")
        if content is None and content_may_be_null and role == "assistant":
            content = ""
        if not isinstance(content, str):
            kind = "missing" if "content" not in message else json_type(content)
            raise Rejected(f"{role} message {number} content is {kind}; only text content is supported")
        yield number, role, content, message


def convert_lines(lines: Iterable[bytes | str], parse) -> tuple[list[tuple[int, Any]], list[Reject], int]:
    """Each line decoded, loaded and handed to `parse`: (line number, what `parse` returned) for
    the lines that convert, a Reject for each that does not, and how many lines were read."""
    parsed: list[tuple[int, Any]] = []
    rejects: list[Reject] = []
    read = 0
    for number, raw in enumerate(lines, 1):
        read += 1
        try:
            parsed.append((number, parse(_load_record(_decode(raw, number)))))
        except Rejected as exc:
            rejects.append(Reject(line=number, reason=str(exc), text=_preview(raw)))
    return parsed, rejects, read
