"""The converter on Punie's real Phase 27 data (read in place, never copied)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from punie_gates.formats.records import read_jsonl_bytes
from punie_gates.formats.sampling import record_family, stratified_sample
from punie_gates.formats.to_mistral import convert_training_folder, to_mistral
from punie_gates.formats.to_qwen3 import to_qwen3

ID = re.compile(r"[A-Za-z0-9]{9}")
# Layout whitespace next to Qwen3 tags: the only thing to_qwen3 may change in Punie's text.
_AROUND_TAGS = re.compile(r"[ \t\r\n]*(</?(?:tool_call|function|parameter)(?:=[^>]*)?>)[ \t\r\n]*")


@pytest.fixture(scope="module")
def converted(phase27_dir):
    return convert_training_folder(phase27_dir)


def _lines(records) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in records]


def _all_records(converted):
    return [r for result in converted for r in result.records]


def test_all_examples_convert_with_one_tools_list(converted):
    train, valid = converted
    assert (train.read, train.converted, train.rejected) == (993, 993, 0), train.rejects[:3]
    assert (valid.read, valid.converted, valid.rejected) == (111, 111, 0), valid.rejects[:3]
    assert train.tools == valid.tools
    assert {t["function"]["name"] for t in train.tools} >= {"execute_code"}
    assert all(r["tools"] == list(train.tools) for r in _all_records(converted))


def test_ids_are_valid_and_results_answer_their_calls(converted):
    calls = 0
    for record in _all_records(converted):
        waiting: list[str] = []
        for message in record["messages"]:
            if message["role"] == "assistant":
                waiting = [c["id"] for c in message.get("tool_calls", ())]
                calls += len(waiting)
                assert all(ID.fullmatch(i) for i in waiting)
            elif message["role"] == "tool":
                assert message["tool_call_id"] == waiting.pop(0)
    assert calls > 0


@pytest.mark.parametrize("part", [0, 1], ids=["train", "valid"])
def test_round_trip_is_exact(converted, part):
    result = converted[part]
    back = to_qwen3(_lines(result.records))
    assert back.rejected == 0, back.rejects[:3]
    again = to_mistral(_lines(back.records), tools=list(result.tools))
    assert again.records == result.records


def test_to_qwen3_reproduces_punies_text_up_to_tag_layout(phase27_dir, converted):
    train = converted[0]
    back = to_qwen3(_lines(train.records)).records
    identical = 0
    for raw, mistral, qwen3 in zip(read_jsonl_bytes(phase27_dir / "train.jsonl"), train.records, back, strict=True):
        original = json.loads(raw)
        if original == qwen3:
            identical += 1
            continue
        plain_calls = {c["function"]["name"] for m in mistral["messages"] for c in m.get("tool_calls", ())}
        if plain_calls - {"execute_code"}:
            continue  # an older JSON-fence call, rewritten as a <tool_call> block on purpose
        layout_free = [[_AROUND_TAGS.sub(r"\1", m["content"]) for m in r["messages"]] for r in (original, qwen3)]
        assert layout_free[0] == layout_free[1]
    assert identical > len(back) / 2  # the canonical layout is Punie's dominant one


@pytest.fixture(scope="module")
def devstral_tokenizers(tmp_path_factory):
    from transformers import AutoTokenizer

    from punie_gates.formats.tekken import reference_tokenizer, save_hf_tokenizer, write_tekken

    root = tmp_path_factory.mktemp("tekken27")
    tekken = write_tekken(root / "tekken.json", layout="v13")
    hf_dir = save_hf_tokenizer(tekken, root / "hf")
    return AutoTokenizer.from_pretrained(str(hf_dir)), reference_tokenizer(tekken, validation_mode="finetuning")


def test_every_record_passes_mistral_common_and_matches_the_hf_template(converted, devstral_tokenizers):
    # All 1104 records: about 7 s on 2 CPU cores, so no sampling is needed.
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    hf, reference = devstral_tokenizers
    call_token = hf.convert_tokens_to_ids("[TOOL_CALLS]")
    mismatched = []
    for number, record in enumerate(_all_records(converted)):
        request = ChatCompletionRequest(messages=record["messages"], tools=record["tools"])
        expected = reference.encode_chat_completion(request).tokens  # validates in finetuning mode
        ids = hf.apply_chat_template(record["messages"], tools=record["tools"], tokenize=True, return_dict=False)
        n_calls = sum(len(m.get("tool_calls", ())) for m in record["messages"])
        if list(ids) != expected or ids.count(call_token) != n_calls:
            mismatched.append(number)
    assert mismatched == []


def _shares(records) -> Counter:
    counts = Counter(record_family(r) for r in records)
    return Counter({k: v / len(records) for k, v in counts.items()})


def _marginal(shares: Counter, key) -> Counter:
    out: Counter = Counter()
    for name, share in shares.items():
        out[key(name)] += share
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_of_100_keeps_the_mix_within_2_points(converted, seed):
    records = converted[0].records
    sample = stratified_sample(records, 100, seed=seed)
    assert len(sample) == 100 and len({id(r) for r in sample}) == 100  # (the data holds duplicate conversations)
    full, part = _shares(records), _shares(sample)
    for stratum in full | part:
        assert abs(full[stratum] - part[stratum]) <= 0.02, stratum
    for key in (lambda s: s.endswith("+multi"), lambda s: s.split("+")[0]):  # multi-turn share, tool family
        full_m, part_m = _marginal(full, key), _marginal(part, key)
        assert all(abs(full_m[k] - part_m[k]) <= 0.02 for k in full_m), (full_m, part_m)
