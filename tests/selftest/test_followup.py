"""The agent loop on the queries' tool results, and the verdict on the answer after them.

Scripted conversations of every kind, in Devstral's Mistral form and in the Qwen3
baseline's form, each with a hand label; the fact and number rules; saved
conversations scored again offline; and the loop on the demo candidate through the
in-process path (its chat template renders the tool turn).
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from punie_gates.answering.conversation import (
    ANSWERED,
    ASK_FAILED,
    MAX_TURNS,
    NO_RESULT,
    UNUSABLE_CALL,
    Conversation,
    conversation_from_record,
    conversation_record,
    converse,
    converse_many,
    for_openai,
    in_process_ask,
    read_conversations,
    reply_from_message,
    reply_from_text,
    server_ask,
    write_conversations,
)
from punie_gates.checks.followup import rescore_conversations, score_followup, unsupported_numbers
from punie_gates.checks.scoring import score_response
from punie_gates.inputs.facts import missing_facts, number_claims, states
from punie_gates.inputs.queries import load_queries
from punie_gates.inputs.results import check_result, result_numbers

PROMPT = [{"role": "system", "content": "You are Punie."}]
_ID = re.compile(r"^[A-Za-z0-9]{9}$")


# --- replies in both formats -------------------------------------------------------------


def mistral(code: str, preamble: str = "") -> str:
    return f"{preamble}[TOOL_CALLS]execute_code[ARGS]" + json.dumps({"code": code})


def qwen3(code: str, preamble: str = "") -> str:
    head = f"{preamble}\n\n" if preamble else ""
    return (
        f"{head}<tool_call>\n<function=execute_code>\n<parameter=code>\n{code}\n</parameter>\n</function>\n</tool_call>"
    )


FORMS = {"mistral": mistral, "qwen3": qwen3}


class Script:
    """An `ask` that answers from a list of texts and keeps the messages it was sent."""

    def __init__(self, texts, fmt: str) -> None:
        self.texts, self.fmt, self.seen = list(texts), fmt, []

    def __call__(self, messages):
        self.seen.append(messages)
        if not self.texts:
            raise AssertionError("the loop asked for more replies than scripted")
        text = self.texts.pop(0)
        if isinstance(text, Exception):
            raise text
        return reply_from_text(text, self.fmt)


def run(queries, catalog, qid, replies, fmt, max_turns=None):
    """Converse from scripted replies: the first is the first reply, the rest answer `ask`."""
    query = queries.by_id(qid)
    script = Script(replies[1:], fmt)
    conversation = converse(
        query,
        replies[0],
        script,
        catalog=catalog,
        prompt=[*PROMPT, {"role": "user", "content": query.text}],
        max_turns=max_turns or queries.max_turns,
        fmt=fmt,
    )
    return conversation, score_followup(query, conversation), script


# (name, query id, replies as (kind, payload) where kind "call" is code to call and
# "text" a final text, max_turns or None) -> the hand label: passed, stop, missing
# facts, unsupported numbers, words the reason must hold.
CASES = [
    (
        "facts present",
        "existing_tools-03",
        [
            ("call", 'r = typecheck("src/")\nprint(r)'),
            ("text", "Two type errors: src/app/models.py line 27 and src/app/views.py line 54, plus 1 warning."),
        ],
        None,
        dict(passed=True, stop=ANSWERED, missing=(), unsupported=(), words=["PASS", "reply 2: answers in text"]),
    ),
    (
        "one fact missing",
        "existing_tools-03",
        [("call", 'print(typecheck("src/"))'), ("text", "There are 2 type errors, both in src/app/models.py.")],
        None,
        dict(passed=False, stop=ANSWERED, missing=("views.py",), unsupported=(), words=["does not state 'views.py'"]),
    ),
    (
        "hallucinated count",
        "field_access-01",
        [("call", 'print(typecheck("src/models/").error_count)'), ("text", "src/models/ has 7 type errors.")],
        None,
        dict(
            passed=False, stop=ANSWERED, missing=("4",), unsupported=("7",), words=["states '7'", "does not state '4'"]
        ),
    ),
    (
        "a right count beside a hallucinated one",
        "field_access-01",
        [("call", 'print(typecheck("src/models/").error_count)'), ("text", "4 errors, in 6 files.")],
        None,
        dict(passed=False, stop=ANSWERED, missing=(), unsupported=("6",), words=["states '6'"]),
    ),
    (
        "numbers from the question, file names and codes are not claims",
        "existing_lsp-01",
        [
            ("call", 'r = goto_definition("src/app/main.py", 42, 12, "load_settings")\nprint(r.locations[0])'),
            (
                "text",
                "Called at src/app/main.py:42:12, load_settings is defined in src/app/config.py on line 8 "
                "(see also tests/test_3.py, F401, commit 3f9c2a1, Python 3.11.2).",
            ),
        ],
        None,
        dict(passed=True, stop=ANSWERED, missing=(), unsupported=(), words=["PASS"]),
    ),
    (
        "number words and derived counts",
        "existing_tools-02",
        [
            ("call", 'print(pytest_run("tests/unit"))'),
            ("text", "15 tests ran in about 2.3s: fourteen passed, one failed (test_discount_applies_once)."),
        ],
        None,
        dict(passed=True, stop=ANSWERED, missing=(), unsupported=(), words=["PASS"]),
    ),
    (
        "extra call to a tool without results",
        "existing_tools-03",
        [("call", 'print(typecheck("src/"))'), ("call", 'print(ruff_check("src/"))'), ("text", "never reached")],
        None,
        dict(
            passed=False,
            stop=NO_RESULT,
            missing=(),
            unsupported=(),
            words=["reply 2", "ruff_check", "provides no result"],
        ),
    ),
    (
        "a second call whose tool has results, then the answer",
        "git_tools-01",
        [
            ("call", "print(git_status())"),
            ("call", "print(git_diff())"),
            ("text", "src/app/views.py and src/app/models.py have uncommitted changes."),
        ],
        None,
        dict(passed=True, stop=ANSWERED, missing=(), unsupported=(), words=["reply 2: calls execute_code (git_diff)"]),
    ),
    (
        "workflow: the expected second call",
        "cross_tool-02",
        [
            ("call", 'print(git_status(".").files)'),
            ("call", 'print(typecheck("src/app/forms.py"))\nprint(typecheck("src/app/urls.py"))'),
            (
                "text",
                "urls.py is clean; src/app/forms.py line 33: clean_email gets `str | None` where `str` is expected.",
            ),
        ],
        None,
        dict(passed=True, stop=ANSWERED, missing=(), unsupported=(), words=["reply 2: calls execute_code (typecheck)"]),
    ),
    (
        "workflow: text where the second call was expected",
        "cross_tool-02",
        [
            ("call", 'print(git_status(".").files)'),
            ("text", "You changed src/app/forms.py and src/app/urls.py; clean_email looks fine."),
        ],
        None,
        dict(passed=False, stop=ANSWERED, missing=(), unsupported=(), words=["expected a call of typecheck"]),
    ),
    (
        "workflow: both calls in the first reply",
        "cross_tool-02",
        [
            ("call", "for f in git_status().files:\n    print(typecheck(f.file))"),
            ("text", "One error: src/app/forms.py:33, clean_email."),
        ],
        None,
        dict(
            passed=True,
            stop=ANSWERED,
            missing=(),
            unsupported=(),
            words=["reply 1: calls execute_code (git_status, typecheck)"],
        ),
    ),
    (
        "still calling tools at max_turns",
        "existing_tools-03",
        [("call", 'print(typecheck("src/"))'), ("call", 'print(typecheck("src/app"))')],
        2,
        dict(
            passed=False, stop=MAX_TURNS, missing=(), unsupported=(), words=["reply 2 of at most 2 still calls a tool"]
        ),
    ),
    (
        "code that calls no typed tool",
        "existing_tools-03",
        [("call", 'print("all good")')],
        None,
        dict(passed=False, stop=UNUSABLE_CALL, missing=(), unsupported=(), words=["calls no typed tool"]),
    ),
    (
        "the answering path raises on the tool turn",
        "existing_tools-03",
        [("call", 'print(typecheck("src/"))'), ("raise", "template cannot render role 'tool'")],
        None,
        dict(
            passed=False,
            stop=ASK_FAILED,
            missing=(),
            unsupported=(),
            words=["reply 2: no reply", "TemplateError", "cannot render"],
        ),
    ),
    (
        "no call at all on a tool query",
        "existing_tools-03",
        [("text", "There are 2 errors in models.py and views.py.")],
        None,
        dict(passed=False, stop=ANSWERED, missing=(), unsupported=(), words=["no tool call"]),
    ),
]


class TemplateError(Exception):
    """Stands in for jinja2's error when a chat template has no tool role."""


