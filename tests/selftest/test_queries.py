"""The 40 validation queries load and match the plan; bad query files are rejected clearly."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from punie_gates.inputs.queries import QueryFileError, load_queries

CATEGORIES = [
    "direct_answers",
    "existing_lsp",
    "new_lsp",
    "git_tools",
    "existing_tools",
    "field_access",
    "cross_tool",
    "discrimination",
]
# The seed plan's Gate 5 bar.
SEED_MINIMUMS = {c: 4 for c in CATEGORIES} | {"direct_answers": 5, "cross_tool": 3}


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
    lsp_tools = {
        "existing_lsp": {"goto_definition", "find_references"},
        "new_lsp": {"hover", "document_symbols", "workspace_symbols"},
        "git_tools": {"git_status", "git_diff", "git_log"},
        "existing_tools": {"ruff_check", "pytest_run", "typecheck"},
    }
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

[settings]
max_turns = 4

[gates]
gate3 = ["git_tools-01", "direct_answers-01"]

[[query]]
id = "git_tools-01"
category = "git_tools"
text = "Is the tree clean?"
expect = "tool"
tools_any = ["git_status"]
fields_any = ["clean"]
answer_facts = ["notes.md"]

[query.results]
git_status = """GitStatusResult(success=True, clean=False, file_count=1,
  files=[GitFileStatus(file='notes.md', status='modified', staged=False)], parse_error=None)"""

[[query]]
id = "git_tools-02"
category = "git_tools"
text = "Last commits and diff?"
expect = "tool"
tools_all = ["git_log", "git_diff"]
followup = "call"
followup_tool = "git_diff"
answer_facts = ["3", "a1b2c3d|first"]

[query.results]
git_log = "GitLogResult(success=True, commits=[GitCommit(hash='a1b2c3d', message='first', author='A', date='2025-01-02')], commit_count=1, parse_error=None)"
git_diff = "GitDiffResult(success=True, file_count=1, additions=3, deletions=0, files=[], parse_error=None)"

[[query]]
id = "direct_answers-01"
category = "direct_answers"
text = "What is a tuple?"
expect = "direct"
answer_facts = ["immutable|cannot be changed"]
'''

# (replace this, with that) in VALID -> words the error must contain
BAD = {
    "duplicate id": (('id = "git_tools-02"', 'id = "git_tools-01"'), ["'git_tools-01'", "duplicate id"]),
    "id not category-NN": (('id = "git_tools-02"', 'id = "git_tools-2"'), ["'git_tools-2'", "<category>-NN"]),
    "id and category disagree": (('id = "git_tools-02"', 'id = "git_stuff-02"'), ["'git_stuff-02'", "category"]),
    "unknown category in thresholds": (
        ("direct_answers = 1\n", "direct_answers = 1\nmisc = 1\n"),
        ["category_min.misc", "unknown category"],
    ),
    "unknown expect": (('expect = "direct"', 'expect = "maybe"'), ["'direct_answers-01'", "unknown expect 'maybe'"]),
    "tool not in catalog": (
        ('tools_any = ["git_status"]', 'tools_any = ["git_stat"]'),
        ["'git_tools-01'", "'git_stat'", "not a typed tool"],
    ),
    "field no listed tool has": (
        ('fields_any = ["clean"]', 'fields_any = ["commit_count"]'),
        ["'git_tools-01'", "'commit_count'", "git_status"],
    ),
    "gate names unknown id": (
        ('gate3 = ["git_tools-01"', 'gate3 = ["git_tools-09"'),
        ["gates.gate3", "'git_tools-09'"],
    ),
    "threshold above count": (
        ("git_tools = 1", "git_tools = 3"),
        ["category_min.git_tools", "more than the category's 2"],
    ),
    "overall above total": (("overall_min = 3", "overall_min = 4"), ["overall_min", "more than the 3 queries"]),
    "category without minimum": (("direct_answers = 1\n", ""), ["category_min.direct_answers", "missing"]),
    "direct query lists tools": (
        ('expect = "direct"', 'expect = "direct"\ntools_any = ["git_log"]'),
        ["'direct_answers-01'", "cannot list tools"],
    ),
    "tool query lists no tools": (
        ('tools_any = ["git_status"]\nfields_any = ["clean"]', ""),
        ["'git_tools-01'", "needs tools_any or tools_all"],
    ),
    "unknown query key": (
        ('expect = "direct"', 'expect = "direct"\ntool_any = ["git_log"]'),
        ["'direct_answers-01'", "unknown key 'tool_any'"],
    ),
    "no answer_facts": (('answer_facts = ["notes.md"]\n', ""), ["'git_tools-01'", "answer_facts is missing"]),
    "empty alternative": (('["notes.md"]', '["notes.md|"]'), ["'git_tools-01'", "'notes.md|'", "empty alternative"]),
    "fact in no result": (
        ('["notes.md"]', '["todo.md"]'),
        ["'git_tools-01'", "'todo.md'", "none of the query's results (git_status)"],
    ),
    "fact already in the text": (
        ('["notes.md"]', '["notes.md", "tree"]'),
        ["'git_tools-01'", "'tree'", "already in the query's text"],
    ),
    "number fact in no result": (
        ('["3", "a1b2c3d|first"]', '["4", "a1b2c3d|first"]'),
        ["'git_tools-02'", "'4'", "none of the query's results"],
    ),
    "result for an unknown tool": (
        ("git_status = ", "git_stat = "),
        ["'git_tools-01'", "results.git_stat", "not a typed tool"],
    ),
    "listed tool without result": (
        ('git_log = "GitLogResult', 'read_file = "GitLogResult'),
        ["'git_tools-02'", "no entry for 'git_log'"],
    ),
    "result lacks a catalog field": (
        ("additions=3, deletions=0, ", "additions=3, "),
        ["'git_tools-02'", "results.git_diff", "lacks deletions"],
    ),
    "result has a field the catalog lacks": (
        ("staged=False)", "staged=False, mode=1)"),
        ["'git_tools-01'", "results.git_status", "files[0] has mode"],
    ),
    "result not an expression": (
        ("files=[], parse_error=None)", "files=[], parse_error=None"),
        ["'git_tools-02'", "results.git_diff", "not a Python expression"],
    ),
    "direct query with results": (
        ('expect = "direct"\n', 'expect = "direct"\nresults = { git_log = "x" }\n'),
        ["'direct_answers-01'", "cannot give results"],
    ),
    "direct query with followup": (
        ('expect = "direct"\n', 'expect = "direct"\nfollowup = "text"\n'),
        ["'direct_answers-01'", "has no follow-up"],
    ),
    "unknown followup": (('followup = "call"', 'followup = "maybe"'), ["'git_tools-02'", "unknown followup 'maybe'"]),
    "call followup without tool": (('followup_tool = "git_diff"\n', ""), ["'git_tools-02'", "needs followup_tool"]),
    "followup tool not in catalog": (
        ('followup_tool = "git_diff"', 'followup_tool = "git_dif"'),
        ["'git_tools-02'", "'git_dif' is not a typed tool"],
    ),
    "max_turns out of range": (("max_turns = 4", "max_turns = 40"), ["settings.max_turns", "from 2 to 10"]),
    "max_turns too small for a second call": (
        ("max_turns = 4", "max_turns = 2"),
        ["settings.max_turns", "git_tools-02 needs 3"],
    ),
    "not TOML": (("[thresholds]", "[thresholds"), ["not valid TOML"]),
    "followup minimum above the tool queries": (
        ("[settings]", "[followup]\noverall_min = 3\n[settings]"),
        ["followup.overall_min", "more than the 2 tool queries"],
    ),
    "followup without overall_min": (
        ("[settings]", "[followup]\nhard = true\n[settings]"),
        ["followup.overall_min", "non-negative integer"],
    ),
    "followup hard not a boolean": (
        ("[settings]", "[followup]\noverall_min = 1\nhard = 1\n[settings]"),
        ["followup.hard", "true"],
    ),
    "followup unknown key": (
        ("[settings]", "[followup]\noverall_min = 1\nsoft = true\n[settings]"),
        ["followup.soft", "unknown key"],
    ),
    "followup minimum for a category with no tool query": (
        ("[settings]", "[followup]\noverall_min = 1\n[followup.category_min]\ndirect_answers = 1\n[settings]"),
        ["followup.category_min.direct_answers", "no tool query has category"],
    ),
    "followup category minimum above its tool queries": (
        ("[settings]", "[followup]\noverall_min = 1\n[followup.category_min]\ngit_tools = 3\n[settings]"),
        ["followup.category_min.git_tools", "more than the category's 2 tool queries"],
    ),
}


def _write(tmp_path, text):
    path = tmp_path / "queries.toml"
    path.write_text(text)
    return path


def test_valid_small_file_loads(tmp_path, catalog):
    qs = load_queries(_write(tmp_path, VALID), catalog)
    assert [q.id for q in qs.queries] == ["git_tools-01", "git_tools-02", "direct_answers-01"]
    assert qs.by_id("git_tools-02").tools_all == ("git_log", "git_diff")
    assert qs.max_turns == 4
    status = qs.by_id("git_tools-01")
    # Spread over lines in the file, sent on one line as repr prints it.
    assert status.results["git_status"] == (
        "GitStatusResult(success=True, clean=False, file_count=1, files=[GitFileStatus(file='notes.md', "
        "status='modified', staged=False)], parse_error=None)"
    )
    assert (status.followup, status.followup_tool) == ("text", None)
    assert (qs.by_id("git_tools-02").followup, qs.by_id("git_tools-02").followup_tool) == ("call", "git_diff")
    assert qs.by_id("direct_answers-01").answer_facts == ("immutable|cannot be changed",)
    assert qs.by_id("direct_answers-01").results == {}
    assert [q.id for q in qs.for_gate("gate3")] == ["git_tools-01", "direct_answers-01"]


def test_followup_minimums_are_optional_and_read(tmp_path, catalog):
    assert load_queries(_write(tmp_path, VALID), catalog).followup_thresholds is None
    text = VALID.replace(
        "[settings]", "[followup]\noverall_min = 2\nhard = true\n[followup.category_min]\ngit_tools = 1\n[settings]"
    )
    th = load_queries(_write(tmp_path, text), catalog).followup_thresholds
    assert (th.overall_min, dict(th.category_min), th.hard) == (2, {"git_tools": 1}, True)


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


def test_a_fact_must_reach_the_model_whichever_tools_any_it_calls(tmp_path, catalog):
    either = VALID.replace('tools_any = ["git_status"]', 'tools_any = ["git_status", "git_diff"]').replace(
        "[query.results]\ngit_status",
        '[query.results]\ngit_diff = "GitDiffResult(success=True, file_count=0, additions=0, deletions=0, files=[], parse_error=None)"\ngit_status',
        1,
    )
    with pytest.raises(QueryFileError) as info:
        load_queries(_write(tmp_path, either), catalog)
    message = str(info.value)
    assert "'git_tools-01'" in message and "'notes.md' is not in git_diff's result" in message
    # Stated in a result of a tool every good answer calls (tools_all), it is reachable.
    ok = either.replace(
        'tools_any = ["git_status", "git_diff"]', 'tools_any = ["git_diff"]\ntools_all = ["git_status"]'
    )
    assert load_queries(_write(tmp_path, ok), catalog).by_id("git_tools-01").tools_all == ("git_status",)


def test_the_shipped_file_documents_every_query_key():
    from punie_gates.inputs import paths
    from punie_gates.inputs.queries import _QUERY_KEYS

    header = (paths.data_dir() / "queries.toml").read_text(encoding="utf-8").split("\n[thresholds]\n")[0]
    for key in sorted(_QUERY_KEYS) + [
        "max_turns",
        "[settings]",
        "[followup]",
        "overall_min",
        "hard",
        "[followup.category_min]",
    ]:
        assert f"#   {key}" in header or f"# {key}" in header or f"#   [query.{key}]" in header, key
