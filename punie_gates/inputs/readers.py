"""Reading input files defensively, one reader per kind: text, TOML, a JSON document, JSONL.

Every file the suite or a command reads goes through here, so a hostile or broken file
is one clear error naming the file (and line), never a traceback, a hang or a verdict:
- only a regular file is read: a FIFO would block forever, a device never ends, a
  folder is no file (opened without blocking, then checked);
- bytes must be UTF-8 (a leading BOM is accepted and dropped);
- JSON and TOML may nest at most MAX_DEPTH levels (100,000 levels would crash the parser,
  and anything that walks the value later, with RecursionError);
- a JSONL line may hold at most MAX_LINE_BYTES, a whole TOML or JSON document
  MAX_DOCUMENT_BYTES (read in bounded pieces: a huge file is never loaded to be refused);
- JSONL lines are split on "\\n" only (a trailing "\\r" is dropped): the suite writes JSON
  with ensure_ascii=False, so a saved answer may hold U+2028 or U+0085, which
  str.splitlines would take for line ends, splitting one record in two.
The readers raise the caller's `error` class (a punie_gates.errors.UserError), so the plugin
ends the run ERROR (exit 6) and a command exits 2.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.errors import DataFileError

MAX_DEPTH = 100  # nesting levels of a JSON or TOML value; real inputs need fewer than 10
ARGUMENTS_DEPTH = 64  # a tool call's arguments, kept below MAX_DEPTH so the saved record holding them reads back
MAX_LINE_BYTES = 16 << 20  # one JSONL line: a whole saved conversation, long tool results included
MAX_DOCUMENT_BYTES = 64 << 20  # a TOML file or a JSON document (the report)
BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


class NestingError(ValueError):
    """A JSON or TOML value nested deeper than MAX_DEPTH."""

    def __init__(self, limit: int = MAX_DEPTH):
        super().__init__(f"nested more than {limit} levels deep (real inputs need fewer than 10)")


class Overlong(bytes):
    """The first bytes of a JSONL line longer than MAX_LINE_BYTES (the rest was skipped unread)."""

    size: int = 0

    def problem(self) -> str:
        return f"the line holds {self.size:,} bytes, more than the {MAX_LINE_BYTES:,} a line may hold"


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line of a JSONL file."""

    number: int
    """Its line number (1-based, counting "\\n" only)."""
    value: Any = None
    """The parsed JSON value (None when `problem` says why there is none)."""
    problem: str = ""
    """Why the line is not a JSON value: not UTF-8, too long, not JSON, nested too deep ("" when it is one)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: Path, what: str, error: type[Exception] = DataFileError):
    """`path` opened for binary reading, refused unless it is a regular file (symlinks followed)."""
    try:  # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {what} is {_kind(mode)}, not a regular file; give a file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _utf8_problem(data: bytes, exc: UnicodeDecodeError) -> tuple[int, str]:
    """(line offset, message) for bytes that are not UTF-8."""
    line = data.count(b"\n", 0, exc.start)
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    head = data[:200]
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff") or head.count(b"\x00") * 3 > len(head)
    hint = "; it looks like UTF-16" if utf16 else ""
    return line, f"not UTF-8 text (byte {data[exc.start : exc.start + 1]!r} at column {column}{hint}); save it as UTF-8"


def read_text(path: Path, what: str, error: type[Exception] = DataFileError, *, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """A whole text file as str: a regular file, at most `limit` bytes, UTF-8 (BOM dropped)."""
    try:
        with open_regular(path, what, error) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is larger than {limit:,} bytes; that is not a file the suite wrote or reads")
    data = data.removeprefix(BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, problem = _utf8_problem(data, exc)
        raise error(f"{path}:{line + 1}: {what} is {problem}") from None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON/TOML value nests deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(text: str, limit: int = MAX_DEPTH) -> Any:
    """json.loads, refusing nesting beyond `limit` (NestingError); bad JSON raises json.JSONDecodeError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError(limit) from None
    # Counting brackets is cheap; only a text that could nest that deep is walked.
    if text.count("[") + text.count("{") > limit and too_deep(value, limit):
        raise NestingError(limit)
    return value


def read_json(path: Path, what: str, error: type[Exception] = DataFileError) -> Any:
    """A whole JSON document (such as gate-report.json)."""
    text = read_text(path, what, error)
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: {what} is not valid JSON ({exc.msg} at column {exc.colno})") from None
    except NestingError as exc:
        raise error(f"{path}: {what} is {exc}") from None


def read_toml(path: Path, what: str, error: type[Exception] = DataFileError) -> dict:
    """A TOML file as a dict; unreadable, not UTF-8, invalid or nested too deep: `error` naming the file (and line)."""

    text = read_text(path, what, error)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: {what} is {NestingError()}") from None
    if too_deep(data):  # dotted keys nest without brackets: always walked (TOML files are small)
        raise error(f"{path}: {what} is {NestingError()}")
    return data


def byte_lines(path: Path, what: str, error: type[Exception] = DataFileError) -> Iterator[bytes]:
    """The lines of a file as bytes, split on b"\\n" only, without it (and without a trailing
    b"\\r" or the first line's BOM). A line over MAX_LINE_BYTES comes as an `Overlong`."""
    try:
        with open_regular(path, what, error) as handle:
            number = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    size = len(raw)
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the line unread
                        raw = handle.readline(_CHUNK)
                        size += len(raw)
                    line = Overlong(b"")
                    line.size = size - raw.endswith(b"\n")
                    yield line
                    continue
                line = raw.removesuffix(b"\n").removesuffix(b"\r")
                yield line.removeprefix(BOM) if number == 1 else line
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def line_problem(raw: bytes) -> tuple[Any, str]:
    """(value, "") for a JSONL line that is JSON, else (None, why not)."""
    if isinstance(raw, Overlong):
        return None, raw.problem()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, _utf8_problem(raw, exc)[1]
    try:
        return parse_json(text), ""
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except NestingError as exc:
        return None, str(exc)


def read_jsonl(path: Path, what: str, error: type[Exception] = DataFileError) -> list[JsonLine]:
    """Every non-blank line of a JSONL file, parsed or with its problem; the file as a whole
    (missing, not a regular file, unreadable) raises `error`."""
    lines = []
    for number, raw in enumerate(byte_lines(path, what, error), 1):
        if not isinstance(raw, Overlong) and not raw.strip():
            continue
        value, problem = line_problem(raw)
        lines.append(JsonLine(number, value, problem))
    return lines


def split_lines(text: str) -> list[str]:
    """The lines of a text the suite wrote, split on "\\n" only (see the module docstring)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
