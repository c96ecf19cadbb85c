"""The 40 validation queries load and match the plan; bad query files are rejected clearly."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.queries import QueryFileError, load_queries

CATEGORIES = [
    "direct_answers", "existing_lsp", "new_lsp", "git_tools",
    "existing_tools", "field_access", "cross_tool", "discrimination",
]
# The seed plan's Gate 5 bar.
SEED_MINIMUMS = {c: 4 for c in CATEGORIES} | {"direct_answers": 5, "cross_tool": 3}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def queries(catalog):
    return load_queries(catalog=catalog)


def test_forty_queries_eight_categories_of_five(queries):
    assert len(queries.queries) == 40
    assert Counter(q.category for q in queries.queries) == {c: 5 for c in CATEGORIES}
    assert list(queries.categories) == CATEGORIES
    for query in queries.queries:
        assert query.id.startswith(query.category + "-")


def test_thresholds_are_the_seed_plans(queries):
    assert queries.thresholds.overall_min == 34
    assert dict(queries.thresholds.category_min) == SEED_MINIMUMS


def test_category_kinds(queries):
    by_category: dict[str, list] = {}
    for query in queries.queries:
        by_category.setdefault(query.category, []).append(query)
    assert all(q.expect == "direct" for q in by_category["direct_answers"])
    lsp_tools = {"existing_lsp": {"goto_definition", "find_references"},
                 "new_lsp": {"hover", "document_symbols", "workspace_symbols"},
                 "git_tools": {"git_status", "git_diff", "git_log"},
                 "existing_tools": {"ruff_check", "pytest_run", "typecheck"}}
    for category, tools in lsp_tools.items():
        used = set()
        for query in by_category[category]:
            assert query.expect == "tool" and set(query.listed_tools) <= tools, query.id
            used |= set(query.listed_tools)
        assert used == tools, category  # every tool of the category is exercised
    assert all(q.fields_any for q in by_category["field_access"])
    for query in by_category["cross_tool"]:
        assert len(query.tools_all) + bool(query.tools_any) >= 2, query.id
    expects = Counter(q.expect for q in by_category["discrimination"])
    assert expects["tool"] >= 2 and expects["direct"] >= 2


def test_gate_sets(queries):
    assert {g: len(ids) for g, ids in queries.gate_sets.items()} == {"gate2": 10, "gate3": 5, "gate4": 10}
    gate3 = queries.for_gate("gate3")
    assert Counter(q.expect for q in gate3) == {"tool": 4, "direct": 1}
    for gate in ("gate2", "gate4"):
        chosen = queries.for_gate(gate)
        assert len({q.category for q in chosen}) >= 7, gate  # representative, not one kind
        assert any(q.expect == "direct" for q in chosen)
    with pytest.raises(KeyError, match="gate9"):
        queries.for_gate("gate9")
    with pytest.raises(KeyError, match="nope-01"):
        queries.by_id("nope-01")


def test_queries_are_not_punies(queries, phase27_dir):
    """The queries are written for this project: none appears in Punie's data."""
    user_text = []
    for name in ("train.jsonl", "valid.jsonl"):
        for line in (phase27_dir / name).read_text().splitlines():
            for message in json.loads(line)["messages"]:
                if message["role"] == "user":
                    user_text.append(message["content"].lower())
    corpus = "\n".join(user_text)
    copied = [q.id for q in queries.queries if q.text.lower() in corpus]
    assert not copied


# --- validation ------------------------------------------------------------------------

VALID = '''
[thresholds]
overall_min = 3
[thresholds.category_min]
git_tools = 1
direct_answers = 1

[gates]
gate3 = ["git_tools-01", "direct_answers-01"]

[[query]]
id = "git_tools-01"
category = "git_tools"
text = "Is the tree clean?"
expect = "tool"
tools_any = ["git_status"]
fields_any = ["clean"]

[[query]]
id = "git_tools-02"
category = "git_tools"
text = "Last commits and diff?"
expect = "tool"
tools_all = ["git_log", "git_diff"]

[[query]]
id = "direct_answers-01"
category = "direct_answers"
text = "What is a tuple?"
expect = "direct"
'''

# (replace this, with that) in VALID -> words the error must contain
BAD = {
    "duplicate id": (('id = "git_tools-02"', 'id = "git_tools-01"'), ["'git_tools-01'", "duplicate id"]),
    "id not category-NN": (('id = "git_tools-02"', 'id = "git_tools-2"'), ["'git_tools-2'", "<category>-NN"]),
    "id and category disagree": (('id = "git_tools-02"', 'id = "git_stuff-02"'), ["'git_stuff-02'", "category"]),
    "unknown category in thresholds": (("direct_answers = 1\n", "direct_answers = 1\nmisc = 1\n"), ["category_min.misc", "unknown category"]),
    "unknown expect": (('expect = "direct"', 'expect = "maybe"'), ["'direct_answers-01'", "unknown expect 'maybe'"]),
    "tool not in catalog": (('tools_any = ["git_status"]', 'tools_any = ["git_stat"]'), ["'git_tools-01'", "'git_stat'", "not a typed tool"]),
    "field no listed tool has": (('fields_any = ["clean"]', 'fields_any = ["commit_count"]'), ["'git_tools-01'", "'commit_count'", "git_status"]),
    "gate names unknown id": (('gate3 = ["git_tools-01"', 'gate3 = ["git_tools-09"'), ["gates.gate3", "'git_tools-09'"]),
    "threshold above count": (("git_tools = 1", "git_tools = 3"), ["category_min.git_tools", "more than the category's 2"]),
    "overall above total": (("overall_min = 3", "overall_min = 4"), ["overall_min", "more than the 3 queries"]),
    "category without minimum": (("direct_answers = 1\n", ""), ["category_min.direct_answers", "missing"]),
    "direct query lists tools": (('expect = "direct"', 'expect = "direct"\ntools_any = ["git_log"]'), ["'direct_answers-01'", "cannot list tools"]),
    "tool query lists no tools": (('tools_any = ["git_status"]\nfields_any = ["clean"]', ""), ["'git_tools-01'", "needs tools_any or tools_all"]),
    "unknown query key": (('expect = "direct"', 'expect = "direct"\ntool_any = ["git_log"]'), ["'direct_answers-01'", "unknown key 'tool_any'"]),
    "not TOML": (("[thresholds]", "[thresholds"), ["not valid TOML"]),
}


def _write(tmp_path, text):
    path = tmp_path / "queries.toml"
    path.write_text(text)
    return path


def test_valid_small_file_loads(tmp_path, catalog):
    qs = load_queries(_write(tmp_path, VALID), catalog)
    assert [q.id for q in qs.queries] == ["git_tools-01", "git_tools-02", "direct_answers-01"]
    assert qs.by_id("git_tools-02").tools_all == ("git_log", "git_diff")
    assert [q.id for q in qs.for_gate("gate3")] == ["git_tools-01", "direct_answers-01"]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_query_file_is_rejected_naming_file_and_query(tmp_path, catalog, case):
    (old, new), words = BAD[case]
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(QueryFileError) as info:
        load_queries(path, catalog)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_every_error_is_reported_at_once(tmp_path, catalog):
    text = VALID.replace('expect = "direct"', 'expect = "maybe"').replace('"git_status"]', '"git_stat"]')
    with pytest.raises(QueryFileError) as info:
        load_queries(_write(tmp_path, text), catalog)
    assert len(str(info.value).splitlines()) >= 2


def test_missing_query_file_names_it(tmp_path, catalog):
    with pytest.raises(QueryFileError, match="absent.toml"):
        load_queries(tmp_path / "absent.toml", catalog)
