"""gate-report.json, gate-report.md and the terminal verdict table."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from punie_gates import __version__
from punie_gates.decision import criteria
from punie_gates.decision.html import write_html
from punie_gates.decision.page_from_report import serving_line
from punie_gates.decision.verdict import GateResult, Verdict
from punie_gates.model.demo_agent import built_from

DEMO_NOTE = (
    "built-in offline demo candidate: a tiny model with RANDOM weights and Devstral's "
    "tokenizer layout; its verdict exercises the suite and says nothing about any real model"
)
DEMO_AGENT_NOTE = (
    "built-in offline demo-agent candidate: the demo's tiny architecture and tokenizer with weights SET FROM "
    "Punie's training data (never from the validation queries); it calls tools and answers, mostly wrongly; its "
    "verdict exercises the suite and says nothing about any real model"
)


def demo_note(candidate: str | None) -> str | None:
    """What a report says about a built-in demo candidate (None for any other)."""
    if candidate == "demo":
        return DEMO_NOTE
    if candidate == "demo-agent":
        try:
            return f"{DEMO_AGENT_NOTE} ({built_from()})"
        except (OSError, ValueError, KeyError):
            return DEMO_AGENT_NOTE
    return None


ANSWERING_NOTES = {
    "server": "answers came through mlx_lm.server: OpenAI chat completions with the catalog's tools, temperature 0, "
    "as Punie's agent asks; scored on what the API returned (message.content and message.tool_calls)",
    "inprocess": "answers were generated in this process (--answer-via inprocess, the reference path): the reply "
    "text decoded with its control tokens, calls parsed from it with mlx-lm's parsers",
    "endpoint": "the candidate's answers came from the OpenAI-compatible server it was named by (--candidate URL): "
    "chat completions with the catalog's tools, temperature 0, scored on what the API returned; what it "
    "says about itself is in gates.gateN.figures.answering.endpoint",
}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Report:
    """One run's outcome: what gate-report.json, gate-report.md and the terminal show."""

    verdict: Verdict
    """The go/no-go and why."""
    results: Mapping[str, GateResult]
    """Every gate's result, in gate order."""
    candidate: str | None
    """The candidate as the user named it (None when the options could not be read)."""
    baseline: str | None = None
    """The production model measured beside it, if any."""
    run_all_gates: bool = False
    """Whether later gates ran past a hard failure (diagnosis)."""
    started: float = field(default_factory=time.time)
    """When the run started (seconds since the epoch)."""
    finished: float = field(default_factory=time.time)
    """When the verdict was reached."""
    collection_errors: tuple[str, ...] = ()
    """Gate modules or options that could not be read."""
    answer_via: str | None = None
    """How the gates asked their queries: "server" (mlx_lm.server) or "inprocess"."""
    interrupted: Mapping[str, Any] | None = None
    """How the run was cut short (by, gate, test), or None for a run that ended by itself."""
    run: Mapping[str, Any] | None = None
    """The run's id and the report-folder files it wrote (decision.report_folder)."""
    work_folder: Mapping[str, Any] | None = None
    """The work folder at the end of the run: {"path", "bytes"} (None when the options could not be read)."""

    @property
    def is_demo(self) -> bool:
        return self.candidate in ("demo", "demo-agent")

    def to_json(self) -> dict[str, Any]:
        """The gate-report.json document."""
        verdict = self.verdict
        doc: dict[str, Any] = {
            "suite": f"punie-gates {__version__}",
            "verdict": verdict.verdict,
            "stopped_at": verdict.stopped_at,
            "complete": verdict.complete,
            "flags": list(verdict.flags),
            "reasons": list(verdict.reasons),
            "candidate": {
                "spec": self.candidate,
                "is_demo": self.is_demo,
                "note": demo_note(self.candidate),
            },
            "baseline": self.baseline,
            "answering": {
                "via": self.answer_via,
                "note": ANSWERING_NOTES.get(self.answer_via or ""),
                "serving": serving_plans(self.results),
            },
            "run_all_gates": self.run_all_gates,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "seconds": round(self.finished - self.started, 3),
            "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
            "collection_errors": list(self.collection_errors),
            "interrupted": _jsonable(dict(self.interrupted)) if self.interrupted else None,
            "run": _jsonable(dict(self.run)) if self.run else None,
            "work_folder": _jsonable(dict(self.work_folder)) if self.work_folder else None,
            "gates": {},
        }
        for gate, result in self.results.items():
            doc["gates"][gate] = {
                "name": result.name,
                "kind": result.kind,
                "status": result.status,
                "seconds": result.seconds,
                "tests": dict(result.tests),
                "reasons": list(result.reasons),
                "flags": list(result.flags),
                "figures": _jsonable(dict(result.figures)),
            }
        doc["criteria"] = criteria.summary({gate: g["figures"] for gate, g in doc["gates"].items()})
        return doc


def serving_plans(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """How each model was served (answering.plan.ServingPlan.to_json), once per model folder, from the
    gates' answering figures: the environment, backend, parser, the exact command, the change Punie needs."""
    plans: dict[str, dict[str, Any]] = {}
    for result in results.values():
        answering = result.figures.get("answering")
        if not isinstance(answering, dict):
            continue
        for key in ("server", "baseline_server"):
            server = answering.get(key)
            if not isinstance(server, dict):
                continue
            plan = server.get("plan")
            if isinstance(plan, dict):
                plans.setdefault(str(plan.get("model_folder")), {"model": server.get("model"), **plan})
    return list(plans.values())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_reports(report_dir: Path, report: Report) -> tuple[Path, Path, Path]:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = report.to_json()
    json_path, md_path = report_dir / "gate-report.json", report_dir / "gate-report.md"
    try:  # each file whole or not at all: a failed write leaves no temporary file behind
        _atomic_write(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        _atomic_write(md_path, markdown(doc))
        return json_path, md_path, write_html(report_dir, doc)
    finally:
        for tmp in report_dir.glob(f".gate-report.*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)


def _short(value: Any, width: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any, width: int = 120) -> str:
    if isinstance(value, bool):
        text = "pass" if value else "FAIL"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(map(str, value)) or "-"
    else:
        text = "" if value is None else str(value)
    return _short(" ".join(text.split()), width).replace("|", "\\|")


def _interval(iv: Any) -> str:
    if not isinstance(iv, dict) or "passed" not in iv:
        return "-"
    return f"{iv['passed']}/{iv['total']} [{100 * iv['low']:.0f}-{100 * iv['high']:.0f}%]"


def _mcnemar(m: Any) -> str:
    if not isinstance(m, dict):
        return "-"
    return (
        f"only candidate {m['only_candidate']}, only baseline {m['only_baseline']}; "
        f"p = {m['p_two_sided']:.3g} (one-sided, candidate worse: {m['p_candidate_worse']:.3g})"
    )


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


def _size(n: Any) -> str:
    """Bytes for people (a negative figure: the step freed space)."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _gb(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


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
