"""Gates 4 and 5's figures: a LoRA run, fused to the target bits, judged on the query file's
queries (docs/gate4-lora.md, docs/gate5-full.md). Both gates train, fuse and answer alike
(plugin/training_fixtures.py), so they share `TrainedGateFigures`.

Every field is optional: None means not recorded (see results/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from punie_gates.results.queries import CategoryFigures, Comparison, Heldout, MultiTurn, QueryRow
from punie_gates.results.shared import CriterionRow, GateFigures, McNemarTest, WilsonInterval


@dataclass(frozen=True)
class LossCurve:
    """Training and validation loss as mlx-lm reported them (model.loss_curve.LossCurve.to_json)."""

    train: tuple[tuple[int, float], ...] | None = None
    """(iteration, training loss) points."""
    valid: tuple[tuple[int, float], ...] | None = None
    """(iteration, validation loss) points; iteration 0 is before training."""


@dataclass(frozen=True)
class LossSummary:
    """The loss curve's ends (model.loss_curve.LossCurve.summary)."""

    valid_start: float | None = None
    """Validation loss before training; null with no validation point."""
    valid_end: float | None = None
    """Validation loss at the end."""
    valid_reduction: float | None = None
    """(valid_start - valid_end) / valid_start (0..1; negative when it rose)."""
    train_first: float | None = None
    """The first training loss reported."""
    train_last: float | None = None
    """The last training loss reported."""
    points: Mapping[str, int] | None = None
    """How many points each curve has (`train`, `valid`)."""


@dataclass(frozen=True)
class TrainingRun:
    """The LoRA training run (checks.steps.training_figures)."""

    iters: int | None = None
    """Iterations done."""
    resumed_from: int | None = None
    """The checkpoint iteration it resumed from (0: from the start)."""
    cached: bool | None = None
    """Whether a finished adapter was reused from the work folder."""
    seconds: float | None = None
    """Seconds training took (1 decimal)."""
    lora_layers: int | None = None
    """Layers the adapter trains."""
    adapter_dir: str | None = None
    """The adapter's folder in the work folder."""
    settings: Mapping[str, Any] | None = None
    """The training settings passed to mlx-lm (iters, batch_size, learning_rate, num_layers, ...; shown whole)."""


@dataclass(frozen=True)
class Fusion:
    """How the adapter was fused (checks.steps.FusedModel.to_json; docs/reliability.md)."""

    path: str | None = None
    """The fused model's folder."""
    method: str | None = None
    """The method that ran: `streamed` or `recipe`."""
    requested: str | None = None
    """The method asked for (--fusion)."""
    cached: bool | None = None
    """Whether a fused model was reused from the work folder."""
    fallback: str | None = None
    """Why it fell back from the method asked for; null when it did not."""


@dataclass(frozen=True)
class Retention:
    """How much of the adapter's effect the quantized fuse keeps (model.fusion.Retention.to_json)."""

    value: float | None = None
    """1 - kl_adapter_vs_fused / kl_adapter_vs_base (1: all kept); null when the adapter changed nothing."""
    kl_adapter_vs_base: float | None = None
    """Mean KL divergence per position, nats: how far the adapter moved the base."""
    kl_adapter_vs_fused: float | None = None
    """Mean KL divergence per position, nats: how far the quantized fuse is from the adapter."""
    prompts: int | None = None
    """Validation records compared."""
    bits: int | None = None
    """The fused model's bits per weight."""
    positions: int | None = None
    """Next-token distributions compared, over all prompts."""
    delta_projection: float | None = None
    """Share of the weight delta kept along its direction; null when not measured."""
    delta_norm: float | None = None
    """The weight delta's norm over the adapted layers."""
    seconds: float | None = None
    """Seconds the measure took."""


@dataclass(frozen=True)
class FusedModel:
    """The fused model on disk."""

    path: str | None = None
    """Its folder."""
    disk_gb: float | None = None
    """Its size on disk, GB (Gate 5: against [gate5] max_disk_gb)."""


@dataclass(frozen=True)
class Examples:
    """The training sample's size."""

    train: int | None = None
    """Training conversations."""
    valid: int | None = None
    """Validation conversations."""
    requested: Mapping[str, int] | None = None
    """The sizes asked for (`train`, `valid`: [gate4] examples, valid_examples); Gate 4 only."""


