"""Gate 3 (caution): zero-shot tool calling, before any training.

The query file's gate3 queries (some need a tool, at least one must be answered
directly), tools passed natively through the candidate's chat template. It passes
with at least [gate3] min_correct_calls well-formed calls to a known tool whose
arguments validate against its schema, and no call at all on a direct question.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gate3]


@pytest.fixture(scope="module")
def zero_shot(answerer, query_set, system_prompt, gate_config, gate_steps):
    """The candidate's answers, asked through the run's answering path (--answer-via)."""
    from punie_gates.checks.steps import answer_queries

    queries = query_set.for_gate("gate3")
    with gate_steps.measure("answer"):
        answers = answer_queries(
            answerer, queries, system_prompt=system_prompt, save_to=gate_config.report_dir / "gate3-responses.jsonl"
        )
    return queries, {a.id: a for a in answers}


def test_zero_shot_tool_calls(zero_shot, answerer, catalog, gate_config, settings, gate_id, gate_record):
    from punie_gates.checks.judgment import tally_zero_shot

    queries, answers = zero_shot
    responses = {qid: a.text for qid, a in answers.items()}
    tally = tally_zero_shot(queries, responses, catalog, {qid: a.tool_calls for qid, a in answers.items()})
    assert tally.tool_queries >= 1 and tally.direct_queries >= 1, (
        f"Gate 3 needs tool queries and a direct one in {gate_config.queries_path} [gates] {gate_id}, "
        f"found {tally.tool_queries} and {tally.direct_queries}"
    )
    from punie_gates.checks.attribution import attribute, miss_reason

    rows = [
        attribute(
            {**r, "passed": (r["valid_calls"] > 0) if r["expect"] == "tool" else not r["calls"]}, answers[r["id"]]
        )
        for r in tally.rows
    ]
    counts, lead, tail = miss_reason(rows, answerer.serving_change())
    gate_record.update(
        queries=rows,
        misses_by_cause=counts,
        well_formed_calls=tally.good_calls,
    )

    need = settings.min_correct_calls
    wrong = tally.called_on_direct
    assert not wrong, (
        f"{lead}expected no tool call on the direct question {wrong[0]['id']}, found {wrong[0]['calls']}{tail}"
    )
    assert tally.good_calls >= need, (
        f"{lead}expected >= {need} well-formed call(s) to a known tool with valid arguments over "
        f"{tally.tool_queries} tool queries, found {tally.good_calls}; first problems: "
        + "; ".join(f"{r['id']}: {(r['problems'] or ['no call'])[0]}" for r in tally.rows if r["expect"] == "tool")[
            :400
        ]
        + tail
    )


@pytest.mark.screening  # collected only for a candidate named by its URL
@pytest.mark.gate_detail  # reported beside the verdict, never judged: it cannot fail the gate
def test_screening(answerer, query_set, catalog, system_prompt, gate_config, gate_record, gate_steps):
    """An endpoint candidate (--candidate URL) has no files, so Gates 4 and 5 cannot train and
    ask it: its answers to every validation query and the multi-turn pass are scored here and
    reported as a screening table beside the verdict (checks.screening)."""
    from punie_gates.checks.screening import screen

    with gate_steps.measure("screening"):
        figures = screen(answerer, query_set, catalog, system_prompt, gate_config)
    gate_record.update(screening=figures)


@pytest.mark.gate_decision
def test_gate3_decision(gate_outcome):
    gate_outcome.check()
