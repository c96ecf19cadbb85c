"""The tool catalog (data/tools.toml) loads, matches Punie's tools, and rejects bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from punie_gates.inputs.catalog import CatalogError, load_catalog, native_tool_schemas

# Punie's typed tools and their result fields (FACTS.md), written out independently of
# data/tools.toml so a slip in either shows up here.
EXPECTED_FIELDS = {
    "typecheck": {"success", "error_count", "warning_count", "errors", "parse_error"},
    "ruff_check": {"success", "violation_count", "fixable_count", "violations", "parse_error"},
    "pytest_run": {"success", "passed", "failed", "errors", "skipped", "duration", "tests", "parse_error"},
    "goto_definition": {"success", "symbol", "locations", "parse_error"},
    "find_references": {"success", "symbol", "reference_count", "references", "parse_error"},
    "hover": {"success", "symbol", "content", "language", "parse_error"},
    "document_symbols": {"success", "file_path", "symbols", "symbol_count", "parse_error"},
    "workspace_symbols": {"success", "query", "symbols", "symbol_count", "parse_error"},
    "git_status": {"success", "clean", "file_count", "files", "parse_error"},
    "git_diff": {"success", "file_count", "additions", "deletions", "files", "parse_error"},
    "git_log": {"success", "commits", "commit_count", "parse_error"},
}
EXPECTED_ITEMS = {
    ("typecheck", "errors"): {"file", "line", "column", "severity", "code", "message"},
    ("ruff_check", "violations"): {"file", "line", "column", "code", "message", "fixable"},
    ("pytest_run", "tests"): {"name", "outcome", "duration", "message"},
    ("goto_definition", "locations"): {"file", "line", "column", "end_line", "end_column", "preview"},
    ("find_references", "references"): {"file", "line", "column", "preview"},
    ("document_symbols", "symbols"): {"name", "kind", "line", "end_line", "children"},
    ("workspace_symbols", "symbols"): {"name", "kind", "file", "line", "container_name"},
    ("git_status", "files"): {"file", "status", "staged"},
    ("git_diff", "files"): {"file", "additions", "deletions", "hunks"},
    ("git_log", "commits"): {"hash", "message", "author", "date"},
}
EXPECTED_PARAMS = {
    "goto_definition": ("file_path", "line", "column", "symbol"),
    "git_diff": ("path", "staged"),
    "git_log": ("path", "count"),
    "write_file": ("path", "content"),
    "run_command": ("command", "args", "cwd"),
}


def test_native_tools_are_what_punie_offers(catalog):
    schemas = catalog.native_schemas()
    # Code Mode, plus the two tools Punie's Phase 27 data also calls directly.
    assert [s["function"]["name"] for s in schemas] == ["execute_code", "read_file", "run_command"]
    schema = schemas[0]
    assert schema["type"] == "function"
    params = schema["function"]["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["code"]
    assert params["properties"]["code"]["type"] == "string"
    assert set(schema["function"]) == {"name", "description", "parameters"}
    for native in schemas[1:]:  # the same arguments as their typed namesakes: one meaning per call
        name = native["function"]["name"]
        assert tuple(native["function"]["parameters"]["properties"]) == catalog.typed[name].params


def test_a_native_tool_sharing_a_typed_name_must_take_its_arguments(tmp_path):
    text = (
        Path(load_catalog().path)
        .read_text(encoding="utf-8")
        .replace(
            '[native.parameters.path]\ntype = "string"\ndescription = "Path of the file',
            '[native.parameters.file]\ntype = "string"\ndescription = "Path of the file',
        )
    )
    bad = tmp_path / "tools.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match="native tool 'read_file': a typed tool shares this name but takes"):
        load_catalog(bad)


def test_execute_code_description_lists_every_typed_tool(catalog):
    description = catalog.native_schemas()[0]["function"]["description"]
    for name, tool in catalog.typed.items():
        assert f"- {name}(" in description, name
        assert tool.signature in description
    assert "git_log(path, count=10) -> " in description


# Punie's Code Mode signatures (src/punie/agent/stubs.py at 1fe77fb): path is required.
PUNIE_REQUIRED = {"git_status": ("path",), "git_diff": ("path",), "git_log": ("path",), "run_command": ("command",)}


def test_required_arguments_follow_punies_signatures(catalog):
    for name, required in PUNIE_REQUIRED.items():
        typed = catalog.typed[name]
        assert tuple(p for p in typed.params if p not in typed.defaults) == required, name
    assert catalog.typed["git_status"].signature.startswith("git_status(path) -> ")
    assert catalog.typed["git_diff"].signature.startswith("git_diff(path, staged=False) -> ")


def test_typed_tools_match_punie(catalog):
    text_tools = {"read_file", "write_file", "run_command"}
    assert set(catalog.typed) == set(EXPECTED_FIELDS) | text_tools
    for name, fields in EXPECTED_FIELDS.items():
        assert catalog.typed[name].fields == fields, name
        assert not catalog.typed[name].returns_text
    for (name, field), items in EXPECTED_ITEMS.items():
        assert catalog.typed[name].item_fields[field] == items, (name, field)
    for name in text_tools:
        tool = catalog.typed[name]
        assert tool.returns_text and not tool.fields and not tool.item_fields
    for name, params in EXPECTED_PARAMS.items():
        assert catalog.typed[name].params == params


def test_all_field_names_joins_top_level_and_item_fields(catalog):
    names = catalog.all_field_names("typecheck")
    assert {"error_count", "errors", "line", "severity"} <= names
    assert "violations" not in names
    assert catalog.all_field_names("read_file") == frozenset()
    with pytest.raises(KeyError, match="execute_code"):
        catalog.all_field_names("execute_code")


def test_native_schemas_are_copies(catalog):
    catalog.native_schemas()[0]["function"]["parameters"]["required"].append("oops")
    assert catalog.native_schemas()[0]["function"]["parameters"]["required"] == ["code"]


def test_native_tool_schemas_reads_a_given_file(tmp_path, catalog):
    path = tmp_path / "tools.toml"
    path.write_text(MINIMAL)
    schemas = native_tool_schemas(path)
    assert [s["function"]["name"] for s in schemas] == ["run"]
    assert schemas[0]["function"]["parameters"]["required"] == ["code"]
    assert native_tool_schemas(catalog.path) == catalog.native_schemas()


MINIMAL = """
[[native]]
name = "run"
description = "Run code."
code_param = "code"

