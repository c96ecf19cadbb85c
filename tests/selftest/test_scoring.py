"""Honest scoring: hand-labelled replies in both formats, every query satisfiable and
failable, the code analysis, and `punie-gates score` end to end."""

from __future__ import annotations

import json
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from punie_gates import commands as cli
from punie_gates.checks.scoring import score_response, validate_call
from punie_gates.commands.score import main
from punie_gates.formats.code_analysis import analyse_code
from punie_gates.formats.tool_calls import ParsedCall, detect_format, parse_calls
from punie_gates.inputs import paths
from punie_gates.inputs.catalog import load_catalog

RESPONSES = paths.fixtures_dir() / "responses"
CASE_FILES = {"mistral": "cases_mistral.toml", "qwen3": "cases_qwen3.toml"}


def _cases(name: str) -> list[dict]:
    with (RESPONSES / name).open("rb") as handle:
        return tomllib.load(handle)["case"]


ALL_CASES = [(fmt, case) for fmt, name in CASE_FILES.items() for case in _cases(name)]
IDEAL = _cases("ideal_mistral.toml")
_CATALOG = load_catalog()  # for hypothesis tests, which cannot take function-scoped fixtures


def _agrees(score, case) -> list[str]:
    wrong = []
    if score.passed != case["passed"]:
        wrong.append(f"passed={score.passed}, label says {case['passed']}")
    if "tools" in case and list(score.tools) != case["tools"]:
        wrong.append(f"tools={score.tools}, label says {case['tools']}")
    if "fields" in case and list(score.fields) != case["fields"]:
        wrong.append(f"fields={score.fields}, label says {case['fields']}")
    return wrong


# --- hand-labelled cases -------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "case"), ALL_CASES, ids=[f"{f}:{c['name']}" for f, c in ALL_CASES])
def test_scorer_agrees_with_hand_label(fmt, case, catalog, queries):
    score = score_response(queries.by_id(case["id"]), case["response"], catalog, fmt)
    assert not _agrees(score, case), score.reason
    assert score.reason.startswith("PASS: " if case["passed"] else "FAIL: ")
    assert "expected" in score.reason and "found" in score.reason


def test_auto_format_agrees_where_markers_match(catalog, queries):
    checked = 0
    for fmt, case in ALL_CASES:
        if detect_format(case["response"]) not in (fmt, "none"):
            continue  # a reply in the other format: its label holds only under fmt
        score = score_response(queries.by_id(case["id"]), case["response"], catalog, "auto")
        assert not _agrees(score, case), (case["name"], score.reason)
        checked += 1
    assert checked >= len(ALL_CASES) - 2


def test_both_formats_cover_the_required_cases():
    required = [
        "right tool",
        "wrong tool",
        "comment",
        "string",
        "hallucinated",
        "truncated",
        "several calls",
        "directly as a native tool",
        "call on a direct question",
        "half a workflow",
        "does not parse",
        "alias and loop",
    ]
    for fmt, name in CASE_FILES.items():
        names = " | ".join(c["name"] for c in _cases(name))
        for words in required:
            assert words in names, (fmt, words)
        labels = {c["passed"] for c in _cases(name)}
        assert labels == {True, False}


# --- every query can pass and can fail -----------------------------------------------------


def test_ideal_replies_cover_every_query_once(queries):
    assert sorted(c["id"] for c in IDEAL) == sorted(q.id for q in queries.queries)
    assert all(c["passed"] for c in IDEAL)


@pytest.mark.parametrize("case", IDEAL, ids=[c["id"] for c in IDEAL])
def test_every_query_is_satisfiable(case, catalog, queries):
    score = score_response(queries.by_id(case["id"]), case["response"], catalog, "mistral")
    assert score.passed, score.reason


def _mistral(code: str) -> str:
    return "[TOOL_CALLS]execute_code[ARGS]" + json.dumps({"code": code})


