"""The bench's second workload: caps drawn from the training data's own answer lengths."""

from __future__ import annotations

import pytest

from punie_gates.checks.answer_lengths import answer_token_lengths, draw_caps, summarize, turn_length


def test_caps_follow_the_distribution_the_same_way_every_time():
    lengths = list(range(1, 101))  # 1..100 tokens
    caps = draw_caps(lengths, 10, seed=0)
    assert sorted(caps) == [6, 16, 26, 36, 46, 56, 66, 76, 86, 96], "one cap per decile, not random draws"
    assert caps == draw_caps(lengths, 10, seed=0)
    assert sorted(draw_caps(lengths, 10, seed=1)) == sorted(caps) and draw_caps(lengths, 10, seed=1) != caps
    assert max(draw_caps(lengths, 10, seed=0, limit=50)) == 50
    assert draw_caps([7], 3) == [7, 7, 7]
    with pytest.raises(ValueError, match="no lengths"):
        draw_caps([], 3)


def test_the_summary_names_its_quantiles_and_source():
    summary = summarize([10] * 50 + [100] * 49 + [400], "fixtures/x")
    assert (summary.turns, summary.p50, summary.p90, summary.p99, summary.max) == (100, 100, 100, 400, 400)
    assert summary.describe() == "p50 100, p90 100, p99 400, max 400 tokens over 100 assistant turns"
    with pytest.raises(ValueError, match="fixtures/y: no assistant turns"):
        summarize([], "fixtures/y")


def test_a_turns_length_is_what_the_template_renders_for_it(repo_root):
    """Counted from the message, equal to the ids between [/INST] or [/TOOL_RESULTS] and </s>
    of the conversation as training renders it, on every demo training conversation."""
    from punie_gates.formats.to_mistral import convert_training_folder
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.tokenizer import load_candidate_tokenizer, render_ids

    demo = ensure_demo_model()
    serving, training = load_candidate_tokenizer(demo, serving=True), load_candidate_tokenizer(demo)
    train, _ = convert_training_folder(
        repo_root / "fixtures" / "demo-training", tools=load_catalog(None).native_schemas()
    )
    opens = {training.convert_tokens_to_ids(t) for t in ("[/INST]", "[/TOOL_RESULTS]")}
    end = training.convert_tokens_to_ids("</s>")
    calls = 0
    for record in train.records:
        ids = render_ids(training, record["messages"], record.get("tools"))
        rendered, start = [], None
        for i, token in enumerate(ids):
            if token in opens:
                start = i + 1
            elif token == end and start is not None:
                rendered.append(i + 1 - start)
                start = None
        assistant = [m for m in record["messages"] if m["role"] == "assistant"]
        calls += sum(len(m.get("tool_calls") or ()) for m in assistant)
        assert [turn_length(serving, m) for m in assistant] == rendered
    assert calls > 10, "the demo data has tool calls to count"
    assert len(answer_token_lengths(serving, train.records)) == sum(
        m["role"] == "assistant" for r in train.records for m in r["messages"]
    )
