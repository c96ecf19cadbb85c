"""The terminal's verdict table: the gates, their steps, the comparisons and the verdict's reasons.

The figures are read through their types: the run's document (Report.to_json) typed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from punie_gates.decision.page_words import serving_line
from punie_gates.decision.report_document import Report, demo_note
from punie_gates.decision.report_read import typed_report
from punie_gates.decision.report_text import gb_text, interval_brief, short, size_text
from punie_gates.results.document import CriteriaSummary, RunAnswering, RunResults
from punie_gates.results.gate2 import Gate2Figures
from punie_gates.results.gate3 import Gate3Figures
from punie_gates.results.queries import MultiTurn
from punie_gates.results.shared import GateFigures, McNemarTest, StepRow
from punie_gates.results.training import TrainedGateFigures


def steps_line(gate: str, steps: Sequence[StepRow]) -> str:
    """One terminal line: what each step of the gate cost."""
    parts = []
    for step in steps:
        if step.part_of:
            continue  # inside another step's figures already
        text = f"{step.step} {step.seconds or 0:.1f}s"
        if step.cached:
            text += " (cached)"
        memory = [gb_text(step.peak_memory_gb), gb_text(step.peak_rss_gb)]
        if any(memory):
            text += f" {'/'.join(m or '-' for m in memory)} GB"
        if (step.bytes_written or 0) >= 1000:  # bookkeeping files (a few bytes) only in the table
            text += f" +{size_text(step.bytes_written)}"
        if step.ok is False:
            text += " FAILED"
        parts.append(text)
    return f"{gate}  steps: " + ", ".join(parts)


def _figures(typed: RunResults) -> dict[str, GateFigures]:
    return {gate: g.figures or GateFigures() for gate, g in (typed.gates or {}).items()}


def terminal_lines(report: Report, report_paths: Sequence[Path] = (), report_missing: str | None = None) -> list[str]:
    verdict = report.verdict
    typed = typed_report(report.to_json())
    figures = _figures(typed)
    out = ["", "=" * 24 + " punie-gates verdict " + "=" * 24]
    ran = any(r.status != "not_run" for r in report.results.values())
    for gate, r in report.results.items() if ran or verdict.verdict != "ERROR" else ():
        reason = f"  {short(r.reasons[0], 90)}" if r.reasons and r.status != "passed" else ""
        out.append(f"{gate}  {r.kind:<7} {r.status.upper():<8} {r.seconds:7.1f}s  {r.name}{reason}")
    for gate, f in figures.items():
        if f.steps:
            out.append(steps_line(gate, f.steps))
    work = typed.work_folder
    if work is not None:
        out.append(f"work folder: {work.path} ({size_text(work.bytes)}; `punie-gates work list` shows what it holds)")
    gate2 = figures.get("gate2")
    if isinstance(gate2, Gate2Figures) and gate2.bench_summary:
        out.append(f"speed to verdict (--bench): {gate2.bench_summary}")
    out += _comparison_lines(report, typed)
    for gate, f in figures.items():
        h = f.heldout if isinstance(f, TrainedGateFigures) else None
        if h is not None and h.total is not None:
            out.append(
                f"{gate} held-out next steps: {interval_brief(h.interval)}"
                + (f" vs baseline {interval_brief(h.baseline_interval)}" if h.baseline_interval else "")
                + f" ({h.seconds} s"
                + (", limited" if h.limited else "")
                + ")"
            )
    judged = typed.criteria or CriteriaSummary()
    if judged.inside_interval:
        out.append(
            f"criteria: {judged.inside_interval} of {judged.count} decided inside their interval "
            "(a note, not a flag; gate-report.md lists them)"
        )
    if report.is_demo:
        out.append(f"candidate: {report.candidate} ({demo_note(report.candidate)})")
    where = f" (stopped at {verdict.stopped_at})" if verdict.stopped_at else ""
    during = (typed.interrupted.gate if typed.interrupted else None) or "the run"
    if verdict.verdict == "ERROR":
        where = ": not judged (the run stopped before it could judge the candidate; fix the cause below and run again)"
    elif report.interrupted and verdict.verdict == "NO_GO" and verdict.stopped_at:
        # One story: the hard failure decided the run; the interrupt came after it.
        where = f" at {verdict.stopped_at}; then interrupted during {during}"
    elif report.interrupted:
        where += f" (interrupted during {during})"
    out.append(f"VERDICT: {verdict.verdict}{where}")
    width = 600 if verdict.verdict == "ERROR" else 150  # the cause to act on is shown whole
    for reason in verdict.reasons if verdict.verdict != "GO" else ():
        cause = reason.startswith(("not judged: ", "internal error: "))  # a cause to act on: shown whole
        reason = reason.removeprefix("not judged: ") if verdict.verdict == "ERROR" else reason  # the header says it
        out.append(f"  - {short(reason, 600 if cause else width)}")
    if verdict.flags and verdict.verdict != "GO_WITH_FLAGS":  # there the reasons are the flags
        out += [f"  flag: {short(flag, 150)}" for flag in verdict.flags]
    if report_paths:
        out.append("report: " + ", ".join(str(p) for p in report_paths))
    if report_missing:
        out.append(f"report: NOT written: {report_missing}")
    return out


def _comparison_lines(report: Report, typed: RunResults) -> list[str]:
    """How the answers were asked, and one line per gate compared with the baseline."""
    out = []
    figures = _figures(typed)
    asked = any(f.answering is not None for f in figures.values())
    if not asked:
        pass  # no gate asked a query (e.g. the run stopped at Gate 1): nothing to say how
    elif report.answer_via == "server":
        versions = next(
            (f.answering.server.versions for f in figures.values() if f.answering and f.answering.server), None
        )
        out.append("answers: through mlx_lm.server" + (f" (mlx-lm {versions.get('mlx-lm')})" if versions else ""))
        out += [f"  {serving_line(plan)}" for plan in (typed.answering or RunAnswering()).serving or ()]
    elif report.answer_via == "endpoint":
        out.append(
            f"answers: from the endpoint {report.candidate} (screened: the gates that need its files did not run)"
        )
    elif report.answer_via:
        out.append("answers: in-process (--answer-via inprocess)")
    for f in figures.values() if asked else ():
        baseline = f.answering.baseline_endpoint if f.answering else None
        if baseline is not None:
            out.append(f"baseline answers: from the endpoint {baseline.endpoint} (model {baseline.request_model})")
            break
    gate3 = figures.get("gate3")
    screening = gate3.screening if isinstance(gate3, Gate3Figures) else None
    if screening is not None:
        follow = screening.followup or MultiTurn()
        out.append(
            f"screening (not judged): {interval_brief(screening.interval)} of every query; multi-turn pass "
            f"{interval_brief(follow.interval)}"
        )
    not_made: dict[str, list[str]] = {}  # reason -> gates
    for gate, f in figures.items():
        if not isinstance(f, TrainedGateFigures) or f.comparison is None:
            continue
        comparison = f.comparison
        if not comparison.made:
            not_made.setdefault(comparison.reason or "no comparison made", []).append(gate)
            continue
        m = f.mcnemar or McNemarTest()
        p_two, p_worse = (1.0 if p is None else p for p in (m.p_two_sided, m.p_candidate_worse))
        out.append(
            f"{gate} vs baseline: candidate {interval_brief(f.interval)} vs baseline {interval_brief(f.baseline_interval)}, "
            f"McNemar {m.only_candidate} vs {m.only_baseline} discordant, p = {p_two:.3g} "
            f"(one-sided {p_worse:.3g}): {comparison.outcome}"
        )
        if comparison.detectable is not None:
            out.append(f"{gate} vs baseline: {comparison.detectable.sentence}")
    out += [f"{', '.join(gates)} vs baseline: {reason}" for reason, gates in not_made.items()]
    return out
