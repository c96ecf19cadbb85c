"""The page's tables and curves: Gate 0's markers, pass rates per category, criteria, held-out
next steps, resources per step, loss curves."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from punie_gates.decision.page import Curve, Table
from punie_gates.decision.page_figures import _steps
from punie_gates.decision.page_words import interval_text, loss_text, mcnemar_text


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


