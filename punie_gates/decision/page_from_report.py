"""The report page built from the report document (the dict gate-report.json holds).

The page reads the report document and the saved responses beside it (gateN-responses.jsonl,
`{"id", "response"}`, full text where the document keeps 300 characters; a
baseline's in gateN-baseline-responses.jsonl). Parts that later runs may add are
shown when present and left out when absent:

- per query row of `gates.gateN.figures.queries`: `category` (else from the id,
  `category-NN`), `text`, `followup` (the follow-up turn's answer) and `baseline`
  (the baseline's answer, with its own `followup`); an answer is a dict with
  `response`, `passed`, `reason`, `tools`, `fields`;
- a saved record's `tool_calls` (an answer through mlx_lm.server) is shown under its text;
- per gate: `figures.followup` (the multi-turn pass: `correct`, `total`, `categories`
  and the interval keys below, as punie_gates.checks.multiturn records them);
  `figures.interval` / `figures.baseline_interval` and the same keys in
  `figures.categories[NAME]` (Wilson intervals, `Interval.to_json`), `figures.mcnemar`
  (`McNemar.to_json`), and `figures.steps` (per-step resources: a list of dicts with
  `step` or a dict step -> dict, holding seconds, peak memory, bytes ...). A gate's
  peak memory is the largest `peak_memory_gb` among its figures and steps;
- `figures.heldout` (the held-out next-step measure, punie_gates.checks.heldout) beside
  the queries, and the document's `criteria` (each count criterion against its interval,
  punie_gates.decision.criteria);
- the document's `work_folder` ({"path", "bytes"}), among the run's facts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from punie_gates.decision.page import GateRow, Page
from punie_gates.decision.page_figures import key_figures, peak_memory
from punie_gates.decision.page_queries import QUERY_GATES, RESPONSE_FILES, query_section, read_responses
from punie_gates.decision.page_tables import (
    _category_table,
    _criteria_table,
    _curves,
    _heldout_table,
    _marker_table,
    _pass_rate_table,
    _steps_table,
    pass_rates,
)
from punie_gates.decision.page_words import interval_text, serving_line
from punie_gates.decision.report_read import typed_report
from punie_gates.results.document import CandidateEntry, CriteriaSummary, RunAnswering, RunResults
from punie_gates.results.gate0 import Gate0Figures
from punie_gates.results.gate3 import Gate3Figures
from punie_gates.results.shared import GateFigures
from punie_gates.results.training import TrainedGateFigures


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _facts(report: RunResults) -> list[tuple[str, str]]:
    """The run's facts: candidate, baseline, how it was answered and served, when, how long, where."""
    cand = report.candidate or CandidateEntry()
    facts = [("candidate", str(cand.spec or "-"))]
    if report.baseline:
        facts.append(("baseline", report.baseline))
    answering = report.answering or RunAnswering()
    if answering.note:
        facts.append(("answers", answering.note))
    facts += [("served", serving_line(plan)) for plan in answering.serving or ()]
    machine = report.machine
    facts += [
        ("started", "-" if report.started is None else report.started),
        ("seconds", f"{report.seconds:.1f}" if report.seconds is not None else "-"),
        ("complete run", "yes" if report.complete else "no (a subset of the gates was selected)"),
        ("run past hard failures", "yes (--run-all-gates)" if report.run_all_gates else "no"),
        ("machine", f"{_text(machine.platform)} {_text(machine.cpus)} CPUs" if machine else "-"),
        ("suite", _text(report.suite)),
    ]
    work = report.work_folder
    if work is not None and work.bytes is not None:
        facts.append(("work folder at the end", f"{work.path}: {work.bytes / 1e9:.3f} GB"))
    return facts


