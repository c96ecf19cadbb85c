"""The candidate against the baseline on the same queries, scored by the same scorer.

Per query both answers side by side (passed, tools called, fields read, reason); per
model a Wilson 95% interval on its pass rate, overall and per category; for the pair
the exact McNemar test on the queries where the two disagree
(punie_gates.stats). Gate 5's criterion ([gate5] baseline_alpha in
data/gates.toml): significantly worse than the baseline (one-sided) fails, fewer
passes without significance is flagged, and the smallest difference the test could
have seen on this many queries is stated beside it. Without a baseline no comparison is made and
the figures say so: the verdict then rests on the thresholds alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from punie_gates.checks.attribution import attribute
from punie_gates.checks.scoring import Score, score_answer
from punie_gates.inputs.queries import Query
from punie_gates.stats import McNemar, Paired, detectable_difference, paired, wilson_interval

NO_BASELINE = (
    "no --baseline given: no comparison with the production model was made; the verdict rests on the thresholds alone"
)


def side(score: Score, answer) -> dict[str, Any]:
    """One model's answer to one query, as a report row shows it."""
    out = {
        "passed": score.passed,
        "tools": list(score.tools),
        "fields": list(score.fields),
        "reason": score.reason,
        "response": answer.text[:300],
    }
    if answer.tool_calls is not None:  # through a server: the calls as it returned them
        out["tool_calls"] = [
            {"name": c.get("name"), "arguments": str(c.get("arguments", ""))[:300]} for c in answer.tool_calls
        ]

    return attribute(out, answer)  # a miss says whose it is: the model's, the server's or the stream's


def query_rows(
    queries: Sequence[Query],
    scores: Mapping[str, Score],
    answers: Mapping[str, Any],
    baseline_scores: Mapping[str, Score] | None = None,
    baseline_answers: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A report row per query: id, category, the candidate's answer, and the baseline's beside it."""
    rows = []
    for q in queries:
        row = {"id": q.id, "category": q.category, **side(scores[q.id], answers[q.id])}
        if baseline_scores is not None and baseline_answers is not None:
            row["baseline"] = side(baseline_scores[q.id], baseline_answers[q.id])
        rows.append(row)
    return rows


def _by_category(queries: Sequence[Query]) -> dict[str, list[Query]]:
    out: dict[str, list[Query]] = {}
    for q in queries:
        out.setdefault(q.category, []).append(q)
    return out


def interval_figures(queries: Sequence[Query], scores: Mapping[str, Score], key: str = "interval") -> dict[str, Any]:
    """`{key: overall interval, "categories": {name: {key: interval}}}` for one model's scores."""
    passed = [scores[q.id].passed for q in queries]
    out: dict[str, Any] = {key: wilson_interval(sum(passed), len(passed)).to_json(), "categories": {}}
    for name, mine in _by_category(queries).items():
        n = sum(scores[q.id].passed for q in mine)
        out["categories"][name] = {key: wilson_interval(n, len(mine)).to_json()}
    return out


@dataclass(frozen=True)
class BaselineComparison:
    """Candidate vs baseline on the same queries, and what Gate 5's criterion makes of it."""

    paired: Paired
    """Both models' pass rates with their intervals and the exact McNemar test."""
    alpha: float | None
    """One-sided significance threshold (None: the comparison is recorded, not judged)."""

    @property
    def candidate_passed(self) -> int:
        return self.paired.candidate.passed

    @property
    def baseline_passed(self) -> int:
        return self.paired.baseline.passed

    @property
    def total(self) -> int:
        return self.paired.candidate.total

    @property
    def mcnemar(self) -> McNemar:
        return self.paired.mcnemar

    @property
    def significantly_worse(self) -> bool:
        return self.alpha is not None and self.mcnemar.p_candidate_worse <= self.alpha

    def _counts(self) -> str:
        m = self.mcnemar
        return (
            f"candidate {self.candidate_passed}/{self.total} vs baseline {self.baseline_passed}/{self.total}; "
            f"only the candidate passed {m.only_candidate}, only the baseline {m.only_baseline} "
            f"(exact McNemar one-sided p = {m.p_candidate_worse:.3g})"
        )

    @property
    def problem(self) -> str | None:
        """Why the candidate fails against the baseline, or None."""
        if self.significantly_worse:
            return (
                f"the candidate is significantly worse than the baseline: {self._counts()}, p <= alpha {self.alpha:g}"
            )
        return None

    @property
    def flag(self) -> str | None:
        """Fewer passes than the baseline without significance, or None."""
        if self.alpha is not None and not self.significantly_worse and self.candidate_passed < self.baseline_passed:
            return f"fewer passes than the baseline, not significantly: {self._counts()} > alpha {self.alpha:g}"
        return None

    def outcome(self) -> str:
        if self.alpha is None:
            return "recorded (this gate does not judge against the baseline)"
        if self.problem:
            return "significantly worse: fails"
        if self.flag:
            return "fewer passes, not significant: flagged"
        return "not worse than the baseline"


def compare_with_baseline(
    queries: Sequence[Query], scores: Mapping[str, Score], baseline_scores: Mapping[str, Score], alpha: float | None
) -> BaselineComparison:
    mine = [scores[q.id].passed for q in queries]
    theirs = [baseline_scores[q.id].passed for q in queries]
    return BaselineComparison(paired(mine, theirs), alpha)


def comparison_figures(
    queries: Sequence[Query],
    scores: Mapping[str, Score],
    baseline_scores: Mapping[str, Score],
    comparison: BaselineComparison,
) -> dict[str, Any]:
    """Both models' intervals, the paired test overall and per category, in the report's keys
    (`interval`, `baseline_interval`, `mcnemar`, the same inside `categories[NAME]`)."""
    out: dict[str, Any] = {**comparison.paired.to_json(), "categories": {}}
    for name, qs in _by_category(queries).items():
        pair = paired([scores[q.id].passed for q in qs], [baseline_scores[q.id].passed for q in qs])
        out["categories"][name] = {**pair.to_json(), "baseline_correct": pair.baseline.passed}
    out["comparison"] = {
        "made": True,
        "candidate_correct": comparison.candidate_passed,
        "baseline_correct": comparison.baseline_passed,
        "total": comparison.total,
        "alpha": comparison.alpha,
        "p_candidate_worse": comparison.mcnemar.p_candidate_worse,
        "outcome": comparison.outcome(),
    }
    if comparison.alpha is not None:  # "not significantly worse" is never "as good": say what could be seen
        out["comparison"]["detectable"] = detectable_difference(comparison.mcnemar, comparison.alpha).to_json()
    return out


def merge_categories(categories: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Mapping[str, Any]]) -> dict:
    """Judgment.categories_json() entries with the interval figures added to each."""
    return {name: {**dict(entry), **dict(extra.get(name, {}))} for name, entry in categories.items()}


def score_both(queries, answers: Mapping, baseline_answers: Mapping, catalog) -> tuple[dict, dict]:
    """(candidate, baseline) scores by query id: both models' answers scored alike."""
    mine = {q.id: score_answer(q, answers[q.id], catalog) for q in queries}
    theirs = {q.id: score_answer(q, baseline_answers[q.id], catalog) for q in queries}
    return mine, theirs
