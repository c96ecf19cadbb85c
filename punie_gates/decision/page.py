"""The report page's view model: what gate-report.html (and `punie-gates compare`'s page) shows.

Frozen dataclasses the template reads (punie_gates/decision/templates/report.html.j2):
a page, its gate rows, tables, loss curves and query sections with each model's answer.
Built from a report document by punie_gates.decision.page_from_report, rendered by
punie_gates.decision.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One model's answer to one query (a first turn or a follow-up)."""

    response: str | None
    """The reply text; None when nothing was saved."""
    passed: bool | None
    """The scorer's verdict; None when it was not scored."""
    reason: str = ""
    """The scorer's reason (expected, found, why)."""
    tools: tuple[str, ...] = ()
    """Typed tools the reply called."""
    fields: tuple[str, ...] = ()
    """Result fields the reply read."""
    followup: Answer | None = None
    """The answer to the follow-up turn, when there was one."""


@dataclass(frozen=True)
class QueryRow:
    """A query with each side's answer (candidate and baseline, or run A and run B)."""

    gate: str
    """The gate that asked it."""
    id: str
    """The query id."""
    category: str
    """The query's category."""
    text: str
    """The query text ("" when the report does not hold it)."""
    answers: tuple[Answer | None, ...]
    """One per side of the section; None where that side has no answer."""

    @property
    def verdicts(self) -> tuple[bool, ...]:
        """Every verdict known for this query: each side's first turn and follow-up."""
        out = []
        for answer in self.answers:
            for turn in (answer, answer.followup if answer else None):
                if turn is not None and turn.passed is not None:
                    out.append(turn.passed)
        return tuple(out)

    @property
    def outcome(self) -> str:
        """The first side's first-turn verdict: "pass", "fail" or "unscored"."""
        first = self.answers[0] if self.answers else None
        if first is None or first.passed is None:
            return "unscored"
        return "pass" if first.passed else "fail"

    @property
    def disagree(self) -> bool:
        """Whether the known verdicts differ (side against side, first turn against follow-up)."""
        return len(set(self.verdicts)) > 1


@dataclass(frozen=True)
class QuerySection:
    """The queries of one gate (or of a comparison), side by side."""

    title: str
    """Heading."""
    gate: str
    """Gate id (data attribute for the filter)."""
    sides: tuple[str, ...]
    """Column labels, one per answer side."""
    rows: tuple[QueryRow, ...]
    """The queries, in the gate's order."""

    @property
    def has_followups(self) -> bool:
        return any(a is not None and a.followup is not None for r in self.rows for a in r.answers)


@dataclass(frozen=True)
class GateRow:
    """One line of the gate table."""

    gate: str
    """gate0 .. gate5."""
    name: str
    """The gate's name (data/gates.toml)."""
    kind: str
    """hard, soft or caution."""
    status: str
    """passed, failed, skipped, error or not_run."""
    seconds: float | None
    """Seconds its tests took."""
    peak_memory_gb: float | None
    """Largest peak memory it recorded; None when it recorded none."""
    reason: str
    """Its first reason ("" when it passed without one)."""
    tests: Mapping[str, int] = field(default_factory=dict)
    """Test outcomes counted."""
    key_figures: tuple[str, ...] = ()
    """The few figures that decide it, in words ("2/10 correct", "avg 6.10 s")."""


@dataclass(frozen=True)
class Table:
    """A small table: Gate 0's markers, pass rates, per-step resources."""

    title: str
    """Heading."""
    columns: tuple[str, ...]
    """Column headings."""
    rows: tuple[tuple[Any, ...], ...]
    """Cells (rendered as text; True/False as yes/no)."""
    bad_rows: frozenset[int] = frozenset()
    """Indexes of rows to mark as a problem."""
    note: str = ""
    """A line under the table."""


@dataclass(frozen=True)
class Curve:
    """A loss-curve PNG embedded in the page."""

    title: str
    """Caption."""
    data_uri: str
    """data:image/png;base64,..."""
    summary: str = ""
    """The loss figures in one line."""


@dataclass(frozen=True)
class Page:
    """Everything the template shows; parts left empty are omitted."""

    title: str
    """Title of the page."""
    verdict: str | None = None
    """GO, GO_WITH_FLAGS, NO_GO, INCOMPLETE, ERROR (not judged); None on a comparison."""
    stopped_at: str | None = None
    """The hard gate that stopped the run."""
    reasons: tuple[str, ...] = ()
    """Why the verdict is what it is."""
    flags: tuple[str, ...] = ()
    """Flags raised by passed gates."""
    notes: tuple[str, ...] = ()
    """Lines shown prominently under the verdict (the demo note, missing ids...)."""
    facts: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs: candidate, baseline, when, how long, machine."""
    gates: tuple[GateRow, ...] = ()
    """The gate table."""
    tables: tuple[Table, ...] = ()
    """Marker tables, pass rates, resources, in page order."""
    curves: tuple[Curve, ...] = ()
    """Loss curves."""
    sections: tuple[QuerySection, ...] = ()
    """Per-query answers."""
    figures: tuple[tuple[str, str], ...] = ()
    """(gate, pretty JSON of its figures), shown folded."""
    data: Any = None
    """Embedded as JSON for whoever wants the numbers."""

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.category for s in self.sections for r in s.rows))

    @property
    def query_count(self) -> int:
        return sum(len(s.rows) for s in self.sections)

    @property
    def any_disagreement_possible(self) -> bool:
        return any(len(r.verdicts) > 1 for s in self.sections for r in s.rows)
