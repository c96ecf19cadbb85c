"""What a run records per gate: figures, each checked against the gate's figures class
(punie_gates.results) when it is recorded, and flags.

The gate tests record through the `gate_record` fixture (plugin/fixtures.py); the fixtures
that measure steps and ask models append to `steps` and `answering` here. A figure the
gate's class does not have, or a value not of its type, raises ResultsError naming the
field and who recorded it: a typo cannot reach the report or the readers. A wrong type
deeper inside a value is said as a notice and kept (the self-tests read every report
strictly, so it is caught there, not in a user's run).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from punie_gates import progress
from punie_gates.decision.outcomes import GateLog
from punie_gates.results.document import check_figure


class GateLogs(dict[str, GateLog]):
    """Each gate's figures and flags (decision.outcomes.GateLog), by gate id."""

    def __init__(self, gates: Iterable[str]):
        super().__init__((gate, GateLog()) for gate in gates)

    def record(self, gate: str, recorded_by: str, **figures: Any) -> None:
        """Put `figures` in gates.<gate>.figures, each checked first: ResultsError names a field the
        gate does not have or a value not of its kind, and `recorded_by`; a wrong type deeper inside
        is kept and said as a notice. A figure recorded again replaces the earlier value."""
        problems: list[str] = []
        checked = {key: check_figure(gate, key, value, recorded_by, problems) for key, value in figures.items()}
        for problem in problems:
            progress.notice(f"{recorded_by}: {problem} (kept as recorded; punie_gates/results should say so)")
        self[gate].figures.update(checked)

    def add_step(self, gate: str, row: dict[str, Any]) -> None:
        """Append one step's cost to the gate's `steps`."""
        self.record(gate, f"the {row.get('step')} step", steps=[*self[gate].figures.get("steps", ()), row])

    def add_answering(self, gate: str, key: str, value: Any) -> None:
        """Set one entry of the gate's `answering` (the server's record, the baseline's, the path)."""
        answering = {**(self[gate].figures.get("answering") or {}), key: value}
        self.record(gate, f"the answering fixtures ({key})", answering=answering)

    def flag(self, gate: str, text: str) -> None:
        """Raise a flag on the gate (said once however often it is raised)."""
        if text not in self[gate].flags:
            self[gate].flags.append(text)
