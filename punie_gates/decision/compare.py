"""Runs side by side: their re-scored answers, paired figures, one page.

Each report folder's saved responses are scored again with the current scorer
(checks.rescoring: this module only compares rows already scored), so a change to
the scorer or the queries applies to every run alike and no model is loaded. Runs
are compared on the queries all of them answered; the others are named, never
silently dropped. Pass rates carry Wilson intervals and each paired difference the
exact McNemar test (punie_gates.stats): 40 queries is a small sample.

Two runs give the A-vs-B page (`compare_runs`); three or more a ranking of the
candidates against one baseline run (`rank_runs`), each paired with that baseline.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.decision import html
from punie_gates.decision.report_read import typed_report
from punie_gates.errors import UserError
from punie_gates.inputs import readers
from punie_gates.inputs.queries import QuerySet
from punie_gates.results.codec import from_json
from punie_gates.results.shared import McNemarTest, WilsonInterval
from punie_gates.stats import Interval, McNemar, Paired, mcnemar_exact, paired, wilson_interval


class CompareError(ValueError):
    """Runs cannot be compared; the message names the files and the fix."""


@dataclass(frozen=True)
class Run:
    """One report folder's saved answers, scored with the current scorer, and what its report says."""

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
    scores: Mapping[str, Any]
    """Query id -> the current scorer's verdict (checks.scoring.Score: passed, reason, tools, fields)."""
    seconds: float | None = None
    """The whole run's wall time, from gate-report.json."""
    peak_memory_gb: float | None = None
    """The largest peak memory any gate of the run recorded, from gate-report.json."""


def run_of(rescored: Any) -> Run:
    """A Run from a re-scored folder (checks.rescoring.Rescored) and its gate-report.json."""
    folder = Path(rescored.folder)
    # A server answer is shown with the calls the API returned under its text.
    texts = {
        qid: html.saved_text({"response": a.response, "tool_calls": [dict(c) for c in a.tool_calls or ()]})
        or a.response
        for qid, a in rescored.saved.items()
    }
    verdict = candidate = seconds = peak = None
    report = folder / "gate-report.json"
    if report.is_file():
        try:  # any version's report: its keys never changed, and a value that does not fit is left out
            doc = typed_report(readers.read_json(report, "report"))
            verdict = doc.verdict
            candidate = doc.candidate.spec if doc.candidate else None
            seconds = doc.seconds
            peak = html.run_peak_memory(doc)
        except UserError:
            pass  # the responses are what is compared; a broken report only loses the labels
    return Run(folder, Path(rescored.responses_path), verdict, candidate, texts, dict(rescored.scores), seconds, peak)


def paired_json(p: Paired) -> dict[str, Any]:
    """A pairing in the command's keys: run A as the candidate, run B as the baseline."""
    m = p.mcnemar
    return {
        "a": p.candidate.to_json(),
        "b": p.baseline.to_json(),
        "mcnemar": {
            "both_passed": m.both_passed,
            "both_failed": m.both_failed,
            "only_a": m.only_candidate,
            "only_b": m.only_baseline,
            "discordant": m.discordant,
            "p_two_sided": _p(m.p_two_sided),
            "p_a_worse": _p(m.p_candidate_worse),
            "p_b_worse": _p(m.p_baseline_worse),
        },
    }


def _p(value: float) -> float:
    return float(f"{value:.6g}")  # significant digits: 32 discordant pairs give p ~ 5e-10, not 0


def _interval(iv: Interval) -> WilsonInterval:
    """An interval as the report types it (what the page's words read)."""
    return from_json(WilsonInterval, iv.to_json(), "interval")


def _mcnemar(m: McNemar, rounded: bool = False) -> McNemarTest:
    """A McNemar test as the report types it; `rounded`: its p to 6 significant digits, as the JSON line says it."""
    typed = from_json(McNemarTest, m.to_json(), "mcnemar")
    return dataclasses.replace(typed, p_two_sided=_p(m.p_two_sided)) if rounded else typed


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
    overall = paired([a.scores[q].passed for q in ids], [b.scores[q].passed for q in ids])
    return Comparison(a, b, ids, only_a, only_b, overall, {c: paired(*v) for c, v in by_category.items()})


