"""Figures in the page's words: intervals, McNemar pairs, loss curves, how a model was served."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def serving_line(plan: Mapping[str, Any]) -> str:
    """One line saying how a model was served, and the change Punie must make, if any."""
    how = (
        f"{plan.get('tokenizer_class')}, tool parser {plan.get('tool_parser') or 'none'}, detokenizer "
        f"{plan.get('detokenizer')}, template {plan.get('chat_template_source')}"
    )
    line = f"{plan.get('model')} served as `{plan.get('command')}` ({how}; {plan.get('environment')})"
    return line + (f"; CHANGE Punie must make: {plan['change']}" if plan.get("change") else "")


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


