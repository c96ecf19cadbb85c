"""gate-report.md: the report document (gate-report.json's dict) as markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from punie_gates.decision.page_words import serving_line
from punie_gates.decision.report_text import _cell, _gb, _interval, _mcnemar, _short, _size


def _server_lines(figures: dict[str, Any]) -> list[str]:
    answering = figures.get("answering")
    if not isinstance(answering, dict):
        return []
    lines = [f"- answered via: {answering.get('via')}"]
    for key in ("server", "baseline_server"):
        server = answering.get(key)
        if not isinstance(server, dict):
            continue
        versions = ", ".join(f"{k} {v}" for k, v in (server.get("versions") or {}).items())
        parsing = server.get("tool_parsing") or {}
        starts = ", ".join(
            f"started in {s['startup_s']:.1f} s, stopped in {s['stop_s'] or 0:.1f} s"
            # a pause shorter than the stall timeout: the answers' times include it
            + (
                f", /health unanswered for up to {s['longest_silence_s']:.0f} s while answering"
                if s.get("longest_silence_s")
                else ""
            )
            for s in server.get("starts") or ()
        )
        lines.append(
            f"- {server.get('model')} server: `{server.get('command', '')}` ({starts}); log `{server.get('log')}`"
        )
        lines.append(f"  - versions: {versions}")
        lines.append(
            f"  - tool parser: {parsing.get('tool_parser')} (tokenizer {parsing.get('tokenizer_class')})"
            + (f": {parsing['note']}" if parsing.get("note") else "")
        )
    return lines


def _query_table(rows: list[Any]) -> list[str]:
    """Per query: the candidate's answer and, when there is one, the baseline's beside it."""
    rows = [r for r in rows if isinstance(r, dict) and "passed" in r]
    if not rows:
        return []
    both = any(isinstance(r.get("baseline"), dict) for r in rows)
    head = "| query | candidate | tools | fields | reason |"
    rule = "|---|---|---|---|---|"
    if both:
        head += " baseline | tools | fields | reason |"
        rule += "---|---|---|---|"
    out = ["", head, rule]
    for r in rows:
        cells = [r["id"], r["passed"], r.get("tools"), r.get("fields"), r.get("reason")]
        if both:
            b = r.get("baseline") or {}
            cells += [b.get("passed"), b.get("tools"), b.get("fields"), b.get("reason")]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def _category_table(figures: Mapping[str, Any]) -> list[str]:
    categories = figures.get("categories")
    if not isinstance(categories, dict) or not figures.get("interval"):
        return []
    both = bool(figures.get("baseline_interval"))
    head, rule = "| category | candidate | minimum |", "|---|---|---|"
    if both:
        head += " baseline | paired (exact McNemar) |"
        rule += "---|---|"
    out = ["", head, rule]
    entries = [
        (
            "overall",
            {
                "interval": figures.get("interval"),
                "baseline_interval": figures.get("baseline_interval"),
                "mcnemar": figures.get("mcnemar"),
            },
        )
    ]
    entries += [(n, c) for n, c in categories.items() if isinstance(c, dict)]
    for name, c in entries:
        cells = [name, _interval(c.get("interval")), c.get("min", "")]
        if both:
            cells += [_interval(c.get("baseline_interval")), _mcnemar(c.get("mcnemar"))]
        out.append("| " + " | ".join(_cell(x, 200) for x in cells) + " |")
    return out


_TABLED = ("queries", "categories", "answering", "screening")


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# punie-gates report: {doc['verdict']}", ""]
    cand = doc["candidate"]
    lines.append(f"- candidate: `{cand['spec']}`" + (f" ({cand['note']})" if cand["note"] else ""))
    if doc["baseline"]:
        lines.append(f"- baseline: `{doc['baseline']}`")
    else:
        lines.append(
            "- baseline: none given: no comparison with the production model was made; "
            "the verdict rests on the thresholds alone"
        )
    answering = doc.get("answering") or {}
    if answering.get("note"):
        lines.append(f"- {answering['note']}")
    lines += [f"- {serving_line(plan)}" for plan in answering.get("serving") or ()]
    lines.append(f"- stopped at: {doc['stopped_at'] or '-'}; complete run: {doc['complete']}")
    lines += [f"- {r}" for r in doc["reasons"]]
    lines += [f"- flag: {f}" for f in doc["flags"] if f not in doc["reasons"]]
    judged = doc.get("criteria") or {}
    if judged.get("sentence"):
        lines.append(f"- {judged['sentence']}")
    lines += ["", "| gate | name | kind | status | seconds | reason |", "|---|---|---|---|---|---|"]
    for gate, g in doc["gates"].items():
        reason = _short(g["reasons"][0], 120).replace("|", "\\|") if g["reasons"] else ""
        lines.append(f"| {gate} | {g['name']} | {g['kind']} | **{g['status']}** | {g['seconds']:.1f} | {reason} |")
    lines += _criteria_markdown(judged.get("rows") or [])
    lines += _steps_markdown(doc)
    screening = (doc["gates"].get("gate3") or {}).get("figures", {}).get("screening")
    if isinstance(screening, Mapping):  # an endpoint candidate: every query, beside the verdict
        lines += [
            "",
            "## screening (not judged)",
            "",
            f"- {screening.get('note')}",
            f"- {screening.get('correct')}/{screening.get('total')} queries passed",
        ]
        lines += _category_table(screening) + _query_table(screening.get("queries") or [])
    for gate, g in doc["gates"].items():
        if not g["figures"]:
            continue
        figures = g["figures"]
        lines += ["", f"## {gate}: {g['name']}", ""]
        tables = _category_table(figures) + _query_table(figures.get("queries") or [])
        heldout = _heldout_markdown(figures.get("heldout"))
        for key, value in figures.items():
            if (
                key in ("steps", "criteria")
                or (key == "heldout" and heldout)
                or (key in _TABLED and (tables or key == "answering"))
            ):
                continue  # steps: in the resources table above; criteria: in their own
            lines.append(f"- {key}: `{_short(value, 300)}`")
        comparison = figures.get("comparison")
        if isinstance(comparison, dict) and isinstance(comparison.get("detectable"), dict):
            lines.append(f"- what the comparison could see: {comparison['detectable'].get('sentence')}")
        lines += _server_lines(figures) + heldout + tables
    return "\n".join(lines) + "\n"


def _heldout_markdown(h: Any) -> list[str]:
    """The held-out next-step measure beside the queries: overall, the baseline's, per category."""
    if not isinstance(h, dict) or "total" not in h:
        return []
    left = h.get("left_out") or {}
    out = [
        f"- held-out next steps (a measure beside the queries): candidate {_interval(h.get('interval'))}"
        + (
            f", baseline {_interval(h.get('baseline_interval'))}; {_mcnemar(h.get('mcnemar'))}"
            if h.get("baseline_interval")
            else ""
        ),
        f"  - {h['total']} turns ({h.get('tool_turns')} with a call, {h.get('tool_turns_passed')} of them passed) "
        f"of `{h.get('source')}`, "
        f"{h.get('conversations')} conversations; left out {left.get('in_train', 0)} also in train.jsonl"
        + (f"; the first {h['total']} of {h.get('available')} (--heldout-limit)" if h.get("limited") else "")
        + f"; {h.get('seconds')} s ({h.get('seconds_per_turn')} s a turn)"
        + (f", the baseline's {h['baseline_seconds']} s" if h.get("baseline_seconds") is not None else ""),
    ]
    cats = h.get("categories") or {}
    if cats:
        out.append(
            "  - per category: "
            + "; ".join(
                f"{name} {_interval(c.get('interval'))}"
                + (f" vs {_interval(c.get('baseline_interval'))}" if c.get("baseline_interval") else "")
                for name, c in cats.items()
                if isinstance(c, dict)
            )
        )
    if isinstance(h.get("detectable"), dict):
        out.append(f"  - {h['detectable'].get('sentence')}")
    return out


