"""The tool catalog (data/tools.toml): native tool schemas and Punie's typed tools.

Native tools are what the model may name in a tool call; typed tools are the Python
functions callable inside `execute_code` code, with the fields of their results.
The file's own header documents its schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

from punie_gates.errors import DataFileError
from punie_gates.inputs import paths


class CatalogError(DataFileError):
    """The tool catalog is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class TypedTool:
    name: str
    params: tuple[str, ...]
    fields: frozenset[str]
    item_fields: Mapping[str, frozenset[str]]  # list-valued field -> attributes of its items
    returns_text: bool
    description: str = ""
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    signature: str = ""  # e.g. 'git_log(path=".", count=10) -> success, commits[hash, ...], ...'


@dataclass(frozen=True)
class Catalog:
    # Each native dict: name, description, parameters (a JSON schema), code_param (str | None).
    native: tuple[dict, ...]
    typed: Mapping[str, TypedTool]
    path: Path | None = None

    def native_schemas(self) -> list[dict]:
        """OpenAI function-tool form, as chat templates and mlx-lm expect."""
        return [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool["description"],
                    "parameters": copy.deepcopy(tool["parameters"]),
                },
            }
            for tool in self.native
        ]

    def native_tool(self, name: str) -> dict | None:
        return next((tool for tool in self.native if tool["name"] == name), None)

    def all_field_names(self, tool: str) -> frozenset[str]:
        """Top-level result fields plus the fields of list items."""
        try:
            typed = self.typed[tool]
        except KeyError:
            raise KeyError(f"{tool!r} is not a typed tool in {self.path or 'the catalog'}") from None
        names = set(typed.fields)
        for item in typed.item_fields.values():
            names |= item
        return frozenset(names)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate the catalog; default data/tools.toml."""
    path = Path(path) if path is not None else paths.data_dir() / "tools.toml"
    return _build(paths.read_toml(path, "tool catalog", CatalogError), path)


def native_tool_schemas(path: Path) -> list[dict]:
    """The function schemas offered to the model (for `punie-gates convert --tools`)."""
    return load_catalog(path).native_schemas()


# --- building and validation --------------------------------------------------------

_NATIVE_KEYS = {"name", "description", "code_param", "list_typed_tools", "parameters"}
_TYPED_KEYS = {"description", "params", "defaults", "returns", "fields", "items"}


def _build(raw: dict, path: Path) -> Catalog:
    errors: list[str] = []

    def fail(entry: str, reason: str) -> None:
        errors.append(f"{path}: {entry}: {reason}")

    for key in set(raw) - {"native", "typed"}:
        fail(key, "unknown top-level key (expected [[native]] and [typed.NAME] entries)")

    typed: dict[str, TypedTool] = {}
    raw_typed = raw.get("typed", {})
    if not isinstance(raw_typed, dict) or not raw_typed:
        fail("typed", "needs at least one [typed.NAME] table")
        raw_typed = {}
    for name, entry in raw_typed.items():
        tool = _typed_tool(name, entry, lambda reason, n=name: fail(f"typed tool {n!r}", reason))
        if tool is not None:
            typed[name] = tool

    native: list[dict] = []
    raw_native = raw.get("native", [])
    if not isinstance(raw_native, list) or not raw_native:
        fail("native", "needs at least one [[native]] entry")
        raw_native = []
    for index, entry in enumerate(raw_native):
        label = f"native tool #{index + 1}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label = f"native tool {entry['name']!r}"
        native_tool = _native_tool(entry, typed, lambda reason, lb=label: fail(lb, reason))
        if native_tool is None:
            continue
        if any(t["name"] == native_tool["name"] for t in native):
            fail(label, "duplicate native tool name")
        elif native_tool["name"] in typed and set(native_tool["parameters"].get("properties", {})) != set(
            typed[native_tool["name"]].params
        ):
            # Offering a typed tool directly too is fine (Punie does, for read_file and
            # run_command) as long as both take the same arguments: then a call means one thing.
            fail(
                label,
                f"a typed tool shares this name but takes {list(typed[native_tool['name']].params)}; "
                "a call would be ambiguous",
            )
        else:
            native.append(native_tool)

    if errors:
        raise CatalogError("\n".join(errors))
    return Catalog(native=tuple(native), typed=MappingProxyType(typed), path=path)


def _str_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) and v.isidentifier() for v in value)


def _typed_tool(name: str, entry: Any, fail) -> TypedTool | None:
    if not name.isidentifier():
        fail("name is not a Python identifier")
        return None
    if not isinstance(entry, dict):
        fail("must be a table")
        return None
    ok = True
    for key in set(entry) - _TYPED_KEYS:
        fail(f"unknown key {key!r} (allowed: {', '.join(sorted(_TYPED_KEYS))})")
        ok = False
    params = entry.get("params")
    if not _str_list(params) or len(set(params)) != len(params):
        fail("params must be a list of distinct identifiers")
        return None
    defaults = entry.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        fail("defaults must be an inline table of param -> Python source text")
        ok = False
        defaults = {}
    for key in set(defaults) - set(params):
        fail(f"default given for {key!r}, which is not in params")
        ok = False
    returns = entry.get("returns")
    if returns not in ("fields", "text"):
        fail(f'returns must be "fields" or "text", got {returns!r}')
        return None
    fields = entry.get("fields", [])
    items = entry.get("items", {})
    if returns == "text":
        if fields or items:
            fail('returns = "text" has no fields or items (a str result has no fields)')
            ok = False
        fields, items = [], {}
    else:
        if not _str_list(fields) or not fields:
            fail("fields must be a non-empty list of identifiers")
            return None
        if not isinstance(items, dict):
            fail("items must be a table of field -> item fields")
            return None
        item_names = {n for v in items.values() if isinstance(v, list) for n in v}
        for key, value in items.items():
            if not _str_list(value) or not value:
                fail(f"items.{key} must be a non-empty list of identifiers")
                ok = False
            if key not in fields and key not in item_names:
                fail(f"items.{key} names neither a result field nor an item field")
                ok = False
    description = entry.get("description", "")
    if not isinstance(description, str):
        fail("description must be a string")
        ok = False
    if not ok:
        return None
    return TypedTool(
        name=name,
        params=tuple(params),
        fields=frozenset(fields),
        item_fields=MappingProxyType({k: frozenset(v) for k, v in items.items()}),
        returns_text=returns == "text",
        description=description,
        defaults=MappingProxyType(dict(defaults)),
        signature=_signature(name, params, defaults, fields, items, returns == "text"),
    )


def _native_tool(entry: Any, typed: Mapping[str, TypedTool], fail) -> dict | None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(entry, dict):
        fail("must be a table")
        return None
    ok = True
    for key in set(entry) - _NATIVE_KEYS:
        fail(f"unknown key {key!r} (allowed: {', '.join(sorted(_NATIVE_KEYS))})")
        ok = False
    name, description = entry.get("name"), entry.get("description")
    if not isinstance(name, str) or not name.isidentifier():
        fail("name must be an identifier")
        return None
    if not isinstance(description, str) or not description.strip():
        fail("description must be a non-empty string")
        ok = False
    raw_params = entry.get("parameters", {})
    if not isinstance(raw_params, dict):
        fail("parameters must be tables [native.parameters.NAME]")
        return None
    properties: dict[str, dict] = {}
    required: list[str] = []
    for pname, spec in raw_params.items():
        if not isinstance(spec, dict):
            fail(f"parameter {pname!r} must be a table")
            ok = False
            continue
        spec = dict(spec)
        is_required = spec.pop("required", False)
        if not isinstance(is_required, bool):
            fail(f"parameter {pname!r}: required must be true or false")
            ok = False
        if is_required:
            required.append(pname)
        properties[pname] = spec
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        fail(f"parameters do not form a valid JSON schema: {exc.message}")
        ok = False
    code_param = entry.get("code_param")
    if code_param is not None and properties.get(code_param, {}).get("type") != "string":
        fail(f"code_param {code_param!r} must name a string parameter")
        ok = False
    listing = entry.get("list_typed_tools", False)
    if not isinstance(listing, bool):
        fail("list_typed_tools must be true or false")
        ok = False
    if not ok:
        return None
    if listing and isinstance(description, str):
        lines = [t.signature for t in typed.values()]
        description = description.rstrip() + "\n\nTyped tools:\n" + "\n".join(f"- {line}" for line in lines)
    return {"name": name, "description": description, "parameters": schema, "code_param": code_param}


def _signature(name: str, params: list[str], defaults: dict, fields: list[str], items: dict, text: bool) -> str:
    args = ", ".join(f"{p}={defaults[p]}" if p in defaults else p for p in params)
    if text:
        return f"{name}({args}) -> str"
    shown = [f"{f}[{', '.join(items[f])}]" if f in items else f for f in fields]
    return f"{name}({args}) -> {', '.join(shown)}"
