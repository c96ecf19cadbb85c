"""Gate 2's figures: generation latency over the query file's gate2 queries, against Punie's
reported figure and a --baseline timed the same way (docs/gate2-latency.md).

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from punie_gates.results.shared import GateFigures


@dataclass(frozen=True)
class LatencyRow:
    """One query timed alone through the run's answering path."""

    id: str | None = None
    """The query's id."""
    latency_s: float | None = None
    """Seconds from request to the last token."""
    ttft_s: float | None = None
    """Seconds to the first token; null when not streamed."""
    prompt_tokens: int | None = None
    """Tokens in the prompt."""
    prefill_tokens: int | None = None
    """Prompt tokens actually computed (fewer when a prompt cache held a prefix)."""
    generated_tokens: int | None = None
    """Tokens generated."""
    finish_reason: str | None = None
    """Why generation stopped (stop, length)."""
    prompt_tps: float | None = None
    """Prompt tokens per second; null when the path does not say."""
    generation_tps: float | None = None
    """Generated tokens per second; null when the path does not say."""
    baseline_latency_s: float | None = None
    """The baseline's latency on the same query; absent without --baseline."""
    baseline_ttft_s: float | None = None
    """The baseline's time to first token; absent without --baseline."""
    ratio_to_baseline: float | None = None
    """latency_s / baseline_latency_s; absent without --baseline."""


@dataclass(frozen=True)
class Gate2Figures(GateFigures):
    """Gate 2 (soft): latency."""

    max_tokens: int | None = None
    """The token budget of each answer ([gate2] max_tokens)."""
    queries: tuple[str, ...] | None = None
    """The ids of the queries timed."""
    timed_via: str | None = None
    """The answering path timed (`server` or `inprocess`)."""
    avg_latency_s: float | None = None
    """Average seconds per query (the gate's figure, against [gate2] max_avg_latency_s)."""
    ratio_to_punie_reported: float | None = None
    """avg_latency_s / punie_reported_latency_s (a figure from another machine)."""
    punie_reported_latency_s: float | None = None
    """Punie's reported average for Qwen3 ([gate2] reference_latency_s), seconds."""
    avg_ttft_s: float | None = None
    """Average seconds to the first token; null when not streamed."""
    avg_prompt_tps: float | None = None
    """Average prompt tokens per second; null when the path does not say."""
    avg_generation_tps: float | None = None
    """Average generated tokens per second; null when the path does not say."""
    per_query: tuple[LatencyRow, ...] | None = None
    """Each query's timing, with the baseline's beside it."""
    baseline_avg_latency_s: float | None = None
    """The baseline's average seconds per query, measured the same way in this run; absent without --baseline."""
    baseline_avg_ttft_s: float | None = None
    """The baseline's average seconds to the first token; absent without --baseline."""
    ratio_to_baseline_same_run: float | None = None
    """avg_latency_s / baseline_avg_latency_s (the ratio to trust); absent without --baseline."""
    benchmark_json: str | None = None
    """The file with pytest-benchmark's statistics and the timings (gate2-benchmark.json)."""
    bench: Mapping[str, Any] | None = None
    """--bench's figures: the plan's generation against the suite's, side by side (checks.bench.BenchResult as
    a dict, shown whole); absent without --bench."""
    bench_json: str | None = None
    """The file --bench wrote (bench.json); absent without --bench."""
    bench_summary: str | None = None
    """--bench's figures in one line (checks.bench.summary); absent without --bench."""
