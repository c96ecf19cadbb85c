"""How the text reports (gate-report.md and the terminal) write figures: values cut short,
table cells, intervals, McNemar pairs, sizes."""

from __future__ import annotations

import json
from typing import Any


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


