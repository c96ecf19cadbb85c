"""The report page built from the report document, read once through its types
(punie_gates.results, leniently: decision.report_read).

The page shows the typed document and the saved responses beside it (gateN-responses.jsonl,
`{"id", "response"}`, full text where the document keeps 300 characters; a baseline's in
gateN-baseline-responses.jsonl). A part a run did not record is left out:

- per query row of a gate's `queries` (results.queries.QueryRow, Gate 3's ZeroShotRow): its
  category (else from the id, `category-NN`), the follow-up turn's answer and the baseline's
  answer (with its own follow-up); a saved record's `tool_calls` (an answer through
  mlx_lm.server) is shown under its text;
- per gate: the gate row (status, key figures, peak memory: Gate 1's and every step's), Gate 0's
  marker tables, pass rates per category with intervals and McNemar, the multi-turn pass, the
  held-out next steps, the document's criteria of the gate, the loss curve;
- two parts are shown as recorded, whatever keys they hold: each gate's `steps` table (its
  columns the union of the steps' keys) and the folded JSON of its figures;
- the run's facts (candidate, serving, machine, `work_folder`).
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
    category_table,
    criteria_table,
    curves,
    heldout_table,
    marker_table,
    pass_rate_table,
    pass_rates,
    steps_table,
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
                marker_table(
                    "gate0: tool markers the template emits",
                    figures.markers,
                    "Each must be one control token: text cannot forge it, and the model sees it whole.",
                ),
                marker_table(
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
            (category_table(gate, pass_rates(trained)) or pass_rate_table(gate, trained)) if trained else None,
            criteria_table(gate, criteria.rows or ()),
            heldout_table(gate, trained.heldout if trained else None),
            category_table(gate, pass_rates(followup), "multi-turn pass per category") if followup else None,
            steps_table(gate, raw.get("steps")),
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
                category_table("screening", pass_rates(screening), title),
                category_table("screening", pass_rates(screening.followup), "multi-turn pass per category")
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
        curves=tuple(curves(report.gates or {}, report_dir)),
        sections=tuple(sections),
        figures=tuple(figures_json),
        data=doc,
    )
