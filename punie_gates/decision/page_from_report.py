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

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from punie_gates.decision.page import Answer, Curve, GateRow, Page, QueryRow, QuerySection, Table
from punie_gates.errors import UserError
from punie_gates.inputs import readers

QUERY_GATES = ("gate3", "gate4", "gate5")
RESPONSE_FILES = {gate: f"{gate}-responses.jsonl" for gate in QUERY_GATES}
_CATEGORY = re.compile(r"^(?P<category>[a-z][a-z0-9_]*)-\d+$")


def category_of(query_id: str) -> str:
    """The category a query id names (`cross_tool-03` -> `cross_tool`); "" when it names none."""
    m = _CATEGORY.match(query_id)
    return m.group("category") if m else ""


def read_responses(path: Path) -> dict[str, dict[str, Any]]:
    """id -> record of a responses JSONL (missing file or bad lines: left out, the page is a view)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = readers.read_jsonl(Path(path), "responses file")
    except UserError:
        return out
    for line in lines:
        record = line.value
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            out[record["id"]] = record
    return out


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def answer_from(record: Any, full_text: str | None = None) -> Answer | None:
    """An Answer from a report row's dict (`response`, `passed`, `reason`, `tools`, `fields`, `followup`)."""
    if not isinstance(record, Mapping):
        return None
    response = full_text if full_text is not None else record.get("response")
    passed = record.get("passed")
    return Answer(
        response=response if isinstance(response, str) else None,
        passed=passed if isinstance(passed, bool) else None,
        reason=str(record.get("reason") or "") + _cause(record),
        tools=_strings(record.get("tools")),
        fields=_strings(record.get("fields")),
        followup=answer_from(record.get("followup")),
    )


def serving_line(plan: Mapping[str, Any]) -> str:
    """One line saying how a model was served, and the change Punie must make, if any."""
    how = (
        f"{plan.get('tokenizer_class')}, tool parser {plan.get('tool_parser') or 'none'}, detokenizer "
        f"{plan.get('detokenizer')}, template {plan.get('chat_template_source')}"
    )
    line = f"{plan.get('model')} served as `{plan.get('command')}` ({how}; {plan.get('environment')})"
    return line + (f"; CHANGE Punie must make: {plan['change']}" if plan.get("change") else "")


def _cause(row: Mapping[str, Any]) -> str:
    """Whose miss a failing row is (checks.attribution), as the reason's last words."""
    return f" [cause: {row['cause']}: {row.get('cause_detail', '')}]" if row.get("cause") else ""


def _gate3_answer(row: Mapping[str, Any], full_text: str | None) -> Answer:
    # Gate 3 rows carry calls and problems, not a scorer verdict: a tool query passes
    # with a valid call, the direct one with none (the gate's own rule).
    calls, valid, problems = _strings(row.get("calls")), row.get("valid_calls") or 0, _strings(row.get("problems"))
    passed = (valid > 0) if row.get("expect") == "tool" else not calls
    found = f"calls {', '.join(calls)} ({valid} valid)" if calls else "no tool call"
    expected = "a valid tool call" if row.get("expect") == "tool" else "no tool call"
    reason = f"{'PASS' if passed else 'FAIL'}: expected {expected}; found {found}"
    if problems:
        reason += "; " + "; ".join(problems)
    reason += _cause(row)
    response = full_text if full_text is not None else row.get("response")
    return Answer(response if isinstance(response, str) else None, passed, reason, calls)


def query_section(
    gate: str,
    figures: Mapping[str, Any],
    responses: Mapping[str, Mapping[str, Any]],
    baseline_responses: Mapping[str, Mapping[str, Any]] | None = None,
) -> QuerySection | None:
    """A gate's query rows (figures.queries) with the full saved texts; None when it has none."""
    rows_in = figures.get("queries")
    if not isinstance(rows_in, list) or not rows_in:
        return None
    rows, with_baseline = [], any(isinstance(r, Mapping) and r.get("baseline") is not None for r in rows_in)
    for row in rows_in:
        if not isinstance(row, Mapping) or not isinstance(row.get("id"), str):
            continue
        qid = row["id"]
        saved = responses.get(qid, {})
        text = saved_text(saved)
        mine: Answer | None
        if gate == "gate3" and "passed" not in row:
            mine = _gate3_answer(row, text)
        else:
            mine = answer_from(row, text)
            if mine is not None and mine.followup is None and isinstance(saved.get("followup"), str):
                mine = _replace_followup(mine, Answer(saved["followup"], None))
        answers: list[Answer | None] = [mine]
        if with_baseline:
            base_text = saved_text((baseline_responses or {}).get(qid, {}))
            answers.append(answer_from(row.get("baseline"), base_text))
        category = str(row.get("category") or category_of(qid))
        rows.append(QueryRow(gate, qid, category, str(row.get("text") or ""), tuple(answers)))
    if not rows:
        return None
    sides = ("candidate", "baseline") if with_baseline else ("candidate",)
    return QuerySection(f"{gate}: {len(rows)} queries", gate, sides, tuple(rows))


