"""Every count criterion of a run against its interval: gathered from the gates' figures, counted.

A gate records its count criteria (Gate 4's minimum, Gate 5's overall and per-category
minimums, the multi-turn minimums, `[gate5] heldout_min`) as `criteria` entries
(punie_gates.stats.AgainstThreshold.to_json; typed as results.shared.CriterionRow). This
gathers them, gate by gate, so the report can say how many were decided inside their
interval: met or missed, but by a sample too small to tell on which side of the threshold
the rate lies. That is a note, not a flag: it never changes the verdict (a GO stays GO).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from punie_gates.results.shared import CriterionRow, GateFigures
from punie_gates.results.training import TrainedGateFigures
from punie_gates.stats import UNDECIDED


def gathered(gates: Mapping[str, GateFigures]) -> list[CriterionRow]:
    """Gate id -> its typed figures in; one row per criterion out, with its `gate` set, in gate order:
    the figures' own criteria, then the multi-turn pass's, then the held-out measure's."""
    out = []
    for gate, figures in gates.items():
        if not isinstance(figures, TrainedGateFigures):
            continue  # only the trained gates judge counts against minimums
        for holder in (figures, figures.followup, figures.heldout):
            rows = holder.criteria if holder is not None else None
            out += [dataclasses.replace(row, gate=gate) for row in rows or ()]
    return out


def summary(gates: Mapping[str, GateFigures]) -> dict[str, Any]:
    """gate-report.json's `criteria`: every criterion, how many were decided inside their interval,
    and a sentence for the verdict's summary."""
    rows = gathered(gates)
    inside = [r for r in rows if r.decided == UNDECIDED]
    sentence = (
        f"{len(inside)} of {len(rows)} count criteria were decided inside their interval "
        "(met or missed, but the sample cannot tell on which side of the threshold the rate is; "
        "a note, not a flag: the verdict stands)"
        if rows
        else None
    )
    # every field written, a null one too (`note` of a decided criterion), as the entries were recorded
    return {
        "count": len(rows),
        "inside_interval": len(inside),
        "sentence": sentence,
        "rows": [dataclasses.asdict(r) for r in rows],
    }
