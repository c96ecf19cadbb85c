"""The page's query sections: each query's answers (candidate, baseline, follow-up) with the saved full texts.

The rows are the report's typed rows (punie_gates.results.queries); the full texts come from
the responses files beside the report (gateN-responses.jsonl: `{"id", "response", "tool_calls",
"followup"}`), which are not part of the report document and are read as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from punie_gates.decision.page import Answer, QueryRow, QuerySection
from punie_gates.errors import UserError
from punie_gates.inputs import readers
from punie_gates.results.queries import FollowupAnswer, QueryAnswer, ZeroShotRow
from punie_gates.results.queries import QueryRow as ReportRow

QUERY_GATES = ("gate3", "gate4", "gate5")
RESPONSE_FILES = {gate: f"{gate}-responses.jsonl" for gate in QUERY_GATES}
_CATEGORY = re.compile(r"^(?P<category>[a-z][a-z0-9_]*)-\d+$")


def category_of(query_id: str) -> str:
    """The category a query id names (`cross_tool-03` -> `cross_tool`); "" when it names none."""
    m = _CATEGORY.match(query_id)
    return m.group("category") if m else ""


def read_responses(path: Path) -> dict[str, dict[str, Any]]:
    """id -> record of a responses JSONL (missing file or bad lines: left out, the page is a view)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = readers.read_jsonl(Path(path), "responses file")
    except UserError:
        return out
    for line in lines:
        record = line.value
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            out[record["id"]] = record
    return out


def answer_from(
    record: QueryAnswer | FollowupAnswer | ZeroShotRow | None, full_text: str | None = None
) -> Answer | None:
    """An Answer from a report row's answer (its response, verdict, reason, tools, fields, follow-up)."""
    if record is None:
        return None
    response = full_text if full_text is not None else record.response
    if isinstance(record, ZeroShotRow):  # Gate 3: calls, not scored tools and fields
        return Answer(response=response, passed=record.passed, reason=_cause(record))
    return Answer(
        response=response,
        passed=record.passed,
        reason=(record.reason or "") + (_cause(record) if isinstance(record, QueryAnswer) else ""),
        tools=tuple(record.tools or ()),
        fields=tuple(record.fields or ()),
        followup=answer_from(record.followup) if isinstance(record, QueryAnswer) else None,
    )


def _cause(row: QueryAnswer | ZeroShotRow) -> str:
    """Whose miss a failing row is (checks.attribution), as the reason's last words."""
    return f" [cause: {row.cause}: {row.cause_detail or ''}]" if row.cause else ""


def _gate3_answer(row: ZeroShotRow, full_text: str | None) -> Answer:
    # Gate 3 rows carry calls and problems, not a scorer verdict: a tool query passes
    # with a valid call, the direct one with none (the gate's own rule).
    calls, valid, problems = tuple(row.calls or ()), row.valid_calls or 0, tuple(row.problems or ())
    passed = (valid > 0) if row.expect == "tool" else not calls
    found = f"calls {', '.join(calls)} ({valid} valid)" if calls else "no tool call"
    expected = "a valid tool call" if row.expect == "tool" else "no tool call"
    reason = f"{'PASS' if passed else 'FAIL'}: expected {expected}; found {found}"
    if problems:
        reason += "; " + "; ".join(problems)
    reason += _cause(row)
    response = full_text if full_text is not None else row.response
    return Answer(response, passed, reason, calls)


def query_section(
    gate: str,
    rows_in: Sequence[ReportRow | ZeroShotRow] | None,
    responses: Mapping[str, Mapping[str, Any]],
    baseline_responses: Mapping[str, Mapping[str, Any]] | None = None,
) -> QuerySection | None:
    """A gate's query rows (its figures' `queries`) with the full saved texts; None when it has none."""
    if not rows_in:
        return None
    rows, with_baseline = [], any(isinstance(r, ReportRow) and r.baseline is not None for r in rows_in)
    for row in rows_in:
        if row.id is None:
            continue
        qid = row.id
        saved = responses.get(qid, {})
        text = saved_text(saved)
        mine: Answer | None
        if isinstance(row, ZeroShotRow) and row.passed is None:
            mine = _gate3_answer(row, text)
        else:
            mine = answer_from(row, text)
            if mine is not None and mine.followup is None and isinstance(saved.get("followup"), str):
                mine = _replace_followup(mine, Answer(saved["followup"], None))
        answers: list[Answer | None] = [mine]
        if with_baseline:
            base_text = saved_text((baseline_responses or {}).get(qid, {}))
            answers.append(answer_from(row.baseline if isinstance(row, ReportRow) else None, base_text))
        category = (row.category if isinstance(row, ReportRow) else None) or category_of(qid)
        rows.append(QueryRow(gate, qid, category, "", tuple(answers)))  # the report keeps no query text
    if not rows:
        return None
    sides = ("candidate", "baseline") if with_baseline else ("candidate",)
    return QuerySection(f"{gate}: {len(rows)} queries", gate, sides, tuple(rows))


def saved_text(saved: Mapping[str, Any]) -> str | None:
    """A saved answer's text as shown: the reply, and for a server answer the tool calls
    the API returned, under a line that says they came as message.tool_calls."""
    text = saved.get("response") if isinstance(saved.get("response"), str) else None
    calls = saved.get("tool_calls")
    if text is None or not isinstance(calls, list) or not calls:
        return text
    shown = [f"{c.get('name')} {c.get('arguments')}" for c in calls if isinstance(c, Mapping)]
    return text + "\n\n[message.tool_calls, as the server returned them]\n" + "\n".join(shown)


def _replace_followup(answer: Answer, followup: Answer) -> Answer:
    return Answer(answer.response, answer.passed, answer.reason, answer.tools, answer.fields, followup)
