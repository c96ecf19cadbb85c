"""Scoring the answer after the tool result: does it say what the result says, and nothing more?

The first reply is scored by punie_gates.checks.scoring (did it call the right tool and
read the right fields). This scores the rest of the conversation the agent loop ran
(punie_gates.answering.conversation), turn by turn:
- every call got its result: a call of a tool the query gives no result for, an
  unusable call, a failed `ask` (e.g. a chat template that cannot render the tool
  turn) or running out of turns fails, saying which turn and why;
- followup = "call": the expected tool is called by the first reply or the second;
- the final reply is text that states every `answer_facts` item (punie_gates.inputs.facts)
  and no number that neither the query's text nor any tool result supports (a
  hallucinated count fails, quoted). Numbers are read as punie_gates.inputs.facts
  reads them: "test_3.py", "F401", hashes, versions and list markers hold none;
  a result supports its numbers, its lists' lengths, and the sums and differences of
  its top-level counts (punie_gates.inputs.results.result_numbers). Derived figures
  beyond that (a percentage, a total across two tools) count as unsupported.
A direct query has one reply: text with no call that states its facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Old flat modules (the lead rewrites these when merging).
from punie_gates.answering.conversation import ANSWERED, ASK_FAILED, Conversation, Turn, read_conversations
from punie_gates.inputs.facts import missing_facts, number_claims, numbers_mentioned, supported
from punie_gates.inputs.queries import Query, QuerySet
from punie_gates.inputs.results import result_numbers


@dataclass(frozen=True)
class TurnVerdict:
    """One reply of a conversation, judged."""

    turn: int  # 1-based reply number
    ok: bool  # whether this reply did what the query expects at this point
    note: str  # what it did and, when not ok, what was wrong


@dataclass(frozen=True)
class FollowupScore:
    """The verdict on a whole conversation."""

    id: str  # the query id
    passed: bool  # every turn ok and the final answer right
    turns: tuple[TurnVerdict, ...]  # one per reply, in order
    missing_facts: tuple[str, ...]  # answer_facts the final answer does not state
    unsupported_numbers: tuple[str, ...]  # numbers it states that no result or the query holds
    stop: str  # why the conversation ended (punie_gates.answering.conversation.STOPS)
    reason: str  # "PASS: ..." or "FAIL: ...", turn by turn

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "passed": self.passed,
            "stop": self.stop,
            "missing_facts": list(self.missing_facts),
            "unsupported_numbers": list(self.unsupported_numbers),
            "turns": [{"turn": t.turn, "ok": t.ok, "note": t.note} for t in self.turns],
            "reason": self.reason,
        }


def unsupported_numbers(answer: str, query: Query, results: Sequence[str]) -> tuple[str, ...]:
    """The numbers `answer` states that neither the query's text nor a result supports."""
    allowed = set(numbers_mentioned(query.text))
    for text in results:
        allowed |= result_numbers(text)
    seen: dict[str, None] = {}
    for claim in number_claims(answer):
        if not supported(claim, allowed):
            seen[claim.text] = None
    return tuple(seen)


def score_followup(query: Query, conversation: Conversation) -> FollowupScore:
    """Judge a query's conversation (see the module docstring)."""
    if conversation.query_id != query.id:
        raise ValueError(f"conversation is for {conversation.query_id!r}, not {query.id!r}")
    if query.expect == "direct":
        return _direct(query, conversation)
    verdicts: list[TurnVerdict] = []
    missing: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    turns = conversation.turns
    expected = query.followup_tool if query.followup == "call" else None
    for number, turn in enumerate(turns, 1):
        calls = bool(turn.reply.calls)
        if number == 1 and not calls:
            verdicts.append(TurnVerdict(1, False, "no tool call, so no result to answer from"))
            break
        if calls:
            verdicts.append(_call_verdict(number, turn, query, turns, expected))
            continue
        # The final answer, in text.
        if expected and number == 2 and not _calls_tool(turns[0], expected):
            verdicts.append(
                TurnVerdict(2, False, f"answers in text; expected a call of {expected} after the first result")
            )
            break
        missing = missing_facts(turn.reply.content, query.answer_facts)
        unsupported = unsupported_numbers(turn.reply.content, query, conversation.tool_results)
        verdicts.append(_answer_verdict(number, query, missing, unsupported))
    if conversation.stop == ASK_FAILED:
        verdicts.append(TurnVerdict(len(turns) + 1, False, f"no reply: {conversation.detail}"))
    passed = bool(verdicts) and all(v.ok for v in verdicts) and conversation.stop == ANSWERED
    return _score(query, conversation, verdicts, missing, unsupported, passed)


