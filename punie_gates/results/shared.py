"""The typed values several gates' figures share: intervals, the paired test, criteria,
per-step costs, how the answers were asked, and the base every gate's figures extend.

Every field is optional: None means this run did not record it (an older report, a
gate that stopped early, a step that does not apply). Each field's docstring is its
entry in docs/report.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WilsonInterval:
    """A pass rate with its 95% Wilson score interval (punie_gates.stats.Interval.to_json)."""

    passed: int | None = None
    """How many passed."""
    total: int | None = None
    """How many were asked."""
    rate: float | None = None
    """passed / total (0..1, 4 decimals)."""
    low: float | None = None
    """Lower end of the interval (0..1, 4 decimals)."""
    high: float | None = None
    """Upper end of the interval (0..1, 4 decimals)."""
    confidence: float | None = None
    """The interval's confidence level (0.95)."""


@dataclass(frozen=True)
class McNemarTest:
    """The exact McNemar test on the candidate's and the baseline's paired pass/fail outcomes
    (punie_gates.stats.McNemar.to_json)."""

    both_passed: int | None = None
    """Items both models passed."""
    both_failed: int | None = None
    """Items both models failed."""
    only_candidate: int | None = None
    """Items only the candidate passed."""
    only_baseline: int | None = None
    """Items only the baseline passed."""
    discordant: int | None = None
    """only_candidate + only_baseline: the items the test decides on."""
    p_two_sided: float | None = None
    """Two-sided p-value (1.0 with no discordant item)."""
    p_candidate_worse: float | None = None
    """One-sided p-value for "the candidate is worse than the baseline"."""
    p_baseline_worse: float | None = None
    """One-sided p-value for "the baseline is worse than the candidate"."""


@dataclass(frozen=True)
class DetectableDifference:
    """The smallest baseline-minus-candidate difference the one-sided McNemar test could see on
    this many pairs (punie_gates.stats.Detectable.to_json); present only when an alpha judged."""

    pairs: int | None = None
    """How many paired items."""
    alpha: float | None = None
    """The test's significance level."""
    power: float | None = None
    """The power the difference is computed for (0.8)."""
    observed_discordance: float | None = None
    """The share of items only one model passed (0..1)."""
    difference: float | None = None
    """The smallest detectable difference in pass rate (0..1); null when none is detectable."""
    assumed: str | None = None
    """The discordance assumed, in words."""
    sentence: str | None = None
    """The figure said for people ("a difference smaller than 16 points could go unseen ...")."""


@dataclass(frozen=True)
class CriterionRow:
    """One count criterion against its 95% interval (checks.judgment.criteria_json)."""

    gate: str | None = None
    """The gate it belongs to (only in the report's top-level `criteria.rows`)."""
    criterion: str | None = None
    """Its name: `overall`, a category, `multi-turn overall`, `held-out overall`."""
    passed: int | None = None
    """How many passed."""
    total: int | None = None
    """How many were asked."""
    min: int | None = None
    """The minimum to meet (from data/queries.toml or data/gates.toml)."""
    threshold: float | None = None
    """min / total (0..1)."""
    interval: WilsonInterval | None = None
    """The pass rate's interval."""
    met: bool | None = None
    """Whether passed >= min."""
    decided: str | None = None
    """`by the data` when the interval lies wholly on one side of the threshold, else `inside the interval`."""
    note: str | None = None
    """What an undecided criterion means, in words; null when decided."""