@dataclass(frozen=True)
class Generation:
    """How the answers were generated (checks.steps.generation_figures)."""

    queries: int | None = None
    """Queries answered."""
    via: str | None = None
    """The answering path."""
    batch_size: int | None = None
    """Answers generated together (--gen-batch-size)."""
    max_tokens: int | None = None
    """The token budget of each answer."""
    prefill_tokens_naive: int | None = None
    """Prompt tokens asking one at a time with the full prompt would compute."""
    prefill_tokens_suite: int | None = None
    """Prompt tokens actually computed (the shared prefix once)."""
    generated_tokens: int | None = None
    """Tokens generated."""


@dataclass(frozen=True)
class Speed:
    """The fused model's speed against the baseline's on Gate 2's queries, in the same run."""

    queries: tuple[str, ...] | None = None
    """The ids of the queries timed."""
    max_tokens: int | None = None
    """The token budget of each answer ([gate5] speed_max_tokens)."""
    fused_avg_latency_s: float | None = None
    """The fused model's average seconds per query."""
    baseline_avg_latency_s: float | None = None
    """The baseline's average seconds per query."""
    slowdown: float | None = None
    """fused / baseline (against [gate5] slowdown_flag and slowdown_max)."""
    flagged: bool | None = None
    """Whether the slowdown raised a flag."""


@dataclass(frozen=True)
class TrainedGateFigures(GateFigures):
    """What both training gates record: the run, the fuse, and the fused model's answers."""

    examples: Examples | None = None
    """The training sample's size."""
    loss_curve: LossCurve | None = None
    """The loss curve's points."""
    loss_curve_png: str | None = None
    """The loss curve drawn (gateN-loss-curve.png)."""
    loss: LossSummary | None = None
    """The loss curve's ends (Gate 5: valid_reduction against [gate5] min_val_loss_reduction)."""
    training: TrainingRun | None = None
    """The training run."""
    fusion: Fusion | None = None
    """How the adapter was fused."""
    lora_retention: Retention | None = None
    """What the quantized fuse kept of the adapter's effect (against min_lora_retention)."""
    fused_model: FusedModel | None = None
    """The fused model on disk."""
    queries: tuple[QueryRow, ...] | None = None
    """A row per query: the fused model's answer, the baseline's and the multi-turn pass beside it."""
    misses_by_cause: Mapping[str, int] | None = None
    """The candidate's failed queries counted by cause (model, server, stream)."""
    baseline_misses_by_cause: Mapping[str, int] | None = None
    """The baseline's failed queries counted by cause; absent without --baseline."""
    correct: int | None = None
    """Queries the fused model passed."""
    total: int | None = None
    """Queries asked."""
    interval: WilsonInterval | None = None
    """The pass rate's interval."""
    baseline_interval: WilsonInterval | None = None
    """The baseline's pass rate; absent without --baseline."""
    mcnemar: McNemarTest | None = None
    """The paired test on every query; absent without --baseline."""
    categories: Mapping[str, CategoryFigures] | None = None
    """Per query category (Gate 4: only with --baseline)."""
    criteria: tuple[CriterionRow, ...] | None = None
    """The gate's count criteria against their intervals (docs/statistics.md)."""
    comparison: Comparison | None = None
    """The candidate against --baseline."""
    followup: MultiTurn | None = None
    """The multi-turn pass's totals (Gate 4 reports it; Gate 5 judges it by [followup])."""
    heldout: Heldout | None = None
    """The next step at each held-out turn."""
    responses: str | None = None
    """The fused model's answers (gateN-responses.jsonl)."""
    baseline_responses: str | None = None
    """The baseline's answers (gateN-baseline-responses.jsonl); absent without --baseline."""


@dataclass(frozen=True)
class Gate4Figures(TrainedGateFigures):
    """Gate 4 (hard): a small LoRA run."""

    training_data: str | None = None
    """The training data folder (--training-data)."""
    misses_by_cause_summary: str | None = None
    """The candidate's and the baseline's misses by cause in one line; absent without --baseline."""
    converted: Mapping[str, int] | None = None
    """Conversations converted, per split (`train`, `valid`)."""
    rejected: Mapping[str, int] | None = None
    """Conversations the conversion rejected, per split."""
    first_rejects: tuple[str, ...] | None = None
    """The first five rejects, with their lines; absent when none."""
    families: Mapping[str, int] | None = None
    """The sample's conversations per tool family (formats.sampling.record_family)."""
    prompt_matches_training: bool | None = None
    """Whether the validation prompts render exactly like training prompts."""


@dataclass(frozen=True)
class Gate5Figures(TrainedGateFigures):
    """Gate 5 (hard): full training, judged on every validation query."""

    avg_latency_s: float | None = None
    """Average seconds per answer."""
    generation: Generation | None = None
    """How the answers were generated."""
    speed: str | Speed | None = None
    """The fused model's speed against the baseline's; a string saying why it was not measured (no --baseline)."""