[native.parameters.code]
type = "string"
required = true

[typed.probe]
params = ["path"]
returns = "fields"
fields = ["ok", "items"]

[typed.probe.items]
items = ["name"]
"""


# (replace this, with that) in MINIMAL -> words the error must contain
BAD = {
    "unknown top-level key": (("[[native]]", "colour = 1\n[[native]]"), ["colour", "unknown top-level key"]),
    "typed without params": (('params = ["path"]', ""), ["typed tool 'probe'", "params"]),
    "unknown typed key": (('returns = "fields"', 'returns = "fields"\nfeilds = []'), ["'probe'", "feilds"]),
    "bad returns": (('returns = "fields"', 'returns = "object"'), ["'probe'", "returns"]),
    "text with fields": (('returns = "fields"', 'returns = "text"'), ["'probe'", "no fields"]),
    "items of nothing": (('items = ["name"]', 'elements = ["name"]'), ["'probe'", "items.elements"]),
    "default of unknown param": (
        ('params = ["path"]', 'params = ["path"]\ndefaults = { depth = "1" }'),
        ["'probe'", "depth"],
    ),
    "native without name": (('name = "run"', ""), ["native tool #1", "name"]),
    "native schema type typo": (('type = "string"', 'type = "strng"'), ["native tool 'run'", "JSON schema"]),
    "code_param not a string param": (('code_param = "code"', 'code_param = "source"'), ["'run'", "code_param"]),
    "native and typed share a name": (('name = "run"', 'name = "probe"'), ["'probe'", "share"]),
    "not TOML": (("[[native]]", "[[native]"), ["not valid TOML"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_catalog_is_rejected_naming_file_and_entry(tmp_path, case):
    (old, new), words = BAD[case]
    assert old in MINIMAL
    path = tmp_path / "tools.toml"
    path.write_text(MINIMAL.replace(old, new, 1))
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_duplicate_native_tool_is_rejected(tmp_path):
    path = tmp_path / "tools.toml"
    native = MINIMAL.split("[typed.probe]")[0]
    path.write_text(native + native + "[typed.probe]" + MINIMAL.split("[typed.probe]")[1])
    with pytest.raises(CatalogError, match="duplicate native tool name"):
        load_catalog(path)


def test_missing_catalog_names_the_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(CatalogError, match="nowhere.toml"):
        load_catalog(path)


def test_minimal_catalog_loads(tmp_path):
    path = tmp_path / "tools.toml"
    path.write_text(MINIMAL)
    catalog = load_catalog(Path(path))
    assert catalog.typed["probe"].item_fields["items"] == {"name"}
    assert catalog.all_field_names("probe") == {"ok", "items", "name"}