def _texts(replies, fmt):
    out = []
    for kind, payload in replies:
        if kind == "call":
            out.append(FORMS[fmt](payload, "Let me check."))
        elif kind == "raise":
            out.append(TemplateError(payload))
        else:
            out.append(payload)
    return out


@pytest.mark.parametrize("fmt", sorted(FORMS))
@pytest.mark.parametrize(("name", "qid", "replies", "max_turns", "label"), CASES, ids=[c[0] for c in CASES])
def test_scripted_conversation_agrees_with_hand_label(fmt, name, qid, replies, max_turns, label, queries, catalog):
    conversation, score, _ = run(queries, catalog, qid, _texts(replies, fmt), fmt, max_turns)
    assert conversation.stop == label["stop"], conversation.detail
    assert score.passed == label["passed"], score.reason
    assert score.missing_facts == label["missing"], score.reason
    assert score.unsupported_numbers == label["unsupported"], score.reason
    assert score.reason.startswith("PASS: " if label["passed"] else "FAIL: ")
    for word in label["words"]:
        assert word in score.reason, (word, score.reason)
    # Each verdict explains itself, one per reply (plus one for a reply that never came).
    assert [v.turn for v in score.turns] == list(range(1, len(score.turns) + 1))
    assert all(v.note for v in score.turns)
    assert json.loads(json.dumps(score.to_json()))["passed"] == label["passed"]


