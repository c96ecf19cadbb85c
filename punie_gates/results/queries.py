"""The typed values of the gates that ask queries (3, 4, 5): a row per query with its
answers, the per-category tallies, the baseline comparison, the multi-turn pass, the
held-out measure and an endpoint's screening.

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from punie_gates.results.shared import CriterionRow, DetectableDifference, McNemarTest, WilsonInterval


@dataclass(frozen=True)
class TurnNote:
    """One later turn of a multi-turn conversation, as its score saw it."""

    turn: int | None = None
    """The turn's number (1: the first reply after the tool result)."""
    ok: bool | None = None
    """Whether the turn did what it should."""
    note: str | None = None
    """What it did, in words."""


@dataclass(frozen=True)
class FollowupAnswer:
    """A query's multi-turn pass: the replies after the tool result and their verdict
    (checks.multiturn.followup_answer)."""

    response: str | None = None
    """The replies after the first (clipped; several are numbered `[reply N]`); null when there were none."""
    passed: bool | None = None
    """Whether the conversation passed."""
    stop: str | None = None
    """Why the conversation ended (answered, no_result, max_turns, ...)."""
    missing_facts: tuple[str, ...] | None = None
    """Facts of the tool result the final answer should state but does not."""
    unsupported_numbers: tuple[str, ...] | None = None
    """Numbers the final answer states that neither the query nor a result supports."""
    turns: tuple[TurnNote, ...] | None = None
    """Turn by turn, what the score saw."""
    reason: str | None = None
    """The scorer's verdict in words (PASS: ... / FAIL: ...)."""
    tools: tuple[str, ...] | None = None
    """Typed tools the later replies' calls used."""
    fields: tuple[str, ...] | None = None
    """Result fields the later replies' code read."""


@dataclass(frozen=True)
class ToolCallShown:
    """A tool call as a server returned it (OpenAI `tool_calls`), clipped for the report."""

    name: str | None = None
    """The called function's name."""
    arguments: str | None = None
    """Its arguments as text (300 characters at most)."""


@dataclass(frozen=True)
class QueryAnswer:
    """One model's answer to one query, scored (checks.comparison.side)."""

    passed: bool | None = None
    """Whether the answer passed the query's scorer."""
    tools: tuple[str, ...] | None = None
    """Typed tools the answer called (directly or from execute_code)."""
    fields: tuple[str, ...] | None = None
    """Result fields the answer's code read."""
    reason: str | None = None
    """The scorer's verdict in words (PASS: ... / FAIL: expected ...; found ...)."""
    response: str | None = None
    """The answer's text (300 characters at most)."""
    tool_calls: tuple[ToolCallShown, ...] | None = None
    """The calls as a server returned them; absent when answered in-process."""
    cause: str | None = None
    """Whose miss a failed answer is: `model`, `server` or `stream` (checks.attribution); absent when passed."""
    cause_detail: str | None = None
    """What the model wrote, or what the server or stream did, in words; absent when passed."""
    followup: FollowupAnswer | None = None
    """The multi-turn pass of a tool query; absent for a direct question or before the pass ran."""


@dataclass(frozen=True)
class QueryRow(QueryAnswer):
    """A report row per query: the candidate's answer (the fields above), the baseline's beside it
    (checks.comparison.query_rows, checks.multiturn.followup_rows)."""

    id: str | None = None
    """The query's id (field_access-03)."""
    category: str | None = None
    """The query's category in data/queries.toml."""
    baseline: QueryAnswer | None = None
    """The --baseline model's answer to the same query; absent without --baseline."""


