"""Gate 1's figures: the candidate loads at the target bits, within the memory budget, and
writes a Python function (docs/gate1-load.md).

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from punie_gates.results.shared import GateFigures


@dataclass(frozen=True)
class Gate1Figures(GateFigures):
    """Gate 1 (hard): MLX load and smoke (model.loading.LoadedModel.figures, checks.smoke.SmokeResult.figures)."""

    name: str | None = None
    """The candidate's name."""
    is_demo: bool | None = None
    """Whether it is a built-in demo candidate."""
    path: str | None = None
    """The folder loaded (the candidate at the target bits)."""
    source_path: str | None = None
    """The candidate's own folder."""
    bits: int | None = None
    """The loaded model's bits per weight (its config.json)."""
    source_bits: int | None = None
    """The candidate's own bits per weight; null for unquantized weights."""
    quantized_by_suite: bool | None = None
    """Whether the suite quantized it to the target bits (else it was already there)."""
    quantize_seconds: float | None = None
    """Seconds the quantization took (0 when cached or not needed)."""
    load_seconds: float | None = None
    """Seconds the load took."""
    peak_memory_gb: float | None = None
    """MLX's peak memory while loading, GB."""
    estimated_memory_gb: float | None = None
    """The memory estimated before loading, GB."""
    disk_gb: float | None = None
    """The loaded folder's size on disk, GB."""
    target_bits: int | None = None
    """The bits asked for ([gate1] target_bits)."""
    memory_budget_gb: float | None = None
    """The memory budget ([gate1] memory_budget_gb), GB."""
    smoke_passed: bool | None = None
    """Whether the smoke answer is Python that parses and defines a function."""
    smoke_reason: str | None = None
    """The smoke check's verdict in words."""
    smoke_output: str | None = None
    """The smoke answer (clipped)."""
    smoke_prompt_tokens: int | None = None
    """Tokens in the smoke prompt."""
    smoke_generated_tokens: int | None = None
    """Tokens the smoke answer took."""
    smoke_finish_reason: str | None = None
    """Why generation stopped (stop, length)."""
    smoke_seconds: float | None = None
    """Seconds the smoke generation took."""
    smoke_peak_memory_gb: float | None = None
    """MLX's peak memory while generating, GB."""