@pytest.mark.parametrize("fmt", sorted(FORMS))
def test_messages_are_in_the_converters_structured_form(fmt, queries, catalog):
    replies = _texts(CASES[8][2], fmt)  # the workflow: call, call, text
    conversation, score, script = run(queries, catalog, "cross_tool-02", replies, fmt)
    assert score.passed, score.reason
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert conversation.prompt_messages == 2
    query = queries.by_id("cross_tool-02")
    for index in (2, 4):
        assistant, tool = conversation.messages[index], conversation.messages[index + 1]
        assert assistant["content"] == "Let me check."  # the preamble, without the call markup
        (call,) = assistant["tool_calls"]
        assert _ID.match(call["id"]) and call["type"] == "function"
        assert call["function"]["name"] == "execute_code" and isinstance(call["function"]["arguments"], dict)
        assert "[TOOL_CALLS]" not in json.dumps(assistant) and "<tool_call>" not in json.dumps(assistant)
        assert tool["tool_call_id"] == call["id"]
    assert conversation.messages[3]["content"] == query.results["git_status"]
    # One result per typed tool, whatever the arguments: typecheck was called twice.
    assert conversation.messages[5]["content"] == query.results["typecheck"]
    ids = [m["tool_calls"][0]["id"] for m in conversation.messages if m.get("tool_calls")]
    assert len(set(ids)) == 2
    # `ask` saw the conversation so far, ending with the tool message.
    assert [m[-1]["role"] for m in script.seen] == ["tool", "tool"]
    assert conversation.messages[-1] == {"role": "assistant", "content": conversation.turns[-1].reply.text}
    # Same conversation, same ids: a rerun is comparable message by message.
    again, _, _ = run(queries, catalog, "cross_tool-02", _texts(CASES[8][2], fmt), fmt)
    assert again.messages == conversation.messages


