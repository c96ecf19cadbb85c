"""Scoring what a server's API returned (message.content + message.tool_calls), saved answers of
both forms, and `punie-gates score` on them."""

from __future__ import annotations

import json
import tomllib

import pytest

from punie_gates.answering.answers import QueryAnswer, save_answers
from punie_gates.checks.judgment import tally_zero_shot
from punie_gates.checks.scoring import read_answers, score_response
from punie_gates.commands.score import main
from punie_gates.formats.tool_calls import parse_calls
from punie_gates.inputs import paths

IDEAL = tomllib.loads((paths.fixtures_dir() / "responses" / "ideal_mistral.toml").read_text(encoding="utf-8"))["case"]


def as_served(text: str) -> tuple[str, list[dict]]:
    """What mlx_lm.server's Mistral parser returns for a raw reply: the text before the
    marker as content, each call with its arguments re-serialized as JSON."""
    calls = parse_calls(text, "mistral")
    content = text.split("[TOOL_CALLS]", 1)[0]
    return content, [
        {"id": f"call_{n}", "name": c.name, "arguments": json.dumps(dict(c.arguments))} for n, c in enumerate(calls)
    ]


@pytest.mark.parametrize("case", IDEAL, ids=[c["id"] for c in IDEAL])
def test_a_call_the_server_returned_scores_as_the_same_call_in_text(case, catalog, queries):
    query = queries.by_id(case["id"])
    text_form = score_response(query, case["response"], catalog)
    content, calls = as_served(case["response"])
    api_form = score_response(query, content, catalog, tool_calls=calls)
    assert (api_form.passed, api_form.tools, api_form.fields) == (text_form.passed, text_form.tools, text_form.fields)
    assert api_form.passed, api_form.reason


def test_a_call_left_as_text_was_not_made_and_the_reason_quotes_it(catalog, queries):
    case = next(c for c in IDEAL if c["id"] == "field_access-01")
    query = queries.by_id(case["id"])
    score = score_response(query, case["response"], catalog, tool_calls=[])  # no parser picked: all text
    assert not score.passed and score.tools == ()
    assert "no tool call returned by the server" in score.reason
    assert "did not return as tool_calls, so no call was made" in score.reason
    assert "'[TOOL_CALLS]execute_code[ARGS]" in score.reason  # the raw text, quoted


def test_tool_call_text_as_a_direct_answer_fails(catalog, queries):
    query = queries.by_id("direct_answers-01")
    text = 'immutable [TOOL_CALLS]execute_code[ARGS]{"code": "print(1)"}'
    score = score_response(query, text, catalog, tool_calls=[])
    assert not score.passed and "did not return as tool_calls" in score.reason
    assert score_response(query, "A tuple is immutable.", catalog, tool_calls=[]).passed


def test_arguments_that_are_not_json_make_a_malformed_call(catalog, queries):
    query = queries.by_id("existing_tools-01")
    score = score_response(query, "", catalog, tool_calls=[{"name": "execute_code", "arguments": "{not json"}])
    assert not score.passed and "malformed call of execute_code" in score.reason


def test_openai_shaped_calls_are_read_too(catalog, queries):
    case = next(c for c in IDEAL if c["id"] == "existing_tools-01")
    content, calls = as_served(case["response"])
    wrapped = [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls
    ]
    assert score_response(queries.by_id(case["id"]), content, catalog, tool_calls=wrapped).passed


def test_zero_shot_tally_takes_the_servers_calls(catalog, queries):
    tool_query = queries.by_id("field_access-01")
    raw = next(c for c in IDEAL if c["id"] == tool_query.id)["response"]
    content, calls = as_served(raw)
    served = tally_zero_shot([tool_query], {tool_query.id: content}, catalog, {tool_query.id: calls})
    assert served.good_calls == 1
    unparsed = tally_zero_shot([tool_query], {tool_query.id: raw}, catalog, {tool_query.id: []})
    assert unparsed.good_calls == 0 and "holds the call as text" in unparsed.rows[0]["problems"][0]


def _answer(qid: str, text: str, calls) -> QueryAnswer:
    return QueryAnswer(qid, text, calls, "server" if calls is not None else "inprocess", "stop", 1.0, 0.5, 10, 5, 10)


def test_saved_answers_keep_both_forms_and_score_rescores_them(tmp_path, queries, capsys):
    case = next(c for c in IDEAL if c["id"] == "existing_lsp-02")
    content, calls = as_served(case["response"])
    path = save_answers(tmp_path / "gate5-responses.jsonl", [
        _answer(case["id"], content, tuple(calls)),  # through the server, call parsed
        _answer(case["id"], case["response"], ()),  # through the server, call left in the text
        _answer(case["id"], case["response"], None),  # in-process: the call is parsed from the text
    ])  # fmt: skip
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["tool_calls"][0]["name"] == "execute_code" and records[0]["via"] == "server"
    assert "tool_calls" not in records[2] and records[2]["via"] == "inprocess"
    saved, errors = read_answers(path, queries)
    assert not errors and [a.tool_calls is None for a in saved] == [False, False, True]

    assert main(["--responses", str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["passed"] for o in out] == [True, False, True]
    assert "did not return as tool_calls" in out[1]["reason"]


def test_a_malformed_tool_calls_field_names_its_line(tmp_path, queries, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "existing_lsp-02", "response": "", "tool_calls": [{"arguments": "{}"}]}) + "\n")
    assert main(["--responses", str(path)]) == 2
    assert f"{path}:1: tool_calls[0] needs a string name" in capsys.readouterr().err