def report_page(
    doc: Mapping[str, Any],
    report_dir: Path | None = None,
    responses: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> Page:
    """The page for a run: `doc` as gate-report.json holds it, responses per gate (default: read from report_dir)."""
    report_dir = Path(report_dir) if report_dir is not None else None
    if responses is None:
        responses = {}
        if report_dir is not None:
            for gate in QUERY_GATES:
                responses[gate] = read_responses(report_dir / RESPONSE_FILES[gate])
                responses[f"{gate}-baseline"] = read_responses(report_dir / f"{gate}-baseline-responses.jsonl")
    report = typed_report(doc)
    raw_gates = found if isinstance(found := doc.get("gates"), Mapping) else {}
    cand = report.candidate or CandidateEntry()
    criteria = report.criteria or CriteriaSummary()
    notes = [cand.note] if cand.note else []
    notes += [f"collection error: {e}" for e in report.collection_errors or ()]
    if criteria.inside_interval:
        notes.append(_text(criteria.sentence))
    facts = _facts(report)
    gates, tables, sections, figures_json = [], [], [], []
    for gate, g in (report.gates or {}).items():
        figures = g.figures or GateFigures()
        gates.append(
            GateRow(
                gate,
                _text(g.name),
                _text(g.kind),
                _text(g.status),
                g.seconds,
                peak_memory(figures),
                g.reasons[0] if g.reasons else "",
                dict(g.tests or {}),
                key_figures(figures),
            )
        )
        if isinstance(figures, Gate0Figures):
            for t in (
                _marker_table(
                    "gate0: tool markers the template emits",
                    figures.markers,
                    "Each must be one control token: text cannot forge it, and the model sees it whole.",
                ),
                _marker_table(
                    "gate0: the seed plan's delimiters (for reference)",
                    figures.seed_delimiters,
                    "[/TOOL_CALLS] is not part of Devstral's format: several tokens is no failure.",
                ),
            ):
                if t:
                    tables.append(t)
        trained = figures if isinstance(figures, TrainedGateFigures) else None
        if trained and trained.comparison and trained.comparison.detectable:
            notes.append(f"{gate} vs baseline: {trained.comparison.detectable.sentence}")
        raw = (raw_gates.get(gate) or {}).get("figures") or {}
        followup = trained.followup if trained else None
        for t in (
            (_category_table(gate, pass_rates(trained)) or _pass_rate_table(gate, trained)) if trained else None,
            _criteria_table(gate, criteria.rows or ()),
            _heldout_table(gate, trained.heldout if trained else None),
            _category_table(gate, pass_rates(followup), "multi-turn pass per category") if followup else None,
            _steps_table(gate, raw.get("steps")),
        ):
            if t:
                tables.append(t)
        rows = trained.queries if trained else figures.queries if isinstance(figures, Gate3Figures) else None
        # Gate 2 lists query ids only
        section = query_section(gate, rows, responses.get(gate, {}), responses.get(f"{gate}-baseline", {}))
        if section and gate in QUERY_GATES:
            sections.append(section)
        if raw:
            figures_json.append((gate, json.dumps(raw, indent=2, ensure_ascii=False)))
    gate3 = (report.gates or {}).get("gate3")
    screening = gate3.figures.screening if gate3 and isinstance(gate3.figures, Gate3Figures) else None
    if screening is not None:  # an endpoint candidate: all queries, beside the verdict
        title = f"not judged: {interval_text(screening.interval)} of every query"
        tables[:0] = [
            t
            for t in (
                _category_table("screening", pass_rates(screening), title),
                _category_table("screening", pass_rates(screening.followup), "multi-turn pass per category")
                if screening.followup
                else None,
            )
            if t
        ]
        answered = read_responses(report_dir / "screening-responses.jsonl") if report_dir else {}
        if section := query_section("screening", screening.queries, answered):
            sections.insert(0, section)
    reasons = report.reasons or ()
    return Page(
        title=f"punie-gates: {report.verdict or '?'} for {cand.spec or 'candidate'}",
        verdict=_text(report.verdict),
        stopped_at=report.stopped_at,
        reasons=reasons,
        flags=tuple(f for f in report.flags or () if f not in reasons),
        notes=tuple(notes),
        facts=tuple(facts),
        gates=tuple(gates),
        tables=tuple(tables),
        curves=tuple(_curves(report.gates or {}, report_dir)),
        sections=tuple(sections),
        figures=tuple(figures_json),
        data=doc,
    )
