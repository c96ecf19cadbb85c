"""gate-report.md: the report document (gate-report.json's dict) as markdown, read through its types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from punie_gates.decision.page_words import serving_line
from punie_gates.decision.report_read import typed_report
from punie_gates.decision.report_text import cell, gb_text, interval_brief, mcnemar_brief, short, size_text
from punie_gates.results.document import CriteriaSummary, RunAnswering, RunResults
from punie_gates.results.gate3 import Gate3Figures
from punie_gates.results.queries import CategoryFigures, Heldout, HeldoutLeftOut, QueryAnswer, QueryRow, ZeroShotRow
from punie_gates.results.shared import (
    Answering,
    CriterionRow,
    GateFigures,
    McNemarTest,
    StepRow,
    ToolParsing,
    WilsonInterval,
)
from punie_gates.results.training import TrainedGateFigures


def _server_lines(answering: Answering | None) -> list[str]:
    if answering is None:
        return []
    lines = [f"- answered via: {answering.via}"]
    for server in (answering.server, answering.baseline_server):
        if server is None:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in (server.versions or {}).items())
        parsing = server.tool_parsing or ToolParsing()
        starts = ", ".join(
            f"started in {s.startup_s:.1f} s, stopped in {s.stop_s or 0:.1f} s"
            # a pause shorter than the stall timeout: the answers' times include it
            + (
                f", /health unanswered for up to {s.longest_silence_s:.0f} s while answering"
                if s.longest_silence_s
                else ""
            )
            for s in server.starts or ()
        )
        lines.append(f"- {server.model} server: `{server.command or ''}` ({starts}); log `{server.log}`")
        lines.append(f"  - versions: {versions}")
        lines.append(
            f"  - tool parser: {parsing.tool_parser} (tokenizer {parsing.tokenizer_class})"
            + (f": {parsing.note}" if parsing.note else "")
        )
    return lines


def _query_table(rows: Sequence[QueryRow | ZeroShotRow]) -> list[str]:
    """Per query: the candidate's answer and, when there is one, the baseline's beside it."""
    rows = [r for r in rows if r.passed is not None]
    if not rows:
        return []
    both = any(isinstance(r, QueryRow) and r.baseline is not None for r in rows)
    head = "| query | candidate | tools | fields | reason |"
    rule = "|---|---|---|---|---|"
    if both:
        head += " baseline | tools | fields | reason |"
        rule += "---|---|---|---|"
    out = ["", head, rule]
    for r in rows:
        mine = r if isinstance(r, QueryRow) else QueryAnswer(passed=r.passed)  # Gate 3's rows: calls, not tools
        cells: list[Any] = [r.id, r.passed, mine.tools, mine.fields, mine.reason]
        if both:
            b = (r.baseline if isinstance(r, QueryRow) else None) or QueryAnswer()
            cells += [b.passed, b.tools, b.fields, b.reason]
        out.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return out


def _category_table(
    categories: Mapping[str, CategoryFigures] | None,
    interval: WilsonInterval | None,
    baseline_interval: WilsonInterval | None = None,
    mcnemar: McNemarTest | None = None,
) -> list[str]:
    if categories is None or interval is None:
        return []
    both = baseline_interval is not None
    head, rule = "| category | candidate | minimum |", "|---|---|---|"
    if both:
        head += " baseline | paired (exact McNemar) |"
        rule += "---|---|"
    out = ["", head, rule]
    entries = [("overall", CategoryFigures(interval=interval, baseline_interval=baseline_interval, mcnemar=mcnemar))]
    entries += list(categories.items())
    for name, c in entries:
        cells: list[Any] = [name, interval_brief(c.interval), "" if c.min is None else c.min]
        if both:
            cells += [interval_brief(c.baseline_interval), mcnemar_brief(c.mcnemar)]
        out.append("| " + " | ".join(cell(x, 200) for x in cells) + " |")
    return out


def _gate_tables(figures: GateFigures) -> list[str]:
    """A gate's pass rates per category and its query rows (the gates that ask queries)."""
    if isinstance(figures, TrainedGateFigures):
        return _category_table(
            figures.categories, figures.interval, figures.baseline_interval, figures.mcnemar
        ) + _query_table(figures.queries or ())
    if isinstance(figures, Gate3Figures):
        return _query_table(figures.queries or ())
    return []