def _reading(tools, field: str, catalog) -> str:
    """A reply calling each tool and reading `field` where the tool has it (through a
    list item if it is an item field), else `success`."""
    lines = []
    for i, tool in enumerate(tools):
        typed = catalog.typed[tool]
        path = "success"
        if field in typed.fields:
            path = field
        else:
            path = next((f"{lst}[0].{field}" for lst, items in typed.item_fields.items() if field in items), path)
        required = ", ".join(repr(p) for p in typed.params if p not in typed.defaults)  # Punie's signature
        lines.append(f"r{i} = {tool}({required})\nprint(r{i}.{path})")
    return _mistral("\n".join(lines))


def test_trivially_wrong_reply_fails_every_query(catalog, queries):
    for query in queries.queries:
        if query.expect == "tool":
            wrong = "Sure, the result looks fine to me and nothing needs to change here."
        else:
            wrong = _mistral('print("let me check")')
        score = score_response(query, wrong, catalog)
        assert not score.passed, query.id


def test_every_check_can_fail_alone(catalog, queries):
    """Satisfy every check of a query but one: that one alone must fail it, and the
    same reply with that check satisfied passes (so the failure was that check's)."""
    failed = {"tools_any": 0, "tools_all": 0, "fields_any": 0}
    for query in queries.queries:
        if query.expect == "direct":
            continue
        other = next(t for t in ("hover", "git_log") if t not in query.listed_tools)
        needed = list(dict.fromkeys([*query.tools_all, *query.tools_any[:1]]))
        field = query.fields_any[0] if query.fields_any else "success"
        variants = {}
        if query.tools_any:
            variants["tools_any"] = [t for t in needed if t not in query.tools_any] + [other]
        if query.tools_all:
            variants["tools_all"] = [t for t in needed if t != query.tools_all[0]] or [other]
        if query.fields_any:
            variants["fields_any"] = needed
        for check, tools in variants.items():
            reply = _reading(tools, "parse_error" if check == "fields_any" else field, catalog)
            score = score_response(query, reply, catalog)
            assert not score.passed, (query.id, check, score.reason)
            assert ("not read" if check == "fields_any" else "not called") in score.reason
            failed[check] += 1
        control = score_response(query, _reading(needed, field, catalog), catalog)
        assert control.passed, (query.id, control.reason)
    assert all(failed.values()), failed


# --- parsing -------------------------------------------------------------------------------


def test_detect_format():
    assert detect_format("plain text") == "none"
    assert detect_format("x[TOOL_CALLS]a[ARGS]{}") == "mistral"
    assert detect_format("<tool_call><function=a></function></tool_call>") == "qwen3"
    assert detect_format("[TOOL_CALLS] then <tool_call>") == "mistral"


def test_parse_mistral_forms():
    calls = parse_calls('Hi.[TOOL_CALLS]a[ARGS]{"x": 1}[TOOL_CALLS]b[ARGS]{"y": [2]}</s>')
    assert [(c.name, dict(c.arguments), c.error) for c in calls] == [("a", {"x": 1}, None), ("b", {"y": [2]}, None)]
    array = parse_calls(
        '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": "{\\"y\\": 2}"}]'
    )
    assert [(c.name, dict(c.arguments)) for c in array] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert parse_calls("[TOOL_CALLS]a[ARGS]{}", "qwen3") == ()


def test_broken_mistral_calls_are_reported_not_raised():
    (call,) = parse_calls('[TOOL_CALLS]a[ARGS]{"x": ')
    assert call.name == "a" and call.arguments is None and "cut off" in call.error
    first, second = parse_calls('[TOOL_CALLS]a[ARGS]{"x": 1} b[ARGS]{"y": tru')
    assert first.name == "a" and "drops" in first.error
    assert second.name == "b" and "not valid JSON" in second.error
    (garbage,) = parse_calls("[TOOL_CALLS] I will not call anything")
    assert garbage.name == "" and garbage.error
    (scalar,) = parse_calls('[TOOL_CALLS]a[ARGS]"text"')
    assert scalar.arguments is None and "not a JSON object" in scalar.error