def test_several_calls_in_one_reply_get_one_tool_message_each(queries, catalog):
    first = (
        mistral("print(ruff_check('src/'))")
        + "[TOOL_CALLS]execute_code[ARGS]"
        + json.dumps({"code": "print(pytest_run('tests/'))"})
    )
    reply = reply_from_text(first, "mistral")
    assert len(reply.calls) == 2
    conversation, score, _ = run(
        queries,
        catalog,
        "cross_tool-01",
        [first, "Lint is clean; tests/test_export.py::test_csv_header fails."],
        "mistral",
    )
    assert score.passed, score.reason
    tools = [m for m in conversation.messages if m["role"] == "tool"]
    calls = conversation.messages[2]["tool_calls"]
    assert [t["tool_call_id"] for t in tools] == [c["id"] for c in calls]
    query = queries.by_id("cross_tool-01")
    assert [t["content"] for t in tools] == [query.results["ruff_check"], query.results["pytest_run"]]


def test_malformed_call_stops_the_loop(queries, catalog):
    broken = '[TOOL_CALLS]execute_code[ARGS]{"code": "print(typecheck('
    conversation, score, _ = run(queries, catalog, "existing_tools-03", [broken], "mistral")
    assert conversation.stop == UNUSABLE_CALL and "malformed" in conversation.detail
    assert not score.passed and "malformed" in score.reason
    assert "tool_calls" not in conversation.messages[-1]  # nothing the template could render as a call


def test_a_typed_tool_called_by_name_is_not_offered(queries, catalog):
    conversation, score, _ = run(
        queries, catalog, "existing_tools-03", ['[TOOL_CALLS]typecheck[ARGS]{"path": "src/"}'], "mistral"
    )
    assert conversation.stop == UNUSABLE_CALL and "not a tool the agent offers" in conversation.detail
    assert not score.passed


# --- direct queries -------------------------------------------------------------------------

GIBBERISH = [",,,,,,,,,,", "", "Léoว่า Léoว่า Léoว่า", "0 1 2 3 4 5 6 7 8 9"]


@pytest.mark.parametrize("text", GIBBERISH)
def test_gibberish_passes_no_direct_query(text, queries, catalog):
    for query in (q for q in queries.queries if q.expect == "direct"):
        score = score_response(query, text, catalog)
        assert not score.passed, (query.id, score.reason)
        if text.strip():
            assert "does not state" in score.reason
            for fact in query.answer_facts:
                assert repr(fact) in score.reason
        conversation = converse(query, text, Script([], "auto"), catalog=catalog, prompt=PROMPT, max_turns=4)
        assert not score_followup(query, conversation).passed


def test_direct_answer_must_state_its_terms(queries, catalog):
    query = queries.by_id("direct_answers-01")
    good = "Lists are mutable; tuples cannot be changed once built."
    assert score_response(query, good, catalog).passed
    vague = "They are both sequences with different brackets."
    score = score_response(query, vague, catalog)
    assert not score.passed and repr(query.answer_facts[0]) in score.reason
    conversation = converse(query, good, Script([], "auto"), catalog=catalog, prompt=PROMPT, max_turns=4)
    followup = score_followup(query, conversation)
    assert followup.passed and followup.stop == ANSWERED, followup.reason
    called = converse(query, mistral("print(1)"), Script([], "mistral"), catalog=catalog, prompt=PROMPT, max_turns=4)
    assert called.stop == UNUSABLE_CALL
    assert not score_followup(query, called).passed