@dataclass(frozen=True)
class ZeroShotRow:
    """Gate 3's row per query: the calls the candidate made before any training (checks.judgment.tally_zero_shot)."""

    id: str | None = None
    """The query's id."""
    expect: str | None = None
    """`tool` (a call is expected) or `direct` (no call may be made)."""
    calls: tuple[str, ...] | None = None
    """The names of the tools called, in order."""
    valid_calls: int | None = None
    """Calls to a known tool whose arguments validate against its schema."""
    problems: tuple[str, ...] | None = None
    """Why each invalid call is invalid."""
    response: str | None = None
    """The answer's text (200 characters at most)."""
    passed: bool | None = None
    """A tool query: at least one valid call; a direct question: no call."""
    cause: str | None = None
    """Whose miss a failed row is (model, server, stream); absent when passed."""
    cause_detail: str | None = None
    """The miss in words; absent when passed."""


@dataclass(frozen=True)
class CategoryFigures:
    """One query category: the candidate's count against its minimum, its interval, and with
    --baseline the baseline's beside it (checks.comparison.merge_categories)."""

    correct: int | None = None
    """Queries of the category the candidate passed."""
    total: int | None = None
    """Queries in the category."""
    min: int | None = None
    """The category's minimum (data/queries.toml); null when it has none."""
    interval: WilsonInterval | None = None
    """The candidate's pass rate in the category."""
    baseline_interval: WilsonInterval | None = None
    """The baseline's pass rate in the category; absent without --baseline."""
    mcnemar: McNemarTest | None = None
    """The paired test on the category's queries; absent without --baseline."""
    baseline_correct: int | None = None
    """Queries of the category the baseline passed; absent without --baseline."""


@dataclass(frozen=True)
class Comparison:
    """The candidate against --baseline on the gate's queries (checks.comparison.comparison_figures)."""

    made: bool | None = None
    """Whether a comparison was made (false without --baseline)."""
    reason: str | None = None
    """Why none was made; absent when made."""
    candidate_correct: int | None = None
    """Queries the candidate passed."""
    baseline_correct: int | None = None
    """Queries the baseline passed."""
    total: int | None = None
    """Queries both answered."""
    alpha: float | None = None
    """The one-sided McNemar test's significance level ([gate5] baseline_alpha); null where the gate does not
    judge the comparison (Gate 4)."""
    p_candidate_worse: float | None = None
    """The test's p-value for "the candidate is worse"."""
    outcome: str | None = None
    """What the comparison decided, in words."""
    detectable: DetectableDifference | None = None
    """What the test could see on this many queries; absent when not judged (no alpha)."""


@dataclass(frozen=True)
class MultiTurn:
    """The multi-turn pass's totals: each tool query's result sent back and the answer scored
    (checks.multiturn.MultiTurnJudgment.to_json; docs/gate5-full.md)."""

    correct: int | None = None
    """Conversations that passed."""
    total: int | None = None
    """Conversations held (one per tool query)."""
    interval: WilsonInterval | None = None
    """The pass rate's interval."""
    categories: Mapping[str, CategoryFigures] | None = None
    """Per category: correct, total, min (null when not judged) and interval."""
    judged: str | None = None
    """`flag`, `hard`, or why it is not judged (Gate 4 and screening report it only)."""
    overall_min: int | None = None
    """The overall minimum ([followup] in data/queries.toml); absent when not judged."""
    met: bool | None = None
    """Whether every minimum was met; absent when not judged."""
    problems: tuple[str, ...] | None = None
    """Each minimum missed, in words; absent when not judged."""
    criteria: tuple[CriterionRow, ...] | None = None
    """Each count criterion against its interval; absent when not judged."""
    max_turns: int | None = None
    """The most replies a conversation may take ([followup] max_turns)."""
    stops: Mapping[str, int] | None = None
    """How many conversations ended each way (answered, no_result, max_turns, ...)."""
    asked: int | None = None
    """How many later turns were asked of the model."""
    seconds: float | None = None
    """Seconds the pass took."""
    conversations: str | None = None
    """The file holding every conversation whole (gateN-conversations.jsonl)."""


