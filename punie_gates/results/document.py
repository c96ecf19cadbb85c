"""The whole gate-report.json typed: `RunResults` at the top, a `GateEntry` per gate and each
gate's own figures class, read from the dict a reader holds with one call:

    results = read_results(json.loads(path.read_text()))
    results.gates["gate5"].figures.correct

and `check_figure`, which the recorder uses to refuse a figure a gate does not record or a
value of the wrong type, naming the field and who recorded it.

The document's keys are those it always had; a report without `schema` (every report so
far) reads the same. Keys this suite does not know are left out (`unknown` lists them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from punie_gates.results.codec import ResultsError, field_hints, from_json, to_json
from punie_gates.results.gate0 import Gate0Figures
from punie_gates.results.gate1 import Gate1Figures
from punie_gates.results.gate2 import Gate2Figures
from punie_gates.results.gate3 import Gate3Figures
from punie_gates.results.shared import CriterionRow, GateFigures, ServingPlan
from punie_gates.results.training import Gate4Figures, Gate5Figures

FIGURES_BY_GATE: Mapping[str, type[GateFigures]] = {
    "gate0": Gate0Figures,
    "gate1": Gate1Figures,
    "gate2": Gate2Figures,
    "gate3": Gate3Figures,
    "gate4": Gate4Figures,
    "gate5": Gate5Figures,
}


def figures_class(gate: str) -> type[GateFigures]:
    """The figures class of `gate` (the shared base for a gate this suite does not know)."""
    return FIGURES_BY_GATE.get(gate, GateFigures)


@dataclass(frozen=True)
class GateEntry:
    """One gate's entry in the report (`gates.gateN`)."""

    name: str | None = None
    """The gate's name."""
    kind: str | None = None
    """`hard`, `soft` or `caution` (docs/glossary.md)."""
    status: str | None = None
    """`passed`, `failed`, `skipped`, `error` or `not_run`."""
    seconds: float | None = None
    """How long its tests took."""
    tests: Mapping[str, int] | None = None
    """How many of its tests ended each way (passed, failed, skipped, error, not_run)."""
    reasons: tuple[str, ...] | None = None
    """Why it failed, errored, was skipped or did not run."""
    flags: tuple[str, ...] | None = None
    """Acceptable-but-noted findings, in the order they were raised."""
    figures: GateFigures | None = None
    """The gate's measurements (the gate's own figures class, below)."""


@dataclass(frozen=True)
class CandidateEntry:
    """The candidate as given."""

    spec: str | None = None
    """--candidate as given (a Hub id, a folder, a URL, `demo`, `demo-agent`)."""
    is_demo: bool | None = None
    """Whether it is a built-in demo candidate."""
    note: str | None = None
    """What the demo is; null for any other candidate."""


@dataclass(frozen=True)
class ServedModel(ServingPlan):
    """How one model folder was served (decision.report.serving_plans): its serving plan and which model."""

    model: str | None = None
    """Which model: candidate, fused candidate, baseline."""


@dataclass(frozen=True)
class RunAnswering:
    """How the run asked its models."""

    via: str | None = None
    """`server`, `inprocess` or `endpoint`."""
    note: str | None = None
    """What that means, in words."""
    serving: tuple[ServedModel, ...] | None = None
    """How each model folder was served, once per folder (docs/serving.md)."""


@dataclass(frozen=True)
class Machine:
    """The machine the run ran on."""

    platform: str | None = None
    """platform.platform()."""
    machine: str | None = None
    """platform.machine() (arm64, x86_64)."""
    cpus: int | None = None
    """os.cpu_count()."""


@dataclass(frozen=True)
class Interruption:
    """What stopped an interrupted run."""

    by: str | None = None
    """KeyboardInterrupt (Ctrl-C) or SIGTERM."""
    gate: str | None = None
    """The gate running then; null between gates."""
    test: str | None = None
    """The test running then."""


@dataclass(frozen=True)
class RunFiles:
    """The run's id and files (also in run.json)."""

    id: str | None = None
    """The run's id."""
    files: tuple[str, ...] | None = None
    """Every file the run wrote into the report folder."""
    previous_moved_to: str | None = None
    """Where the previous run's files were moved; absent when there were none."""


@dataclass(frozen=True)
class WorkFolder:
    """The work folder at the end of the run (plugin/session.py)."""

    path: str | None = None
    """Its path (--work-dir)."""
    bytes: int | None = None
    """Its size in bytes (cached models, adapters, fused models)."""


@dataclass(frozen=True)
class CriteriaSummary:
    """Every count criterion of the run against its 95% interval (decision/criteria.py; docs/statistics.md)."""

    count: int | None = None
    """How many count criteria were judged."""
    inside_interval: int | None = None
    """How many were decided inside their interval (the data cannot tell)."""
    sentence: str | None = None
    """The two counts said for people."""
    rows: tuple[CriterionRow, ...] | None = None
    """Each criterion, with its gate."""