@dataclass(frozen=True)
class StepRow:
    """What one step of a gate cost (plugin/step_costs.py; docs/report.md, "What a verdict costs")."""

    step: str | None = None
    """The step: quantize, load, load baseline, smoke, answer, answer baseline, bench, train, evaluate, fuse,
    retention, multi-turn, held-out, held-out baseline, screening."""
    seconds: float | None = None
    """Wall-clock seconds (3 decimals)."""
    peak_memory_gb: float | None = None
    """MLX's own peak allocation during the step, GB; null where MLX cannot say."""
    peak_rss_gb: float | None = None
    """The process's peak resident set, GB (see rss_scope); null where the platform cannot say."""
    rss_scope: str | None = None
    """`step` when peak_rss_gb is the step's own peak, `process` when it is the process's since it started."""
    bytes_written: int | None = None
    """How many bytes the work folder grew by during the step."""
    cached: bool | None = None
    """Whether the step reused a cached artifact (then about 0 s)."""
    ok: bool | None = None
    """Whether the step ended without an exception."""
    note: str | None = None
    """A remark on the step ("already at 5 bits: nothing to do", "17 turns")."""
    method: str | None = None
    """The fuse step's fusion method (streamed or recipe)."""
    fallback: str | None = None
    """Why the fuse step fell back from the method asked for; absent when it did not."""
    iters: int | None = None
    """The train step's iterations done."""
    resumed_from: int | None = None
    """The train step's checkpoint iteration it resumed from (0: from the start)."""
    part_of: str | None = None
    """For a part of another step (evaluate: `train`), that step; its seconds are inside that step's."""
    passes: int | None = None
    """The evaluate row's number of validation-loss passes."""


@dataclass(frozen=True)
class ServerStart:
    """One start of an mlx_lm.server (answering.server)."""

    pid: int | None = None
    """The server's process id."""
    startup_s: float | None = None
    """Seconds from start until it answered."""
    stop_s: float | None = None
    """Seconds its stop took."""
    longest_silence_s: float | None = None
    """The longest time, in seconds, the server wrote nothing while requests were in flight."""


@dataclass(frozen=True)
class ToolParsing:
    """How mlx_lm.server parses tool calls for the served folder (answering.tool_parsing)."""

    tokenizer_class: str | None = None
    """The tokenizer class the server loads."""
    tool_parser: str | None = None
    """mlx-lm's tool parser module; null when it has none for this format."""
    tool_call_start: str | None = None
    """The marker that opens a call; null when the server does not know it."""
    detokenizer: str | None = None
    """mlx-lm's streaming detokenizer class."""
    returns_tool_calls: bool | None = None
    """Whether the server returns calls as OpenAI `tool_calls` (else as text in the content)."""
    note: str | None = None
    """A remark on the parsing, when there is one."""


@dataclass(frozen=True)
class ServedAsIs:
    """How mlx_lm.server would serve the model folder as it is (answering.plan._summary)."""

    tokenizer_class: str | None = None
    """The tokenizer class the server would load."""
    tool_parser: str | None = None
    """mlx-lm's tool parser it would use; null when none."""
    detokenizer: str | None = None
    """mlx-lm's streaming detokenizer class."""
    chat_template_source: str | None = None
    """Where its chat template would come from."""
    parses_template_calls: bool | None = None
    """Whether that parser reads the calls the chat template writes."""


@dataclass(frozen=True)
class ServingPlan:
    """How production's environment serves a model folder (answering.plan.ServingPlan.to_json;
    docs/serving.md)."""

    model_folder: str | None = None
    """The model folder asked for."""
    served_folder: str | None = None
    """The folder actually served (a copy with a changed tokenizer setup when the plan needs one)."""
    environment: str | None = None
    """The serving interpreter, described."""
    versions: Mapping[str, str | None] | None = None
    """Library versions in the serving environment (python, mlx, mlx-lm, transformers, ...)."""
    tokenizer_class: str | None = None
    """The tokenizer class the server loads."""
    tool_parser: str | None = None
    """mlx-lm's tool parser for this format; null when none."""
    parses_template_calls: bool | None = None
    """Whether that parser reads the calls the chat template writes."""
    detokenizer: str | None = None
    """mlx-lm's streaming detokenizer class."""
    chat_template_source: str | None = None
    """Where the chat template comes from (chat_template.jinja, tokenizer_config.json, tekken.json)."""
    regex_warning: bool | None = None
    """Whether transformers warns about an incorrect regex pattern for this tokenizer."""
    as_is: ServedAsIs | None = None
    """How the folder would be served as it is, when the plan serves something else (a copy with another
    tokenizer setup); null when it is served as it is."""
    change: str | None = None
    """The change Punie must make to serve it (a flag on Gate 0); null when none."""
    returns_tool_calls: bool | None = None
    """Whether the server returns calls as OpenAI `tool_calls`."""
    command: str | None = None
    """The exact mlx_lm.server command line."""


