"""Self-tests of Gate 0's tokenizer check (punie_gates.checks.tokenizer).

Tokenizer-only candidate folders are built once per session from the tekken file
mistral-common ships: the v13 layout Devstral uses and the v3 layout where
`[ARGS]` is several pieces, each under both transformers backends. transformers 5
picks MistralCommonBackend only when the folder holds tekken.json *and* a
config.json with a Mistral model_type; tokenizer files alone give the generic
TokenizersBackend.
"""

from __future__ import annotations

import copy
import json
import shutil
from functools import cache
from pathlib import Path

import pytest

from punie_gates.checks import tokenizer as tc
from punie_gates.formats import tekken
from punie_gates.model import tokenizer as mt

BACKENDS = {"tokenizers": "TokenizersBackend", "mistral": "MistralCommonBackend"}
MISTRAL_CONFIG = {"model_type": "mistral3", "text_config": {"model_type": "ministral3"}}
REQUIRED = tc.REQUIRED_TOOL_MARKERS["mistral"]
# Devstral Small 2's ids as Punie's tracker recorded them (FACTS.md); the shipped BPE reproduces them.
PUNIE_SEED_IDS = {
    "[TOOL_CALLS]": (9,),
    "[TOOL_RESULTS]": (7,),
    "[/TOOL_RESULTS]": (8,),
    "[/TOOL_CALLS]": (1091, 1047, 9197, 8568, 74483, 1083, 1093),
}
FAKE_WEIGHTS = b"not a safetensors file: Gate 0 must never open weights"


def _copy_tokenizer(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for path in src.iterdir():
        shutil.copy(path, dest / path.name)
    return dest


def _break_pretokenizer(folder: Path) -> None:
    # Drop the whitespace-run rule from the split regex: indentation then
    # tokenizes differently, the kind of regex bug real Mistral tokenizer.json
    # files have shipped with (transformers' fix_mistral_regex warning).
    doc = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    split = doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]
    assert r"\s+(?!\S)|" in split["Regex"], "the tekken pre-tokenizer regex changed: update this test"
    split["Regex"] = split["Regex"].replace(r"\s+(?!\S)|", "", 1)
    (folder / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="session")
def tekken_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tekken")
    return {layout: tekken.write_tekken(root / layout / "tekken.json", layout) for layout in tekken.LAYOUTS}


@pytest.fixture(scope="session")
def folders(tmp_path_factory, tekken_files) -> dict[tuple[str, str], Path]:
    """(layout, variant) -> a candidate folder holding tokenizer files, never weights that load."""
    root = tmp_path_factory.mktemp("candidates")
    out: dict[tuple[str, str], Path] = {}
    for layout, tekken_path in tekken_files.items():
        plain = tekken.save_hf_tokenizer(tekken_path, root / f"{layout}-tokenizers")  # ~4 s each
        out[(layout, "tokenizers")] = plain
        mistral = _copy_tokenizer(plain, root / f"{layout}-mistral")
        shutil.copy(tekken_path, mistral / "tekken.json")
        (mistral / "config.json").write_text(json.dumps(MISTRAL_CONFIG), encoding="utf-8")
        (mistral / "model.safetensors").write_bytes(FAKE_WEIGHTS)
        out[(layout, "mistral")] = mistral
    lone = _copy_tokenizer(out[("v13", "tokenizers")], root / "v13-tekken-without-config")
    shutil.copy(tekken_files["v13"], lone / "tekken.json")
    out[("v13", "tekken-without-config")] = lone
    broken = _copy_tokenizer(out[("v13", "tokenizers")], root / "v13-broken-regex")
    _break_pretokenizer(broken)
    out[("v13", "broken-regex")] = broken
    return out


@pytest.fixture(scope="session")
def tokenizer_of(folders):
    @cache
    def loader(layout: str, variant: str):
        return mt.load_candidate_tokenizer(folders[(layout, variant)])

    return loader


@pytest.fixture(scope="session")
def report_of(tokenizer_of):
    @cache
    def inspector(layout: str, variant: str) -> tc.Gate0Report:
        return tc.inspect_tokenizer(tokenizer_of(layout, variant))

    return inspector


