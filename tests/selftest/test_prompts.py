"""Validation prompts: rendered natively with tools, and identical in their head to training's."""

from __future__ import annotations

import pytest

from punie_gates.answering.prompts import (
    default_system_prompt,
    prefix_mismatch,
    prompt_head,
    query_messages,
    render_prompt,
    training_prompt_prefix,
)
from punie_gates.inputs import paths

SYSTEM = "You are a careful coding assistant."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_code",
            "description": "Run Python that calls the typed tools.",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "Python source"}},
                "required": ["code"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    },
]


@pytest.fixture(scope="module")
def demo_dir():
    from punie_gates.model.demo import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="module")
def tekken_file(demo_dir):
    return demo_dir / "tekken.json"


@pytest.fixture(scope="module", params=["mistral-common", "tokenizers"])
def tokenizer(request, demo_dir, tmp_path_factory):
    """mlx-lm's TokenizerWrapper over the demo's Devstral-compatible tokenizer, in both backends.

    With tekken.json beside it transformers picks MistralCommonBackend (what real
    Devstral gets); without it, the generic backend from tokenizer.json.
    """
    import shutil

    from mlx_lm.tokenizer_utils import load as load_tokenizer

    folder = demo_dir
    if request.param == "tokenizers":
        folder = tmp_path_factory.mktemp("tok")
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
            if (demo_dir / name).is_file():
                shutil.copyfile(demo_dir / name, folder / name)
    wrapper = load_tokenizer(folder)
    expected = "MistralCommonBackend" if request.param == "mistral-common" else "TokenizersBackend"
    assert type(wrapper._tokenizer).__name__ == expected
    return wrapper


def record(system=SYSTEM, tools=TOOLS, user="How many type errors are in src/?"):
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [
        {"role": "user", "content": user},
        {"role": "assistant", "content": "Let me check."},
        {"role": "user", "content": "And in tests/?"},
        {"role": "assistant", "content": "None there."},
    ]
    return {"messages": messages, "tools": tools}


def test_query_messages_is_system_then_user():
    assert query_messages(SYSTEM, "hi") == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hi"},
    ]


def test_render_passes_tools_natively_and_ends_with_the_generation_prompt(tokenizer):
    ids = render_prompt(tokenizer, query_messages(SYSTEM, "Check types in src/"), TOOLS)
    text = tokenizer.decode(ids, skip_special_tokens=False)
    assert text.startswith("<s>[SYSTEM_PROMPT]" + SYSTEM + "[/SYSTEM_PROMPT][AVAILABLE_TOOLS]"), text[:200]
    assert '"name": "execute_code"' in text and '"name": "read_file"' in text
    assert text.endswith("[/AVAILABLE_TOOLS][INST]Check types in src/[/INST]"), text[-200:]
    # Control markers are single ids in the rendering, never spelled out as text.
    for marker in ("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[INST]", "[/INST]"):
        assert tokenizer.convert_tokens_to_ids(marker) in ids


def test_render_matches_mistral_commons_reference_encoding(tokenizer, tekken_file):
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    from punie_gates.formats.tekken import reference_tokenizer

    messages = query_messages(SYSTEM, "Which tests fail?")
    reference = reference_tokenizer(tekken_file, validation_mode="test").encode_chat_completion(
        ChatCompletionRequest(messages=messages, tools=TOOLS)
    )
    assert render_prompt(tokenizer, messages, TOOLS) == reference.tokens


def test_render_without_tools_has_no_tools_block(tokenizer):
    text = tokenizer.decode(render_prompt(tokenizer, query_messages(SYSTEM, "hi"), None), skip_special_tokens=False)
    assert "[AVAILABLE_TOOLS]" not in text and SYSTEM in text


def test_same_system_prompt_and_tools_agree_whatever_the_user_asks(tokenizer):
    assert prefix_mismatch(tokenizer, record(), query_messages(SYSTEM, "A different question"), TOOLS) is None


def test_head_stops_where_the_users_text_starts(tokenizer):
    head = training_prompt_prefix(tokenizer, record())
    full = render_prompt(tokenizer, query_messages(SYSTEM, "Zebra"), TOOLS)
    assert full[: len(head)] == head
    assert tokenizer.decode(head, skip_special_tokens=False).endswith("[/AVAILABLE_TOOLS][INST]")


def test_changed_system_prompt_is_reported_with_where_it_diverges(tokenizer):
    message = prefix_mismatch(tokenizer, record(), query_messages(SYSTEM + " Be brief.", "q"), TOOLS)
    assert message is not None
    assert "diverges" in message and "Be brief" in message


@pytest.mark.parametrize(
    "tools",
    [
        TOOLS[:1],
        TOOLS[::-1],
        None,
        [TOOLS[0], {**TOOLS[1], "function": {**TOOLS[1]["function"], "description": "Read."}}],
    ],
    ids=["one-tool-dropped", "reordered", "no-tools", "description-changed"],
)
def test_changed_tools_block_is_reported(tokenizer, tools):
    message = prefix_mismatch(tokenizer, record(), query_messages(SYSTEM, "q"), tools)
    assert message is not None and "tools block" in message


def test_missing_system_prompt_on_one_side_is_reported(tokenizer):
    assert prefix_mismatch(tokenizer, record(system=None), query_messages(SYSTEM, "q"), TOOLS) is not None
    assert prefix_mismatch(tokenizer, record(system=None), [{"role": "user", "content": "q"}], TOOLS) is None


def test_record_without_a_user_turn_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no user turn"):
        training_prompt_prefix(tokenizer, {"messages": [{"role": "system", "content": SYSTEM}]})


def test_prompt_head_is_shared_by_all_queries(tokenizer):
    head = prompt_head(tokenizer, [{"role": "system", "content": SYSTEM}], TOOLS)
    for text in ("a", "Zzz", "123", "  leading spaces"):
        assert render_prompt(tokenizer, query_messages(SYSTEM, text), TOOLS)[: len(head)] == head


def test_default_system_prompt_is_the_most_common_in_training():
    rare, common = "Rare prompt.", "Common prompt."
    records = [record(system=rare)] + [record(system=common)] * 2 + [record(system=None)]
    assert default_system_prompt(records) == common


def test_default_system_prompt_accepts_a_conversion_result():
    class Result:  # the shape of punie_gates.formats.records.ConversionResult that matters here
        records = (record(system="From records."),)

    assert default_system_prompt(Result()) == "From records."


def test_default_system_prompt_falls_back_to_the_data_file():
    expected = (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
    assert expected
    assert default_system_prompt([]) == expected
    assert default_system_prompt(None) == expected
    assert default_system_prompt([record(system=None)]) == expected
