"""The page's tables and curves: Gate 0's markers, pass rates per category, criteria, held-out
next steps, resources per step, loss curves."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.decision.page import Curve, Table
from punie_gates.decision.page_words import interval_text, loss_text, mcnemar_text
from punie_gates.results.document import GateEntry
from punie_gates.results.gate0 import Marker
from punie_gates.results.queries import CategoryFigures, Heldout, HeldoutLeftOut, MultiTurn, Screening
from punie_gates.results.shared import CriterionRow, McNemarTest, WilsonInterval
from punie_gates.results.training import TrainedGateFigures


@dataclass(frozen=True)
class PassRates:
    """What a per-category table shows, from whichever figures hold it: a trained gate's, its
    multi-turn pass, a screening."""

    categories: Mapping[str, CategoryFigures] | None = None
    """Per category: correct, total, minimum, intervals, McNemar."""
    overall: CategoryFigures | None = None
    """The overall row (None when the figures hold no correct/total)."""


def pass_rates(figures: TrainedGateFigures | MultiTurn | Screening) -> PassRates:
    """The per-category table's parts of a trained gate's figures, a multi-turn pass or a screening."""
    base = figures if isinstance(figures, TrainedGateFigures) else None
    minimum = figures.overall_min if isinstance(figures, MultiTurn) else None
    overall = None
    if figures.correct is not None and figures.total is not None:
        overall = CategoryFigures(
            correct=figures.correct,
            total=figures.total,
            min=minimum,
            interval=figures.interval,
            baseline_interval=base.baseline_interval if base else None,
            mcnemar=base.mcnemar if base else None,
        )
    return PassRates(figures.categories, overall)


def marker_table(title: str, markers: Mapping[str, Marker] | None, note: str = "") -> Table | None:
    if not markers:
        return None
    rows, bad = [], set()
    for n, (marker, fig) in enumerate(markers.items()):
        rows.append(
            (
                marker,
                fig.id,
                " ".join(map(str, fig.ids or ())),
                fig.single,
                fig.control,
                fig.emitted,
                fig.text_can_produce,
                "" if fig.note is None else fig.note,
            )
        )
        if fig.single is False and fig.emitted:
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


def pass_rate_table(gate: str, figures: TrainedGateFigures) -> Table | None:
    rows = []
    if figures.interval or figures.baseline_interval:
        rows.append(
            (
                "overall",
                interval_text(figures.interval),
                interval_text(figures.baseline_interval),
                mcnemar_text(figures.mcnemar),
            )
        )
    for name, cat in (figures.categories or {}).items():
        if cat.interval or cat.baseline_interval:
            rows.append(
                (
                    name,
                    interval_text(cat.interval),
                    interval_text(cat.baseline_interval),
                    mcnemar_text(cat.mcnemar),
                )
            )
    if not rows:
        return None
    return Table(f"{gate}: pass rates", ("", "candidate", "baseline", "paired (McNemar)"), tuple(rows))


def steps_table(gate: str, steps: Any) -> Table | None:
    """Every key the gate's steps recorded, as recorded (`steps` of the document as it is: a table of
    whatever each step measured, its columns the union of their keys)."""
    steps = _step_rows(steps)
    if not steps:
        return None
    columns = list(dict.fromkeys(k for s in steps for k in s))
    if "step" in columns:
        columns.remove("step")
        columns.insert(0, "step")
    return Table(
        f"{gate}: resources per step", tuple(columns), tuple(tuple(s.get(c, "") for c in columns) for s in steps)
    )


def _step_rows(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):  # an older form: step -> its figures
        return [{"step": k, **v} if isinstance(v, Mapping) else {"step": k, "value": v} for k, v in value.items()]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _png_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(b"\x89PNG"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def curves(gates: Mapping[str, GateEntry], report_dir: Path | None) -> list[Curve]:
    out = []
    for gate, g in gates.items():
        figures = g.figures if isinstance(g.figures, TrainedGateFigures) else TrainedGateFigures()
        named = figures.loss_curve_png
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
        out.append(Curve(f"{gate}: {g.name or ''}", uri, loss_text(figures.loss)))
    return out


def category_table(gate: str, rates: PassRates, title: str = "per category") -> Table | None:
    """Per category: correct/total against the minimum, with intervals and McNemar when recorded."""
    cats = rates.categories
    if not cats:
        return None
    overall = rates.overall
    with_base = any(c.baseline_interval for c in cats.values()) or bool(overall and overall.baseline_interval)
    with_mcnemar = any(c.mcnemar for c in cats.values()) or bool(overall and overall.mcnemar)

    def row(name: str, c: CategoryFigures) -> tuple[Any, ...]:
        mine = interval_text(c.interval) or (
            f"{c.correct}/{c.total}" if c.correct is not None and c.total is not None else ""
        )
        met = None if c.min is None or c.correct is None else c.correct >= c.min
        cells: list[Any] = [name, mine, c.min if c.min is not None else "", met]
        if with_base:
            cells.append(interval_text(c.baseline_interval))
        if with_mcnemar:
            cells.append(mcnemar_text(c.mcnemar))
        return tuple(cells)

    rows = [row(n, c) for n, c in cats.items()]
    if overall is not None:
        rows.insert(0, row("overall", overall))
    bad = frozenset(i for i, r in enumerate(rows) if r[3] is False)
    columns = (
        ["category", "candidate", "minimum", "met"]
        + (["baseline"] if with_base else [])
        + (["paired (exact McNemar)"] if with_mcnemar else [])
    )
    return Table(f"{gate}: {title}", tuple(columns), tuple(rows), bad)


def criteria_table(gate: str, rows: Sequence[CriterionRow]) -> Table | None:
    """Per count criterion of the gate: count, minimum, threshold, interval, met, decided by the data
    or inside the interval (punie_gates.decision.criteria)."""
    mine = [r for r in rows if r.gate == gate]
    if not mine:
        return None
    cells = tuple(
        (
            r.criterion,
            f"{r.passed}/{r.total}",
            r.min,
            f"{100 * (r.threshold or 0):.0f}%",
            interval_text(r.interval),
            r.met,
            r.decided,
        )
        for r in mine
    )
    return Table(
        f"{gate}: criteria against their intervals",
        ("criterion", "count", "minimum", "threshold", "95% interval", "met", "decided"),
        cells,
        frozenset(i for i, r in enumerate(mine) if r.met is False),
        "Inside the interval: the sample cannot tell on which side of the threshold the rate is "
        "(a note, not a flag: the verdict stands).",
    )


def heldout_table(gate: str, heldout: Heldout | None) -> Table | None:
    """The held-out next-step measure per category, with the baseline's and the paired test when present."""
    if heldout is None or heldout.total is None:
        return None
    with_base = heldout.baseline_interval is not None

    def row(
        name: str, iv: WilsonInterval | None, base: WilsonInterval | None, m: McNemarTest | None
    ) -> tuple[str, ...]:
        mine = (name, interval_text(iv))
        return mine + ((interval_text(base), mcnemar_text(m)) if with_base else ())

    rows = [row("overall", heldout.interval, heldout.baseline_interval, heldout.mcnemar)]
    rows += [row(name, c.interval, c.baseline_interval, c.mcnemar) for name, c in (heldout.categories or {}).items()]
    left = heldout.left_out or HeldoutLeftOut()
    note = (
        f"{heldout.total} turns of {heldout.source} ({heldout.conversations} conversations; "
        f"left out: {left.in_train or 0} also in train.jsonl"
        + (f", the first {heldout.total} of {heldout.available}" if heldout.limited else "")
        + f"); {heldout.seconds} s"
    )
    if heldout.detectable is not None:
        note += f". {heldout.detectable.sentence}"
    columns = ("", "candidate") + (("baseline", "paired (exact McNemar)") if with_base else ())
    return Table(f"{gate}: held-out next steps (a measure beside the queries)", columns, tuple(rows), note=note)