def comparison_json(c: Comparison, html_path: Path | None = None) -> dict[str, Any]:
    """The paired figures as one JSON object (the command prints it on one line)."""

    def run(r: Run, p: Interval) -> dict[str, Any]:
        return {
            "folder": str(r.folder),
            "responses": str(r.responses_path),
            "verdict": r.verdict,
            "candidate": r.candidate,
            "answered": len(r.scores),
            "passed": p.passed,
            "total": p.total,
            "interval": p.to_json(),
        }

    out = {
        "a": run(c.a, c.overall.candidate),
        "b": run(c.b, c.overall.baseline),
        "compared": len(c.ids),
        "only_in_a": list(c.only_a),
        "only_in_b": list(c.only_b),
        "mcnemar": paired_json(c.overall)["mcnemar"],
        "categories": {name: paired_json(p) for name, p in c.categories.items()},
    }
    if html_path is not None:
        out["html"] = str(html_path)
    return out


def _labels(c: Comparison) -> tuple[str, str]:
    la, lb = labels((c.a, c.b))
    return la, lb


def _answer(run: Run, qid: str) -> html.Answer:
    s = run.scores[qid]
    return html.Answer(run.texts[qid], s.passed, s.reason, s.tools, s.fields)


def comparison_page(c: Comparison, queries: QuerySet) -> html.Page:
    """The side-by-side page of a comparison (the same template as gate-report.html)."""
    la, lb = _labels(c)
    m = c.overall.mcnemar
    notes = [
        f"{la} passed {m.only_candidate} queries that {lb} failed, {lb} passed {m.only_baseline} that {la} failed "
        f"(exact McNemar p = {m.p_two_sided:.3g}); both passed {m.both_passed}, both failed {m.both_failed}"
    ]
    if c.only_a or c.only_b:
        notes.append(f"compared on the {len(c.ids)} queries both runs answered")
    if c.only_a:
        notes.append(f"only {la} answered: {', '.join(c.only_a)}")
    if c.only_b:
        notes.append(f"only {lb} answered: {', '.join(c.only_b)}")

    def fact(label: str, r: Run) -> tuple[str, str]:
        extra = ", ".join(f"{k} {v}" for k, v in (("verdict", r.verdict), ("candidate", r.candidate)) if v)
        return label, f"{r.responses_path}" + (f" ({extra})" if extra else "")

    rows = [
        (
            "overall",
            html.interval_text(_interval(c.overall.candidate)),
            html.interval_text(_interval(c.overall.baseline)),
            html.mcnemar_text(_mcnemar(c.overall.mcnemar, rounded=True), la, lb),
        )
    ]
    for name, p in c.categories.items():
        rows.append(
            (
                name,
                html.interval_text(_interval(p.candidate)),
                html.interval_text(_interval(p.baseline)),
                html.mcnemar_text(_mcnemar(p.mcnemar, rounded=True), la, lb),
            )
        )
    table = html.Table(
        "pass rates on the compared queries (re-scored with the current scorer)",
        ("", la, lb, "paired (exact McNemar)"),
        tuple(rows),
    )
    query_rows = tuple(
        html.QueryRow(
            "compare", qid, queries.by_id(qid).category, queries.by_id(qid).text, (_answer(c.a, qid), _answer(c.b, qid))
        )
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


# --- three or more runs: candidates ranked against one baseline ------------------------------


@dataclass(frozen=True)
class Ranked:
    """One run's figures on the queries every run answered."""

    run: Run
    """The run."""
    label: str
    """Its column label ("A: folder")."""
    overall: Interval
    """Its pass rate with the Wilson interval."""
    categories: Mapping[str, Interval]
    """Per category, in the query file's order."""
    against_baseline: McNemar | None
    """Exact McNemar, this run as 'candidate' and the baseline as 'baseline'; None for the baseline."""
    left_out: tuple[str, ...]
    """Queries this run answered that some other run did not (not in the figures)."""

    @property
    def against(self) -> McNemar:
        """against_baseline of a ranked candidate, which always has one."""
        if self.against_baseline is None:
            raise ValueError(f"{self.label} is the baseline: it is not paired with itself")
        return self.against_baseline


@dataclass(frozen=True)
class Ranking:
    """Candidates ranked against a baseline run on the queries all runs answered."""

    baseline: Ranked
    """The run the others are paired with."""
    candidates: tuple[Ranked, ...]
    """The other runs, best first: most passes, then fewest queries only the baseline passed."""
    ids: tuple[str, ...]
    """Queries compared (every run answered them), in the query file's order."""
    answered: tuple[str, ...]
    """Queries at least one run answered."""

    @property
    def runs(self) -> tuple[Ranked, ...]:
        """The baseline, then the candidates best first (the page's column order)."""
        return (self.baseline, *self.candidates)

    @property
    def on_intersection(self) -> bool:
        """Whether the runs answered different queries (figures then cover only the common ones)."""
        return len(self.ids) < len(self.answered)


def labels(runs: Sequence[Run]) -> tuple[str, ...]:
    """Column labels: a letter each, with the folder's name when the names tell the runs apart."""
    letters = [string.ascii_uppercase[i] if i < 26 else f"R{i + 1}" for i in range(len(runs))]
    names = [r.folder.resolve().name for r in runs]
    if len(set(names)) < len(names):
        return tuple(letters)
    return tuple(f"{letter}: {name}" for letter, name in zip(letters, names))


def rank_runs(runs: Sequence[Run], queries: QuerySet, baseline: int = 0) -> Ranking:
    """Pair every run with `runs[baseline]` on the queries all of them answered, and rank the others."""
    if len(runs) < 2:
        raise CompareError("give at least two report folders to compare")
    order = [q.id for q in queries.queries]
    ids = tuple(q for q in order if all(q in r.scores for r in runs))
    answered = tuple(q for q in order if any(q in r.scores for r in runs))
    if not ids:
        raise CompareError("the runs answer no query in common: " + ", ".join(str(r.responses_path) for r in runs))
    category = {q.id: q.category for q in queries.queries}
    base = runs[baseline]
    theirs = [base.scores[q].passed for q in ids]

    def ranked(run: Run, label: str, is_baseline: bool) -> Ranked:
        by_category: dict[str, list[bool]] = {}
        for qid in ids:
            by_category.setdefault(category[qid], []).append(run.scores[qid].passed)
        mine = [run.scores[q].passed for q in ids]
        return Ranked(
            run, label, wilson_interval(sum(mine), len(mine)),
            {c: wilson_interval(sum(v), len(v)) for c, v in by_category.items()},
            None if is_baseline else mcnemar_exact(mine, theirs),
            tuple(q for q in order if q in run.scores and q not in ids),
        )  # fmt: skip

    names = labels(runs)
    every = [ranked(r, names[i], i == baseline) for i, r in enumerate(runs)]
    others = [r for i, r in enumerate(every) if i != baseline]
    others.sort(key=lambda r: (-r.overall.passed, r.against.only_baseline))  # stable: ties keep their order
    return Ranking(every[baseline], tuple(others), ids, answered)


def _run_json(r: Ranked) -> dict[str, Any]:
    out = {
        "label": r.label,
        "folder": str(r.run.folder),
        "responses": str(r.run.responses_path),
        "verdict": r.run.verdict,
        "candidate": r.run.candidate,
        "answered": len(r.run.scores),
        "passed": r.overall.passed,
        "total": r.overall.total,
        "interval": r.overall.to_json(),
        "seconds": r.run.seconds,
        "peak_memory_gb": r.run.peak_memory_gb,
        "left_out": list(r.left_out),
    }
    if r.against_baseline is not None:
        m = r.against_baseline
        out["mcnemar"] = {
            "both_passed": m.both_passed,
            "both_failed": m.both_failed,
            "only_candidate": m.only_candidate,
            "only_baseline": m.only_baseline,
            "discordant": m.discordant,
            "p_two_sided": _p(m.p_two_sided),
            "p_candidate_worse": _p(m.p_candidate_worse),
        }
    return out


def ranking_json(r: Ranking, html_path: Path | None = None) -> dict[str, Any]:
    """The ranking as one JSON object (the command prints it on one line)."""
    out: dict[str, Any] = {
        "baseline": _run_json(r.baseline),
        "ranking": [{"rank": n, **_run_json(c)} for n, c in enumerate(r.candidates, 1)],
        "compared": len(r.ids),
        "answered": len(r.answered),
        "on_intersection": r.on_intersection,
        "categories": {name: {x.label: x.categories[name].to_json() for x in r.runs} for name in r.baseline.categories},
        "queries": {qid: {x.label: x.run.scores[qid].passed for x in r.runs} for qid in r.ids},
    }
    if html_path is not None:
        out["html"] = str(html_path)
    return out


def _cost(run: Run) -> tuple[str, str]:
    seconds = f"{run.seconds:.1f} s" if run.seconds is not None else "-"
    memory = f"{run.peak_memory_gb:.2f} GB" if run.peak_memory_gb is not None else "-"
    return seconds, memory


def ranking_page(r: Ranking, queries: QuerySet) -> html.Page:
    """The ranking page: a table of the runs best first, per-category totals, every query side by side."""
    base = r.baseline.label
    notes = [
        f"{len(r.candidates)} candidates ranked against the baseline {base} on {len(r.ids)} queries: "
        "most passes first, then fewest queries only the baseline passed"
    ]
    if r.on_intersection:
        notes.append(
            f"the runs answered different queries: compared on the {len(r.ids)} all of them answered "
            f"(of {len(r.answered)} answered by any)"
        )
        notes += [f"left out of {x.label}: {', '.join(x.left_out)}" for x in r.runs if x.left_out]

    rows = [
        (
            "baseline",
            base,
            r.baseline.run.verdict or "-",
            html.interval_text(_interval(r.baseline.overall)),
            "",
            *_cost(r.baseline.run),
        )
    ]
    for n, c in enumerate(r.candidates, 1):
        rows.append(
            (
                str(n),
                c.label,
                c.run.verdict or "-",
                html.interval_text(_interval(c.overall)),
                html.mcnemar_text(_mcnemar(c.against), c.label, base),
                *_cost(c.run),
            )
        )
    ranking = html.Table(
        "ranking on the compared queries (re-scored with the current scorer)",
        ("rank", "run", "verdict", "passed", "against the baseline (exact McNemar)", "run time", "peak memory"),
        tuple(rows),
    )
    per_category = html.Table(
        "per category (95% Wilson intervals)",
        ("category", *(x.label for x in r.runs)),
        tuple(
            (name, *(html.interval_text(_interval(x.categories[name])) for x in r.runs))
            for name in r.baseline.categories
        ),
    )

    def answer(run: Run, qid: str) -> html.Answer:
        s = run.scores[qid]
        return html.Answer(run.texts[qid], s.passed, s.reason, tuple(s.tools), tuple(s.fields))

    query_rows = tuple(
        html.QueryRow(
            "compare",
            qid,
            queries.by_id(qid).category,
            queries.by_id(qid).text,
            tuple(answer(x.run, qid) for x in r.runs),
        )
        for qid in r.ids
    )
    section = html.QuerySection(
        f"{len(query_rows)} queries compared", "compare", tuple(x.label for x in r.runs), query_rows
    )

    def fact(x: Ranked) -> tuple[str, str]:
        extra = ", ".join(f"{k} {v}" for k, v in (("verdict", x.run.verdict), ("candidate", x.run.candidate)) if v)
        return x.label, f"{x.run.responses_path}" + (f" ({extra})" if extra else "")

    return html.Page(
        title=f"punie-gates compare: {len(r.candidates)} candidates against {base}",
        notes=tuple(notes),
        facts=(*(fact(x) for x in r.runs), ("queries", str(queries.path))),
        tables=(ranking, per_category),
        sections=(section,),
        data=ranking_json(r),
    )
