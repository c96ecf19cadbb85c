"""The Qwen3 <-> Mistral converter on the project's hand-written fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from punie_gates.commands.convert import main
from punie_gates.formats.qwen3 import QWEN3_MARKERS
from punie_gates.formats.records import ConversionResult, read_jsonl_bytes
from punie_gates.formats.sampling import record_family, stratified_sample
from punie_gates.formats.to_mistral import convert_training_folder, to_mistral
from punie_gates.formats.to_qwen3 import to_qwen3
from punie_gates.inputs import paths

FIXTURES = paths.fixtures_dir() / "qwen3"
SHAPES = FIXTURES / "shapes.jsonl"
MALFORMED = FIXTURES / "malformed.jsonl"
ID = re.compile(r"[A-Za-z0-9]{9}")
MISTRAL_MARKERS = ("[TOOL_CALLS]", "[ARGS]", "[/TOOL_CALLS]", "[TOOL_RESULTS]", "[INST]", "</s>", "[CALL_ID]")


@pytest.fixture(scope="module")
def shapes() -> ConversionResult:
    return to_mistral(read_jsonl_bytes(SHAPES), source=str(SHAPES))


def _lines(records) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in records]


def _calls(record: dict) -> list[dict]:
    return [c for m in record["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", ())]


def _all_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _all_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _all_strings(v)


# ---------------------------------------------------------------- every shape


def test_every_shape_converts(shapes):
    assert (shapes.read, shapes.converted, shapes.rejected) == (11, 11, 0)
    assert shapes.record_lines == tuple(range(1, 12))


def test_preamble_kept_and_call_structured(shapes):
    assistant = shapes.records[1]["messages"][2]
    assert assistant["content"] == "Let me check."
    (call,) = assistant["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {
        "name": "execute_code",
        "arguments": {"code": 'result = typecheck("src/")\nprint(result.error_count)'},
    }


def test_user_tool_response_becomes_tool_message(shapes):
    messages = shapes.records[2]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert "content" not in messages[2]  # no preamble: no content key, never ""
    assert messages[3] == {
        "role": "tool",
        "content": "41 passed, 0 failed",
        "tool_call_id": messages[2]["tool_calls"][0]["id"],
    }


def test_tool_role_spelling_and_named_parameters(shapes):
    messages = shapes.records[3]["messages"]
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "run_command",
        "arguments": {"command": "find . -name '*.py'", "cwd": "src"},
    }
    assert messages[3]["role"] == "tool" and messages[3]["content"] == "./app.py\n./models.py"


@pytest.mark.parametrize("index", [4, 5, 9])
def test_several_calls_in_one_turn_pair_with_their_results(shapes, index):
    messages = shapes.records[index]["messages"]
    calls = [c["id"] for m in messages for c in m.get("tool_calls", ())]
    results = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert len(calls) == 2 and results == calls


def test_values_with_quotes_tabs_unicode_and_tag_lookalikes_kept(shapes):
    write = shapes.records[6]["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert write["path"] == "greet.py"
    assert write["content"].startswith('def greet(name: str) -> str:\n\treturn f"Grüß dich, {name}! \\\\o/')
    assert shapes.records[6]["messages"][-1]["content"] == "Created greet.py. 🎉"
    git, code = shapes.records[9]["messages"][2]["tool_calls"]
    assert git["function"] == {"name": "git_status", "arguments": {}}
    assert 'text.count("<tool_call>"), text.count("<tool_call")' in code["function"]["arguments"]["code"]


def test_legacy_json_fence_with_a_result_is_a_call(shapes):
    assistant = shapes.records[8]["messages"][2]
    assert assistant["content"] == "I'll use the run_command tool."
    assert assistant["tool_calls"][0]["function"] == {
        "name": "run_command",
        "arguments": {"command": "grep -rc TODO src"},
    }


def test_json_fence_without_a_result_stays_text(shapes):
    raw = json.loads(read_jsonl_bytes(SHAPES)[10])
    assistant = shapes.records[10]["messages"][-1]
    assert "tool_calls" not in assistant
    assert assistant["content"] == raw["messages"][-1]["content"]


def test_answers_and_user_text_byte_for_byte(shapes):
    for index, (raw_line, record) in enumerate(zip(read_jsonl_bytes(SHAPES), shapes.records)):
        if index == 8:
            continue  # the legacy JSON-fence call, checked above
        raw = json.loads(raw_line)["messages"]
        plain = [m["content"] for m in raw if "<tool_" not in m["content"] and m["role"] != "tool"]
        out = [m["content"] for m in record["messages"] if m["role"] != "tool" and not m.get("tool_calls")]
        assert plain == out


# ---------------------------------------------------------------- ids, tools, markers


def test_ids_are_nine_alnum_unique_and_deterministic(shapes):
    again = to_mistral(read_jsonl_bytes(SHAPES))
    assert again.records == shapes.records
    ids = [c["id"] for r in shapes.records for c in _calls(r)]
    assert ids and all(ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ids_depend_on_content():
    block = "<tool_call><function=f><parameter=a>1</parameter></function></tool_call>"
    line = '{"messages": [{"role": "user", "content": "Q%s"}, {"role": "assistant", "content": "%s"}]}'
    first, second = (to_mistral([line % (n, block)]).records[0] for n in (1, 2))
    assert _calls(first)[0]["id"] != _calls(second)[0]["id"]


def test_every_tool_message_answers_a_call_of_the_turn_before(shapes):
    for record in shapes.records:
        waiting: list[str] = []
        for message in record["messages"]:
            if message["role"] == "assistant":
                waiting = [c["id"] for c in message.get("tool_calls", ())]
            elif message["role"] == "tool":
                assert message["tool_call_id"] == waiting.pop(0)


def test_same_tools_on_every_record_derived_from_calls(shapes):
    names = [t["function"]["name"] for t in shapes.tools]
    assert names == ["execute_code", "git_status", "read_file", "run_command", "write_file"]
    assert all(r["tools"] == list(shapes.tools) for r in shapes.records)
    assert not _calls(shapes.records[0]) and shapes.records[0]["tools"]  # a direct answer carries them too
    run = next(t for t in shapes.tools if t["function"]["name"] == "run_command")["function"]["parameters"]
    assert run["properties"] == {"command": {"type": "string"}, "cwd": {"type": "string"}}
    assert run["required"] == ["command"]  # the legacy call passes no cwd


def test_no_marker_in_any_written_text(shapes):
    for record in shapes.records:
        assert not any(m in s for s in _all_strings(record) for m in MISTRAL_MARKERS)
        for message in record["messages"]:
            assert not any(m in message.get("content", "") for m in QWEN3_MARKERS)


# ---------------------------------------------------------------- bad input


EXPECTED_REJECTS = {
    2: "not JSON",
    3: "not valid UTF-8",
    4: "not an object",
    5: 'no "messages" list',
    6: "message 2 is a string, not an object",
    7: "has role 'bot'",
    8: "content is an array; only text content is supported",
    9: "assistant message 2 has <tool_call> without </tool_call>",
    10: "text outside a parameter",
    11: "empty line",
    12: "user message 3 (tool result 1) is a tool result but no call is waiting",
    13: "tool message 4 is one tool result more than the 1 call(s) of assistant message 2",
    15: "contains the marker '[TOOL_CALLS]'",
    16: "has text after tool call 1",
    17: "made 1 call(s) but 0 result(s) follow before user message 3",
    18: "ends with user message 3 (tool result 1)",
    19: "system message 2 is a system prompt after the start",
    20: "assistant message 2 is empty",
    21: "has </tool_call> without <tool_call>",
    22: "names function 'run command'",
    23: "passes parameter 'a' twice",
    24: "<parameter=a> without </parameter>",
    25: "has text after tool result 1",
    26: "contains the marker '<|im_end|>'",
}


def test_every_reject_kind_with_its_line():
    result = to_mistral(read_jsonl_bytes(MALFORMED))
    got = {r.line: r.reason for r in result.rejects}
    assert set(got) == set(EXPECTED_REJECTS)
    for line, fragment in EXPECTED_REJECTS.items():
        assert fragment in got[line], (line, got[line])
    assert result.record_lines == (1, 14, 27)
    assert result.read == result.converted + result.rejected == 27


def test_reject_text_is_the_start_of_the_line():
    lines = read_jsonl_bytes(MALFORMED)
    result = to_mistral(lines)
    for reject in result.rejects:
        assert len(reject.text) <= 200
        assert lines[reject.line - 1].decode("utf-8", errors="replace").startswith(reject.text)


def test_str_lines_crlf_and_bom_are_read():
    line = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}'
    assert to_mistral([line + "\n", line + "\r\n"]).converted == 2
    assert to_mistral([b"\xef\xbb\xbf" + line.encode()]).converted == 1


def test_tool_message_wrapped_in_tool_response_is_unwrapped():
    def record(result: str) -> str:
        return json.dumps({"messages": [
            {"role": "user", "content": "Run"},
            {"role": "assistant", "content": "<tool_call><function=f></function></tool_call>"},
            {"role": "tool", "content": result},
            {"role": "assistant", "content": "Done"},
        ]})  # fmt: skip

    wrapped, plain = to_mistral([record("<tool_response>\nx\n</tool_response>"), record("x")]).records
    assert wrapped == plain and wrapped["messages"][2]["content"] == "x"
    # a wrapper left open is still a reason, not a silent repair
    (reject,) = to_mistral([record("<tool_response>\nx")]).rejects
    assert "tool message 3 has <tool_response> without </tool_response>" in reject.reason


def test_punie_shaped_data_with_wrapped_tool_messages_converts_whole():
    wrapped = convert_training_folder(paths.fixtures_dir() / "tool-role-wrapped")
    user_turns = convert_training_folder(paths.fixtures_dir() / "demo-training")
    for ours, theirs in zip(wrapped, user_turns):
        assert (ours.read, ours.rejected) == (ours.converted, 0)
        assert ours.records == theirs.records  # the same results, whichever spelling held them
    assert sum(m["role"] == "tool" for r in wrapped[0].records for m in r["messages"]) >= 29


def test_call_only_turns_render_alike_in_every_template_and_the_reference(shapes, tmp_path):
    """No `content` key on a call-only turn: mistral-common's from_openai and the official
    templates (plain, image, thinking variants) render it exactly as they render the
    call with its content missing, and never drop the call."""
    from mistral_common.integrations.chat_templates.template_generator import TemplateConfig, build_chat_template
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy, TokenizerVersion
    from transformers.utils.chat_template_utils import render_jinja_template

    from punie_gates.formats import tekken

    record = shapes.records[2]
    call_only = record["messages"][2]
    assert "content" not in call_only and call_only["tool_calls"]
    texts = set()
    for variant in ({}, {"image_support": True}, {"thinking_support": True}):
        template = build_chat_template(TemplateConfig(version=TokenizerVersion.v13, **variant))
        (chat,), _ = render_jinja_template([record["messages"]], tools=record["tools"], chat_template=template)
        texts.add(chat)
    (text,) = texts
    assert "[/INST][TOOL_CALLS]execute_code[ARGS]{" in text
    reference = tekken.reference_tokenizer(tekken.write_tekken(tmp_path / "tekken.json"))
    request = ChatCompletionRequest.from_openai(messages=record["messages"], tools=record["tools"])
    tokens = reference.encode_chat_completion(request).tokens
    assert reference.decode(tokens, special_token_policy=SpecialTokenPolicy.KEEP) == text


# ---------------------------------------------------------------- back to Qwen3


def test_to_qwen3_writes_punies_canonical_layout(shapes):
    back = to_qwen3(_lines(shapes.records))
    assert (back.read, back.converted, back.rejected) == (11, 11, 0)
    assert back.records[1]["messages"][2]["content"] == (
        "Let me check.\n\n<tool_call><function=execute_code>\n<parameter=code>\n"
        'result = typecheck("src/")\nprint(result.error_count)\n</parameter>\n</function></tool_call>'
    )
    assert back.records[3]["messages"][3] == {
        "role": "user",
        "content": "<tool_response>\n./app.py\n./models.py\n</tool_response>",
    }
    assert back.records[5]["messages"][2]["content"] == (
        "<tool_call><function=read_file>\n<parameter=path>\nREADME.md\n</parameter>\n</function></tool_call>\n"
        "<tool_call><function=read_file>\n<parameter=path>\nsetup.cfg\n</parameter>\n</function></tool_call>"
    )
    assert all(set(r) == {"messages"} for r in back.records)
    assert [t["function"]["name"] for t in back.tools] == [t["function"]["name"] for t in shapes.tools]


def test_round_trip_is_exact(shapes):
    back = to_qwen3(_lines(shapes.records))
    again = to_mistral(_lines(back.records), tools=list(shapes.tools))
    assert again.records == shapes.records


def _mistral_line(arguments, **call_extra) -> str:
    call = {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": arguments}, **call_extra}
    return json.dumps({"messages": [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]})  # fmt: skip


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (_mistral_line({"code": "a</parameter>b"}), "(f): parameter 'code' holds '</parameter>', which Qwen3"),
        (_mistral_line({"code": "x</tool_call>"}), "parameter 'code' holds '</tool_call>'"),
        (_mistral_line({"code": "null"}), "parameter 'code' = 'null' reads back from Qwen3 XML as None"),
        (_mistral_line({"n": 3}), "parameter 'n' = 3 reads back from Qwen3 XML as '3'"),
        (_mistral_line({"code": "say [TOOL_CALLS]"}), "contains the marker '[TOOL_CALLS]'"),
        (_mistral_line("{not json"), "arguments are not JSON"),
        (_mistral_line({"code": "x"}, type="code_interpreter"), "has type 'code_interpreter'"),
    ],
)
def test_to_qwen3_rejects_what_qwen3_cannot_hold(line, fragment):
    result = to_qwen3([line])
    assert result.rejected == 1 and fragment in result.rejects[0].reason, result.rejects


def test_to_qwen3_accepts_arguments_as_a_json_string():
    result = to_qwen3([_mistral_line(json.dumps({"code": "print(1)"}))])
    assert result.converted == 1
    assert "<parameter=code>\nprint(1)\n</parameter>" in result.records[0]["messages"][1]["content"]


def test_to_qwen3_rejects_results_out_of_order():
    record = {"messages": [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "aaaaaaaa1", "type": "function", "function": {"name": "f", "arguments": {}}},
            {"id": "aaaaaaaa2", "type": "function", "function": {"name": "f", "arguments": {}}},
        ]},
        {"role": "tool", "tool_call_id": "aaaaaaaa2", "content": "2"},
        {"role": "tool", "tool_call_id": "aaaaaaaa1", "content": "1"},
        {"role": "assistant", "content": "done"},
    ]}  # fmt: skip
    (reject,) = to_qwen3([json.dumps(record)]).rejects
    assert "answers call id 'aaaaaaaa2' but the next call waiting is 'aaaaaaaa1'" in reject.reason


# ---------------------------------------------------------------- tool catalogs


TYPED = [{"type": "function", "function": {"name": "goto", "description": "Jump.", "parameters": {
    "type": "object", "properties": {"file": {"type": "string"}, "line": {"type": "integer"}},
}}}]  # fmt: skip
TYPED_LINE = json.dumps({"messages": [
    {"role": "user", "content": "Where?"},
    {"role": "assistant", "content": "<tool_call><function=goto>\n<parameter=file>\na.py\n</parameter>\n"
                                     "<parameter=line>\n12\n</parameter>\n</function></tool_call>"},
]})  # fmt: skip


def test_catalog_types_values_and_round_trips():
    result = to_mistral([TYPED_LINE], tools=TYPED)
    assert result.tools == tuple(TYPED) and result.records[0]["tools"] == TYPED
    assert _calls(result.records[0])[0]["function"]["arguments"] == {"file": "a.py", "line": 12}
    back = to_qwen3(_lines(result.records))
    assert to_mistral(_lines(back.records), tools=TYPED).records == result.records


def test_catalog_rejects_unknown_functions_and_bad_values():
    result = to_mistral(read_jsonl_bytes(SHAPES), tools=TYPED)
    calls_something = {1, 2, 3, 4, 5, 6, 8, 9}  # 0-based records that call a tool
    assert {r.line - 1 for r in result.rejects} == calls_something
    assert "calls 'execute_code', which is not in the tools catalog" in result.rejects[0].reason
    bad = TYPED_LINE.replace("\\n12\\n", "\\ntwelve\\n")
    (reject,) = to_mistral([bad], tools=TYPED).rejects
    assert "tool call 1 (goto)" in reject.reason


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ({"name": "f"}, "must be a JSON list of schemas, got an object"),
        ([{"name": "f"}], "is not {"),
        ([{"type": "function", "function": {"name": "a b"}}], "has name 'a b'"),
        ([TYPED[0], TYPED[0]], "listed twice"),
        ([{"type": "function", "function": {"name": "f", "description": "emit [TOOL_CALLS]"}}], "control token"),
    ],
)
def test_bad_catalog_is_a_usage_error(tools, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        to_mistral([TYPED_LINE], tools=tools, source="cat.json")


# ---------------------------------------------------------------- folders and sampling


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_training_folder_shares_one_tools_list(tmp_path):
    lines = read_jsonl_bytes(SHAPES)
    _write(tmp_path / "train.jsonl", lines[:4])
    _write(tmp_path / "valid.jsonl", [lines[0], lines[7]])  # no calls at all
    train, valid = convert_training_folder(tmp_path)
    assert train.tools == valid.tools
    assert [t["function"]["name"] for t in valid.tools] == ["execute_code", "run_command"]
    assert all(r["tools"] == list(train.tools) for r in train.records + valid.records)


def _record(calls_code: str | None, multi: bool = False) -> dict:
    assistant: dict = {"role": "assistant", "content": "text"}
    if calls_code is not None:
        function = {"name": "execute_code", "arguments": {"code": calls_code}}
        assistant["tool_calls"] = [{"id": "x", "type": "function", "function": function}]
    messages = [{"role": "user", "content": "q"}, assistant]
    if multi:
        messages += [{"role": "user", "content": "more"}, {"role": "assistant", "content": "ok"}]
    return {"messages": messages}


def test_record_family():
    assert record_family(_record(None)) == "direct"
    assert record_family(_record(None, multi=True)) == "direct+multi"
    assert record_family(_record('r = typecheck("src")\nprint(r.error_count)')) == "code:typecheck"
    assert record_family(_record('print(len(run_command("ls")))')) == "code:run_command"
    assert record_family(_record("def helper():\n    pass\nhelper()\nprint(1)")) == "code:none"
    assert record_family(_record("print(")) == "code:unparsed"
    call = {"function": {"name": "read_file", "arguments": '{"path": "a"}'}}  # arguments as a JSON string
    legacy = {"messages": [{"role": "assistant", "tool_calls": [call]}]}
    assert record_family(legacy) == "call:read_file"


def test_stratified_sample_keeps_shares_and_is_seeded():
    records = (
        [_record(None) for _ in range(500)]
        + [_record("typecheck('.')") for _ in range(300)]
        + [_record("ruff_check('.')", multi=True) for _ in range(170)]
        + [_record("hover('a', 1, 2, 'x')") for _ in range(30)]
    )
    for i, r in enumerate(records):
        r["messages"][0]["content"] = f"q{i}"  # tell records apart
    sample = stratified_sample(records, 100, seed=3)
    assert len(sample) == 100
    counts = {f: sum(record_family(r) == f for r in sample) for f in {record_family(r) for r in records}}
    assert counts == {"direct": 50, "code:typecheck": 30, "code:ruff_check+multi": 17, "code:hover": 3}
    assert sample == stratified_sample(records, 100, seed=3)
    assert sample != stratified_sample(records, 100, seed=4)
    assert [records.index(r) for r in sample] == sorted(records.index(r) for r in sample)  # input order
    assert stratified_sample(records[:10], 50) == records[:10]
    with pytest.raises(ValueError):
        stratified_sample(records, 0)


# ---------------------------------------------------------------- command line


def _stats(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_converts_and_reports(tmp_path, capsys):
    out = tmp_path / "out" / "shapes.jsonl"
    assert main([str(SHAPES), "-o", str(out)]) == 0
    stats = _stats(capsys)
    assert (stats["read"], stats["converted"], stats["rejected"]) == (11, 11, 0)
    assert stats["seconds"] >= 0 and "execute_code" in stats["tools"]
    assert [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()] == list(
        to_mistral(read_jsonl_bytes(SHAPES)).records
    )


def test_cli_rejects_file_and_exit_status_1(tmp_path, capsys):
    rejects = tmp_path / "rejects.jsonl"
    assert main([str(MALFORMED), "-o", str(tmp_path / "o.jsonl"), "--rejects", str(rejects)]) == 1
    stats = _stats(capsys)
    assert stats["read"] == stats["converted"] + stats["rejected"] == 27
    rows = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == sorted(EXPECTED_REJECTS)
    assert all({"line", "reason", "text"} <= set(r) for r in rows)
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3


def test_cli_round_trip_through_files(tmp_path):
    mistral, qwen3, again = tmp_path / "m.jsonl", tmp_path / "q.jsonl", tmp_path / "m2.jsonl"
    assert main([str(SHAPES), "-o", str(mistral)]) == 0
    assert main([str(mistral), "-o", str(qwen3), "--to", "qwen3"]) == 0
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(list(to_mistral(read_jsonl_bytes(SHAPES)).tools)))
    assert main([str(qwen3), "-o", str(again), "--tools", str(tools)]) == 0
    assert again.read_bytes() == mistral.read_bytes()


def test_cli_limit_and_folder(tmp_path, capsys):
    lines = read_jsonl_bytes(SHAPES)
    folder = tmp_path / "data"
    folder.mkdir()
    _write(folder / "train.jsonl", lines)
    _write(folder / "valid.jsonl", lines[:2])
    assert main([str(folder), "-o", str(tmp_path / "out"), "--limit", "4", "--seed", "1"]) == 0
    stats = _stats(capsys)
    assert (stats["read"], stats["converted"], stats["written"]) == (13, 13, 6)
    assert len((tmp_path / "out" / "train.jsonl").read_text().splitlines()) == 4
    assert len((tmp_path / "out" / "valid.jsonl").read_text().splitlines()) == 2


def test_cli_toml_catalog(tmp_path, capsys):
    catalog = paths.data_dir() / "tools.toml"
    if not catalog.is_file():
        pytest.skip("data/tools.toml not present")
    from punie_gates.inputs.catalog import native_tool_schemas

    names = {t["function"]["name"] for t in native_tool_schemas(catalog)}
    status = main([str(SHAPES), "-o", str(tmp_path / "o.jsonl"), "--tools", str(catalog)])
    stats = _stats(capsys)
    assert set(stats["tools"]) == names
    assert status == (0 if stats["rejected"] == 0 else 1)


@pytest.mark.parametrize(
    "argv",
    [
        ["missing.jsonl", "-o", "x.jsonl"],
        [str(SHAPES)],  # no -o
        [str(SHAPES), "-o", "x.jsonl", "--limit", "0"],
        [str(SHAPES), "-o", "x.jsonl", "--to", "qwen3", "--limit", "5"],
        [str(SHAPES), "-o", "x.jsonl", "--tools", "missing.json"],
        [str(SHAPES), "-o", "x.jsonl", "--to", "llama"],
    ],
)
def test_cli_usage_and_io_errors_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip()


def test_cli_bad_catalog_exits_2(tmp_path, capsys):
    bad = tmp_path / "tools.json"
    bad.write_text('{"not": "a list"}')
    assert main([str(SHAPES), "-o", str(tmp_path / "o.jsonl"), "--tools", str(bad)]) == 2
    assert "must be a JSON list" in capsys.readouterr().err
