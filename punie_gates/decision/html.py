"""gate-report.html: the run's report as one self-contained page a person reads.

Everything is inside the file (CSS and JS inline, loss curves as data: URIs, the
report document as embedded JSON) so it opens offline and can be mailed or attached
to CI. A Content-Security-Policy allows no network at all and only the page's own
script (by hash), and Jinja2 autoescaping shows a reply holding markup as text.

The page reads the report document (`punie_gates.decision.report.report_document`, the dict
gate-report.json holds) and the saved responses beside it (gateN-responses.jsonl,
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
- the document's `work_folder` ({"path", "bytes"}), among the run's facts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

HTML_NAME = "gate-report.html"
QUERY_GATES = ("gate3", "gate4", "gate5")
RESPONSE_FILES = {gate: f"{gate}-responses.jsonl" for gate in QUERY_GATES}
_CATEGORY = re.compile(r"^(?P<category>[a-z][a-z0-9_]*)-\d+$")


# -- the page's view model -------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One model's answer to one query (a first turn or a follow-up)."""

    response: str | None
    """The reply text; None when nothing was saved."""
    passed: bool | None
    """The scorer's verdict; None when it was not scored."""
    reason: str = ""
    """The scorer's reason (expected, found, why)."""
    tools: tuple[str, ...] = ()
    """Typed tools the reply called."""
    fields: tuple[str, ...] = ()
    """Result fields the reply read."""
    followup: Answer | None = None
    """The answer to the follow-up turn, when there was one."""


@dataclass(frozen=True)
class QueryRow:
    """A query with each side's answer (candidate and baseline, or run A and run B)."""

    gate: str
    """The gate that asked it."""
    id: str
    """The query id."""
    category: str
    """The query's category."""
    text: str
    """The query text ("" when the report does not hold it)."""
    answers: tuple[Answer | None, ...]
    """One per side of the section; None where that side has no answer."""

    @property
    def verdicts(self) -> tuple[bool, ...]:
        """Every verdict known for this query: each side's first turn and follow-up."""
        out = []
        for answer in self.answers:
            for turn in (answer, answer.followup if answer else None):
                if turn is not None and turn.passed is not None:
                    out.append(turn.passed)
        return tuple(out)

    @property
    def outcome(self) -> str:
        """The first side's first-turn verdict: "pass", "fail" or "unscored"."""
        first = self.answers[0] if self.answers else None
        if first is None or first.passed is None:
            return "unscored"
        return "pass" if first.passed else "fail"

    @property
    def disagree(self) -> bool:
        """Whether the known verdicts differ (side against side, first turn against follow-up)."""
        return len(set(self.verdicts)) > 1


@dataclass(frozen=True)
class QuerySection:
    """The queries of one gate (or of a comparison), side by side."""

    title: str
    """Heading."""
    gate: str
    """Gate id (data attribute for the filter)."""
    sides: tuple[str, ...]
    """Column labels, one per answer side."""
    rows: tuple[QueryRow, ...]
    """The queries, in the gate's order."""

    @property
    def has_followups(self) -> bool:
        return any(a is not None and a.followup is not None for r in self.rows for a in r.answers)


@dataclass(frozen=True)
class GateRow:
    """One line of the gate table."""

    gate: str
    """gate0 .. gate5."""
    name: str
    """The gate's name (data/gates.toml)."""
    kind: str
    """hard, soft or caution."""
    status: str
    """passed, failed, skipped, error or not_run."""
    seconds: float | None
    """Seconds its tests took."""
    peak_memory_gb: float | None
    """Largest peak memory it recorded; None when it recorded none."""
    reason: str
    """Its first reason ("" when it passed without one)."""
    tests: Mapping[str, int] = field(default_factory=dict)
    """Test outcomes counted."""
    key_figures: tuple[str, ...] = ()
    """The few figures that decide it, in words ("2/10 correct", "avg 6.10 s")."""


@dataclass(frozen=True)
class Table:
    """A small table: Gate 0's markers, pass rates, per-step resources."""

    title: str
    """Heading."""
    columns: tuple[str, ...]
    """Column headings."""
    rows: tuple[tuple[Any, ...], ...]
    """Cells (rendered as text; True/False as yes/no)."""
    bad_rows: frozenset[int] = frozenset()
    """Indexes of rows to mark as a problem."""
    note: str = ""
    """A line under the table."""


