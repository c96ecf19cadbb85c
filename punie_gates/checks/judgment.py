"""Judging many scores at once: passes per category against the query file's minimums,
and Gate 3's zero-shot count of well-formed calls.

One reply's score is checks.scoring's; this module turns a gate's scores into the
judgment its assertions read and `punie-gates score` prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from punie_gates.checks.scoring import Score, api_calls, unparsed_markup, validate_call
from punie_gates.formats.tool_calls import parse_calls
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import Query, QuerySet
from punie_gates.stats import against_threshold


@dataclass(frozen=True)
class CategoryTally:
    """One category's passes against its minimum."""

    name: str
    """The category."""
    passed: int
    """Queries of the category that passed."""
    total: int
    """Queries of the category scored."""
    minimum: int | None
    """Passes the query file requires of it (None: no minimum)."""

    @property
    def met(self) -> bool:
        return self.minimum is None or self.passed >= self.minimum


@dataclass(frozen=True)
class Judgment:
    """Scores tallied against the query file's thresholds: the one place they are judged."""

    passed: int
    """Queries that passed."""
    total: int
    """Queries scored."""
    overall_min: int
    """Passes required overall."""
    categories: tuple[CategoryTally, ...]
    """Each category (those with a minimum, and any other scored), in file order."""
    complete: bool
    """Whether every query was scored exactly once (only then are thresholds judged)."""

    @property
    def problems(self) -> list[str]:
        """Why the thresholds are not met (empty when they are, or when not judged)."""
        return self.shortfalls("correct")

    def shortfalls(self, passed_means: str) -> list[str]:
        """`problems`, saying what a pass is ("correct", "conversations passed")."""
        if not self.complete:
            return []
        problems = []
        if self.passed < self.overall_min:
            problems.append(f"{self.passed}/{self.total} {passed_means}, expected >= {self.overall_min}")
        short = [f"{c.name}: {c.passed}/{c.total} (min {c.minimum})" for c in self.categories if not c.met]
        if short:
            problems.append("categories below their minimum: " + ", ".join(short))
        return problems

    @property
    def met(self) -> bool:
        return self.complete and not self.problems

    def categories_json(self) -> dict[str, dict[str, Any]]:
        return {c.name: {"correct": c.passed, "total": c.total, "min": c.minimum} for c in self.categories}

    def criteria_json(self, unit: str = "queries", prefix: str = "") -> list[dict[str, Any]]:
        """Each count criterion (overall, each category with a minimum) against its interval
        (punie_gates.stats.AgainstThreshold); empty when not judged (an incomplete set)."""
        if not self.complete:
            return []
        return criteria_json(
            [(f"{prefix}overall", self.passed, self.total, self.overall_min)]
            + [(f"{prefix}{c.name}", c.passed, c.total, c.minimum) for c in self.categories if c.minimum is not None],
            unit,
        )


def criteria_json(counts: Sequence[tuple[str, int, int, int]], unit: str = "queries") -> list[dict[str, Any]]:
    """(name, passed, total, minimum) per count criterion -> the report's `criteria` entries."""
    return [
        {"criterion": name, **against_threshold(passed, total, minimum).to_json(unit)}
        for name, passed, total, minimum in counts
    ]


def judge(scores: Sequence[Score], queries: QuerySet) -> Judgment:
    """Passed/total and each category against its minimum."""
    th = queries.thresholds
    return tally(scores, {q.id: q.category for q in queries.queries}, th.overall_min, th.category_min)


def tally(
    scores: Sequence[Any], category: Mapping[str, str], overall_min: int, category_min: Mapping[str, int]
) -> Judgment:
    """Verdicts (anything with `id` and `passed`) counted over the queries `category`
    maps to their category: complete only when each of them is scored exactly once."""
    ids = Counter(s.id for s in scores)
    complete = set(ids) == set(category) and all(n == 1 for n in ids.values())
    names = list(dict.fromkeys([*category_min, *category.values()]))
    tallies = []
    for name in names:
        mine = [s for s in scores if category.get(s.id) == name]
        if not mine and name not in category_min:
            continue
        tallies.append(CategoryTally(name, sum(s.passed for s in mine), len(mine), category_min.get(name)))
    return Judgment(sum(s.passed for s in scores), len(scores), overall_min, tuple(tallies), complete)


def summary(scores: list[Score], queries: QuerySet) -> str:
    """Passed/total and each category against its minimum (judged on a complete set only)."""
    j = judge(scores, queries)
    ids = Counter(s.id for s in scores)
    lines = [f"passed {j.passed}/{j.total}"]
    if j.complete:
        lines[0] += f" (overall minimum {j.overall_min}: {'met' if j.passed >= j.overall_min else 'NOT met'})"
    else:
        lines[0] += (
            f" (responses cover {len(ids)} of {len(queries.queries)} queries"
            f"{', some more than once' if any(n > 1 for n in ids.values()) else ''}: thresholds not judged)"
        )
    for c in j.categories:
        if not c.total:
            continue
        line = f"  {c.name:<16} {c.passed}/{c.total}"
        if j.complete and c.minimum is not None:
            line += f"  (minimum {c.minimum}: {'met' if c.met else 'NOT met'})"
        lines.append(line)
    if j.complete:
        below = [c.name for c in j.categories if not c.met]
        if j.passed < j.overall_min:
            below.insert(0, "overall")
        lines.append(f"thresholds: {'NOT met (' + ', '.join(below) + ')' if below else 'met'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ZeroShotTally:
    """Gate 3's count: well-formed calls to known tools, and calls made where none belonged."""

    rows: tuple[dict, ...]
    """Per query: id, expectation, calls, valid calls, problems, the start of the response."""
    good_calls: int
    """Schema-valid calls to a known tool on the queries that need a tool."""
    tool_queries: int
    """Queries that need a tool."""
    direct_queries: int
    """Queries that must be answered without one."""

    @property
    def called_on_direct(self) -> list[dict]:
        return [r for r in self.rows if r["expect"] == "direct" and r["calls"]]


def tally_zero_shot(
    queries: Sequence[Query],
    responses: Mapping[str, str],
    catalog: Catalog,
    tool_calls: Mapping[str, Sequence[Mapping[str, Any]] | None] | None = None,
) -> ZeroShotTally:
    """`tool_calls` (query id -> an API answer's calls) takes those calls instead of parsing the text."""
    rows, good = [], 0
    for q in queries:
        api = (tool_calls or {}).get(q.id)
        calls = api_calls(api) if api is not None else parse_calls(responses[q.id])
        problems = [validate_call(c, catalog) for c in calls]
        if api is not None and not calls and (leftover := unparsed_markup(responses[q.id])):
            problems.append(f"the server returned no tool_calls; the content holds the call as text: {leftover!r}")
        valid = sum(p is None for p in problems)
        if q.expect == "tool":
            good += valid
        rows.append(
            {
                "id": q.id,
                "expect": q.expect,
                "calls": [c.name for c in calls],
                "valid_calls": valid,
                "problems": [p for p in problems if p],
                "response": responses[q.id][:200],
            }
        )
    return ZeroShotTally(
        tuple(rows), good, sum(q.expect == "tool" for q in queries), sum(q.expect == "direct" for q in queries)
    )