@dataclass(frozen=True)
class HeldoutCategory:
    """The held-out measure in one category of turns."""

    passed: int | None = None
    """Turns whose next step the candidate got right."""
    total: int | None = None
    """Turns in the category."""
    interval: WilsonInterval | None = None
    """The candidate's pass rate."""
    baseline_passed: int | None = None
    """Turns the baseline got right; absent without --baseline."""
    baseline_interval: WilsonInterval | None = None
    """The baseline's pass rate; absent without --baseline."""
    mcnemar: McNemarTest | None = None
    """The paired test on the category's turns; absent without --baseline."""


@dataclass(frozen=True)
class HeldoutLeftOut:
    """Held-out turns left out of the measure, by why."""

    in_train: int | None = None
    """Validation conversations that also appear in the training data."""
    rejected_lines: int | None = None
    """valid.jsonl lines the conversion rejected."""
    reference_calls_no_typed_tool: int | None = None
    """Turns whose reference call uses no typed tool, so no next step can be compared."""


@dataclass(frozen=True)
class Heldout:
    """The next step at every held-out turn of the training data's validation split (checks.heldout;
    docs/statistics.md)."""

    measured: bool | None = None
    """false when the measure was not taken (--heldout-limit 0); absent when it was."""
    reason: str | None = None
    """Why it was not taken; absent when it was."""
    total: int | None = None
    """Turns asked."""
    passed: int | None = None
    """Turns whose next step the candidate got right."""
    interval: WilsonInterval | None = None
    """The candidate's pass rate."""
    tool_turns: int | None = None
    """Turns whose reference next step is a tool call (they carry the signal)."""
    tool_turns_passed: int | None = None
    """Of those, how many the candidate got right."""
    categories: Mapping[str, HeldoutCategory] | None = None
    """The measure per category of turn."""
    seconds: float | None = None
    """Seconds the candidate's pass took."""
    seconds_per_turn: float | None = None
    """seconds / total; null with no turn."""
    limited: bool | None = None
    """Whether --heldout-limit cut the turns (then the measure is not judged)."""
    source: str | None = None
    """The training data folder the turns come from."""
    available: int | None = None
    """Scorable turns the split holds."""
    conversations: int | None = None
    """Validation conversations the turns come from."""
    left_out: HeldoutLeftOut | None = None
    """Turns left out, by why."""
    min: int | None = None
    """The minimum ([gate5] heldout_min); absent when the measure is not a criterion."""
    judged: bool | None = None
    """Whether it was judged against min (only on every available turn); absent when not a criterion."""
    criteria: tuple[CriterionRow, ...] | None = None
    """Its criterion against the interval; absent when not a criterion."""
    baseline_passed: int | None = None
    """Turns the baseline got right; absent without --baseline."""
    baseline_interval: WilsonInterval | None = None
    """The baseline's pass rate; absent without --baseline."""
    mcnemar: McNemarTest | None = None
    """The paired test on every turn; absent without --baseline."""
    baseline_seconds: float | None = None
    """Seconds the baseline's pass took; absent without --baseline."""
    detectable: DetectableDifference | None = None
    """What the paired test could see on this many turns; absent unless judged with an alpha (Gate 5)."""


@dataclass(frozen=True)
class Screening:
    """An endpoint candidate's screening: every validation query and the multi-turn pass, scored and
    reported, never judged (checks.screening; docs/endpoints.md)."""

    note: str | None = None
    """That the screening is reported, not judged."""
    correct: int | None = None
    """Queries passed."""
    total: int | None = None
    """Queries asked."""
    gate5_minimums_met: bool | None = None
    """Whether Gate 5's minimums would be met (for reference only)."""
    interval: WilsonInterval | None = None
    """The pass rate's interval."""
    categories: Mapping[str, CategoryFigures] | None = None
    """Per category against Gate 5's minimums."""
    queries: tuple[QueryRow, ...] | None = None
    """A row per query, with the multi-turn pass."""
    followup: MultiTurn | None = None
    """The multi-turn pass's totals."""
    avg_latency_s: float | None = None
    """Average seconds per answer; null with no answer."""
    responses: str | None = None
    """The answers file (screening-responses.jsonl)."""
    conversations: str | None = None
    """The conversations file (screening-conversations.jsonl)."""
