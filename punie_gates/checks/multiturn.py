"""A training gate's multi-turn pass: each tool query's conversation, tallied and judged.

The first turn is scored by punie_gates.checks.scoring. This continues each tool
query's conversation from the first reply the gate already has, through the query's
tool results, to the answer (punie_gates.answering.conversation.converse_many, all
queries round by round through one AskMany: the answering path the first turn used),
scores each conversation (punie_gates.checks.followup), saves them all
(gateN-conversations.jsonl, re-scorable by `punie-gates score --conversations`),
tallies per category with Wilson intervals, and judges the tally against the query
file's [followup] minimums: Gate 5 flags a miss, or fails on it when [followup] says
`hard = true`; Gate 4 reports without judging. Direct queries have no follow-up (their
one reply is judged with the same fact rule by the first-turn scorer).

`paired_followup` compares two sides' conversations (candidate and baseline) on the
queries both have: Wilson intervals per side and the exact McNemar test, overall and
per category, in the keys the report page reads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.answering.conversation import (
    ASK_FAILED,
    AskMany,
    Conversation,
    Reply,
    converse_many,
    reply_from_message,
    write_conversations,
)
from punie_gates.answering.prompts import query_messages
from punie_gates.checks.followup import FollowupScore, score_followup
from punie_gates.checks.judgment import Judgment, tally
from punie_gates.formats.code_analysis import analyse_code
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import FollowupThresholds, Query, QuerySet
from punie_gates.stats import Paired, paired, wilson_interval

_CLIP = 300  # characters of each follow-up reply kept in the report (the file keeps them whole)


@dataclass(frozen=True)
class MultiTurn:
    """A gate's multi-turn pass over its tool queries."""

    queries: tuple[Query, ...]  # the tool queries conversed, in the gate's order
    conversations: tuple[Conversation, ...]  # one per query, in the same order
    scores: tuple[FollowupScore, ...]  # one per conversation, in the same order
    max_turns: int  # model replies allowed per conversation, the first one included
    path: Path | None  # the saved conversations (None: not saved)
    seconds: float  # wall time of the follow-up replies

    @property
    def asked(self) -> int:
        """Follow-up replies the answering path gave or failed to give (first replies excluded)."""
        return sum(len(c.turns) - 1 + (c.stop == ASK_FAILED) for c in self.conversations)


def tool_queries(queries: Sequence[Query]) -> tuple[Query, ...]:
    """The queries that have a follow-up: the tool queries."""
    return tuple(q for q in queries if q.expect == "tool")


def first_reply(answer: Any) -> Reply | str:
    """Where a conversation starts from a first answer (answering.answers.QueryAnswer): in-process,
    the text (its calls parsed as the runtime does); through a server, its parsed calls as returned."""
    if answer.tool_calls is None:
        return answer.text
    calls = [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in answer.tool_calls]
    return reply_from_message({"content": answer.text, "tool_calls": calls})


def run_multi_turn(
    queries: Sequence[Query],
    first: Mapping[str, Reply | str],
    ask_many: AskMany,
    *,
    catalog: Catalog,
    system_prompt: str,
    max_turns: int,
    save_to: Path | None = None,
    fmt: str = "auto",
) -> MultiTurn:
    """Continue every tool query among `queries` from its first reply (by query id, as
    text or a parsed Reply), asking `ask_many` for the rest, scored and saved."""
    asked = tool_queries(queries)
    missing = [q.id for q in asked if q.id not in first]
    if missing:
        raise ValueError(f"no first reply for {', '.join(missing)}: the multi-turn pass starts from the first turn")
    starts = [(q, first[q.id], query_messages(system_prompt, q.text)) for q in asked]
    started = time.perf_counter()
    conversations = converse_many(starts, ask_many, catalog=catalog, max_turns=max_turns, fmt=fmt)
    seconds = time.perf_counter() - started
    scores = [score_followup(q, c) for q, c in zip(asked, conversations)]
    path = write_conversations(save_to, conversations) if save_to is not None else None
    return MultiTurn(tuple(asked), tuple(conversations), tuple(scores), max_turns, path, seconds)


# --- the tally and the judgment --------------------------------------------------------------


def tally_followups(
    scores: Sequence[FollowupScore],
    queries: QuerySet,
    asked: Sequence[Query] | None = None,
    thresholds: FollowupThresholds | None = None,
) -> Judgment:
    """Passed/total per category over the tool queries `asked` (default: all of the file's),
    against `thresholds` (none: every minimum 0, so nothing is missed)."""
    asked = tool_queries(asked if asked is not None else queries.queries)
    category = {q.id: q.category for q in asked}
    mine = [s for s in scores if s.id in category]
    if thresholds is None:
        return tally(mine, category, 0, {})
    return tally(mine, category, thresholds.overall_min, thresholds.category_min)


