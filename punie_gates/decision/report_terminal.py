"""The terminal's verdict table: the gates, their steps, the comparisons and the verdict's reasons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from punie_gates.decision import criteria
from punie_gates.decision.page_words import serving_line
from punie_gates.decision.report_document import Report, demo_note, serving_plans
from punie_gates.decision.report_text import _gb, _interval, _short, _size


def steps_line(gate: str, steps: Sequence[Mapping[str, Any]]) -> str:
    """One terminal line: what each step of the gate cost."""
    parts = []
    for step in steps:
        if step.get("part_of"):
            continue  # inside another step's figures already
        text = f"{step.get('step')} {step.get('seconds', 0):.1f}s"
        if step.get("cached"):
            text += " (cached)"
        memory = [_gb(step.get(k)) for k in ("peak_memory_gb", "peak_rss_gb")]
        if any(memory):
            text += f" {'/'.join(m or '-' for m in memory)} GB"
        if (step.get("bytes_written") or 0) >= 1000:  # bookkeeping files (a few bytes) only in the table
            text += f" +{_size(step['bytes_written'])}"
        if step.get("ok") is False:
            text += " FAILED"
        parts.append(text)
    return f"{gate}  steps: " + ", ".join(parts)


def terminal_lines(report: Report, report_paths: Sequence[Path] = (), report_missing: str | None = None) -> list[str]:
    verdict = report.verdict
    out = ["", "=" * 24 + " punie-gates verdict " + "=" * 24]
    ran = any(r.status != "not_run" for r in report.results.values())
    for gate, r in report.results.items() if ran or verdict.verdict != "ERROR" else ():
        reason = f"  {_short(r.reasons[0], 90)}" if r.reasons and r.status != "passed" else ""
        out.append(f"{gate}  {r.kind:<7} {r.status.upper():<8} {r.seconds:7.1f}s  {r.name}{reason}")
    for gate, r in report.results.items():
        if r.figures.get("steps"):
            out.append(steps_line(gate, r.figures["steps"]))
    if report.work_folder:
        out.append(
            f"work folder: {report.work_folder['path']} ({_size(report.work_folder['bytes'])}; "
            "`punie-gates work list` shows what it holds)"
        )
    gate2 = report.results.get("gate2")
    if gate2 is not None and gate2.figures.get("bench_summary"):
        out.append(f"speed to verdict (--bench): {gate2.figures['bench_summary']}")
    out += _comparison_lines(report)
    for gate, r in report.results.items():
        h = r.figures.get("heldout")
        if isinstance(h, dict) and "total" in h:
            out.append(
                f"{gate} held-out next steps: {_interval(h.get('interval'))}"
                + (f" vs baseline {_interval(h.get('baseline_interval'))}" if h.get("baseline_interval") else "")
                + f" ({h.get('seconds')} s"
                + (", limited" if h.get("limited") else "")
                + ")"
            )
    judged = criteria.summary({gate: r.figures for gate, r in report.results.items()})
    if judged["inside_interval"]:
        out.append(
            f"criteria: {judged['inside_interval']} of {judged['count']} decided inside their interval "
            "(a note, not a flag; gate-report.md lists them)"
        )
    if report.is_demo:
        out.append(f"candidate: {report.candidate} ({demo_note(report.candidate)})")
    where = f" (stopped at {verdict.stopped_at})" if verdict.stopped_at else ""
    if verdict.verdict == "ERROR":
        where = ": not judged (the run stopped before it could judge the candidate; fix the cause below and run again)"
    elif report.interrupted and verdict.verdict == "NO_GO" and verdict.stopped_at:
        # One story: the hard failure decided the run; the interrupt came after it.
        where = f" at {verdict.stopped_at}; then interrupted during {report.interrupted.get('gate') or 'the run'}"
    elif report.interrupted:
        where += f" (interrupted during {report.interrupted.get('gate') or 'the run'})"
    out.append(f"VERDICT: {verdict.verdict}{where}")
    width = 600 if verdict.verdict == "ERROR" else 150  # the cause to act on is shown whole
    for reason in verdict.reasons if verdict.verdict != "GO" else ():
        cause = reason.startswith(("not judged: ", "internal error: "))  # a cause to act on: shown whole
        reason = reason.removeprefix("not judged: ") if verdict.verdict == "ERROR" else reason  # the header says it
        out.append(f"  - {_short(reason, 600 if cause else width)}")
    if verdict.flags and verdict.verdict != "GO_WITH_FLAGS":  # there the reasons are the flags
        out += [f"  flag: {_short(flag, 150)}" for flag in verdict.flags]
    if report_paths:
        out.append("report: " + ", ".join(str(p) for p in report_paths))
    if report_missing:
        out.append(f"report: NOT written: {report_missing}")
    return out


def _comparison_lines(report: Report) -> list[str]:
    """How the answers were asked, and one line per gate compared with the baseline."""
    out = []
    asked = any(isinstance(r.figures.get("answering"), dict) for r in report.results.values())
    if not asked:
        pass  # no gate asked a query (e.g. the run stopped at Gate 1): nothing to say how
    elif report.answer_via == "server":
        versions = next(
            (
                f["answering"]["server"].get("versions")
                for f in (r.figures for r in report.results.values())
                if isinstance(f.get("answering"), dict) and isinstance(f["answering"].get("server"), dict)
            ),
            None,
        )
        out.append("answers: through mlx_lm.server" + (f" (mlx-lm {versions.get('mlx-lm')})" if versions else ""))
        out += [f"  {serving_line(plan)}" for plan in serving_plans(report.results)]
    elif report.answer_via == "endpoint":
        out.append(
            f"answers: from the endpoint {report.candidate} (screened: the gates that need its files did not run)"
        )
    elif report.answer_via:
        out.append("answers: in-process (--answer-via inprocess)")
    for r in report.results.values():
        baseline = (r.figures.get("answering") or {}).get("baseline_endpoint") if asked else None
        if isinstance(baseline, dict):
            out.append(
                f"baseline answers: from the endpoint {baseline.get('endpoint')} (model {baseline.get('request_model')})"
            )
            break
    screening = (report.results["gate3"].figures if "gate3" in report.results else {}).get("screening")
    if isinstance(screening, dict):
        follow = screening.get("followup") or {}
        out.append(
            f"screening (not judged): {_interval(screening.get('interval'))} of every query; multi-turn pass "
            f"{_interval(follow.get('interval'))}"
        )
    not_made: dict[str, list[str]] = {}  # reason -> gates
    for gate, r in report.results.items():
        comparison = r.figures.get("comparison")
        if not isinstance(comparison, dict):
            continue
        if not comparison.get("made"):
            not_made.setdefault(str(comparison.get("reason", "no comparison made")), []).append(gate)
            continue
        iv, base, m = (
            r.figures.get("interval") or {},
            r.figures.get("baseline_interval") or {},
            r.figures.get("mcnemar") or {},
        )
        out.append(
            f"{gate} vs baseline: candidate {_interval(iv)} vs baseline {_interval(base)}, McNemar "
            f"{m.get('only_candidate')} vs {m.get('only_baseline')} discordant, p = {m.get('p_two_sided', 1):.3g} "
            f"(one-sided {m.get('p_candidate_worse', 1):.3g}): {comparison.get('outcome')}"
        )
        if isinstance(comparison.get("detectable"), dict):
            out.append(f"{gate} vs baseline: {comparison['detectable'].get('sentence')}")
    out += [f"{', '.join(gates)} vs baseline: {reason}" for reason, gates in not_made.items()]
    return out