def _parity_records() -> list[dict]:
    """Hand-written training records: the canonical one, indented code, a plain chat."""
    messages, tools = tc.canonical_conversation()
    code = (
        "def count(path):\n    result = typecheck(path)\n    if result.error_count:\n"
        "        return result.error_count\n    return 0\n\nprint(count('src/'))"
    )
    indented = copy.deepcopy(messages)
    indented[2]["content"] = "I'll count them.\n\n"
    indented[2]["tool_calls"][0]["function"]["arguments"] = {"code": code}
    indented[3]["content"] = "  12\n\n"
    chat = [
        {"role": "system", "content": "You are Punie."},
        {"role": "user", "content": "What does   ruff   do?"},
        {"role": "assistant", "content": "It lints Python:\n\n    ruff check src/\n"},
    ]
    return [{"messages": m, "tools": tools} for m in (messages, indented, chat)]


# -- the markers ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_v13_layout_passes(report_of, backend):
    report = report_of("v13", backend)
    assert report.tokenizer_class == BACKENDS[backend]
    assert report.family == "mistral"
    assert report.passed, report.failures
    emitted = {m.marker for m in report.markers if m.emitted}
    assert set(REQUIRED) <= emitted
    assert all(m.single and m.is_control for m in report.markers if m.emitted)
    assert "[CALL_ID]" not in emitted  # v13 writes no call ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_delimiters_are_reported_as_punie_recorded_them(report_of, backend):
    report = report_of("v13", backend)
    assert {m.marker: m.ids for m in report.seed_delimiters} == PUNIE_SEED_IDS
    closing = report.marker("[/TOOL_CALLS]")
    assert not closing.emitted and closing.in_vocab_id is None
    assert closing.note == "not emitted by this format (a call ends at </s>)"
    assert report.passed  # seven pieces of a text the format never writes fail nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_v3_layout_fails_naming_args(report_of, backend):
    report = report_of("v3", backend)
    assert report.tokenizer_class == BACKENDS[backend]
    assert not report.passed
    assert any(f.startswith("[ARGS] is not one token") for f in report.failures), report.failures
    assert report.marker("[ARGS]").in_vocab_id is None


def test_both_backends_give_the_same_ids_and_verdicts(report_of):
    for layout in tekken.LAYOUTS:
        assert report_of(layout, "tokenizers").passed == report_of(layout, "mistral").passed
    ours, theirs = report_of("v13", "tokenizers"), report_of("v13", "mistral")
    assert ours.canonical_ids == theirs.canonical_ids

    def seen(report):
        return [(m.marker, m.ids, m.emitted) for m in report.markers]

    assert seen(ours) == seen(theirs)


def test_tekken_json_alone_does_not_select_mistral_backend(report_of):
    # transformers 5 also needs config.json with a Mistral model_type.
    report = report_of("v13", "tekken-without-config")
    assert report.tokenizer_class == "TokenizersBackend" and report.passed


def test_weights_are_never_opened(folders, report_of):
    folder = folders[("v13", "mistral")]
    assert (folder / "model.safetensors").read_bytes() == FAKE_WEIGHTS
    assert report_of("v13", "mistral").passed


def test_mistral_backend_in_default_mode_cannot_render_training(folders):
    from mlx_lm.utils import load_tokenizer

    report = tc.inspect_tokenizer(load_tokenizer(folders[("v13", "mistral")]))  # mlx-lm's default: "test" mode
    assert report.tokenizer_class == "MistralCommonBackend"
    assert not report.finetuning_render_ok and not report.passed
    assert "assistant" in report.render_error
    assert not report.marker_failures  # the markers are still read from the serving-shaped prefix


def test_naive_text_probe_would_give_a_false_no_go(tokenizer_of, report_of):
    # Mistral's own backend splits a marker typed as text, on purpose: the probe
    # calls every tool marker multi-token while the template emits each as one id.
    assert report_of("v13", "mistral").passed
    for marker in REQUIRED:
        assert len(tc.naive_text_probe(tokenizer_of("v13", "mistral"), marker)) > 1, marker
    # The seed plan's probe of its guessed closing token: 7 pieces, of a text never emitted.
    assert (
        tuple(tc.naive_text_probe(tokenizer_of("v13", "tokenizers"), "[/TOOL_CALLS]"))
        == PUNIE_SEED_IDS["[/TOOL_CALLS]"]
    )
    assert report_of("v13", "tokenizers").passed


