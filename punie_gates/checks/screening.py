"""Screening a model that has no files: every validation query and the multi-turn pass, reported.

A candidate named by an OpenAI-compatible URL (answering.endpoint) cannot be tokenized,
loaded, trained or fused by the suite, so Gates 0, 1, 4 and 5 do not run on it and its
run is never GO. What can be measured is measured: its answers to all the validation
queries, scored by the same scorer as Gate 5's, with per-category intervals, and each
tool query's conversation continued as in the multi-turn pass. The figures sit beside
the verdict as a screening table; they decide nothing (no gate has such a criterion).
"""

from __future__ import annotations

import statistics
from typing import Any

from punie_gates.checks.comparison import interval_figures, merge_categories, query_rows
from punie_gates.checks.judgment import judge
from punie_gates.checks.multiturn import first_reply, followup_rows, judge_multi_turn, run_multi_turn
from punie_gates.checks.scoring import score_answer
from punie_gates.checks.steps import answer_queries

SCREENING_RESPONSES = "screening-responses.jsonl"
SCREENING_CONVERSATIONS = "screening-conversations.jsonl"
NOT_JUDGED = (
    "screening of a candidate without files (an endpoint): reported beside the verdict, not judged; "
    "Gate 5's minimums are shown for reference"
)


def screen(answerer: Any, query_set, catalog, system_prompt: str, gate_config) -> dict[str, Any]:
    """Ask `answerer` (answering.answerer: an endpoint's) every query, score the answers and
    continue each tool query's conversation; the figures in the keys of Gate 5's (queries, correct,
    total, interval, categories, followup), saved as screening-responses/-conversations.jsonl."""
    queries = tuple(query_set.queries)
    answers = answer_queries(
        answerer, queries, system_prompt=system_prompt, save_to=gate_config.report_dir / SCREENING_RESPONSES
    )
    by_id = {a.id: a for a in answers}
    scores = {q.id: score_answer(q, by_id[q.id], catalog) for q in queries}
    judgment = judge(list(scores.values()), query_set)
    intervals = interval_figures(queries, scores)
    conversations = run_multi_turn(
        queries, {qid: first_reply(a) for qid, a in by_id.items()},
        answerer.ask_many(),
        catalog=catalog, system_prompt=system_prompt, max_turns=query_set.max_turns,
        save_to=gate_config.report_dir / SCREENING_CONVERSATIONS,
    )  # fmt: skip
    followup = judge_multi_turn(conversations, query_set, judge=False).to_json()
    followup["judged"] = "not judged: screening of an endpoint"
    return {
        "note": NOT_JUDGED,
        "correct": judgment.passed,
        "total": judgment.total,
        "gate5_minimums_met": judgment.met,
        "interval": intervals["interval"],
        "categories": merge_categories(judgment.categories_json(), intervals["categories"]),
        "queries": followup_rows(query_rows(queries, scores, by_id), conversations, catalog),
        "followup": followup,
        "avg_latency_s": round(statistics.fmean(a.latency_s for a in answers), 3) if answers else None,
        "responses": str(gate_config.report_dir / SCREENING_RESPONSES),
        "conversations": str(gate_config.report_dir / SCREENING_CONVERSATIONS),
    }