def _direct(query: Query, conversation: Conversation) -> FollowupScore:
    first = conversation.turns[0] if conversation.turns else None
    if first is None:
        verdict = TurnVerdict(1, False, f"no reply: {conversation.detail}")
        return _score(query, conversation, [verdict], (), (), False)
    if first.reply.calls:
        note = "a tool call on a question that needs none"
        if first.stop and first.stop != ANSWERED:
            note += f" ({first.detail})"
        return _score(query, conversation, [TurnVerdict(1, False, note)], (), (), False)
    missing = missing_facts(first.reply.content, query.answer_facts)
    if not first.reply.content.strip():
        verdict = TurnVerdict(1, False, "the answer is empty")
    elif missing:
        verdict = TurnVerdict(1, False, "answers in text but does not state " + _quote(missing))
    else:
        verdict = TurnVerdict(1, True, "answers in text, stating " + _quote(query.answer_facts))
    return _score(query, conversation, [verdict], missing, (), verdict.ok)


def _calls_tool(turn: Turn, tool: str) -> bool:
    return any(tool in tools for tools in turn.tools)


def _call_verdict(number: int, turn: Turn, query: Query, turns: Sequence[Turn], expected: str | None) -> TurnVerdict:
    called = ", ".join(dict.fromkeys(t for tools in turn.tools for t in tools)) or "no typed tool"
    names = ", ".join(dict.fromkeys(c.name or "?" for c in turn.reply.calls))
    what = f"calls {names} ({called})"
    if turn.stop is not None:  # no result, an unusable call, or the last turn allowed
        return TurnVerdict(number, False, f"{what}: {turn.detail}")
    if expected and number == 2 and not _calls_tool(turns[0], expected) and not _calls_tool(turn, expected):
        return TurnVerdict(number, False, f"{what}; expected a call of {expected} after the first result")
    return TurnVerdict(number, True, f"{what}; the results came back")


def _answer_verdict(number: int, query: Query, missing, unsupported) -> TurnVerdict:
    problems = []
    if missing:
        problems.append("does not state " + _quote(missing))
    if unsupported:
        problems.append("states " + _quote(unsupported) + ", which no tool result or the query contains")
    if problems:
        return TurnVerdict(number, False, "answers in text but " + "; ".join(problems))
    return TurnVerdict(
        number, True, "answers in text, stating " + _quote(query.answer_facts) + ", no unsupported number"
    )


def _quote(items: Sequence[str]) -> str:
    return ", ".join(repr(i) for i in items)


def _expected(query: Query) -> str:
    if query.expect == "direct":
        return f"a text answer with no call stating {_quote(query.answer_facts)}"
    then = (
        f"a call of {query.followup_tool} (unless the first reply made it), then " if query.followup == "call" else ""
    )
    return f"after the tool result, {then}a text answer stating {_quote(query.answer_facts)} and only supported numbers"


def _score(query, conversation, verdicts, missing, unsupported, passed) -> FollowupScore:
    head = f"{'PASS' if passed else 'FAIL'}: expected {_expected(query)}"
    body = "; ".join(f"reply {v.turn}: {v.note}" for v in verdicts)
    reason = f"{head}; {body}" if body else head
    return FollowupScore(
        query.id, passed, tuple(verdicts), tuple(missing), tuple(unsupported), conversation.stop, reason
    )


# --- offline re-scoring ----------------------------------------------------------------


@dataclass(frozen=True)
class Rescored:
    """Saved conversations scored again."""

    scores: tuple[FollowupScore, ...]  # one per conversation, in file order
    errors: tuple[str, ...]  # bad lines and unknown ids, each naming file and line


def rescore_conversations(path: Path, queries: QuerySet) -> Rescored:
    """Score a saved conversations JSONL (punie_gates.answering.conversation.write_conversations)
    against the query file as it is now: facts and results may have changed since the run."""
    saved = read_conversations(path)
    known = {q.id for q in queries.queries}
    errors = list(saved.errors)
    scores = []
    for line, conversation in zip(saved.lines, saved.conversations):
        if conversation.query_id not in known:
            errors.append(f"{path}:{line}: unknown query id {conversation.query_id!r} (not in {queries.path})")
            continue
        scores.append(score_followup(queries.by_id(conversation.query_id), conversation))
    return Rescored(tuple(scores), tuple(errors))