def test_parse_qwen3_blocks(catalog):
    text = (
        "Checking.\n<tool_call>\n<function=execute_code>\n<parameter=code>\nprint(1)\n</parameter>\n"
        "</function>\n</tool_call>\n<tool_call><function=git_log><parameter=count>3</parameter>"
        "</function></tool_call><tool_call><function=execute_code><parameter=code>print("
    )
    first, second, third = parse_calls(text, tools=catalog.native_schemas())
    assert (first.name, dict(first.arguments), first.error) == ("execute_code", {"code": "print(1)"}, None)
    assert second.name == "git_log" and second.arguments["count"] == "3"
    assert third.name == "execute_code" and "cut off" in third.error


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown format"):
        parse_calls("x", "json")


@given(st.text())
def test_parsers_never_raise(text):
    for fmt in ("auto", "mistral", "qwen3"):
        for call in parse_calls(text, fmt):
            assert (call.error is None) == (call.arguments is not None)


@given(st.text(alphabet=st.sampled_from(list('[TOOL_CALLS]ARG{}"<>/=:,x \n'))))
def test_parsers_never_raise_on_marker_soup(text):
    parse_calls(text, "mistral")
    parse_calls(text.replace("[", "<"), "qwen3")


# --- validate_call ---------------------------------------------------------------------------


def test_validate_call(catalog):
    assert validate_call(ParsedCall("execute_code", {"code": "print(1)"}, None), catalog) is None
    assert "required" in validate_call(ParsedCall("execute_code", {}, None), catalog)
    assert "code" in validate_call(ParsedCall("execute_code", {"code": 3}, None), catalog)
    assert "typed tool" in validate_call(ParsedCall("git_status", {}, None), catalog)
    assert "no native tool named 'bash'" in validate_call(ParsedCall("bash", {}, None), catalog)
    assert validate_call(ParsedCall("execute_code", None, "cut off"), catalog) == "cut off"


# --- code analysis ---------------------------------------------------------------------------


def _facts(code, catalog):
    facts = analyse_code(code, catalog)
    assert facts.parsed, facts.error
    return facts


def test_comments_and_strings_are_not_calls(catalog):
    facts = _facts('# typecheck("src")\nx = "ruff_check(1)"\nprint(f"{x} git_log()")\n"""hover()"""', catalog)
    assert facts.calls == () and not facts.fields


def test_fields_through_aliases_chains_loops_and_comprehensions(catalog):
    code = """
r = typecheck("src")
alias = r
first = alias.errors[0]
print(first.line)
for i, e in enumerate(sorted(alias.errors, key=lambda e: e.column)):
    print(i, e.message)
bad = [e for e in r.errors if e.severity == "error"]
print(max(bad, key=len).code, bad[-1].file)
if (s := git_status()).clean:
    print(getattr(s, "file_count"))
print({f.file: f.staged for f in s.files})
for sym in document_symbols("a.py").symbols:
    for child in sym.children:
        print(child.kind)
log = await git_log()
print(log["commit_count"])
"""
    facts = _facts(code, catalog)
    assert facts.calls == ("typecheck", "git_status", "document_symbols", "git_log")
    assert facts.fields["typecheck"] == {"errors", "line", "message", "severity", "code", "file"}
    assert facts.fields["git_status"] == {"clean", "file_count", "files", "file", "staged"}
    assert facts.fields["document_symbols"] == {"symbols", "children", "kind"}
    assert facts.fields["git_log"] == {"commit_count"}
    assert not facts.unknown_fields


def test_fields_the_results_lack_are_caught(catalog):
    code = """
r = ruff_check("src")
print(r.total, r.violations.code, r.violations[0].fix, r.model_dump())
print(read_file("a").splitlines(), read_file("b").text)
for v in r.violations:
    v.line
"""
    facts = _facts(code, catalog)
    assert facts.unknown_fields["ruff_check"] == {"total", "violations.code (a list)", "violations[].fix"}
    assert facts.unknown_fields["read_file"] == {"text (the result is plain text)"}
    assert facts.fields["ruff_check"] == {"violations", "line"}


