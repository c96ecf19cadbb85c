"""The seed's decision matrix: gate outcomes in, one go/no-go verdict out.

Gates 0, 1, 4 and 5 are hard (a failure stops the evaluation: NO_GO); Gate 2 is
soft and Gate 3 is "caution" (a failure flags and the evaluation continues). A
gate that did not run (skipped, errored, not collected, deselected) is never
counted as passed, so a run missing any gate is never GO. When the user chose a
subset of the gates (-m/-k, a single file), no go/no-go can be given: the
verdict is INCOMPLETE unless a hard gate that did run already failed; an
interrupted run (Ctrl-C) is decided the same way, as partial.

ERROR ("not judged") is for a run that could not test the candidate at all: a
bad option or thresholds file, missing or unreadable inputs, a candidate that
cannot be found, a full disk, a server that would not start (a
punie_gates.errors.UserError). It is never a NO_GO: that stays for a candidate
that was tested and failed (unless a hard gate had already failed on its own
before the problem, which is still NO_GO). Exit statuses, as the plugin sets
them: GO and GO_WITH_FLAGS 0, NO_GO 1, ERROR 6 (EXIT_NOT_JUDGED, a status
pytest itself never returns: its own are 0-5); INCOMPLETE keeps pytest's
(2 for an interrupted run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from punie_gates.inputs.gates import HARD, KINDS, SOFT, builtin_gates

STATUSES = ("passed", "failed", "skipped", "error", "not_run")
VERDICTS = ("GO", "GO_WITH_FLAGS", "NO_GO", "INCOMPLETE", "ERROR")
NOT_JUDGED = "ERROR"
EXIT_NOT_JUDGED = 6  # pytest's own exit statuses are 0-5


@dataclass(frozen=True)
class GateResult:
    gate: str
    status: str
    kind: str
    name: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    seconds: float = 0.0
    tests: Mapping[str, int] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # acceptable-but-noted findings of a passed gate (e.g. 2-5x slower)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"{self.gate}: unknown status {self.status!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.gate}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Verdict:
    verdict: str
    stopped_at: str | None
    flags: tuple[str, ...]
    reasons: tuple[str, ...]
    complete: bool

    @property
    def passes(self) -> bool:
        """Whether the run's exit status should be 0 (GO and GO_WITH_FLAGS only)."""
        return self.verdict in ("GO", "GO_WITH_FLAGS")


def _why(result: GateResult) -> str:
    first = f": {result.reasons[0]}" if result.reasons else ""
    return f"{result.gate} ({result.name or result.kind}) {result.status}{first}"


def decide(results: Mapping[str, GateResult], *, complete: bool = True, order: Sequence[str] | None = None) -> Verdict:
    """Apply the decision matrix to every gate, in gate order (the registry's by default)."""
    order = tuple(order) if order is not None else builtin_gates().ids
    unknown = set(results) - set(order)
    if unknown:
        raise ValueError(f"unknown gates: {sorted(unknown)}")
    flags: list[str] = []
    missing: list[str] = []
    for gate in order:
        result = results.get(gate)
        if result is None or result.status in ("skipped", "not_run"):
            missing.append(
                f"{gate} {'not run' if result is None else result.status}"
                + (f": {result.reasons[0]}" if result is not None and result.reasons else "")
            )
            continue
        if result.status == "passed":
            flags.extend(f"{gate}: {flag}" for flag in result.flags)
            continue
        if result.kind == HARD:
            # A hard gate that failed or errored stops the evaluation, whatever ran after it.
            return Verdict("NO_GO", gate, tuple(flags), (_why(result),), complete)
        if result.status == "failed":
            label = "soft gate failed" if result.kind == SOFT else "caution"
            flags.append(f"{gate} {label}: " + (result.reasons[0] if result.reasons else "see report"))
        else:  # a soft or caution gate that errored measured nothing: it is missing
            missing.append(_why(result))
    if missing:
        if not complete:
            return Verdict("INCOMPLETE", None, tuple(flags), ("partial run: " + "; ".join(missing),), complete)
        return Verdict(
            "NO_GO", None, tuple(flags), tuple(f"{m} (a run missing a gate is never GO)" for m in missing), complete
        )
    if flags:
        return Verdict("GO_WITH_FLAGS", None, tuple(flags), tuple(flags), complete)
    return Verdict("GO", None, (), ("every gate passed",), complete)


def decide_not_judged(
    results: Mapping[str, GateResult],
    causes: Sequence[str],
    *,
    stopped_gates: Sequence[str] = (),
    order: Sequence[str] | None = None,
) -> Verdict:
    """The verdict of a run stopped by problems the user must fix (`causes`, one line each).

    ERROR, unless a hard gate had already failed on its own (then the candidate was
    judged: NO_GO). `stopped_gates` are the gates the problems hit: they measured
    nothing and are left out of that judgment.
    """
    judged = {g: r for g, r in results.items() if g not in set(stopped_gates)}
    base = decide(judged, complete=False, order=order)
    why = tuple(f"not judged: {cause}" for cause in causes)
    if base.verdict == "NO_GO" and base.stopped_at is not None:
        return Verdict("NO_GO", base.stopped_at, base.flags, base.reasons + why, False)
    return Verdict(NOT_JUDGED, None, base.flags, why, False)
