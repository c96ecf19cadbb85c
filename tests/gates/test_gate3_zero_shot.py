"""Gate 3 (caution): zero-shot tool calling, before any training.

Five queries (four that need a tool, one that must be answered directly), tools
passed natively through the candidate's chat template. It passes with at least
one well-formed call to a known tool whose arguments validate against its
schema, and no call at all on the direct question.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gate3]


@pytest.fixture(scope="module")
def zero_shot(candidate_model, query_set, catalog, system_prompt, gate_config, progress):
    from punie_gates.gate_steps import answer_queries

    queries = query_set.for_gate("gate3")
    generations = answer_queries(
        candidate_model.model, candidate_model.tokenizer, queries, catalog=catalog, system_prompt=system_prompt,
        gate_config=gate_config, progress=progress, save_as="gate3-responses.jsonl",
    )
    return queries, {g.id: g.text for g in generations}


def test_zero_shot_tool_calls(zero_shot, catalog, gate_config, gate_record):
    from punie_gates.scoring import parse_calls, validate_call

    queries, responses = zero_shot
    tool_queries = [q for q in queries if q.expect == "tool"]
    direct = [q for q in queries if q.expect == "direct"]
    assert len(tool_queries) == 4 and len(direct) == 1, (
        f"Gate 3 needs 4 tool queries and 1 direct one in {gate_config.queries_path} [gates] gate3, "
        f"found {len(tool_queries)} and {len(direct)}"
    )
    rows, good_calls = [], 0
    for q in queries:
        calls = parse_calls(responses[q.id])
        problems = [validate_call(c, catalog) for c in calls]
        valid = sum(p is None for p in problems)
        if q.expect == "tool":
            good_calls += valid
        rows.append({
            "id": q.id,
            "expect": q.expect,
            "calls": [c.name for c in calls],
            "valid_calls": valid,
            "problems": [p for p in problems if p],
            "response": responses[q.id][:200],
        })
    gate_record("queries", rows)
    gate_record("well_formed_calls", good_calls)

    need = int(gate_config.gate("gate3")["min_correct_calls"])
    called_on_direct = [r for r in rows if r["expect"] == "direct" and r["calls"]]
    assert not called_on_direct, (
        f"expected no tool call on the direct question {called_on_direct[0]['id']}, "
        f"found {called_on_direct[0]['calls']}"
    )
    assert good_calls >= need, (
        f"expected >= {need} well-formed call(s) to a known tool with valid arguments over "
        f"{len(tool_queries)} tool queries, found {good_calls}; first problems: "
        + "; ".join(f"{r['id']}: {(r['problems'] or ['no call'])[0]}" for r in rows if r["expect"] == "tool")[:400]
    )


@pytest.mark.gate_decision
def test_gate3_decision(gate_outcome):
    gate_outcome.check()
