"""A gate's row on the page in figures: the key figures in words and its peak memory."""

from __future__ import annotations

from punie_gates.results.document import RunResults
from punie_gates.results.gate0 import Gate0Figures
from punie_gates.results.gate1 import Gate1Figures
from punie_gates.results.gate2 import Gate2Figures
from punie_gates.results.gate3 import Gate3Figures
from punie_gates.results.shared import GateFigures
from punie_gates.results.training import Gate5Figures, TrainedGateFigures


def peak_memory(figures: GateFigures) -> float | None:
    """The largest peak memory a gate recorded: Gate 1's load and smoke test, and every step's."""
    values = [s.peak_memory_gb for s in figures.steps or ()]
    if isinstance(figures, Gate1Figures):
        values += [figures.peak_memory_gb, figures.smoke_peak_memory_gb]
    numbers = [v for v in values if v is not None]
    return max(numbers) if numbers else None


def run_peak_memory(report: RunResults) -> float | None:
    """The largest peak memory any gate of a run recorded; None when none did."""
    peaks = [peak_memory(g.figures) for g in (report.gates or {}).values() if g.figures is not None]
    known = [p for p in peaks if p is not None]
    return max(known) if known else None


def key_figures(figures: GateFigures) -> tuple[str, ...]:
    """The figures a reader looks for first, in words ("2/10 correct", "avg 6.10 s per query")."""
    out = []
    if isinstance(figures, Gate0Figures) and figures.markers:
        single = sum(1 for m in figures.markers.values() if m.single)
        out.append(f"{single}/{len(figures.markers)} markers single tokens")
    trained = figures if isinstance(figures, TrainedGateFigures) else None
    if trained and trained.correct is not None and trained.total:
        out.append(f"{trained.correct}/{trained.total} correct")
    followup = trained.followup if trained else None
    if followup and followup.correct is not None and followup.total:
        out.append(f"{followup.correct}/{followup.total} multi-turn")
    heldout = trained.heldout if trained else None
    if heldout and heldout.passed is not None and heldout.total:
        out.append(f"{heldout.passed}/{heldout.total} held-out next steps")
    if isinstance(figures, Gate3Figures) and figures.well_formed_calls is not None:
        out.append(f"{figures.well_formed_calls} well-formed call(s)")
    if isinstance(figures, (Gate2Figures, Gate5Figures)) and figures.avg_latency_s is not None:
        ref = figures.punie_reported_latency_s if isinstance(figures, Gate2Figures) else None
        out.append(f"avg {figures.avg_latency_s:.2f} s per query" + (f" (Punie: {ref:.2f} s)" if ref else ""))
    if trained and trained.loss and trained.loss.valid_reduction is not None:
        out.append(f"validation loss -{100 * trained.loss.valid_reduction:.1f}%")
    if trained and trained.lora_retention and trained.lora_retention.value is not None:
        out.append(f"LoRA delta kept {100 * trained.lora_retention.value:.1f}%")
    if trained and trained.fused_model and trained.fused_model.disk_gb is not None:
        out.append(f"fused {trained.fused_model.disk_gb:.2f} GB on disk")
    if isinstance(figures, Gate1Figures) and figures.smoke_passed is not None:
        out.append("smoke test " + ("passed" if figures.smoke_passed else "failed"))
    return tuple(out)