# --- every query's follow-up can pass and can fail --------------------------------------


def _first_alternatives(facts):
    return [f.split("|")[0] for f in facts]


def test_every_tool_query_follow_up_is_satisfiable_and_each_fact_matters(queries, catalog):
    for query in (q for q in queries.queries if q.expect == "tool"):
        tools = list(
            dict.fromkeys(
                [*query.tools_all, *query.tools_any[:1], *([query.followup_tool] if query.followup_tool else [])]
            )
        )
        code = "\n".join(f"print({t}())" for t in tools)
        facts = _first_alternatives(query.answer_facts)
        good = "Here it is: " + "; ".join(facts) + "."
        conversation, score, _ = run(queries, catalog, query.id, [mistral(code), good], "mistral")
        assert score.passed, score.reason
        for dropped in range(len(facts)):
            partial = "Here it is: " + "; ".join(f for i, f in enumerate(facts) if i != dropped) + "."
            _, score, _ = run(queries, catalog, query.id, [mistral(code), partial], "mistral")
            assert not score.passed and score.missing_facts == (query.answer_facts[dropped],), (query.id, score.reason)
        _, score, _ = run(queries, catalog, query.id, [mistral(code), good + " Also 987654 more."], "mistral")
        assert not score.passed and score.unsupported_numbers == ("987654",), query.id


def test_every_query_has_facts_and_every_tool_query_results(queries, catalog):
    for query in queries.queries:
        assert query.answer_facts, query.id
        if query.expect == "tool":
            for tool in query.listed_tools:
                assert tool in query.results, (query.id, tool)
                assert not check_result(catalog.typed[tool], query.results[tool])
                assert "\n" not in query.results[tool] or catalog.typed[tool].returns_text
    calls = [q.id for q in queries.queries if q.followup == "call"]
    assert calls == ["cross_tool-02"] and queries.max_turns >= 3


# --- facts and numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fact", "stated"),
    [
        ("There are 3 errors.", "3", True),
        ("There are three errors.", "3", True),
        ("There are 30 errors.", "3", False),
        ("It took 3.5 s.", "3", False),
        ("See tests/test_3.py.", "3", False),
        ("Use py3 and v3.", "3", False),
        ("took 2.31s", "2.31", True),
        ("line 8:", "8", True),
        ("Returns a generators list", "generator", True),
        ("Tuples are Immutable.", "immutable", True),
        ("Lists are mutable.", "immutable", False),
        ("Tuples are immutable.", "mutable", False),
        ("tuples can't  be\nchanged", "cannot be changed|can't be changed", True),
        ("tests/test_routes.py changed", "routes.py", False),
        ("src/api/routes.py changed", "routes.py", True),
        ("LineItemizer is new", "LineItem", False),
        ("`LineItem` is new", "LineItem", True),
        ("system call", "sys", False),
        ("merge(base: dict[str, Any])", "dict[str, Any]", True),
        ("use @cache", "@", True),
        ("", "x|y", False),
    ],
)
def test_fact_matching(text, fact, stated):
    assert states(text, fact) is stated


def test_number_claims_skip_names_versions_hashes_and_list_markers():
    text = "1. test_3.py has E501 at 12:4\n2) commit 3f9c2a1 bumped 1.4.0; 97% in 2.5s, the 3rd run, one of two"
    claims = [c.text for c in number_claims(text)]
    assert claims == ["12", "4", "97", "2.5s", "3rd", "two"]
    assert missing_facts("none here", ["1", "x"]) == ("1", "x")


def test_unsupported_numbers_round_and_count(queries):
    query = queries.by_id("existing_tools-02")  # passed=14, failed=1, duration=2.31, 3 tests listed
    results = [query.results["pytest_run"]]
    assert unsupported_numbers("15 tests (14 + 1), 3 shown, 2.3 s, 13 more passed than failed", query, results) == ()
    assert unsupported_numbers("16 tests, 2.4 s", query, results) == ("16", "2.4")
    numbers = result_numbers(query.results["pytest_run"])
    assert {14.0, 1.0, 15.0, 13.0, 3.0, 2.31} <= numbers


