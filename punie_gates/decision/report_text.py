"""How the text reports (gate-report.md and the terminal) write figures: values cut short,
table cells, intervals, McNemar pairs, sizes."""

from __future__ import annotations

import json
from typing import Any

from punie_gates.results.shared import McNemarTest, WilsonInterval


def short(value: Any, width: int = 100) -> str:
    """A value as text (JSON unless it is a string), cut to `width` characters with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(value: Any, width: int = 120) -> str:
    """A markdown table cell: pass/FAIL for a verdict, a list joined, on one line, `|` escaped."""
    if isinstance(value, bool):
        text = "pass" if value else "FAIL"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(map(str, value)) or "-"
    else:
        text = "" if value is None else str(value)
    return short(" ".join(text.split()), width).replace("|", "\\|")


def interval_brief(iv: WilsonInterval | None) -> str:
    """`34/40 [71-93%]`; "-" when no interval was recorded."""
    if iv is None or iv.passed is None:
        return "-"
    return f"{iv.passed}/{iv.total} [{100 * _f(iv.low):.0f}-{100 * _f(iv.high):.0f}%]"


def mcnemar_brief(m: McNemarTest | None) -> str:
    """The discordant pairs both ways and the p-values; "-" when no test was recorded."""
    if m is None:
        return "-"
    return (
        f"only candidate {m.only_candidate}, only baseline {m.only_baseline}; "
        f"p = {_f(m.p_two_sided):.3g} (one-sided, candidate worse: {_f(m.p_candidate_worse):.3g})"
    )


def _f(value: float | None) -> float:
    # a figure the document lacks inside an object it holds: a reader of a hand-edited report
    # shows nan rather than stopping the report
    return float("nan") if value is None else value


def size_text(n: Any) -> str:
    """Bytes for people (a negative figure: the step freed space); "" for no number."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def gb_text(value: Any) -> str:
    """GB with two decimals; "" for no number."""
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