def test_rebound_names_and_scopes(catalog):
    shadowed = _facts("def hover(x):\n    return x\nhover(1).content", catalog)
    assert shadowed.calls == () and not shadowed.unknown_fields
    # A lambda parameter hides the outer tracked name; reassignment forgets it.
    code = "r = hover('a', 1, 2, 's')\nf = lambda r: r.nothing\nr = 5\nr.also_nothing"
    facts = _facts(code, catalog)
    assert facts.calls == ("hover",) and not facts.unknown_fields
    imported = _facts("from punie import typecheck\nprint(typecheck('x').error_count)", catalog)
    assert imported.calls == ("typecheck",)


def test_code_that_does_not_parse_calls_nothing(catalog):
    facts = analyse_code('r = typecheck("src"\nprint(r.error_count)', catalog)
    assert not facts.parsed and facts.calls == () and "line" in facts.error


def test_code_is_never_run(catalog, queries, tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\nr = typecheck('src')\nprint(r.error_count)"
    score = score_response(queries.by_id("existing_tools-03"), _mistral(code), catalog)
    assert score.passed and not marker.exists()


@given(st.text())
def test_analysis_never_raises(text):
    facts = analyse_code(text, _CATALOG)
    assert facts.parsed == (facts.error is None)


# --- the command line ------------------------------------------------------------------------


def _jsonl(tmp_path, cases, name="responses.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": c["id"], "response": c["response"]}) + "\n" for c in cases))
    return path