@dataclass(frozen=True)
class MultiTurnJudgment:
    """A multi-turn pass tallied, and judged when the gate judges it."""

    judgment: Judgment  # the tally (against [followup] when judged)
    judged: str  # "flag", "hard" or why it was not judged ("not judged: ...")
    path: Path | None = None  # the saved conversations
    max_turns: int | None = None  # model replies allowed per conversation
    stops: Mapping[str, int] | None = None  # how the conversations ended, counted
    asked: int | None = None  # follow-up replies asked of the model
    seconds: float | None = None  # their wall time

    @property
    def problems(self) -> list[str]:
        """Why the minimums are not met (empty when they are, or when not judged)."""
        if self.judged not in ("flag", "hard"):
            return []
        return self.judgment.shortfalls("conversations passed")

    @property
    def problem(self) -> str | None:
        """The problems in one line, or None."""
        return "multi-turn pass: " + "; ".join(self.problems) if self.problems else None

    @property
    def fails(self) -> bool:
        """Whether the gate fails on it (a hard criterion missed)."""
        return self.judged == "hard" and self.problem is not None

    def to_json(self) -> dict[str, Any]:
        j = self.judgment
        out: dict[str, Any] = {
            "correct": j.passed,
            "total": j.total,
            "interval": wilson_interval(j.passed, j.total).to_json(),
            "categories": {
                c.name: {
                    "correct": c.passed,
                    "total": c.total,
                    "min": c.minimum,
                    "interval": wilson_interval(c.passed, c.total).to_json(),
                }
                for c in j.categories
            },
            "judged": self.judged,
        }
        if self.judged in ("flag", "hard"):
            out["overall_min"] = j.overall_min
            out["met"] = j.complete and not self.problems
            out["problems"] = self.problems
            out["criteria"] = j.criteria_json("conversations", "multi-turn ")
        if self.max_turns is not None:
            out["max_turns"] = self.max_turns
        if self.stops is not None:
            out["stops"] = dict(self.stops)
        if self.asked is not None:
            out["asked"] = self.asked
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 2)
        if self.path is not None:
            out["conversations"] = str(self.path)
        return out


def judge_multi_turn(multi: MultiTurn, queries: QuerySet, *, judge: bool) -> MultiTurnJudgment:
    """The pass tallied over its queries; with `judge`, against the file's [followup]
    minimums (a flag, or a failure when [followup] says hard = true)."""
    thresholds = queries.followup_thresholds if judge else None
    judgment = tally_followups(multi.scores, queries, multi.queries, thresholds)
    every = len(tool_queries(queries.queries))
    if not judge:
        judged = "not judged: this gate reports the multi-turn pass (Gate 5 judges it)"
    elif thresholds is None:
        judged = f"not judged: {queries.path} has no [followup] table of minimums"
    elif not judgment.complete or judgment.total != every:
        judged = f"not judged: the pass covers {judgment.total} of the file's {every} tool queries"
        judgment = tally_followups(multi.scores, queries, multi.queries)  # minimums of a whole file do not apply
    else:
        judged = "hard" if thresholds.hard else "flag"
    return MultiTurnJudgment(
        judgment,
        judged,
        multi.path,
        multi.max_turns,
        dict(Counter(c.stop for c in multi.conversations)),
        multi.asked,
        multi.seconds,
    )


def followup_summary(scores: Sequence[FollowupScore], queries: QuerySet) -> str:
    """Saved conversations re-scored: passed/total per category, against [followup] when
    they cover every tool query of the file once (like `punie-gates score`'s summary)."""
    thresholds = queries.followup_thresholds
    known = {q.id: q for q in queries.queries}
    tool = [s for s in scores if known[s.id].expect == "tool"]
    j = tally_followups(tool, queries, thresholds=thresholds)
    lines = [f"multi-turn: passed {j.passed}/{j.total} tool-query conversations"]
    judged = j.complete and thresholds is not None
    if judged:
        lines[0] += f" (overall minimum {j.overall_min}: {'met' if j.passed >= j.overall_min else 'NOT met'})"
    elif thresholds is None:
        lines[0] += f" ({queries.path} has no [followup] minimums: not judged)"
    else:
        lines[0] += (
            f" (they cover {len({s.id for s in tool})} of {len(tool_queries(queries.queries))} tool queries"
            + (", some more than once" if len({s.id for s in tool}) < len(tool) else "")
            + ": thresholds not judged)"
        )
    for c in j.categories:
        if not c.total:
            continue
        line = f"  {c.name:<16} {c.passed}/{c.total}"
        if judged and c.minimum is not None:
            line += f"  (minimum {c.minimum}: {'met' if c.met else 'NOT met'})"
        lines.append(line)
    direct = [s for s in scores if known[s.id].expect == "direct"]
    if direct:
        lines.append(
            f"direct queries (one reply, not in the multi-turn total): {sum(s.passed for s in direct)}/{len(direct)}"
        )
    if judged:
        kind = "hard" if thresholds.hard else "flag"
        problems = MultiTurnJudgment(j, kind).problems
        lines.append(f"thresholds: {'NOT met (' + '; '.join(problems) + ')' if problems else 'met'} [{kind}]")
    return "\n".join(lines)


