"""Every count criterion of a run against its interval: gathered from the gates' figures, counted.

A gate records its count criteria (Gate 4's minimum, Gate 5's overall and per-category
minimums, the multi-turn minimums, `[gate5] heldout_min`) as `criteria` entries
(punie_gates.stats.AgainstThreshold.to_json). This gathers them, gate by gate, so the
report can say how many were decided inside their interval: met or missed, but by a
sample too small to tell on which side of the threshold the rate lies. That is a note,
not a flag: it never changes the verdict (a GO stays GO).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from punie_gates.stats import UNDECIDED

PLACES = ("", "followup", "heldout")  # the figures themselves, and the figures that hold their own criteria


def gathered(gates: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Gate id -> its figures in; one entry per criterion out, with its `gate` added, in gate order."""
    out = []
    for gate, figures in gates.items():
        for place in PLACES:
            holder = figures.get(place) if place else figures
            entries = holder.get("criteria") if isinstance(holder, Mapping) else None
            out += [{"gate": gate, **entry} for entry in entries or () if isinstance(entry, Mapping)]
    return out


def summary(gates: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """gate-report.json's `criteria`: every criterion, how many were decided inside their interval,
    and a sentence for the verdict's summary."""
    rows = gathered(gates)
    inside = [r for r in rows if r.get("decided") == UNDECIDED]
    sentence = (
        f"{len(inside)} of {len(rows)} count criteria were decided inside their interval "
        "(met or missed, but the sample cannot tell on which side of the threshold the rate is; "
        "a note, not a flag: the verdict stands)"
        if rows
        else None
    )
    return {"count": len(rows), "inside_interval": len(inside), "sentence": sentence, "rows": rows}
