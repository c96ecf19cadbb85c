"""A gate's outcome from its tests' outcomes: the one place that decides what a gate's
tests add up to. No pytest here: the plugin hands over plain records.

A gate's tests are of three roles: checks (each must pass), details (one per query:
their failure alone does not fail the gate, an aggregate check decides) and the
decision test (last in its module: it passes only when every check before it passed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from punie_gates.decision.verdict import GateResult
from punie_gates.inputs.gates import GateRegistry

OUTCOMES = ("passed", "failed", "skipped", "error", "not_run")


@dataclass
class TestRecord:
    """What one test of a gate did in this run (filled in as pytest reports it)."""

    gate: str
    """The gate the test belongs to (its gateN marker)."""
    decision: bool
    """Whether it is its gate's decision test."""
    detail: bool
    """Whether it is a per-query detail whose failure alone does not fail the gate."""
    name: str = ""
    """The test's name, for reasons."""
    outcome: str = "not_run"
    """passed | failed | skipped | error | not_run."""
    message: str = ""
    """Why it failed, errored or was skipped."""
    seconds: float = 0.0
    """Setup, call and teardown together."""


@dataclass
class GateLog:
    """What a run learned about one gate besides its tests: figures and flags."""

    figures: dict[str, Any] = field(default_factory=dict)
    """Measured figures, by key (gates.<gate>.figures in the report)."""
    flags: list[str] = field(default_factory=list)
    """Acceptable-but-noted findings of the gate, in the order they were raised."""


def unmet_checks(records: Iterable[TestRecord], gate: str) -> list[str]:
    """The gate's checks (not details, not the decision) that did not pass, described; checks
    that failed the same way (a fixture they share) are named together, the reason once."""
    names: dict[str, list[str]] = {}
    for r in records:
        if r.gate == gate and not r.detail and not r.decision and r.outcome != "passed":
            names.setdefault(r.outcome + (f": {r.message}" if r.message else ""), []).append(r.name)
    return [f"{', '.join(tests)} {why}" for why, tests in names.items()]


def gate_status(records: Sequence[TestRecord]) -> str:
    """The gate's status from its tests: its decision test's outcome, unless a check errored."""
    decisions = [r for r in records if r.decision]
    if decisions:
        # A check that errored measured nothing: the gate errored, whatever the decision says.
        if any(r.outcome == "error" for r in records if not r.detail):
            return "error"
        return decisions[-1].outcome
    if any(r.outcome == "error" for r in records):
        return "error"
    if any(r.outcome == "failed" for r in records if not r.detail):
        return "failed"
    return "not_run"


def _people(reason: str) -> str:
    # pytest-dependency says "test_x depends on gate0"; say it for people.
    if " depends on gate" in reason:
        gate = reason.rsplit(" ", 1)[-1]
        return f"not run: depends on {gate}, which did not pass (--run-all-gates runs it anyway)"
    return reason


def gate_results(
    registry: GateRegistry,
    records: Sequence[TestRecord],
    logs: Mapping[str, GateLog],
    *,
    deselected: Iterable[str] = (),
    collection_errors: Sequence[str] = (),
) -> dict[str, GateResult]:
    """Every gate's result, in registry order."""
    deselected = set(deselected)
    results = {}
    for gate in registry:
        mine = [r for r in records if r.gate == gate.id]
        status = gate_status(mine)
        reasons = [r.message for r in mine if r.outcome in ("failed", "error") and not r.detail and not r.decision]
        if not reasons:
            reasons = [r.message for r in mine if r.decision and r.outcome != "passed"]
        if status == "skipped":
            reasons = [next((r.message for r in mine if r.outcome == "skipped" and r.message), "skipped")]
        if status == "not_run":
            if gate.id in deselected:
                reasons = ["deselected in this run (-m/-k or a path)"]
            elif not mine:
                reasons = ["not collected: " + ("; ".join(collection_errors) or "no test of this gate was found")]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        log = logs.get(gate.id) or GateLog()
        results[gate.id] = GateResult(
            gate=gate.id,
            status=status,
            kind=gate.kind,
            name=gate.name,
            figures=dict(log.figures),
            reasons=tuple(dict.fromkeys(_people(r) for r in reasons if r)),
            seconds=round(sum(r.seconds for r in mine), 3),
            tests=counts,
            flags=tuple(log.flags),
        )
    return results