@dataclass(frozen=True)
class ServerRecord:
    """One model served through mlx_lm.server for a gate (answering.answerer's record)."""

    via: str | None = None
    """`server`."""
    model: str | None = None
    """Which model: candidate, fused candidate, baseline."""
    path: str | None = None
    """The folder served."""
    log: str | None = None
    """The server's log file (gateN-server.log in the report folder)."""
    command: str | None = None
    """The command that started it."""
    versions: Mapping[str, str | None] | None = None
    """Library versions in the serving environment."""
    plan: ServingPlan | None = None
    """The serving plan it was started from."""
    tool_parsing: ToolParsing | None = None
    """How it parses tool calls."""
    starts: tuple[ServerStart, ...] | None = None
    """Each start of the server, in order (a server is restarted after the other model was served)."""


@dataclass(frozen=True)
class EndpointLatency:
    """How long an endpoint took to answer."""

    requests: int | None = None
    """Requests timed."""
    avg_s: float | None = None
    """Average seconds per request."""
    max_s: float | None = None
    """The longest request, seconds."""


@dataclass(frozen=True)
class EndpointRecord:
    """A model asked where it runs, an OpenAI-compatible URL (answering.endpoint.Endpoint.record; docs/endpoints.md)."""

    via: str | None = None
    """`endpoint`."""
    model: str | None = None
    """Which model: candidate or baseline."""
    endpoint: str | None = None
    """The URL asked (--candidate or --baseline)."""
    request_model: str | None = None
    """The `model` sent with each request (--candidate-model, --baseline-model); null when none."""
    api_key_env: str | None = None
    """The environment variable the API key is read from (the key itself is never written)."""
    api_key_sent: bool | None = None
    """Whether a key was sent."""
    timeout_s: float | None = None
    """Each request's timeout, seconds."""
    models: Mapping[str, Any] | None = None
    """What GET /v1/models said (status, ids, latency_s, note; shown whole)."""
    response_model: Mapping[str, int] | None = None
    """The `model` the answers named, with how many answers named each."""
    system_fingerprint: Mapping[str, int] | None = None
    """The answers' system_fingerprint values, with how many answers gave each."""
    versions: str | None = None
    """What is known of the server's library versions (an endpoint does not say)."""
    latency: EndpointLatency | None = None
    """How long it took to answer; absent when nothing was asked."""


@dataclass(frozen=True)
class Answering:
    """How a gate's answers were asked (plugin/model_fixtures.py; docs/answering.md)."""

    via: str | None = None
    """`server`, `inprocess` or `endpoint` (--answer-via; an endpoint candidate is always asked where it runs)."""
    server: ServerRecord | None = None
    """The candidate's mlx_lm.server; absent when no server was started."""
    baseline_server: ServerRecord | None = None
    """The baseline's mlx_lm.server; absent without --baseline or when none was started."""
    endpoint: EndpointRecord | None = None
    """The candidate's endpoint as asked; absent unless the candidate is a URL."""
    baseline_endpoint: EndpointRecord | None = None
    """The baseline's endpoint, the same way; absent unless the baseline is a URL."""


@dataclass(frozen=True)
class GateFigures:
    """What every gate may record: its steps' costs and how it asked its model."""

    steps: tuple[StepRow, ...] | None = None
    """What each step cost, in run order; a step a session fixture ran is charged to the gate that first
    needed it."""
    answering: Answering | None = None
    """How the gate's answers were asked; absent for a gate that asks no model."""