# --- per-query rows for the report ------------------------------------------------------------


def followup_answer(score: FollowupScore, conversation: Conversation, catalog: Catalog) -> dict[str, Any]:
    """A report row's `followup`: the replies after the first (None when there were none),
    the verdict and its reason, the typed tools and result fields those replies' calls used,
    and the score's turn-by-turn detail."""
    later = conversation.turns[1:]
    if not later:
        response = None
    elif len(later) == 1:
        response = later[0].reply.text[:_CLIP]
    else:
        response = "\n".join(f"[reply {n}] {t.reply.text[:_CLIP]}" for n, t in enumerate(later, 2))
    tools = dict.fromkeys(t for turn in later for called in turn.tools for t in called)
    fields: set[str] = set()
    for turn in later:
        for call in turn.reply.calls:
            native = catalog.native_tool(call.name) if call.error is None else None
            code = (call.arguments or {}).get(native["code_param"]) if native and native["code_param"] else None
            if isinstance(code, str):
                fields |= {f for read in analyse_code(code, catalog).fields.values() for f in read}
    detail = score.to_json()
    del detail["id"]
    return {"response": response, **detail, "tools": list(tools), "fields": sorted(fields)}


def followup_rows(
    rows: Sequence[Mapping[str, Any]] | None, multi: MultiTurn, catalog: Catalog, side: str | None = None
) -> list[dict[str, Any]]:
    """The gate's per-query rows (figures.queries) with each tool query's `followup`
    added (on `side`, e.g. "baseline", when given); a query without a row gets one."""
    out = [dict(r) for r in rows or () if isinstance(r, Mapping)]
    index = {r.get("id"): n for n, r in enumerate(out)}
    for query, conversation, score in zip(multi.queries, multi.conversations, multi.scores):
        answer = followup_answer(score, conversation, catalog)
        if query.id not in index:
            index[query.id] = len(out)
            out.append({"id": query.id})
        row = out[index[query.id]]
        if side is None:
            row["followup"] = answer
        else:
            row[side] = {**(row.get(side) or {}), "followup": answer}
    return out


# --- candidate against baseline ---------------------------------------------------------------


@dataclass(frozen=True)
class PairedFollowup:
    """The multi-turn pass of two models, paired query by query."""

    ids: tuple[str, ...]  # the queries both sides conversed, in the candidate's order
    only_candidate: tuple[str, ...]  # queries only the candidate has a conversation for
    only_baseline: tuple[str, ...]  # queries only the baseline has one for
    overall: Paired  # over `ids`
    categories: Mapping[str, Paired]  # per category of `ids`

    def to_json(self) -> dict[str, Any]:
        """In the keys of a gate's `followup` figures (merge with `with_baseline`)."""
        return {
            **self.overall.to_json(),
            "paired": len(self.ids),
            "unpaired": {"candidate": list(self.only_candidate), "baseline": list(self.only_baseline)},
            "categories": {name: side.to_json() for name, side in self.categories.items()},
        }


def paired_followup(
    candidate: Sequence[FollowupScore], baseline: Sequence[FollowupScore], queries: QuerySet
) -> PairedFollowup:
    """Candidate and baseline conversations paired by query id: Wilson intervals per model
    and the exact McNemar test, overall and per category (the first turn's comparison)."""
    for name, scores in (("candidate", candidate), ("baseline", baseline)):
        twice = [i for i, n in Counter(s.id for s in scores).items() if n > 1]
        if twice:
            raise ValueError(f"the {name} has more than one conversation for {', '.join(twice)}")
    mine, theirs = {s.id: s.passed for s in candidate}, {s.id: s.passed for s in baseline}
    ids = tuple(i for i in mine if i in theirs)
    category = {q.id: q.category for q in queries.queries}
    by_category: dict[str, tuple[list[bool], list[bool]]] = {}
    for qid in ids:
        a, b = by_category.setdefault(category.get(qid, ""), ([], []))
        a.append(mine[qid])
        b.append(theirs[qid])
    return PairedFollowup(
        ids,
        tuple(i for i in mine if i not in theirs),
        tuple(i for i in theirs if i not in mine),
        paired([mine[i] for i in ids], [theirs[i] for i in ids]),
        {name: paired(a, b) for name, (a, b) in by_category.items()},
    )


def with_baseline(figures: Mapping[str, Any], paired: PairedFollowup) -> dict[str, Any]:
    """A gate's `followup` figures (MultiTurnJudgment.to_json) with the paired figures merged
    in: `baseline_interval` and `mcnemar` beside the candidate's, overall and per category."""
    extra = paired.to_json()
    categories = {name: dict(value) for name, value in (figures.get("categories") or {}).items()}
    for name, side in extra.pop("categories").items():
        categories.setdefault(name, {}).update(side)
    return {**figures, **extra, "categories": categories}