_TABLED = ("queries", "categories", "answering", "screening")


def markdown(doc: Mapping[str, Any]) -> str:
    """gate-report.md from the gate-report.json document."""
    report = typed_report(doc)
    raw_gates: Mapping[str, Any] = found if isinstance(found := doc.get("gates"), Mapping) else {}
    lines = [f"# punie-gates report: {report.verdict}", ""]
    cand = report.candidate
    spec, note = (cand.spec, cand.note) if cand else (None, None)
    lines.append(f"- candidate: `{spec}`" + (f" ({note})" if note else ""))
    if report.baseline:
        lines.append(f"- baseline: `{report.baseline}`")
    else:
        lines.append(
            "- baseline: none given: no comparison with the production model was made; "
            "the verdict rests on the thresholds alone"
        )
    answering = report.answering or RunAnswering()
    if answering.note:
        lines.append(f"- {answering.note}")
    lines += [f"- {serving_line(plan)}" for plan in answering.serving or ()]
    lines.append(f"- stopped at: {report.stopped_at or '-'}; complete run: {report.complete}")
    lines += [f"- {r}" for r in report.reasons or ()]
    lines += [f"- flag: {f}" for f in report.flags or () if f not in (report.reasons or ())]
    judged = report.criteria or CriteriaSummary()
    if judged.sentence:
        lines.append(f"- {judged.sentence}")
    lines += ["", "| gate | name | kind | status | seconds | reason |", "|---|---|---|---|---|---|"]
    gates = report.gates or {}
    for gate, g in gates.items():
        reason = short(g.reasons[0], 120).replace("|", "\\|") if g.reasons else ""
        lines.append(f"| {gate} | {g.name} | {g.kind} | **{g.status}** | {g.seconds or 0:.1f} | {reason} |")
    lines += _criteria_markdown(judged.rows or ())
    lines += _steps_markdown(report)
    gate3 = gates["gate3"].figures if "gate3" in gates else None
    screening = gate3.screening if isinstance(gate3, Gate3Figures) else None
    if screening is not None:  # an endpoint candidate: every query, beside the verdict
        lines += [
            "",
            "## screening (not judged)",
            "",
            f"- {screening.note}",
            f"- {screening.correct}/{screening.total} queries passed",
        ]
        lines += _category_table(screening.categories, screening.interval) + _query_table(screening.queries or ())
    for gate, g in gates.items():
        raw = (raw_gates.get(gate) or {}).get("figures") or {}
        if not raw:
            continue
        figures = g.figures or GateFigures()
        lines += ["", f"## {gate}: {g.name}", ""]
        tables = _gate_tables(figures)
        trained = figures if isinstance(figures, TrainedGateFigures) else None
        heldout = _heldout_markdown(trained.heldout if trained else None)
        for key, value in raw.items():  # every figure the gate recorded, those shown below apart
            if (
                key in ("steps", "criteria")
                or (key == "heldout" and heldout)
                or (key in _TABLED and (tables or key == "answering"))
            ):
                continue  # steps: in the resources table above; criteria: in their own
            lines.append(f"- {key}: `{short(value, 300)}`")
        comparison = trained.comparison if trained else None
        if comparison is not None and comparison.detectable is not None:
            lines.append(f"- what the comparison could see: {comparison.detectable.sentence}")
        lines += _server_lines(figures.answering) + heldout + tables
    return "\n".join(lines) + "\n"