def _criteria_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
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
        iv = r.get("interval") or {}
        cells = [
            r.get("gate"),
            r.get("criterion"),
            f"{r.get('passed')}/{r.get('total')}",
            r.get("min"),
            f"{100 * r.get('threshold', 0):.0f}%",
            f"{100 * iv.get('low', 0):.0f}-{100 * iv.get('high', 0):.0f}%",
            r.get("met"),
            r.get("decided"),
        ]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def _step_note(step: Mapping[str, Any]) -> str:
    notes = ["cached" if step.get("cached") else "", "FAILED" if step.get("ok") is False else ""]
    notes += [f"{k} {v}" for k, v in step.items() if k in ("method", "part_of", "note", "fallback") and v]
    return "; ".join(n for n in notes if n).replace("|", "\\|")


def _steps_markdown(doc: Mapping[str, Any]) -> list[str]:
    """The resources table: one row per measured step of every gate, then the work folder's size."""
    rows = []
    for gate, g in doc["gates"].items():
        for step in g["figures"].get("steps") or ():
            rows.append(
                f"| {gate} | {step.get('step', '')} | {step.get('seconds', 0):.1f} | "
                f"{_gb(step.get('peak_memory_gb'))} | {_gb(step.get('peak_rss_gb'))} | "
                f"{_size(step.get('bytes_written'))} | {_step_note(step)} |"
            )
    work = doc.get("work_folder")
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
        out += ["", f"Work folder at the end: `{work['path']}`, {_size(work['bytes'])}."]
    return out