# -- the training data ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_marker_in_converted_text_is_caught(tokenizer_of, backend):
    clean = _parity_records()
    bad = copy.deepcopy(clean[0])
    bad["messages"][4]["content"] = "There are 3 type errors.[/TOOL_CALLS]"
    found = tc.find_split_markers([*clean, bad], tokenizer_of("v13", backend))
    assert len(found) == 1, found
    assert found[0].startswith("record[3] messages[4].content: '[/TOOL_CALLS]'") and "7 pieces" in found[0]
    assert tc.find_split_markers(clean, tokenizer_of("v13", backend)) == []


@pytest.mark.parametrize(("backend", "becomes"), [("tokenizers", "control id 9"), ("mistral", "6 pieces")])
def test_control_marker_written_as_text_is_caught(tokenizer_of, backend, becomes):
    record = _parity_records()[2]
    record["messages"][2]["content"] = "Write [TOOL_CALLS] to call a tool."
    found = tc.find_split_markers([record], tokenizer_of("v13", backend), label=["train.jsonl line 7"])
    assert len(found) == 1 and found[0].startswith("train.jsonl line 7 messages[2].content") and becomes in found[0]


def test_args_text_splits_with_a_v3_vocabulary(tokenizer_of):
    record = _parity_records()[2]
    record["messages"][1]["content"] = "What does [ARGS] mean?"
    found = tc.find_split_markers([record], tokenizer_of("v3", "tokenizers"))
    assert len(found) == 1 and "'[ARGS]'" in found[0] and "4 pieces" in found[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_holds_for_a_faithful_tokenizer(tokenizer_of, tekken_files, backend):
    records = _parity_records()
    parity = tc.check_parity(records, tokenizer_of("v13", backend), tekken_files["v13"])
    assert (parity.records_checked, parity.mismatched, parity.examples) == (len(records), 0, ())


def test_parity_catches_a_broken_pretokenizer_and_shows_where(tokenizer_of, report_of, tekken_files):
    assert report_of("v13", "broken-regex").passed  # its markers are fine: only parity can tell
    parity = tc.check_parity(_parity_records(), tokenizer_of("v13", "broken-regex"), tekken_files["v13"], limit=1)
    assert parity.mismatched >= 1 and len(parity.examples) == 1
    first = parity.examples[0]
    assert first.startswith("record[1]: ids differ at position ") and "| mistral-common " in first


def test_a_broken_regex_fails_parity_without_tekken_json_too(folders):
    """No tekken.json: the reference is built from tokenizer.json's vocabulary but with
    tekken's own split pattern, so the tokenizer's broken regex is not inherited."""
    folder = folders[("v13", "broken-regex")]
    assert mt.tekken_path_of(folder) is None
    reference = tc.build_reference(folder)
    assert "split regex differs from tekken's" in reference.version
    parity = tc.check_parity(_parity_records(), mt.load_candidate_tokenizer(folder), reference, limit=1)
    assert parity.mismatched >= 1 and parity.headline.startswith("mlx-lm has ")


def test_parity_uses_the_ids_given(tokenizer_of, tekken_files):
    records = _parity_records()[:1]
    tokenizer = tokenizer_of("v13", "tokenizers")
    rendered = mt.render_records(records, tokenizer)
    assert rendered.errors == ()
    assert tc.check_parity(records, tokenizer, tekken_files["v13"], rendered=rendered.ids).mismatched == 0
    shifted = [(rendered.ids[0][0],) + rendered.ids[0]]
    parity = tc.check_parity(records, tokenizer, tekken_files["v13"], rendered=shifted)
    assert parity.mismatched == 1 and "position 1" in parity.examples[0]


def test_real_training_data_has_no_split_marker_and_parity_holds(phase27_dir, repo_root, tokenizer_of, tekken_files):
    from punie_gates.formats.to_mistral import convert_training_folder
    from punie_gates.inputs.catalog import load_catalog

    tools = load_catalog(repo_root / "data" / "tools.toml").native_schemas()
    train, valid = convert_training_folder(phase27_dir, tools=tools)
    records = [*train.records, *valid.records]
    tokenizer = tokenizer_of("v13", "tokenizers")
    rendered = mt.render_records(records, tokenizer)
    assert rendered.errors == ()
    assert tc.find_split_markers(records, tokenizer) == []
    parity = tc.check_parity(records, tokenizer, tekken_files["v13"], rendered=rendered.ids)
    assert (parity.records_checked, parity.mismatched) == (len(records), 0), parity.examples


# -- a Qwen3-style tokenizer ---------------------------------------------------

QWEN_TOOL_MARKERS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
QWEN_TEMPLATE = """{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools
<tools>{% for tool in tools %}
{{ tool | tojson }}{% endfor %}
</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' %}<|im_start|>user
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{{ message.content or '' }}
{%- for call in message.tool_calls or [] %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def _tiny_bpe_folder(dest: Path, specials: tuple[str, ...], template: str) -> Path:
    """A byte-level BPE tokenizer trained on a few lines, with `specials` added as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = ["Check types in src/. There are 3 type errors.", "result = typecheck('src/')\nprint(result.error_count)"]
    bpe.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = template
    fast.save_pretrained(str(dest))
    return dest


@pytest.fixture(scope="session")
def qwen_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qwen3")
    turns = ("<|im_start|>", "<|im_end|>")
    return {
        "ok": _tiny_bpe_folder(root / "ok", (*turns, *QWEN_TOOL_MARKERS), QWEN_TEMPLATE),
        "no-close": _tiny_bpe_folder(
            root / "no-close", (*turns, *QWEN_TOOL_MARKERS[:1], *QWEN_TOOL_MARKERS[2:]), QWEN_TEMPLATE
        ),
        "plain": _tiny_bpe_folder(root / "plain", (), "{% for m in messages %}{{ m.content }}\n{% endfor %}"),
    }


def test_qwen3_tool_markers_pass(qwen_folders):
    tokenizer = mt.load_candidate_tokenizer(qwen_folders["ok"])
    report = tc.inspect_tokenizer(tokenizer)
    assert report.passed, report.failures
    assert (report.family, report.tokenizer_class) == ("qwen3", "TokenizersBackend")
    for marker in QWEN_TOOL_MARKERS:
        found = report.marker(marker)
        assert found.emitted and found.single and len(found.ids) == 1, found
    assert report.seed_delimiters == ()
    assert mt.tekken_path_of(qwen_folders["ok"]) is None  # parity: not applicable
    # Qwen3 data carries its markers as text by design: not flagged while they stay whole.
    record = {"messages": [{"role": "assistant", "content": '<tool_call>\n{"name": "x"}\n</tool_call>'}]}
    assert tc.find_split_markers([record], tokenizer) == []


def test_qwen3_missing_marker_fails_naming_it(qwen_folders):
    tokenizer = mt.load_candidate_tokenizer(qwen_folders["no-close"])
    report = tc.inspect_tokenizer(tokenizer)
    assert report.family == "qwen3" and not report.passed
    assert [f for f in report.failures if f.startswith("</tool_call> is not one token")], report.failures
    record = {"messages": [{"role": "assistant", "content": "<tool_call>{}</tool_call>"}]}
    found = tc.find_split_markers([record], tokenizer)
    assert len(found) == 1 and "'</tool_call>'" in found[0]


def test_unknown_format_fails(qwen_folders):
    report = tc.inspect_tokenizer(mt.load_candidate_tokenizer(qwen_folders["plain"]))
    assert report.family == "unknown" and not report.passed
    assert report.failures[0].startswith("unknown chat format")


# -- loading -------------------------------------------------------------------


def test_load_refuses_what_is_not_a_local_tokenizer_folder(tmp_path):
    # mlx-lm would take a missing path for a hub repo id and try to download it.
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        mt.load_candidate_tokenizer(tmp_path / "mlx-community" / "missing")
    with pytest.raises(FileNotFoundError, match="no tokenizer.json, tekken.json or tokenizer.model"):
        mt.load_candidate_tokenizer(tmp_path)