def _heldout_markdown(h: Heldout | None) -> list[str]:
    """The held-out next-step measure beside the queries: overall, the baseline's, per category."""
    if h is None or h.total is None:
        return []
    left = h.left_out or HeldoutLeftOut()
    out = [
        f"- held-out next steps (a measure beside the queries): candidate {interval_brief(h.interval)}"
        + (
            f", baseline {interval_brief(h.baseline_interval)}; {mcnemar_brief(h.mcnemar)}"
            if h.baseline_interval
            else ""
        ),
        f"  - {h.total} turns ({h.tool_turns} with a call, {h.tool_turns_passed} of them passed) "
        f"of `{h.source}`, "
        f"{h.conversations} conversations; left out {left.in_train or 0} also in train.jsonl"
        + (f"; the first {h.total} of {h.available} (--heldout-limit)" if h.limited else "")
        + f"; {h.seconds} s ({h.seconds_per_turn} s a turn)"
        + (f", the baseline's {h.baseline_seconds} s" if h.baseline_seconds is not None else ""),
    ]
    if h.categories:
        out.append(
            "  - per category: "
            + "; ".join(
                f"{name} {interval_brief(c.interval)}"
                + (f" vs {interval_brief(c.baseline_interval)}" if c.baseline_interval else "")
                for name, c in h.categories.items()
            )
        )
    if h.detectable is not None:
        out.append(f"  - {h.detectable.sentence}")
    return out


def _criteria_markdown(rows: Sequence[CriterionRow]) -> list[str]:
    """Per count criterion: its count, threshold, interval and whether the data decided it."""
    if not rows:
        return []
    out = [
        "",
        "## Criteria against their intervals",
        "",
        "A criterion is decided by the data when its threshold lies outside the pass rate's 95% Wilson "
        "interval; inside it, the sample cannot tell on which side the true rate is (docs/statistics.md).",
        "",
        "| gate | criterion | count | minimum | threshold | interval | met | decided |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        iv = r.interval or WilsonInterval()
        cells = [
            r.gate,
            r.criterion,
            f"{r.passed}/{r.total}",
            r.min,
            f"{100 * (r.threshold or 0):.0f}%",
            f"{100 * (iv.low or 0):.0f}-{100 * (iv.high or 0):.0f}%",
            r.met,
            r.decided,
        ]
        out.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return out


def step_note(step: StepRow) -> str:
    """A step's remarks in its row: cached, FAILED, the fusion method, what it is part of, a note, a fallback."""
    notes = ["cached" if step.cached else "", "FAILED" if step.ok is False else ""]
    notes += [f"{k} {v}" for k, v in (("method", step.method), ("part_of", step.part_of)) if v]
    notes += [f"{k} {v}" for k, v in (("note", step.note), ("fallback", step.fallback)) if v]
    return "; ".join(n for n in notes if n).replace("|", "\\|")


def _steps_markdown(report: RunResults) -> list[str]:
    """The resources table: one row per measured step of every gate, then the work folder's size."""
    rows = []
    for gate, g in (report.gates or {}).items():
        for step in (g.figures.steps if g.figures else None) or ():
            rows.append(
                f"| {gate} | {step.step or ''} | {step.seconds or 0:.1f} | "
                f"{gb_text(step.peak_memory_gb)} | {gb_text(step.peak_rss_gb)} | "
                f"{size_text(step.bytes_written)} | {step_note(step)} |"
            )
    work = report.work_folder
    if not rows and not work:
        return []
    out = ["", "## Resources per step", ""]
    if rows:
        out += [
            "Peak memory: MLX's own allocations, and the process's resident set. Written: how much the work "
            "folder grew during the step.",
            "",
            "| gate | step | seconds | MLX peak GB | process peak GB | written | |",
            "|---|---|---|---|---|---|---|",
        ]
        out += rows
    if work:
        out += ["", f"Work folder at the end: `{work.path}`, {size_text(work.bytes)}."]
    return out
