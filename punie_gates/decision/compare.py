"""Two runs side by side: their saved answers re-scored, paired figures, one page.

Each report folder's saved responses (gate5-responses.jsonl, else gate4's) are
scored again with the current scorer and query file, so a change to the scorer
or the queries applies to both runs alike and no model is loaded. The runs are
compared on the queries both answered; the others are named, never silently
dropped. Pass rates carry Wilson intervals and the paired difference the exact
McNemar test (punie_gates.decision.stats): 40 queries is a small sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.checks.scoring import Score, read_answers, score_saved
from punie_gates.decision import html
from punie_gates.decision.stats import Interval, McNemar, mcnemar_exact, wilson_interval
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import QuerySet

RESPONSE_FILES = ("gate5-responses.jsonl", "gate4-responses.jsonl")


class CompareError(ValueError):
    """A report folder cannot be compared; the message names the file and the fix."""


@dataclass(frozen=True)
class Run:
    """One report folder's saved answers, scored with the current scorer."""

    folder: Path
    """The report folder."""
    responses_path: Path
    """The responses file read (gate5's, else gate4's)."""
    verdict: str | None
    """The run's verdict from its gate-report.json (None when it has none)."""
    candidate: str | None
    """The candidate it judged, from gate-report.json."""
    texts: Mapping[str, str]
    """Query id -> the reply text (the last one when an id repeats)."""
    scores: Mapping[str, Score]
    """Query id -> the current scorer's verdict on that reply."""


@dataclass(frozen=True)
class Paired:
    """Both runs' pass rates on the same queries and the test of their difference."""

    a: Interval
    """Run A's pass rate with its Wilson interval."""
    b: Interval
    """Run B's pass rate with its Wilson interval."""
    mcnemar: McNemar
    """Exact McNemar test, A as 'candidate' and B as 'baseline'."""
    p_b_worse: float
    """Exact one-sided p for 'B is worse than A' (the other direction)."""

    def to_json(self) -> dict[str, Any]:
        m = self.mcnemar
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "mcnemar": {
                "both_passed": m.both_passed, "both_failed": m.both_failed,
                "only_a": m.only_candidate, "only_b": m.only_baseline, "discordant": m.discordant,
                "p_two_sided": _p(m.p_two_sided), "p_a_worse": _p(m.p_candidate_worse), "p_b_worse": _p(self.p_b_worse),
            },
        }


def _p(value: float) -> float:
    return float(f"{value:.6g}")  # significant digits: 32 discordant pairs give p ~ 5e-10, not 0


@dataclass(frozen=True)
class Comparison:
    """Run A against run B on the queries both answered."""

    a: Run
    """The first run."""
    b: Run
    """The second run."""
    ids: tuple[str, ...]
    """Queries compared, in the query file's order."""
    only_a: tuple[str, ...]
    """Queries only run A answered (left out of the figures)."""
    only_b: tuple[str, ...]
    """Queries only run B answered (left out of the figures)."""
    overall: Paired
    """All compared queries."""
    categories: Mapping[str, Paired]
    """Per category of the compared queries, in the query file's order."""