@dataclass(frozen=True)
class Curve:
    """A loss-curve PNG embedded in the page."""

    title: str
    """Caption."""
    data_uri: str
    """data:image/png;base64,..."""
    summary: str = ""
    """The loss figures in one line."""


@dataclass(frozen=True)
class Page:
    """Everything the template shows; parts left empty are omitted."""

    title: str
    """Title of the page."""
    verdict: str | None = None
    """GO, GO_WITH_FLAGS, NO_GO, INCOMPLETE, ERROR (not judged); None on a comparison."""
    stopped_at: str | None = None
    """The hard gate that stopped the run."""
    reasons: tuple[str, ...] = ()
    """Why the verdict is what it is."""
    flags: tuple[str, ...] = ()
    """Flags raised by passed gates."""
    notes: tuple[str, ...] = ()
    """Lines shown prominently under the verdict (the demo note, missing ids...)."""
    facts: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs: candidate, baseline, when, how long, machine."""
    gates: tuple[GateRow, ...] = ()
    """The gate table."""
    tables: tuple[Table, ...] = ()
    """Marker tables, pass rates, resources, in page order."""
    curves: tuple[Curve, ...] = ()
    """Loss curves."""
    sections: tuple[QuerySection, ...] = ()
    """Per-query answers."""
    figures: tuple[tuple[str, str], ...] = ()
    """(gate, pretty JSON of its figures), shown folded."""
    data: Any = None
    """Embedded as JSON for whoever wants the numbers."""

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.category for s in self.sections for r in s.rows))

    @property
    def query_count(self) -> int:
        return sum(len(s.rows) for s in self.sections)

    @property
    def any_disagreement_possible(self) -> bool:
        return any(len(r.verdicts) > 1 for s in self.sections for r in s.rows)


# -- from the report document -------------------------------------------------------------


def category_of(query_id: str) -> str:
    """The category a query id names (`cross_tool-03` -> `cross_tool`); "" when it names none."""
    m = _CATEGORY.match(query_id)
    return m.group("category") if m else ""


def read_responses(path: Path) -> dict[str, dict[str, Any]]:
    """id -> record of a responses JSONL (missing file or bad lines: left out, the page is a view)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
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


def query_section(gate: str, figures: Mapping[str, Any], responses: Mapping[str, Mapping[str, Any]],
                  baseline_responses: Mapping[str, Mapping[str, Any]] | None = None) -> QuerySection | None:
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
        rows.append((marker, fig.get("id"), " ".join(map(str, ids)), fig.get("single"), fig.get("control"),
                     fig.get("emitted"), fig.get("text_can_produce"), fig.get("note", "")))
        if fig.get("single") is False and fig.get("emitted"):
            bad.add(n)
    return Table(title, ("marker", "vocabulary id", "ids", "single token", "control", "emitted by template",
                         "plain text produces it", "note"), tuple(rows), frozenset(bad), note)


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
        rows.append(("overall", interval_text(figures.get("interval")), interval_text(figures.get("baseline_interval")),
                     mcnemar_text(figures.get("mcnemar"))))
    categories = figures.get("categories")
    if isinstance(categories, Mapping):
        for name, cat in categories.items():
            if isinstance(cat, Mapping) and (cat.get("interval") or cat.get("baseline_interval")):
                rows.append((name, interval_text(cat.get("interval")), interval_text(cat.get("baseline_interval")),
                             mcnemar_text(cat.get("mcnemar"))))
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
    return Table(f"{gate}: resources per step", tuple(columns), tuple(tuple(s.get(c, "") for c in columns) for s in steps))


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
    if isinstance(followup, Mapping) and _number(followup.get("correct")) is not None and _number(followup.get("total")):
        out.append(f"{followup['correct']}/{followup['total']} multi-turn")
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
    overall = {"correct": figures.get("correct"), "total": figures.get("total"), "interval": figures.get("interval"),
               "baseline_interval": figures.get("baseline_interval"), "mcnemar": figures.get("mcnemar"),
               "min": figures.get("overall_min")}
    if overall["correct"] is not None and overall["total"] is not None:
        rows.insert(0, row("overall", {k: v for k, v in overall.items() if v is not None}))
    bad = frozenset(i for i, r in enumerate(rows) if r[3] is False)
    columns = ["category", "candidate", "minimum", "met"] + (["baseline"] if with_base else []) + (
        ["paired (exact McNemar)"] if with_mcnemar else [])
    return Table(f"{gate}: {title}", tuple(columns), tuple(rows), bad)