@pytest.mark.parametrize("fmt", sorted(CASE_FILES))
def test_cli_agrees_with_every_label(fmt, tmp_path, capsys):
    cases = _cases(CASE_FILES[fmt])
    path = _jsonl(tmp_path, cases)
    assert cli.main(["score", "--responses", str(path), "--format", fmt]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [c["id"] for c in cases]
    for row, case in zip(rows, cases):
        assert set(row) == {"id", "passed", "tools", "fields", "reason"}
        assert not _agrees(type("S", (), row), case), (case["name"], row["reason"])
    passed = sum(c["passed"] for c in cases)
    assert f"passed {passed}/{len(cases)}" in err
    assert "thresholds not judged" in err


def test_cli_judges_thresholds_on_the_full_set(tmp_path, capsys):
    assert main(["--responses", str(_jsonl(tmp_path, IDEAL))]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 40
    assert "passed 40/40 (overall minimum 34: met)" in err
    assert err.count(": met)") == 9 and "NOT met" not in err
    assert err.rstrip().endswith("thresholds: met")


def test_cli_reports_a_failing_full_set_below_thresholds(tmp_path, capsys):
    wrong = [dict(c, response="No idea.") if c["id"].startswith("cross_tool") else c for c in IDEAL]
    assert main(["--responses", str(_jsonl(tmp_path, wrong))]) == 0  # verdict is in the output
    _, err = capsys.readouterr()
    assert "passed 35/40 (overall minimum 34: met)" in err
    assert "cross_tool       0/5  (minimum 3: NOT met)" in err
    assert err.rstrip().endswith("thresholds: NOT met (cross_tool)")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"id": "nope-01", "response": "x"}', ["unknown query id 'nope-01'"]),
        ('{"id": "git_tools-01", "response": ', ["not valid JSON"]),
        ('{"id": "git_tools-01"}', ["needs string fields id and response"]),
        ('["git_tools-01", "x"]', ["expected a JSON object"]),
    ],
)
def test_cli_bad_input_names_file_and_line(line, words, tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "git_tools-01", "response": "hi"}\n\n' + line + "\n")
    assert main(["--responses", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:3:" in err
    for word in words:
        assert word in err


def test_cli_bad_query_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "q.toml"
    bad.write_text("[thresholds]\noverall_min = 1\n")
    responses = _jsonl(tmp_path, IDEAL[:1])
    assert main(["--queries", str(bad), "--responses", str(responses)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_cli_help_documents_exit_status(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "exit status" in text and "not the exit status" in text and "--format" in text


# --- against Punie's real data ------------------------------------------------------------


def test_punie_code_mode_calls_read_only_catalog_fields(phase27_dir, catalog):
    """Every Code Mode call in Punie's training data parses with the Qwen3 parser, calls a
    typed tool, and reads only fields the catalog lists: a check of data/tools.toml
    against the code Punie's own model was taught to write."""
    turns, problems = 0, []
    for name in ("train.jsonl", "valid.jsonl"):
        for number, line in enumerate((phase27_dir / name).read_text().splitlines(), 1):
            for message in json.loads(line)["messages"]:
                if message["role"] != "assistant" or "<tool_call>" not in message["content"]:
                    continue
                turns += 1
                for call in parse_calls(message["content"], "qwen3", catalog.native_schemas()):
                    if call.error or call.name != "execute_code":
                        problems.append((name, number, call.name, call.error))
                        continue
                    facts = analyse_code(call.arguments["code"], catalog)
                    if not facts.parsed or not facts.calls or facts.unknown_fields:
                        problems.append((name, number, facts.error, dict(facts.unknown_fields)))
    assert turns > 800
    assert not problems, problems[:3]


def test_a_typed_tool_offered_natively_counts_as_called(catalog):
    # Punie offers run_command both directly and inside execute_code code.
    from punie_gates.inputs.queries import Query

    query = Query(
        id="x-01",
        category="existing_tools",
        text="List the files.",
        expect="tool",
        tools_any=("run_command",),
        tools_all=(),
        fields_any=(),
    )
    direct = score_response(query, '[TOOL_CALLS]run_command[ARGS]{"command": "ls"}', catalog)
    assert direct.passed and direct.tools == ("run_command",), direct.reason
    wrong_args = score_response(query, '[TOOL_CALLS]run_command[ARGS]{"cmd": "ls"}', catalog)
    assert not wrong_args.passed, wrong_args.reason


# --- arity: Punie's signatures --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("print(git_status().clean)", "git_status() is missing its required argument 'path'"),
        ("print(git_log(count=3).commits)", "git_log() is missing its required argument 'path'"),
        ("print(git_diff(staged=True).files)", "git_diff() is missing its required argument 'path'"),
        ('print(git_status(".", "x").clean)', "git_status() takes 1 argument(s) but 2 were given"),
        ('print(git_log(".", limit=3).commits)', "git_log() got an unexpected keyword argument 'limit'"),
        ('print(git_log(".", path=".").commits)', "git_log() got multiple values for argument 'path'"),
        ("print(goto_definition('a.py', 3).locations)", "missing its required argument 'column' and 'symbol'"),
    ],
)
def test_a_call_punie_would_refuse_fails_the_query_saying_why(catalog, queries, code, problem):
    facts = analyse_code(code, catalog)
    assert any(problem in p for p in facts.bad_calls), facts.bad_calls
    query = next(q for q in queries.queries if q.expect != "direct")
    score = score_response(query, _mistral(code), catalog)
    assert not score.passed and problem in score.reason, score.reason


def test_calls_that_fit_the_signature_and_spreads_are_not_flagged(catalog):
    for code in (
        'git_status(".")',
        'git_status(path=".")',
        'git_log(".", 5)',
        'git_diff("src", staged=True)',
        "git_log(*args)",
        "git_log(**options)",
        "run_command('ls')",
    ):
        assert analyse_code(code, catalog).bad_calls == (), code


def test_git_status_without_path_fails_an_otherwise_right_reply(catalog, queries):
    query = queries.by_id("git_tools-01")
    right = score_response(query, _mistral('for f in git_status(".").files:\n    print(f.file, f.status)'), catalog)
    assert right.passed, right.reason
    wrong = score_response(query, _mistral("for f in git_status().files:\n    print(f.file, f.status)"), catalog)
    assert not wrong.passed
    assert wrong.reason.endswith(
        "git_status() is missing its required argument 'path': Punie's git_status(path) raises TypeError"
    )