@given(st.text(max_size=200))
def test_fact_functions_never_raise(text):
    number_claims(text)
    states(text, "3|x.py|word")
    result_numbers(text)


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}(\.py)?|\d{1,4}", fullmatch=True))
def test_a_fact_written_out_is_stated(term):
    assert states(f"The answer is {term} here.", term)


# --- other answering paths ------------------------------------------------------------------


def test_reply_from_a_server_message():
    message = {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "x",
                "type": "function",
                "function": {"name": "execute_code", "arguments": '{"code": "print(git_status())"}'},
            },
            {"id": "y", "type": "function", "function": {"name": "execute_code", "arguments": "{not json"}},
        ],
    }
    reply = reply_from_message(message)
    assert reply.content == "Let me check."
    assert reply.calls[0].arguments == {"code": "print(git_status())"} and reply.calls[0].error is None
    assert "not valid JSON" in reply.calls[1].error
    sent = for_openai(
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "abcdefghi",
                        "type": "function",
                        "function": {"name": "execute_code", "arguments": {"code": "x"}},
                    }
                ],
            }
        ]
    )
    assert sent[0]["tool_calls"][0]["function"]["arguments"] == '{"code": "x"}'


class FakeServer:
    """Stands in for openai.OpenAI against mlx_lm.server: records requests, answers from a list."""

    def __init__(self, messages):
        self.answers, self.requests = list(messages), []
        self.chat = self
        self.completions = self

    def create(self, **request):
        self.requests.append(request)
        message = self.answers.pop(0)
        return type("Response", (), {"choices": [type("Choice", (), {"message": message})()]})()


def test_server_ask_sends_string_arguments_and_takes_parsed_calls(queries, catalog):
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "execute_code", "arguments": '{"code": "print(typecheck(\'src/models/\'))"}'},
            }
        ],
    }
    server = FakeServer([call, {"role": "assistant", "content": "4 type errors.", "tool_calls": None}])
    ask = server_ask(server, "candidate", catalog.native_schemas(), max_tokens=64)
    query = queries.by_id("field_access-01")
    first = ask([*PROMPT, {"role": "user", "content": query.text}])
    conversation = converse(
        query, first, ask, catalog=catalog, prompt=[*PROMPT, {"role": "user", "content": query.text}], max_turns=4
    )
    assert score_followup(query, conversation).passed
    sent = server.requests[1]
    assert sent["temperature"] == 0.0 and sent["tools"] and sent["max_tokens"] == 64
    assistant, tool = sent["messages"][-2:]
    assert isinstance(assistant["tool_calls"][0]["function"]["arguments"], str)
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"] and tool["content"] == query.results["typecheck"]


def test_a_batch_ask_that_raises_is_recorded_for_each_conversation(queries, catalog):
    starts = [
        (queries.by_id(q), mistral('print(typecheck("src/"))'), PROMPT)
        for q in ("existing_tools-03", "field_access-01")
    ]

    def broken(batch):
        raise RuntimeError("server went away")

    conversations = converse_many(starts, broken, catalog=catalog, max_turns=4)
    assert [c.stop for c in conversations] == [ASK_FAILED, ASK_FAILED]
    assert all("RuntimeError: server went away" in c.detail for c in conversations)


def test_a_server_that_failed_is_one_error_for_the_run_not_one_per_conversation(queries, catalog):
    from punie_gates.errors import ServerError

    starts = [
        (queries.by_id(q), mistral('print(typecheck("src/"))'), PROMPT)
        for q in ("existing_tools-03", "field_access-01")
    ]

    def dead(batch):  # what the gates' server AskMany raises once the server exited or stalled
        raise ServerError("candidate: 2 of 2 requests got no answer: mlx_lm.server (pid 1, m) was killed by signal 9")

    with pytest.raises(ServerError, match="was killed by signal 9"):
        converse_many(starts, dead, catalog=catalog, max_turns=4)


