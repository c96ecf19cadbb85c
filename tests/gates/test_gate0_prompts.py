"""Gate 0 (hard), data side: the training data converts whole, and validation
prompts render exactly like training prompts.

Punie once lost 60 points of accuracy to a train/test prompt mismatch, and a whole
experiment to silently corrupted examples. Both are cheap to catch here, before
any weights are read.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gate0]


def test_training_data_converts_with_nothing_rejected(training_data, gate_config, gate_record):
    train, valid = training_data
    gate_record.update(
        **{
            f"{name}_conversion": {"read": result.read, "converted": result.converted, "rejected": result.rejected}
            for name, result in (("train", train), ("valid", valid))
        }
    )
    gate_record.update(
        training_data=str(gate_config.training_data),
        tools=[t["function"]["name"] for t in train.tools],
    )
    rejects = [
        f"{name}.jsonl line {r.line}: {r.reason}"
        for name, res in (("train", train), ("valid", valid))
        for r in res.rejects
    ]
    assert not rejects, (
        f"{len(rejects)} training example(s) in {gate_config.training_data} could not be converted "
        f"(training on the rest would silently change the data): " + "; ".join(rejects[:5])
    )
    assert train.converted > 0, f"{gate_config.training_data}/train.jsonl holds no example"


def test_validation_prompts_render_like_training(
    candidate_serving_tokenizer, training_data, catalog, query_set, system_prompt, gate_record
):
    from punie_gates.answering.prompts import prefix_mismatch, query_messages

    train, _ = training_data
    tools = catalog.native_schemas()
    assert list(train.tools) == tools, (
        "the training data was converted with a different tools list than the validation prompts use: "
        f"{[t['function']['name'] for t in train.tools]} vs {[t['function']['name'] for t in tools]}"
    )
    same_prompt = [r for r in train.records if r["messages"][0].get("content") == system_prompt]
    assert same_prompt, f"no training example uses the validation system prompt {system_prompt[:80]!r}"
    gate_record.update(
        system_prompt=system_prompt,
        training_examples_with_that_prompt=len(same_prompt),
    )
    query = query_set.queries[0]
    mismatch = prefix_mismatch(
        candidate_serving_tokenizer, same_prompt[0], query_messages(system_prompt, query.text), tools
    )
    assert mismatch is None, mismatch


def test_validation_data_is_not_in_the_training_data(training_data, gate_config, gate_record):
    """Not a failure: a leak makes Gate 5's validation loss overstate what the model learned,
    so it is measured and flagged for the people who curate the data."""
    import json

    train, valid = training_data

    def key(record) -> str:
        return json.dumps(record["messages"], sort_keys=True, ensure_ascii=False)

    train_keys = [key(r) for r in train.records]
    seen = set(train_keys)
    leaked = [line for line, r in zip(valid.record_lines, valid.records) if key(r) in seen]
    duplicates = len(train_keys) - len(seen)
    gate_record.update(
        data_overlap={
            "train_duplicates": duplicates,
            "valid_in_train": len(leaked),
            "valid_in_train_lines": leaked[:20],
        },
    )
    if leaked:
        gate_record.flag(
            f"{len(leaked)} of {valid.converted} validation conversations also appear in the training data "
            f"({gate_config.training_data}/valid.jsonl lines {', '.join(map(str, leaked[:5]))}...): "
            "validation loss overstates generalisation"
        )
