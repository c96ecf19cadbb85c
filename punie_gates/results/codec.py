"""Typed results to JSON and back: one small codec driven by the classes' type hints.

`to_json(value)` turns frozen dataclasses (and the lists, tuples and mappings holding
them) into plain JSON values, leaving out fields that are None (not recorded).
`from_json(hint, data, path)` reads a JSON value back into `hint`: dataclasses, tuples and
lists, mappings with string keys, Optional and other unions, Literal, and the JSON
primitives. A key a class does not know (a report from a newer or older suite) is left
out of the object and its path added to `unknown` when a list is given; a value of the
wrong type (a hand-edited file) raises ResultsError naming where it is:

    gates.gate5.figures.correct: expected an int, found "x"
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal, Union

from punie_gates.errors import UserError


class ResultsError(UserError, ValueError):
    """A report's value that is not of the type its key holds, or a figure a gate does not record."""


def to_json(value: Any) -> Any:
    """A plain JSON value (dict, list, str, int, float, bool, None) for `value` (a path as its text,
    a set as a sorted list, a numpy scalar as its Python value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(v) for f in dataclasses.fields(value) if (v := getattr(value, f.name)) is not None}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(v) for v in value), key=str)
    if isinstance(value, PurePath):
        return str(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar: its Python value
        return value.item()
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """Each field of a dataclass with its resolved type hint (resolved once per class)."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def from_json(
    hint: Any, data: Any, path: str, unknown: list[str] | None = None, problems: list[str] | None = None
) -> Any:
    """`data` (a JSON value) as `hint` says; ResultsError naming `path` when it is not one. With a
    `problems` list the read is lenient: a field whose value is of the wrong type is left out
    (None) and the message added to `problems` instead (readers that must show any report)."""
    if hint is Any or hint is object:
        return data
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return _union(hint, data, path, unknown, problems)
    if origin is Literal:
        if data in typing.get_args(hint):
            return data
        return _wrong(hint, data, path)
    if hint is type(None):
        return None if data is None else _wrong(hint, data, path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, data, path, unknown, problems)
    if origin in (tuple, list, Sequence, typing.Sequence) or hint in (tuple, list):
        return _sequence(hint, data, path, unknown, problems)
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        return _mapping(hint, data, path, unknown, problems)
    if hint is bool:
        return data if isinstance(data, bool) else _wrong(hint, data, path)
    if hint is int:
        return data if isinstance(data, int) and not isinstance(data, bool) else _wrong(hint, data, path)
    if hint is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        return _wrong(hint, data, path)
    if hint is str:
        return data if isinstance(data, str) else _wrong(hint, data, path)
    raise TypeError(f"{path}: the codec cannot read {hint!r}")


def _dataclass(cls: type, data: Any, path: str, unknown: list[str] | None, problems: list[str] | None) -> Any:
    if not isinstance(data, Mapping):
        return _wrong(cls, data, path)
    hints = field_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in hints:
            if unknown is not None:
                unknown.append(_join(path, key))
            continue
        try:
            values[key] = from_json(hints[key], value, _join(path, key), unknown, problems)
        except ResultsError as exc:
            if problems is None:
                raise
            problems.append(str(exc))  # lenient: the field is left out
    return cls(**values)


def _sequence(hint: Any, data: Any, path: str, unknown: list[str] | None, problems: list[str] | None) -> Any:
    if not isinstance(data, (list, tuple)):
        return _wrong(hint, data, path)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and args[-1] is not Ellipsis:  # a fixed tuple: (iteration, loss)
        if len(data) != len(args):
            return _wrong(hint, data, path)
        return tuple(from_json(a, v, f"{path}[{n}]", unknown, problems) for n, (a, v) in enumerate(zip(args, data)))
    item = args[0] if args else Any
    out = [from_json(item, v, f"{path}[{n}]", unknown, problems) for n, v in enumerate(data)]
    return out if typing.get_origin(hint) is list or hint is list else tuple(out)


def _mapping(hint: Any, data: Any, path: str, unknown: list[str] | None, problems: list[str] | None) -> Any:
    if not isinstance(data, Mapping):
        return _wrong(hint, data, path)
    args = typing.get_args(hint)
    value = args[1] if len(args) == 2 else Any
    return {str(k): from_json(value, v, _join(path, str(k)), unknown, problems) for k, v in data.items()}


def _union(hint: Any, data: Any, path: str, unknown: list[str] | None, problems: list[str] | None) -> Any:
    options = typing.get_args(hint)
    if data is None:
        return None if type(None) in options else _wrong(hint, data, path)
    for option in options:
        if option is not type(None) and _kind_fits(option, data):
            return from_json(option, data, path, unknown, problems)
    return _wrong(hint, data, path)


def _kind_fits(hint: Any, data: Any) -> bool:
    """Whether `data`'s JSON kind is the one `hint` reads (the union's branch to take)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is Literal:
        return data in typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(data, Mapping)
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        return isinstance(data, Mapping)
    if origin in (tuple, list, Sequence, typing.Sequence) or hint in (tuple, list):
        return isinstance(data, (list, tuple))
    if hint is bool:
        return isinstance(data, bool)
    if hint is int:
        return isinstance(data, int) and not isinstance(data, bool)
    if hint is float:
        return isinstance(data, (int, float)) and not isinstance(data, bool)
    if hint is str:
        return isinstance(data, str)
    return False


def describe(hint: Any) -> str:
    """What a value of `hint` is, for people: "an int", "a list", "a string or an object"."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        options = [a for a in typing.get_args(hint) if a is not type(None)] or [type(None)]
        return " or ".join(describe(a) for a in options)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"an object ({hint.__name__})"
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        return "an object"
    if origin in (tuple, list, Sequence, typing.Sequence) or hint in (tuple, list):
        return "a list"
    return {bool: "true or false", int: "an int", float: "a number", str: "a string"}.get(hint, str(hint))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _wrong(hint: Any, data: Any, path: str) -> Any:
    try:
        found = json.dumps(data, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        found = repr(data)
    if len(found) > 80:
        found = found[:77] + "..."
    raise ResultsError(f"{path}: expected {describe(hint)}, found {found}")
