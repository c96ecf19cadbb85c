"""Properties of the converter on generated Qwen3 conversations.

What is representable (and so generated): any text without a control token or
Qwen3 marker (the converter rejects those, see test_convert); argument values
with quotes, backslashes, newlines, tabs, unicode, braces and tag look-alikes
such as `<tool_call` or `<parameter=x>`. Not representable in Qwen3 XML, and
rejected rather than mangled (last test): a value holding `</parameter>` or
`</tool_call>`, and the text `null` in any case, which qwen3_coder reads as JSON
null. mistral-common strips trailing spaces from assistant text while the HF
template keeps them, so generated answers do not end with a space.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from punie_gates.formats.qwen3 import LAYOUT_WS, QWEN3_MARKERS
from punie_gates.formats.to_mistral import to_mistral
from punie_gates.formats.to_qwen3 import to_qwen3
from punie_gates.formats.turns import mistral_marker

ID = re.compile(r"[A-Za-z0-9]{9}")
_QWEN3 = re.compile("|".join(map(re.escape, QWEN3_MARKERS)))
# Tokenizer properties are slower per example; fewer of them, never more than the profile allows.
TOKENIZER_EXAMPLES = min(settings().max_examples, 40)

_pieces = st.sampled_from(
    ['"', "'", "\\", "\\n", "\n", "\t", "\r\n", "{", "}", "{{x}}", "ü", "日本語", "🎉", "\u00a0", "<", ">",
     "<tool_call", "tool_call>", "</function>", "<parameter=a>", "[", "]", "ARGS", " ", "null", "```json\n"]
)  # fmt: skip
_chars = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_raw_text = st.lists(st.one_of(_chars, _pieces), max_size=6).map("".join)


def _no_markers(text: str) -> bool:
    return not mistral_marker().search(text) and not _QWEN3.search(text)


free_text = _raw_text.filter(_no_markers)
nonempty_text = free_text.filter(bool)
preambles = free_text.map(lambda t: t.rstrip(LAYOUT_WS))
answers = free_text.map(lambda t: t.rstrip(" ") + "." if not t.strip() else t.rstrip(" ")).filter(_no_markers)
layout = st.sampled_from(["", "\n", "\n\n", " ", "\t", "\n  "])
function_names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
parameter_names = st.from_regex(r"[A-Za-z0-9_.-]{1,8}", fullmatch=True)


def _strip_one_newline(text: str) -> str:
    text = text[1:] if text.startswith("\n") else text
    return text[:-1] if text.endswith("\n") else text


@st.composite
def calls(draw):
    """(Qwen3 block as written, the call it means)."""
    name = draw(function_names)
    arguments, params = {}, ""
    for param in draw(st.lists(parameter_names, unique=True, max_size=3)):
        written = draw(_raw_text.filter(lambda v: "</parameter>" not in v and "</tool_call>" not in v))
        wrap = draw(st.booleans())
        value = written if wrap else _strip_one_newline(written)  # qwen3_coder drops one newline a side
        if value.lower() == "null" or mistral_marker().search(value):
            continue
        arguments[param] = value
        nl = "\n" if wrap else ""
        params += f"{draw(layout)}<parameter={param}>{nl}{written}{nl}</parameter>"
    block = f"<tool_call>{draw(layout)}<function={name}>{params}{draw(layout)}</function>{draw(layout)}</tool_call>"
    return block, {"name": name, "arguments": arguments}


@st.composite
def conversations(draw):
    """(Qwen3 record, the Mistral messages it must become, with ids left out)."""
    qwen3: list[dict] = []
    mistral: list[dict] = []

    def both(role: str, text: str) -> None:
        qwen3.append({"role": role, "content": text})
        mistral.append({"role": role, "content": text})

    def call_turn() -> int:
        preamble = draw(preambles)
        made = draw(st.lists(calls(), min_size=1, max_size=3))
        blocks = "".join(block + draw(layout) for block, _ in made)
        separator = draw(layout)
        qwen3.append({"role": "assistant", "content": preamble + separator + blocks})
        # a call-only turn has no content key (never content: "")
        mistral.append(
            {"role": "assistant", **({"content": preamble} if preamble else {}), "tool_calls": [c for _, c in made]}
        )
        return len(made)

    if draw(st.booleans()):
        both("system", draw(nonempty_text))
    exchanges = draw(st.integers(1, 3))
    for number in range(exchanges):
        both("user", draw(nonempty_text))
        for _ in range(draw(st.integers(0, 2))):
            outputs = [draw(free_text) for _ in range(call_turn())]
            mistral.extend({"role": "tool", "content": out} for out in outputs)
            spelling = draw(st.sampled_from(["user each", "user all", "tool", "tool wrapped"]))
            wrapped = [f"<tool_response>\n{out}\n</tool_response>" for out in outputs]
            if spelling == "tool":
                qwen3.extend({"role": "tool", "content": out} for out in outputs)
            elif spelling == "tool wrapped":
                qwen3.extend({"role": "tool", "content": w} for w in wrapped)
            elif spelling == "user all":
                qwen3.append({"role": "user", "content": draw(layout).join(wrapped)})
            else:
                qwen3.extend({"role": "user", "content": w} for w in wrapped)
        if number == exchanges - 1 and draw(st.booleans()):
            call_turn()  # a record may end with calls still unanswered
        else:
            both("assistant", draw(answers))
    return {"messages": qwen3}, mistral


def _without_ids(messages: list[dict]) -> list[dict]:
    out = []
    for message in messages:
        message = dict(message)
        message.pop("tool_call_id", None)
        if "tool_calls" in message:
            message["tool_calls"] = [c["function"] for c in message["tool_calls"]]
        out.append(message)
    return out


def _convert(record: dict):
    result = to_mistral([json.dumps(record, ensure_ascii=False)])
    assert result.rejected == 0, result.rejects
    return result


@given(conversations())
def test_conversion_keeps_every_text_part_and_pairs_ids(case):
    record, expected = case
    result = _convert(record)
    (converted,) = result.records
    assert _without_ids(converted["messages"]) == expected
    assert converted["tools"] == list(result.tools)
    waiting: list[str] = []
    for message in converted["messages"]:
        if message["role"] == "assistant":
            waiting = [c["id"] for c in message.get("tool_calls", ())]
            assert all(ID.fullmatch(i) for i in waiting) and len(set(waiting)) == len(waiting)
            assert all(c["type"] == "function" for c in message.get("tool_calls", ()))
        elif message["role"] == "tool":
            assert message["tool_call_id"] == waiting.pop(0)


@given(conversations())
def test_round_trip_through_qwen3_is_exact(case):
    first = _convert(case[0])
    back = to_qwen3([json.dumps(r, ensure_ascii=False) for r in first.records])
    assert back.rejected == 0, back.rejects
    again = to_mistral([json.dumps(r, ensure_ascii=False) for r in back.records], tools=list(first.tools))
    assert again.records == first.records


def _qwen3_blocks(text: str) -> list[str]:
    # Values cannot hold </tool_call>, so the first one after an opening tag closes the block.
    return [b.strip(LAYOUT_WS) for b in re.findall(r"<tool_call>(.*?)</tool_call>", text, re.DOTALL)]


@given(conversations())
def test_mlx_lm_parsers_agree_with_the_converter(case):
    from mlx_lm.tool_parsers import mistral, qwen3_coder

    record, _ = case
    (converted,) = _convert(record).records
    (canonical,) = to_qwen3([json.dumps(converted, ensure_ascii=False)]).records
    written = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    rewritten = [m["content"] for m in canonical["messages"] if m["role"] == "assistant"]
    turns = [m for m in converted["messages"] if m["role"] == "assistant"]
    for text_in, text_out, turn in zip(written, rewritten, turns, strict=True):
        expected = [c["function"] for c in turn.get("tool_calls", ())]
        for text in (text_in, text_out):
            assert [qwen3_coder.parse_tool_call(b) for b in _qwen3_blocks(text)] == expected
        if expected:
            rendered = "".join(
                f"[TOOL_CALLS]{c['name']}[ARGS]{json.dumps(c['arguments'], ensure_ascii=False)}" for c in expected
            )
            parsed = mistral.parse_tool_call(rendered)
            assert (parsed if isinstance(parsed, list) else [parsed]) == expected


@pytest.fixture(scope="session")
def devstral_tokenizers(tmp_path_factory):
    """(HF tokenizer with the v13 template, mistral-common reference in finetuning mode), built offline."""
    from transformers import AutoTokenizer

    from punie_gates.formats.tekken import reference_tokenizer, save_hf_tokenizer, write_tekken

    root = tmp_path_factory.mktemp("tekken")
    tekken = write_tekken(root / "tekken.json", layout="v13")
    hf_dir = save_hf_tokenizer(tekken, root / "hf")
    return AutoTokenizer.from_pretrained(str(hf_dir)), reference_tokenizer(tekken, validation_mode="finetuning")


@settings(max_examples=TOKENIZER_EXAMPLES)
@given(case=conversations())
def test_v13_template_renders_one_call_token_per_call_and_matches_mistral_common(case, devstral_tokenizers):
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    hf, reference = devstral_tokenizers
    (converted,) = _convert(case[0]).records
    ids = hf.apply_chat_template(converted["messages"], tools=converted["tools"], tokenize=True, return_dict=False)
    n_calls = sum(len(m.get("tool_calls", ())) for m in converted["messages"])
    assert ids.count(hf.convert_tokens_to_ids("[TOOL_CALLS]")) == n_calls
    assert "[/TOOL_CALLS]" not in hf.decode(ids)
    request = ChatCompletionRequest(messages=converted["messages"], tools=converted["tools"] or None)
    assert list(ids) == reference.encode_chat_completion(request).tokens


@given(
    value=st.one_of(_raw_text, st.sampled_from(["a</parameter>b", "</tool_call>", "NULL", "Null"])).filter(
        lambda v: not mistral_marker().search(v)
    )
)
def test_qwen3_either_holds_a_value_exactly_or_rejects_it(value):
    record = {"messages": [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": {"v": value}}}
        ]},
    ]}  # fmt: skip
    back = to_qwen3([json.dumps(record)])
    representable = "</parameter>" not in value and "</tool_call>" not in value and value.lower() != "null"
    if not representable:
        assert back.rejected == 1 and "Qwen3 XML" in back.rejects[0].reason
        return
    again = to_mistral([json.dumps(r) for r in back.records])
    assert again.records[0]["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"v": value}
