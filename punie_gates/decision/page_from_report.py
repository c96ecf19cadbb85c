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
from punie_gates.decision.page_figures import _peak_memory, key_figures
from punie_gates.decision.page_queries import QUERY_GATES, RESPONSE_FILES, query_section, read_responses
from punie_gates.decision.page_tables import (
    _category_table,
    _criteria_table,
    _curves,
    _heldout_table,
    _marker_table,
    _pass_rate_table,
    _steps_table,
)
from punie_gates.decision.page_words import interval_text, serving_line


def _first(reasons: Any) -> str:
    return str(reasons[0]) if isinstance(reasons, list) and reasons else ""


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
    gates_doc: Mapping[str, Any] = doc.get("gates") or {}
    cand = doc.get("candidate") or {}
    notes = [cand["note"]] if cand.get("note") else []
    notes += [f"collection error: {e}" for e in doc.get("collection_errors") or ()]
    if (doc.get("criteria") or {}).get("inside_interval"):
        notes.append(doc["criteria"]["sentence"])
    machine = doc.get("machine") or {}
    facts = [("candidate", str(cand.get("spec") or "-"))]
    if doc.get("baseline"):
        facts.append(("baseline", str(doc["baseline"])))
    answering = doc.get("answering") or {}
    if answering.get("note"):
        facts.append(("answers", str(answering["note"])))
    facts += [("served", serving_line(plan)) for plan in answering.get("serving") or ()]
    facts += [
        ("started", str(doc.get("started", "-"))),
        ("seconds", f"{doc['seconds']:.1f}" if isinstance(doc.get("seconds"), (int, float)) else "-"),
        ("complete run", "yes" if doc.get("complete") else "no (a subset of the gates was selected)"),
        ("run past hard failures", "yes (--run-all-gates)" if doc.get("run_all_gates") else "no"),
        ("machine", " ".join(str(machine.get(k, "")) for k in ("platform", "cpus")) + " CPUs" if machine else "-"),
        ("suite", str(doc.get("suite", ""))),
    ]
    if isinstance(work := doc.get("work_folder"), Mapping) and isinstance(work.get("bytes"), int):
        facts.append(("work folder at the end", f"{work.get('path')}: {work['bytes'] / 1e9:.3f} GB"))
    gates, tables, sections, figures_json = [], [], [], []
    for gate, g in gates_doc.items():
        figures = g.get("figures") or {}
        gates.append(
            GateRow(
                gate,
                str(g.get("name", "")),
                str(g.get("kind", "")),
                str(g.get("status", "")),
                g.get("seconds"),
                _peak_memory(figures),
                _first(g.get("reasons")),
                dict(g.get("tests") or {}),
                key_figures(figures),
            )
        )
        if gate == "gate0":
            for t in (
                _marker_table(
                    "gate0: tool markers the template emits",
                    figures.get("markers"),
                    "Each must be one control token: text cannot forge it, and the model sees it whole.",
                ),
                _marker_table(
                    "gate0: the seed plan's delimiters (for reference)",
                    figures.get("seed_delimiters"),
                    "[/TOOL_CALLS] is not part of Devstral's format: several tokens is no failure.",
                ),
            ):
                if t:
                    tables.append(t)
        comparison = figures.get("comparison")
        if isinstance(comparison, Mapping) and isinstance(comparison.get("detectable"), Mapping):
            notes.append(f"{gate} vs baseline: {comparison['detectable'].get('sentence')}")
        followup = found if isinstance(found := figures.get("followup"), Mapping) else {}
        for t in (
            _category_table(gate, figures) or _pass_rate_table(gate, figures),
            _criteria_table(gate, (doc.get("criteria") or {}).get("rows")),
            _heldout_table(gate, figures.get("heldout")),
            _category_table(gate, followup, "multi-turn pass per category"),
            _steps_table(gate, figures),
        ):
            if t:
                tables.append(t)
        section = (
            query_section(gate, figures, responses.get(gate, {}), responses.get(f"{gate}-baseline", {}))
            if gate in QUERY_GATES
            else None
        )  # Gate 2 lists query ids only
        if section:
            sections.append(section)
        if figures:
            figures_json.append((gate, json.dumps(figures, indent=2, ensure_ascii=False)))
    screening = (gates_doc.get("gate3") or {}).get("figures", {}).get("screening")
    if isinstance(screening, Mapping):  # an endpoint candidate: all queries, beside the verdict
        title = f"not judged: {interval_text(screening.get('interval'))} of every query"
        tables[:0] = [
            t
            for t in (
                _category_table("screening", screening, title),
                _category_table("screening", screening.get("followup") or {}, "multi-turn pass per category"),
            )
            if t
        ]
        answered = read_responses(report_dir / "screening-responses.jsonl") if report_dir else {}
        if section := query_section("screening", screening, answered):
            sections.insert(0, section)
    return Page(
        title=f"punie-gates: {doc.get('verdict', '?')} for {cand.get('spec') or 'candidate'}",
        verdict=str(doc.get("verdict", "")),
        stopped_at=doc.get("stopped_at"),
        reasons=tuple(map(str, doc.get("reasons") or ())),
        flags=tuple(str(f) for f in doc.get("flags") or () if f not in (doc.get("reasons") or ())),
        notes=tuple(notes),
        facts=tuple(facts),
        gates=tuple(gates),
        tables=tuple(tables),
        curves=tuple(_curves(doc, report_dir)),
        sections=tuple(sections),
        figures=tuple(figures_json),
        data=doc,
    )