@dataclass(frozen=True)
class RunResults:
    """gate-report.json: the verdict, the run, and every gate's entry."""

    schema: int | None = None
    """The document's schema version; absent in every report so far (read as version 1)."""
    suite: str | None = None
    """`punie-gates` and its version."""
    verdict: str | None = None
    """`GO`, `GO_WITH_FLAGS`, `NO_GO`, `INCOMPLETE` or `ERROR` (docs/verdicts.md)."""
    stopped_at: str | None = None
    """The hard gate that stopped the evaluation; null when none did."""
    complete: bool | None = None
    """false when the run was interrupted or ran a subset of the gates."""
    flags: tuple[str, ...] | None = None
    """Every gate's flags, said once, each with its gate."""
    reasons: tuple[str, ...] | None = None
    """Why the verdict is what it is (for `ERROR`, the cause)."""
    candidate: CandidateEntry | None = None
    """The candidate as given."""
    baseline: str | None = None
    """--baseline as given; null without one."""
    answering: RunAnswering | None = None
    """How the models were asked and served."""
    run_all_gates: bool | None = None
    """Whether --run-all-gates was given."""
    started: str | None = None
    """When the run started (local time, ISO 8601)."""
    seconds: float | None = None
    """How long the run took."""
    machine: Machine | None = None
    """The machine it ran on."""
    collection_errors: tuple[str, ...] | None = None
    """Gate modules pytest could not collect (a full run with one is `NO_GO`)."""
    interrupted: Interruption | None = None
    """What stopped the run and what was running; null when it was not interrupted."""
    run: RunFiles | None = None
    """The run's id and every file it wrote; null when it had no report folder."""
    work_folder: WorkFolder | None = None
    """The work folder and its size at the end of the run."""
    gates: Mapping[str, GateEntry] | None = None
    """One entry per gate, by id (gate0 .. gate5)."""
    criteria: CriteriaSummary | None = None
    """Every count criterion against its interval."""


def read_results(
    doc: Mapping[str, Any], unknown: list[str] | None = None, problems: list[str] | None = None
) -> RunResults:
    """The typed report from a gate-report.json document. ResultsError names a value of the wrong type;
    with a `problems` list such a value is left out instead and its message added there (a reader that
    must show any report). Keys this suite does not know are left out, their paths added to `unknown`."""
    if not isinstance(doc, Mapping):
        raise ResultsError(f"the report: expected an object, found {type(doc).__name__}")
    top = from_json(RunResults, {k: v for k, v in doc.items() if k != "gates"}, "", unknown, problems)
    gates = doc.get("gates")
    if gates is None:
        return top
    if not isinstance(gates, Mapping):
        return _refuse(f"gates: expected an object, found {type(gates).__name__}", top, problems)
    entries = {}
    for gate, entry in gates.items():
        if not isinstance(entry, Mapping):
            _refuse(f"gates.{gate}: expected an object, found {type(entry).__name__}", None, problems)
            continue
        plain = from_json(
            GateEntry, {k: v for k, v in entry.items() if k != "figures"}, f"gates.{gate}", unknown, problems
        )
        figures = entry.get("figures")
        if figures is not None:
            figures = _lenient(figures_class(str(gate)), figures, f"gates.{gate}.figures", unknown, problems)
        entries[str(gate)] = dataclasses.replace(plain, figures=figures)
    return dataclasses.replace(top, gates=entries)


def read_figures(
    gate: str, figures: Mapping[str, Any], unknown: list[str] | None = None, problems: list[str] | None = None
) -> GateFigures:
    """One gate's figures (`gates.<gate>.figures`) typed (`problems`: as read_results)."""
    return _lenient(figures_class(gate), figures, f"gates.{gate}.figures", unknown, problems)


def _lenient(cls: type, data: Any, path: str, unknown: list[str] | None, problems: list[str] | None) -> Any:
    """`data` as `cls`; a value that is not even an object is left out (None) when `problems` is given."""
    try:
        return from_json(cls, data, path, unknown, problems)
    except ResultsError as exc:
        return _refuse(str(exc), None, problems)


def _refuse(message: str, instead: Any, problems: list[str] | None) -> Any:
    if problems is None:
        raise ResultsError(message)
    problems.append(message)
    return instead


def check_figure(gate: str, key: str, value: Any, recorded_by: str, problems: list[str] | None = None) -> Any:
    """`value` as `gates.<gate>.figures.<key>` holds it in the report (plain JSON; typed values
    are turned into it). ResultsError, naming the field and `recorded_by`, when the gate's figures
    have no such field or the value is not of its kind. With a `problems` list a value of the
    wrong type deeper inside is kept as recorded and its path added there (a run is not stopped
    for a detail a results class has not caught up with; the self-tests read strictly)."""
    cls = figures_class(gate)
    hints = field_hints(cls)
    if key not in hints:
        raise ResultsError(
            f"{recorded_by} records {key!r}, which {gate}'s figures ({cls.__module__}.{cls.__name__}) do not have; "
            f"add the field there, with its docstring, or record one of: {', '.join(sorted(hints))}"
        )
    plain = to_json(value)
    try:
        from_json(hints[key], plain, f"gates.{gate}.figures.{key}", None, problems)
    except ResultsError as exc:
        raise ResultsError(f"{recorded_by}: {exc}") from None
    return plain
