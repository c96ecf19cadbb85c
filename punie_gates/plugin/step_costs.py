"""What each step of a gate cost, as `gates.<gate>.figures.steps` of the report.

Fixtures and gate tests wrap their expensive steps (quantize, load, train, fuse,
retention, answer, ...):

    with gate_steps.measure("fuse") as step:
        fused = fuse_for_gate(...)
        step["cached"] = fused.cached     # anything added lands in the step's row

Each step becomes one row {step, seconds, peak_memory_gb (MLX's own),
peak_rss_gb and rss_scope (the process's), bytes_written (how much the work
folder grew), cached, ok, ...} of the gate it ran for, in run order (the
measuring is punie_gates.resources.measure). The gate is the one of the test
being set up or run when the step happens, so a session fixture (the quantized
candidate) is charged to the gate that first needed it; a reused artifact says
`cached: true` and costs about nothing.

Also here: UserErrors shown as their one-line message instead of a traceback
(a full disk, a missing candidate: the message says what to do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from punie_gates.errors import UserError
from punie_gates.plugin.session import gate_of, session_of
from punie_gates.resources import StepCost, measure

_CURRENT_GATE = pytest.StashKey[str | None]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.config.stash[_CURRENT_GATE] = gate_of(item)
    try:
        return (yield)
    finally:
        item.config.stash[_CURRENT_GATE] = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.excinfo is not None and report.failed and call.excinfo.errisinstance(UserError):
        # One line that says what to do; a traceback through fixtures adds nothing for the user.
        report.longrepr = f"{call.excinfo.typename}: {call.excinfo.value}"
    return report


def step_row(cost: StepCost, extra: dict[str, Any]) -> dict[str, Any]:
    """The report's row for one step: its cost (rounded for people), `cached`, then what the caller added."""
    row: dict[str, Any] = {
        "step": cost.step,
        "seconds": round(cost.seconds, 3),
        "peak_memory_gb": None if cost.peak_memory_gb is None else round(cost.peak_memory_gb, 4),
        "peak_rss_gb": None if cost.peak_rss_gb is None else round(cost.peak_rss_gb, 4),
        "rss_scope": cost.rss_scope,
        "bytes_written": cost.bytes_written,
        "cached": bool(extra.pop("cached", False)),
        "ok": cost.ok,
    }
    row.update(extra)
    return row


class GateSteps:
    """`measure(step)` records what a step cost into its gate's `steps` figure."""

    def __init__(self, config, work_dir: Path):
        self._config, self._work_dir = config, Path(work_dir)

    @contextlib.contextmanager
    def measure(self, step: str, *, gate: str | None = None) -> Iterator[dict[str, Any]]:
        """Measure the block; the yielded dict's items (`cached`, `method`, ...) go into the step's row."""
        gate = gate or self._config.stash.get(_CURRENT_GATE, None)
        extra: dict[str, Any] = {}
        handle = None
        try:
            with measure(step, folders=[self._work_dir]) as handle:
                yield extra
        finally:
            if gate is not None and handle is not None and handle.cost is not None:
                self.add(gate, step_row(handle.cost, extra))

    def add(self, gate: str, row: dict[str, Any]) -> None:
        """Append a row measured some other way (a part of a step, such as training's validation passes)."""
        session_of(self._config).logs.add_step(gate, row)


@pytest.fixture(scope="session")
def gate_steps(pytestconfig, gate_config) -> GateSteps:
    """Per-step resources for the report: `with gate_steps.measure("load"): ...`."""
    return GateSteps(pytestconfig, gate_config.work_dir)