def _first(reasons: Any) -> str:
    return str(reasons[0]) if isinstance(reasons, list) and reasons else ""


def report_page(doc: Mapping[str, Any], report_dir: Path | None = None,
                responses: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> Page:
    """The page for a run: `doc` as gate-report.json holds it, responses per gate (default: read from report_dir)."""
    report_dir = Path(report_dir) if report_dir is not None else None
    if responses is None:
        responses = {}
        for gate in QUERY_GATES if report_dir else ():
            responses[gate] = read_responses(report_dir / RESPONSE_FILES[gate])
            responses[f"{gate}-baseline"] = read_responses(report_dir / f"{gate}-baseline-responses.jsonl")
    gates_doc: Mapping[str, Any] = doc.get("gates") or {}
    cand = doc.get("candidate") or {}
    notes = [cand["note"]] if cand.get("note") else []
    notes += [f"collection error: {e}" for e in doc.get("collection_errors") or ()]
    machine = doc.get("machine") or {}
    facts = [("candidate", str(cand.get("spec") or "-"))]
    if doc.get("baseline"):
        facts.append(("baseline", str(doc["baseline"])))
    answering = doc.get("answering") or {}
    if answering.get("note"):
        facts.append(("answers", str(answering["note"])))
    from punie_gates.decision.report import serving_line

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
        gates.append(GateRow(gate, str(g.get("name", "")), str(g.get("kind", "")), str(g.get("status", "")),
                             g.get("seconds"), _peak_memory(figures), _first(g.get("reasons")), dict(g.get("tests") or {}),
                             key_figures(figures)))
        if gate == "gate0":
            for t in (_marker_table("gate0: tool markers the template emits", figures.get("markers"),
                                    "Each must be one control token: text cannot forge it, and the model sees it whole."),
                      _marker_table("gate0: the seed plan's delimiters (for reference)", figures.get("seed_delimiters"),
                                    "[/TOOL_CALLS] is not part of Devstral's format: several tokens is no failure.")):
                if t:
                    tables.append(t)
        followup = figures.get("followup") if isinstance(figures.get("followup"), Mapping) else {}
        for t in (_category_table(gate, figures) or _pass_rate_table(gate, figures),
                  _category_table(gate, followup, "multi-turn pass per category"), _steps_table(gate, figures)):
            if t:
                tables.append(t)
        section = query_section(gate, figures, responses.get(gate, {}), responses.get(f"{gate}-baseline", {})) \
            if gate in QUERY_GATES else None  # Gate 2 lists query ids only
        if section:
            sections.append(section)
        if figures:
            figures_json.append((gate, json.dumps(figures, indent=2, ensure_ascii=False)))
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


# -- rendering ------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("punie_gates.decision").joinpath("templates", name).read_text(encoding="utf-8")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("punie_gates.decision", "templates"),
        autoescape=True,  # every reply is untrusted text: markup in it must show as text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["clip"] = clip
    env.filters["seconds"] = lambda v: f"{v:.1f} s" if isinstance(v, (int, float)) else "-"
    env.filters["gb"] = lambda v: f"{v:.2f} GB" if isinstance(v, (int, float)) else ""
    return env


def clip(text: str, limit: int = 240) -> str:
    """The first `limit` characters, cut at a word, with an ellipsis when something was cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else text[:limit]) + " …"


def _cell(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_page(page: Page) -> str:
    """The page as one HTML document (no external resource of any kind)."""
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return _environment().get_template("report.html.j2").render(
        page=page, css=_asset("report.css"), script=script, csp=csp,
    )


def write_html(report_dir: Path, doc: Mapping[str, Any]) -> Path:
    """Render the run's page into report_dir/gate-report.html (atomically) and return its path."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    return write_page(report_dir / HTML_NAME, report_page(doc, report_dir))


def write_page(path: Path, page: Page) -> Path:
    """Write a rendered page to `path` through a temporary file and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_page(page), encoding="utf-8")
    os.replace(tmp, path)
    return path


def verdict_fragment(doc: Mapping[str, Any], html_path: Path | None = None) -> str:
    """The verdict and gate table as an HTML fragment (escaped), for pytest-html's summary."""
    note = (doc.get("candidate") or {}).get("note") or ""
    return _environment().get_template("summary.html.j2").render(
        doc={"verdict": doc.get("verdict", ""), "stopped_at": doc.get("stopped_at"), "gates": doc.get("gates") or {}},
        note=note, html_path=str(html_path) if html_path else "",
    )