class NoToolRoleTokenizer:
    """A tokenizer whose chat template knows no tool role (a fake, not a mock)."""

    def apply_chat_template(self, messages, **kwargs):
        if any(m["role"] == "tool" for m in messages):
            raise TemplateError("Conversation roles must alternate user/assistant/user/assistant/...")
        return [1, 2, 3]


def test_in_process_ask_records_a_template_that_cannot_render_the_tool_turn(queries, catalog):
    ask = in_process_ask(None, NoToolRoleTokenizer(), catalog.native_schemas(), max_tokens=4)
    query = queries.by_id("existing_tools-03")
    (conversation,) = converse_many(
        [(query, mistral('print(typecheck("src/"))'), PROMPT)], ask, catalog=catalog, max_turns=4
    )
    assert conversation.stop == ASK_FAILED and "roles must alternate" in conversation.detail
    score = score_followup(query, conversation)
    assert not score.passed and "reply 2: no reply" in score.reason


# --- saved conversations, scored again -------------------------------------------------------


def test_saved_conversations_round_trip_and_rescore(queries, catalog, tmp_path):
    conversations, scores = [], []
    for fmt in sorted(FORMS):
        for _name, qid, replies, max_turns, _ in CASES:
            conversation, score, _ = run(queries, catalog, qid, _texts(replies, fmt), fmt, max_turns)
            conversations.append(conversation)
            scores.append(score)
    path = write_conversations(tmp_path / "out" / "conversations.jsonl", conversations)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(conversations)
    record = json.loads(lines[0])
    assert {"id", "messages", "turns", "stop", "detail"} <= set(record)
    assert record["turns"][0]["text"] == conversations[0].turns[0].reply.text  # the raw text, per turn
    saved = read_conversations(path)
    assert not saved.errors and saved.conversations == tuple(conversations)
    rescored = rescore_conversations(path, queries)
    assert not rescored.errors
    assert [s.to_json() for s in rescored.scores] == [s.to_json() for s in scores]


def test_rescoring_uses_the_query_file_as_it_is_now(queries, catalog, tmp_path):
    conversation, score, _ = run(
        queries, catalog, "field_access-01", [mistral("print(typecheck('src/models/'))"), "4 errors."], "mistral"
    )
    assert score.passed
    path = write_conversations(tmp_path / "c.jsonl", [conversation])
    changed = tmp_path / "q.toml"
    source = queries.path.read_text(encoding="utf-8")
    old = 'fields_any = ["error_count", "errors"]\nanswer_facts = ["4"]'
    assert old in source
    changed.write_text(source.replace(old, 'fields_any = ["error_count", "errors"]\nanswer_facts = ["4", "user.py"]'))
    (again,) = rescore_conversations(path, load_queries(changed, catalog)).scores
    assert not again.passed and again.missing_facts == ("user.py",)