def saved_text(saved: Mapping[str, Any]) -> str | None:
    """A saved answer's text as shown: the reply, and for a server answer the tool calls
    the API returned, under a line that says they came as message.tool_calls."""
    text = saved.get("response") if isinstance(saved.get("response"), str) else None
    calls = saved.get("tool_calls")
    if text is None or not isinstance(calls, list) or not calls:
        return text
    shown = [f"{c.get('name')} {c.get('arguments')}" for c in calls if isinstance(c, Mapping)]
    return text + "\n\n[message.tool_calls, as the server returned them]\n" + "\n".join(shown)


def _replace_followup(answer: Answer, followup: Answer) -> Answer:
    return Answer(answer.response, answer.passed, answer.reason, answer.tools, answer.fields, followup)


def _peak_memory(figures: Mapping[str, Any]) -> float | None:
    # Top-level figures and one level down (gate1's smoke_peak_memory_gb, training's), and steps.
    values = [v for k, v in figures.items() if k.endswith("peak_memory_gb")]
    for nested in [v for v in figures.values() if isinstance(v, Mapping)] + _steps(figures.get("steps")):
        values += [v for k, v in nested.items() if str(k).endswith("peak_memory_gb")]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(numbers) if numbers else None


def run_peak_memory(doc: Mapping[str, Any]) -> float | None:
    """The largest peak memory any gate of a gate-report.json recorded; None when none did."""
    gates = found if isinstance(found := doc.get("gates"), Mapping) else {}
    peaks = [
        _peak_memory(g["figures"])
        for g in gates.values()
        if isinstance(g, Mapping) and isinstance(g.get("figures"), Mapping)
    ]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def _steps(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [{"step": k, **v} if isinstance(v, Mapping) else {"step": k, "value": v} for k, v in value.items()]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _marker_table(title: str, markers: Any, note: str = "") -> Table | None:
    if not isinstance(markers, Mapping) or not markers:
        return None
    rows, bad = [], set()
    for n, (marker, fig) in enumerate(markers.items()):
        fig = fig if isinstance(fig, Mapping) else {}
        ids = fig.get("ids") or []
        rows.append(
            (
                marker,
                fig.get("id"),
                " ".join(map(str, ids)),
                fig.get("single"),
                fig.get("control"),
                fig.get("emitted"),
                fig.get("text_can_produce"),
                fig.get("note", ""),
            )
        )
        if fig.get("single") is False and fig.get("emitted"):
            bad.add(n)
    return Table(
        title,
        (
            "marker",
            "vocabulary id",
            "ids",
            "single token",
            "control",
            "emitted by template",
            "plain text produces it",
            "note",
        ),
        tuple(rows),
        frozenset(bad),
        note,
    )


def interval_text(iv: Any) -> str:
    """`34/40 = 85.0% (95% CI 71.0-93.0%)` from an Interval.to_json dict."""
    if not isinstance(iv, Mapping) or "passed" not in iv or "total" not in iv:
        return ""
    total = iv["total"]
    text = f"{iv['passed']}/{total}"
    if total:
        text += f" = {100 * iv['passed'] / total:.1f}%"
    if "low" in iv and "high" in iv:
        conf = iv.get("confidence", 0.95)
        text += f" ({100 * conf:g}% CI {100 * iv['low']:.1f}-{100 * iv['high']:.1f}%)"
    return text


def mcnemar_text(m: Any, first: str = "candidate", second: str = "baseline") -> str:
    """Discordant counts both ways and the exact p, from a McNemar.to_json-like dict."""
    if not isinstance(m, Mapping):
        return ""
    a = m.get("only_candidate", m.get("only_a"))
    b = m.get("only_baseline", m.get("only_b"))
    parts = [f"only {first} passed {a}", f"only {second} passed {b}"]
    if "both_passed" in m:
        parts.append(f"both passed {m['both_passed']}, both failed {m.get('both_failed')}")
    if isinstance(m.get("p_two_sided"), (int, float)):
        parts.append(f"exact p = {m['p_two_sided']:.3g}")
    return "; ".join(parts)


def _pass_rate_table(gate: str, figures: Mapping[str, Any]) -> Table | None:
    rows = []
    if figures.get("interval") or figures.get("baseline_interval"):
        rows.append(
            (
                "overall",
                interval_text(figures.get("interval")),
                interval_text(figures.get("baseline_interval")),
                mcnemar_text(figures.get("mcnemar")),
            )
        )
    categories = figures.get("categories")
    if isinstance(categories, Mapping):
        for name, cat in categories.items():
            if isinstance(cat, Mapping) and (cat.get("interval") or cat.get("baseline_interval")):
                rows.append(
                    (
                        name,
                        interval_text(cat.get("interval")),
                        interval_text(cat.get("baseline_interval")),
                        mcnemar_text(cat.get("mcnemar")),
                    )
                )
    if not rows:
        return None
    return Table(f"{gate}: pass rates", ("", "candidate", "baseline", "paired (McNemar)"), tuple(rows))


def _steps_table(gate: str, figures: Mapping[str, Any]) -> Table | None:
    steps = _steps(figures.get("steps"))
    if not steps:
        return None
    columns = list(dict.fromkeys(k for s in steps for k in s))
    if "step" in columns:
        columns.remove("step")
        columns.insert(0, "step")
    return Table(
        f"{gate}: resources per step", tuple(columns), tuple(tuple(s.get(c, "") for c in columns) for s in steps)
    )


def _png_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(b"\x89PNG"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _curves(doc: Mapping[str, Any], report_dir: Path | None) -> list[Curve]:
    out = []
    for gate, g in doc.get("gates", {}).items():
        figures = g.get("figures") or {}
        named = figures.get("loss_curve_png")
        candidates = []
        if report_dir is not None:
            if named:
                candidates.append(report_dir / Path(str(named)).name)
            candidates.append(report_dir / f"{gate}-loss-curve.png")
        if named:
            candidates.append(Path(str(named)))
        uri = next((u for u in map(_png_uri, candidates) if u), None)
        if uri is None:
            continue
        loss = figures.get("loss")
        out.append(Curve(f"{gate}: {g.get('name', '')}", uri, loss_text(loss)))
    return out


def loss_text(loss: Any) -> str:
    """`validation 11.990 -> 11.603 (-3.2%); train 11.986 -> 11.762` from a LossCurve summary."""
    if not isinstance(loss, Mapping):
        return ""
    parts = []
    for label, first, last in (("validation", "valid_start", "valid_end"), ("train", "train_first", "train_last")):
        a, b = _number(loss.get(first)), _number(loss.get(last))
        if a is not None and b is not None:
            drop = f" ({-100 * (a - b) / a:+.1f}%)" if a else ""
            parts.append(f"{label} {a:.3f} -> {b:.3f}{drop}")
    return "; ".join(parts) or ", ".join(f"{k} {v}" for k, v in loss.items())


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def key_figures(figures: Mapping[str, Any]) -> tuple[str, ...]:
    """The figures a reader looks for first, from the keys the gates record."""
    out = []
    markers = figures.get("markers")
    if isinstance(markers, Mapping) and markers:
        single = sum(1 for m in markers.values() if isinstance(m, Mapping) and m.get("single"))
        out.append(f"{single}/{len(markers)} markers single tokens")
    if _number(figures.get("correct")) is not None and _number(figures.get("total")):
        out.append(f"{figures['correct']}/{figures['total']} correct")
    followup = figures.get("followup")
    if (
        isinstance(followup, Mapping)
        and _number(followup.get("correct")) is not None
        and _number(followup.get("total"))
    ):
        out.append(f"{followup['correct']}/{followup['total']} multi-turn")
    heldout = figures.get("heldout")
    if isinstance(heldout, Mapping) and _number(heldout.get("passed")) is not None and _number(heldout.get("total")):
        out.append(f"{heldout['passed']}/{heldout['total']} held-out next steps")
    if isinstance(figures.get("well_formed_calls"), int):
        out.append(f"{figures['well_formed_calls']} well-formed call(s)")
    if _number(figures.get("avg_latency_s")) is not None:
        ref = _number(figures.get("punie_reported_latency_s"))
        out.append(f"avg {figures['avg_latency_s']:.2f} s per query" + (f" (Punie: {ref:.2f} s)" if ref else ""))
    loss = figures.get("loss")
    if isinstance(loss, Mapping) and _number(loss.get("valid_reduction")) is not None:
        out.append(f"validation loss -{100 * loss['valid_reduction']:.1f}%")
    retention = figures.get("lora_retention")
    if isinstance(retention, Mapping) and _number(retention.get("value")) is not None:
        out.append(f"LoRA delta kept {100 * retention['value']:.1f}%")
    fused = figures.get("fused_model")
    if isinstance(fused, Mapping) and _number(fused.get("disk_gb")) is not None:
        out.append(f"fused {fused['disk_gb']:.2f} GB on disk")
    if figures.get("smoke_passed") is not None:
        out.append("smoke test " + ("passed" if figures["smoke_passed"] else "failed"))
    return tuple(out)


def _category_table(gate: str, figures: Mapping[str, Any], title: str = "per category") -> Table | None:
    """Per category: correct/total against the minimum, with intervals and McNemar when recorded."""
    categories = figures.get("categories")
    if not isinstance(categories, Mapping) or not categories:
        return None
    cats = {k: v for k, v in categories.items() if isinstance(v, Mapping)}
    with_base = any(c.get("baseline_interval") for c in cats.values()) or bool(figures.get("baseline_interval"))
    with_mcnemar = any(c.get("mcnemar") for c in cats.values()) or bool(figures.get("mcnemar"))

    def row(name: str, c: Mapping[str, Any]) -> tuple[Any, ...]:
        iv = c.get("interval")
        mine = interval_text(iv) or (f"{c['correct']}/{c['total']}" if "correct" in c and "total" in c else "")
        minimum = c.get("min")
        met = None if minimum is None or "correct" not in c else c["correct"] >= minimum
        cells: list[Any] = [name, mine, minimum if minimum is not None else "", met]
        if with_base:
            cells.append(interval_text(c.get("baseline_interval")))
        if with_mcnemar:
            cells.append(mcnemar_text(c.get("mcnemar")))
        return tuple(cells)

    rows = [row(n, c) for n, c in cats.items()]
    overall = {
        "correct": figures.get("correct"),
        "total": figures.get("total"),
        "interval": figures.get("interval"),
        "baseline_interval": figures.get("baseline_interval"),
        "mcnemar": figures.get("mcnemar"),
        "min": figures.get("overall_min"),
    }
    if overall["correct"] is not None and overall["total"] is not None:
        rows.insert(0, row("overall", {k: v for k, v in overall.items() if v is not None}))
    bad = frozenset(i for i, r in enumerate(rows) if r[3] is False)
    columns = (
        ["category", "candidate", "minimum", "met"]
        + (["baseline"] if with_base else [])
        + (["paired (exact McNemar)"] if with_mcnemar else [])
    )
    return Table(f"{gate}: {title}", tuple(columns), tuple(rows), bad)


def _criteria_table(gate: str, rows: Any) -> Table | None:
    """Per count criterion of the gate: count, minimum, threshold, interval, met, decided by the data
    or inside the interval (punie_gates.decision.criteria)."""
    mine = [r for r in rows or () if isinstance(r, Mapping) and r.get("gate") == gate]
    if not mine:
        return None
    cells = tuple(
        (
            r.get("criterion"),
            f"{r.get('passed')}/{r.get('total')}",
            r.get("min"),
            f"{100 * r.get('threshold', 0):.0f}%",
            interval_text(r.get("interval")),
            r.get("met"),
            r.get("decided"),
        )
        for r in mine
    )
    return Table(
        f"{gate}: criteria against their intervals",
        ("criterion", "count", "minimum", "threshold", "95% interval", "met", "decided"),
        cells,
        frozenset(i for i, r in enumerate(mine) if r.get("met") is False),
        "Inside the interval: the sample cannot tell on which side of the threshold the rate is "
        "(a note, not a flag: the verdict stands).",
    )


def _heldout_table(gate: str, heldout: Any) -> Table | None:
    """The held-out next-step measure per category, with the baseline's and the paired test when present."""
    if not isinstance(heldout, Mapping) or "total" not in heldout:
        return None
    with_base = "baseline_interval" in heldout

    def row(name: str, c: Mapping[str, Any]) -> tuple[str, ...]:
        mine = (name, interval_text(c.get("interval")))
        return mine + ((interval_text(c.get("baseline_interval")), mcnemar_text(c.get("mcnemar"))) if with_base else ())

    rows = [row("overall", heldout)]
    rows += [row(name, c) for name, c in (heldout.get("categories") or {}).items() if isinstance(c, Mapping)]
    left = heldout.get("left_out") or {}
    note = (
        f"{heldout['total']} turns of {heldout.get('source')} ({heldout.get('conversations')} conversations; "
        f"left out: {left.get('in_train', 0)} also in train.jsonl"
        + (f", the first {heldout['total']} of {heldout.get('available')}" if heldout.get("limited") else "")
        + f"); {heldout.get('seconds')} s"
    )
    if isinstance(heldout.get("detectable"), Mapping):
        note += f". {heldout['detectable'].get('sentence')}"
    columns = ("", "candidate") + (("baseline", "paired (exact McNemar)") if with_base else ())
    return Table(f"{gate}: held-out next steps (a measure beside the queries)", columns, tuple(rows), note=note)


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
