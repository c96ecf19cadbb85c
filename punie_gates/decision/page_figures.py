"""A gate's row on the page in figures: the key figures in words, its peak memory, its steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from punie_gates.decision.page_words import _number


def _peak_memory(figures: Mapping[str, Any]) -> float | None:
    # Top-level figures and one level down (gate1's smoke_peak_memory_gb, training's), and steps.
    values = [v for k, v in figures.items() if k.endswith("peak_memory_gb")]
    for nested in [v for v in figures.values() if isinstance(v, Mapping)] + _steps(figures.get("steps")):
        values += [v for k, v in nested.items() if str(k).endswith("peak_memory_gb")]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(numbers) if numbers else None


def run_peak_memory(doc: Mapping[str, Any]) -> float | None:
    """The largest peak memory any gate of a gate-report.json recorded; None when none did."""
    gates = found if isinstance(found := doc.get("gates"), Mapping) else {}
    peaks = [
        _peak_memory(g["figures"])
        for g in gates.values()
        if isinstance(g, Mapping) and isinstance(g.get("figures"), Mapping)
    ]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def _steps(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [{"step": k, **v} if isinstance(v, Mapping) else {"step": k, "value": v} for k, v in value.items()]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def key_figures(figures: Mapping[str, Any]) -> tuple[str, ...]:
    """The figures a reader looks for first, from the keys the gates record."""
    out = []
    markers = figures.get("markers")
    if isinstance(markers, Mapping) and markers:
        single = sum(1 for m in markers.values() if isinstance(m, Mapping) and m.get("single"))
        out.append(f"{single}/{len(markers)} markers single tokens")
    if _number(figures.get("correct")) is not None and _number(figures.get("total")):
        out.append(f"{figures['correct']}/{figures['total']} correct")
    followup = figures.get("followup")
    if (
        isinstance(followup, Mapping)
        and _number(followup.get("correct")) is not None
        and _number(followup.get("total"))
    ):
        out.append(f"{followup['correct']}/{followup['total']} multi-turn")
    heldout = figures.get("heldout")
    if isinstance(heldout, Mapping) and _number(heldout.get("passed")) is not None and _number(heldout.get("total")):
        out.append(f"{heldout['passed']}/{heldout['total']} held-out next steps")
    if isinstance(figures.get("well_formed_calls"), int):
        out.append(f"{figures['well_formed_calls']} well-formed call(s)")
    if _number(figures.get("avg_latency_s")) is not None:
        ref = _number(figures.get("punie_reported_latency_s"))
        out.append(f"avg {figures['avg_latency_s']:.2f} s per query" + (f" (Punie: {ref:.2f} s)" if ref else ""))
    loss = figures.get("loss")
    if isinstance(loss, Mapping) and _number(loss.get("valid_reduction")) is not None:
        out.append(f"validation loss -{100 * loss['valid_reduction']:.1f}%")
    retention = figures.get("lora_retention")
    if isinstance(retention, Mapping) and _number(retention.get("value")) is not None:
        out.append(f"LoRA delta kept {100 * retention['value']:.1f}%")
    fused = figures.get("fused_model")
    if isinstance(fused, Mapping) and _number(fused.get("disk_gb")) is not None:
        out.append(f"fused {fused['disk_gb']:.2f} GB on disk")
    if figures.get("smoke_passed") is not None:
        out.append("smoke test " + ("passed" if figures["smoke_passed"] else "failed"))
    return tuple(out)