def responses_file(folder: Path) -> Path:
    """The responses a report folder holds: Gate 5's, else Gate 4's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareError(f"{folder}: not a folder (give two report folders, as written by --report-dir)")
    for name in RESPONSE_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CompareError(
        f"{folder}: holds neither {' nor '.join(RESPONSE_FILES)}; give the --report-dir of a run that reached "
        "Gate 4 or Gate 5 (`pytest --run-all-gates` runs them past a hard failure)"
    )


def load_run(folder: Path, queries: QuerySet, catalog: Catalog) -> Run:
    """Read a report folder's responses and score each with the current scorer."""
    folder = Path(folder)
    path = responses_file(folder)
    records, errors = read_answers(path, queries)
    if errors:
        raise CompareError("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    saved = {a.id: a for a in records}  # the last one when an id repeats
    # A server answer is shown with the calls the API returned under its text.
    texts = {qid: html.saved_text({"response": a.response, "tool_calls": [dict(c) for c in a.tool_calls or ()]})
             or a.response for qid, a in saved.items()}
    verdict = candidate = None
    report = folder / "gate-report.json"
    if report.is_file():
        try:
            doc = json.loads(report.read_text(encoding="utf-8"))
            verdict = doc.get("verdict")
            candidate = (doc.get("candidate") or {}).get("spec")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            pass  # the responses are what is compared; a broken report only loses the labels
    scores = {qid: score_saved(queries.by_id(qid), a, catalog) for qid, a in saved.items()}
    return Run(folder, path, verdict, candidate, texts, scores)


def _paired(a: list[bool], b: list[bool]) -> Paired:
    return Paired(
        a=wilson_interval(sum(a), len(a)),
        b=wilson_interval(sum(b), len(b)),
        mcnemar=mcnemar_exact(a, b),
        p_b_worse=mcnemar_exact(b, a).p_candidate_worse,
    )


def compare_runs(a: Run, b: Run, queries: QuerySet) -> Comparison:
    """Pair the two runs on the queries both answered."""
    order = [q.id for q in queries.queries]
    ids = tuple(q for q in order if q in a.scores and q in b.scores)
    if not ids:
        raise CompareError(f"{a.responses_path} and {b.responses_path} answer no query in common")
    only_a = tuple(q for q in order if q in a.scores and q not in b.scores)
    only_b = tuple(q for q in order if q in b.scores and q not in a.scores)
    category = {q.id: q.category for q in queries.queries}
    by_category: dict[str, tuple[list[bool], list[bool]]] = {}
    for qid in ids:
        pa, pb = by_category.setdefault(category[qid], ([], []))
        pa.append(a.scores[qid].passed)
        pb.append(b.scores[qid].passed)
    overall = _paired([a.scores[q].passed for q in ids], [b.scores[q].passed for q in ids])
    return Comparison(a, b, ids, only_a, only_b, overall, {c: _paired(*v) for c, v in by_category.items()})


def comparison_json(c: Comparison, html_path: Path | None = None) -> dict[str, Any]:
    """The paired figures as one JSON object (the command prints it on one line)."""

    def run(r: Run, p: Interval) -> dict[str, Any]:
        return {"folder": str(r.folder), "responses": str(r.responses_path), "verdict": r.verdict,
                "candidate": r.candidate, "answered": len(r.scores), "passed": p.passed, "total": p.total,
                "interval": p.to_json()}

    out = {
        "a": run(c.a, c.overall.a),
        "b": run(c.b, c.overall.b),
        "compared": len(c.ids),
        "only_in_a": list(c.only_a),
        "only_in_b": list(c.only_b),
        "mcnemar": c.overall.to_json()["mcnemar"],
        "categories": {name: p.to_json() for name, p in c.categories.items()},
    }
    if html_path is not None:
        out["html"] = str(html_path)
    return out


def _labels(c: Comparison) -> tuple[str, str]:
    na, nb = c.a.folder.resolve().name, c.b.folder.resolve().name
    return ("A", "B") if na == nb else (f"A: {na}", f"B: {nb}")


def _answer(run: Run, qid: str) -> html.Answer:
    s = run.scores[qid]
    return html.Answer(run.texts[qid], s.passed, s.reason, s.tools, s.fields)


def comparison_page(c: Comparison, queries: QuerySet) -> html.Page:
    """The side-by-side page of a comparison (the same template as gate-report.html)."""
    la, lb = _labels(c)
    m = c.overall.mcnemar
    notes = [f"{la} passed {m.only_candidate} queries that {lb} failed, {lb} passed {m.only_baseline} that {la} failed "
             f"(exact McNemar p = {m.p_two_sided:.3g}); both passed {m.both_passed}, both failed {m.both_failed}"]
    if c.only_a or c.only_b:
        notes.append(f"compared on the {len(c.ids)} queries both runs answered")
    if c.only_a:
        notes.append(f"only {la} answered: {', '.join(c.only_a)}")
    if c.only_b:
        notes.append(f"only {lb} answered: {', '.join(c.only_b)}")

    def fact(label: str, r: Run) -> tuple[str, str]:
        extra = ", ".join(f"{k} {v}" for k, v in (("verdict", r.verdict), ("candidate", r.candidate)) if v)
        return label, f"{r.responses_path}" + (f" ({extra})" if extra else "")

    rows = [(
        "overall", html.interval_text(c.overall.a.to_json()), html.interval_text(c.overall.b.to_json()),
        html.mcnemar_text(c.overall.to_json()["mcnemar"], la, lb),
    )]
    for name, p in c.categories.items():
        rows.append((name, html.interval_text(p.a.to_json()), html.interval_text(p.b.to_json()),
                     html.mcnemar_text(p.to_json()["mcnemar"], la, lb)))
    table = html.Table("pass rates on the compared queries (re-scored with the current scorer)",
                       ("", la, lb, "paired (exact McNemar)"), tuple(rows))
    query_rows = tuple(
        html.QueryRow("compare", qid, queries.by_id(qid).category, queries.by_id(qid).text,
                      (_answer(c.a, qid), _answer(c.b, qid)))
        for qid in c.ids
    )
    section = html.QuerySection(f"{len(query_rows)} queries compared", "compare", (la, lb), query_rows)
    return html.Page(
        title=f"punie-gates compare: {la} vs {lb}",
        notes=tuple(notes),
        facts=(fact(la, c.a), fact(lb, c.b), ("queries", str(queries.path))),
        tables=(table,),
        sections=(section,),
        data=comparison_json(c),
    )
