"""Greedy generation on the demo model: the prefix cache changes nothing but the cost."""

from __future__ import annotations

import json

import pytest

from punie_gates.answering.inprocess import (
    Generation,
    generate_answers,
    generate_naive,
    save_responses,
    shared_prefix_len,
)
from punie_gates.answering.prompts import query_messages, render_prompt

MAX_TOKENS = 12
QUESTIONS = (
    "How many type errors are in src/?",
    "Run the tests in tests/unit.",
    "What does the parse function return?",
    "Show the git status.",
    "Explain what a decorator is.",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo candidate (tiny, random weights) loaded with mlx-lm, built in the suite's cache."""
    from mlx_lm import load

    from punie_gates.model.demo import ensure_demo_model

    return load(str(ensure_demo_model()))


# A short system prompt and one tool: the random demo's answers then depend on the
# query (under the full catalog's ~770-token head they all collapse to the same
# tokens, and a broken cache could not show).
SYSTEM = "You are Punie, a coding assistant. Answer briefly."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_code",
            "description": "Run Python that calls the typed tools.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]


@pytest.fixture(scope="module")
def prompts(demo):
    _, tokenizer = demo
    return [
        (f"q{n}", render_prompt(tokenizer, query_messages(SYSTEM, text), TOOLS)) for n, text in enumerate(QUESTIONS)
    ]


@pytest.fixture(scope="module")
def naive(demo, prompts):
    model, tokenizer = demo
    return generate_naive(model, tokenizer, prompts, max_tokens=MAX_TOKENS)


def test_shared_prefix_len():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # every prompt keeps a token to prefill
    assert shared_prefix_len([[1, 2]]) == 0  # nothing shared with a single prompt
    assert shared_prefix_len([[7, 1], [8, 1]]) == 0


def test_prompts_share_the_system_prompt_and_tools_block(prompts):
    shared = shared_prefix_len([ids for _, ids in prompts])
    assert shared > 0.8 * min(len(ids) for _, ids in prompts)


def test_naive_generation_reports_what_it_did(naive, prompts):
    assert [g.id for g in naive] == [qid for qid, _ in prompts]
    for g, (_, ids) in zip(naive, prompts):
        assert isinstance(g, Generation)
        assert g.prompt_tokens == g.prefill_tokens_computed == len(ids)
        assert 0 < g.generated_tokens <= MAX_TOKENS and len(g.tokens) == g.generated_tokens
        assert g.finish_reason in ("stop", "length")
        assert g.finish_reason == "stop" or g.generated_tokens == MAX_TOKENS
        assert 0 < g.ttft_s <= g.latency_s and g.prompt_tps > 0 and g.generation_tps > 0
        assert isinstance(g.text, str)


def test_answers_depend_on_the_query(naive):
    """The premise of the cache tests below: a cache mix-up would change some answer."""
    assert len({g.tokens for g in naive}) >= 3, [g.tokens for g in naive]


def test_prefix_cache_gives_the_same_tokens_for_less_prefill(demo, prompts, naive):
    """Batch size 1 with the cache is token-for-token the naive run: the cache is correct."""
    model, tokenizer = demo
    cached = generate_answers(model, tokenizer, prompts, max_tokens=MAX_TOKENS, batch_size=1, prefix_cache=True)
    assert [g.tokens for g in cached] == [g.tokens for g in naive]
    assert [g.text for g in cached] == [g.text for g in naive]
    shared = shared_prefix_len([ids for _, ids in prompts])
    naive_prefill = sum(g.prefill_tokens_computed for g in naive)
    assert sum(g.prefill_tokens_computed for g in cached) == naive_prefill - shared * (len(prompts) - 1)
    assert cached[0].prefill_tokens_computed == len(prompts[0][1])  # the first query paid for the prefix


def test_cached_prefix_gives_the_same_next_token_logits(demo, prompts):
    """Prefix KV computed once + the suffix == the whole prompt at once, to float tolerance."""
    import copy

    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    from punie_gates.answering.inprocess import _prefill

    model, _ = demo
    shared = shared_prefix_len([ids for _, ids in prompts])
    prefix_cache, _ = _prefill(model, prompts[0][1][:shared])
    for _, ids in prompts:
        whole = model(mx.array(ids)[None], cache=make_prompt_cache(model))[0, -1]
        cached = model(mx.array(ids[shared:])[None], cache=copy.deepcopy(prefix_cache))[0, -1]
        assert mx.allclose(whole, cached, atol=1e-4, rtol=1e-4).item()
        assert mx.argmax(whole).item() == mx.argmax(cached).item()
    assert all(c.offset == shared for c in prefix_cache), "the shared prefix cache was modified"


def test_cache_is_not_consumed_by_reuse(demo, prompts, naive):
    """Two runs in a row (each copies the prefix cache per query) agree with each other."""
    model, tokenizer = demo
    first = generate_answers(model, tokenizer, prompts[:2], max_tokens=4)
    again = generate_answers(model, tokenizer, prompts[:2], max_tokens=4)
    assert [g.tokens for g in first] == [g.tokens for g in again] == [g.tokens[:4] for g in naive[:2]]


def test_batched_path_runs_and_reports(demo, prompts, naive):
    model, tokenizer = demo
    batched = generate_answers(model, tokenizer, prompts, max_tokens=MAX_TOKENS, batch_size=3, prefix_cache=True)
    assert [g.id for g in batched] == [qid for qid, _ in prompts]
    for g in batched:
        assert 0 < g.generated_tokens <= MAX_TOKENS and len(g.tokens) == g.generated_tokens
        assert g.finish_reason == "stop" or g.generated_tokens == MAX_TOKENS
        assert 0 < g.ttft_s <= g.latency_s
    assert sum(g.prefill_tokens_computed for g in batched) < sum(g.prefill_tokens_computed for g in naive)
    # Batched greedy decoding may differ from one-at-a-time in the last bits of the
    # logits (`punie-gates bench` counts it: 0 of 40 on this CPU backend), so allow
    # one difference; a wrong cache or prompt offset changes most answers.
    same = sum(g.tokens == n.tokens for g, n in zip(batched, naive))
    assert same >= len(naive) - 1, f"only {same} of {len(naive)} batched answers match one-at-a-time"


def test_progress_is_reported_per_finished_query(demo, prompts):
    model, tokenizer = demo
    calls = []
    generate_answers(
        model, tokenizer, prompts[:3], max_tokens=2, batch_size=2,
        progress=lambda step, done, total, **figures: calls.append((step, done, total, sorted(figures))),
    )  # fmt: skip
    assert [c[1] for c in calls] == [1, 2, 3]
    assert all(c[0] == "generate" and c[2] == 3 and c[3] == ["tokens_per_s"] for c in calls)


def test_bad_input_is_refused(demo, prompts):
    model, tokenizer = demo
    with pytest.raises(ValueError, match="max_tokens"):
        generate_answers(model, tokenizer, prompts, max_tokens=0)
    with pytest.raises(ValueError, match="batch_size"):
        generate_answers(model, tokenizer, prompts, max_tokens=1, batch_size=0)
    with pytest.raises(ValueError, match="appears twice"):
        generate_answers(model, tokenizer, [prompts[0], prompts[0]], max_tokens=1)
    with pytest.raises(ValueError, match="no tokens"):
        generate_answers(model, tokenizer, [("empty", [])], max_tokens=1)
    assert generate_answers(model, tokenizer, [], max_tokens=1) == []


def test_save_responses_writes_the_score_format(tmp_path, naive):
    from punie_gates.checks.scoring import read_responses
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries

    path = save_responses(tmp_path / "out" / "responses.jsonl", naive)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == [{"id": g.id, "response": g.text} for g in naive]
    # The scorer reads the same file back once ids are real query ids.
    queries = load_queries(catalog=load_catalog())
    renamed = [Generation(**{**g.__dict__, "id": q.id}) for g, q in zip(naive, queries.queries)]
    records, errors = read_responses(save_responses(tmp_path / "r.jsonl", renamed), queries)
    assert [r[0] for r in records] == [q.id for q in queries.queries[: len(naive)]] and not errors