def test_bad_saved_lines_name_file_and_line(queries, catalog, tmp_path):
    conversation, _, _ = run(queries, catalog, "field_access-01", [mistral("print(typecheck('x'))"), "4."], "mistral")
    good = json.dumps(conversation_record(conversation))
    unknown = json.dumps({**conversation_record(conversation), "id": "nope-01"})
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([good, "{not json", '{"id": "x"}', unknown]) + "\n")
    result = rescore_conversations(path, queries)
    assert len(result.scores) == 1
    assert [e.split(": ", 1)[0] for e in result.errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "unknown query id 'nope-01'" in result.errors[2]
    with pytest.raises(ValueError, match="unknown stop"):
        conversation_from_record({**conversation_record(conversation), "stop": "bored"})


# --- the demo candidate through the in-process path ---------------------------------------


@pytest.fixture(scope="module")
def demo():
    from mlx_lm import load

    from punie_gates.model.demo import ensure_demo_model

    return load(str(ensure_demo_model()))


def test_demo_passes_no_direct_query(demo, queries, catalog):
    """The random demo's own greedy answers, under the real system prompt and tools."""
    from punie_gates.answering.inprocess import generate_answers
    from punie_gates.answering.prompts import default_system_prompt, query_messages, render_prompt

    model, tokenizer = demo
    direct = [q for q in queries.queries if q.expect == "direct"]
    system, tools = default_system_prompt(), catalog.native_schemas()
    prompts = [(q.id, render_prompt(tokenizer, query_messages(system, q.text), tools)) for q in direct]
    answers = generate_answers(model, tokenizer, prompts, max_tokens=16, batch_size=len(prompts))
    for query, answer in zip(direct, answers):
        score = score_response(query, answer.text, catalog)
        assert not score.passed, (query.id, answer.text, score.reason)
        assert "does not state" in score.reason or "tool call" in score.reason, score.reason


def test_demo_renders_the_tool_turn_and_answers_from_it(demo, queries, catalog):
    """Scripted first calls (the random demo makes none), then the demo's own replies:
    its chat template renders the assistant call and the tool result as training did."""
    from punie_gates.answering.prompts import default_system_prompt, query_messages, render_prompt

    model, tokenizer = demo
    tools = catalog.native_schemas()
    system = default_system_prompt()
    ask = in_process_ask(model, tokenizer, tools, max_tokens=8, batch_size=2)
    ids = ("existing_tools-03", "field_access-01")
    starts = [
        (
            queries.by_id(q),
            mistral('r = typecheck("src/")\nprint(r.error_count)', "Let me check."),
            query_messages(system, queries.by_id(q).text),
        )
        for q in ids
    ]
    conversations = converse_many(starts, ask, catalog=catalog, max_turns=queries.max_turns)
    for conversation in conversations:
        query = queries.by_id(conversation.query_id)
        assert len(conversation.turns) >= 2 and conversation.stop != ASK_FAILED, conversation.detail
        head = conversation.messages[: conversation.prompt_messages + 2]  # prompt, call, result
        text = tokenizer.decode(render_prompt(tokenizer, head, tools), skip_special_tokens=False)
        assert '[TOOL_CALLS]execute_code[ARGS]{"code": "r = typecheck' in text
        assert f"[TOOL_RESULTS]{query.results['typecheck']}[/TOOL_RESULTS]" in text
        score = score_followup(query, conversation)
        assert not score.passed, score.reason  # random weights state no fact
    # The demo's own first replies make no call: nothing to follow up.
    query = queries.by_id("existing_tools-03")
    (own,) = converse_many(
        [(query, ask([query_messages(system, query.text)])[0], query_messages(system, query.text))],
        ask,
        catalog=catalog,
        max_turns=4,
    )
    assert own.stop == ANSWERED and len(own.turns) == 1
    assert "no tool call" in score_followup(query, own).reason


def test_demo_tokenizer_error_on_the_tool_turn_is_recorded(demo, queries, catalog):
    """A real tokenizer refusal (mistral-common: a result for a call id it never saw)."""
    model, tokenizer = demo
    inner = in_process_ask(model, tokenizer, catalog.native_schemas(), max_tokens=4)

    def corrupting(batch):
        return inner(
            [[{**m, "tool_call_id": "zzzzzzzzz"} if m["role"] == "tool" else m for m in msgs] for msgs in batch]
        )

    query = queries.by_id("existing_tools-03")
    (conversation,) = converse_many(
        [(query, mistral('print(typecheck("src/"))'), PROMPT)], corrupting, catalog=catalog, max_turns=4
    )
    assert conversation.stop == ASK_FAILED and "zzzzzzzzz" in conversation.detail, conversation.detail
    assert isinstance(conversation, Conversation) and not score_followup(query, conversation).passed
