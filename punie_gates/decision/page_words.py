"""Figures in the page's words: intervals, McNemar pairs, loss curves, how a model was served."""

from __future__ import annotations

import dataclasses

from punie_gates.results.document import ServedModel
from punie_gates.results.shared import McNemarTest, ServingPlan, WilsonInterval
from punie_gates.results.training import LossSummary


def serving_line(plan: ServingPlan, model: str | None = None) -> str:
    """One line saying how a model was served, and the change Punie must make, if any
    (`model`: which model, when the plan does not say it: a ServedModel does)."""
    if isinstance(plan, ServedModel):
        model = plan.model
    how = (
        f"{plan.tokenizer_class}, tool parser {plan.tool_parser or 'none'}, detokenizer "
        f"{plan.detokenizer}, template {plan.chat_template_source}"
    )
    line = f"{model} served as `{plan.command}` ({how}; {plan.environment})"
    return line + (f"; CHANGE Punie must make: {plan.change}" if plan.change else "")


def interval_text(iv: WilsonInterval | None) -> str:
    """`34/40 = 85.0% (95% CI 71.0-93.0%)`; "" when no interval was recorded."""
    if iv is None or iv.passed is None or iv.total is None:
        return ""
    text = f"{iv.passed}/{iv.total}"
    if iv.total:
        text += f" = {100 * iv.passed / iv.total:.1f}%"
    if iv.low is not None and iv.high is not None:
        conf = 0.95 if iv.confidence is None else iv.confidence
        text += f" ({100 * conf:g}% CI {100 * iv.low:.1f}-{100 * iv.high:.1f}%)"
    return text


def mcnemar_text(m: McNemarTest | None, first: str = "candidate", second: str = "baseline") -> str:
    """Discordant counts both ways and the exact p; "" when no test was recorded."""
    if m is None:
        return ""
    parts = [f"only {first} passed {m.only_candidate}", f"only {second} passed {m.only_baseline}"]
    if m.both_passed is not None:
        parts.append(f"both passed {m.both_passed}, both failed {m.both_failed}")
    if m.p_two_sided is not None:
        parts.append(f"exact p = {m.p_two_sided:.3g}")
    return "; ".join(parts)


def loss_text(loss: LossSummary | None) -> str:
    """`validation 11.990 -> 11.603 (-3.2%); train 11.986 -> 11.762` from a loss summary."""
    if loss is None:
        return ""
    parts = []
    for label, a, b in (("validation", loss.valid_start, loss.valid_end), ("train", loss.train_first, loss.train_last)):
        if a is not None and b is not None:
            drop = f" ({-100 * (a - b) / a:+.1f}%)" if a else ""
            parts.append(f"{label} {a:.3f} -> {b:.3f}{drop}")
    recorded = ((f.name, getattr(loss, f.name)) for f in dataclasses.fields(loss))
    return "; ".join(parts) or ", ".join(f"{k} {v}" for k, v in recorded if v is not None)
