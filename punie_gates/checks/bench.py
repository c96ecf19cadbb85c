"""`punie-gates bench`: the plan's validation generation vs the suite's, side by side.

Both runs happen in one process on one loaded model, with the same prompts and the
same token caps: first the plan's way (one query at a time, the full prompt each
time), then the suite's (the shared system-prompt + tools prefix computed once, the
queries decoded in batches). Prints one JSON line; `--json-out` writes it to a file
as well, so the gates can put the same figures in their report.

Two workloads, each timed both ways. The flat figures (`naive_s`, `suite_s`,
`speedup`, ...) are the plan's: every answer capped at `max_tokens` (512).
`training_lengths` holds the same comparison with a cap per query drawn from the
training data's own assistant turns (checks.answer_lengths), which stop long before
512: there prefill is a larger share of the work, which is what the prefix cache
saves. `workload` and `training_lengths.workload` say which is which.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from punie_gates.answering.concurrency import time_concurrency
from punie_gates.answering.environment import serving_environment
from punie_gates.answering.inprocess import generate_answers, generate_naive, shared_prefix_len
from punie_gates.answering.prompts import query_messages, render_prompt
from punie_gates.answering.server import ModelServer, ServerError
from punie_gates.checks.answer_lengths import answer_token_lengths, draw_caps, summarize
from punie_gates.checks.scoring import score_response
from punie_gates.checks.steps import query_conversations

PLAN_MAX_TOKENS = 512  # the plan's validation script capped answers at 512 tokens
PLAN_WORKLOAD = "plan_cap"
TRAINING_WORKLOAD = "training_lengths"


@dataclass(frozen=True)
class WorkloadTiming:
    """Both ways of answering the queries, timed on one workload (one cap per query)."""

    workload: str  # "plan_cap" (every answer up to max_tokens) or "training_lengths"
    description: str  # the workload in words
    naive_s: float
    suite_s: float
    speedup: float
    prefill_tokens_naive: int
    prefill_tokens_suite: int
    generated_tokens_naive: int
    generated_tokens_suite: int
    outputs_differ: int
    verdicts_differ: int
    caps: tuple[int, ...]  # the token cap of each query, in query order


@dataclass(frozen=True)
class BenchResult:
    naive_s: float
    suite_s: float
    speedup: float
    prefill_tokens_naive: int
    prefill_tokens_suite: int
    shared_prefix_tokens: int
    generated_tokens_naive: int
    generated_tokens_suite: int
    outputs_differ: int
    verdicts_differ: int
    queries: int
    batch_size: int
    max_tokens: int
    candidate: str
    machine: dict
    workload: str = PLAN_WORKLOAD  # what the flat figures above are: the plan's cap on every answer
    workload_description: str = ""
    training_lengths: WorkloadTiming | None = None  # the same at the training data's answer lengths; None: not measured
    answer_lengths: dict | None = None  # the distribution those caps were drawn from (AnswerLengths.to_json)
    server: dict | None = None  # the same queries through mlx_lm.server: sequential vs concurrent (run_server_bench)


def run_bench(
    model,
    tokenizer,
    queries,
    catalog,
    system_prompt: str,
    *,
    max_tokens: int,
    batch_size: int,
    candidate: str = "",
    training_records=None,
    training_source: str = "",
    seed: int = 0,
    progress=None,
) -> BenchResult:
    """Time both ways of answering `queries` and compare their outputs and verdicts: on the
    plan's workload (every answer up to `max_tokens`) and, given `training_records`
    (converted form), at answer lengths drawn from their assistant turns."""
    tools = catalog.native_schemas()
    prompts = [(q.id, render_prompt(tokenizer, query_messages(system_prompt, q.text), tools)) for q in queries]
    # Warm up once so neither side pays for first-call setup (kernels, allocator).
    generate_answers(model, tokenizer, prompts[:1], max_tokens=2, prefix_cache=False)

    load_before = _load_avg()
    plan_words = f"the plan's: every answer capped at {max_tokens} tokens"
    plan = _time_workload(
        model,
        tokenizer,
        queries,
        prompts,
        catalog,
        [max_tokens] * len(prompts),
        batch_size,
        PLAN_WORKLOAD,
        plan_words,
        "bench",
        progress,
    )
    at_training = lengths = None
    if training_records is not None:
        turns = answer_token_lengths(tokenizer, training_records)
        lengths = summarize(turns, training_source or "training data")
        caps = draw_caps(turns, len(prompts), seed=seed, limit=max_tokens)
        words = (
            f"the training data's: each answer capped at a length drawn from its assistant turns "
            f"({lengths.describe()}; at most {max_tokens})"
        )
        at_training = _time_workload(
            model,
            tokenizer,
            queries,
            prompts,
            catalog,
            caps,
            batch_size,
            TRAINING_WORKLOAD,
            words,
            "bench at training lengths",
            progress,
        )

    return BenchResult(
        naive_s=plan.naive_s,
        suite_s=plan.suite_s,
        speedup=plan.speedup,
        prefill_tokens_naive=plan.prefill_tokens_naive,
        prefill_tokens_suite=plan.prefill_tokens_suite,
        shared_prefix_tokens=shared_prefix_len([ids for _, ids in prompts]),
        generated_tokens_naive=plan.generated_tokens_naive,
        generated_tokens_suite=plan.generated_tokens_suite,
        outputs_differ=plan.outputs_differ,
        verdicts_differ=plan.verdicts_differ,
        queries=len(prompts),
        batch_size=batch_size,
        max_tokens=max_tokens,
        candidate=candidate,
        # Other work on the machine slows whichever run it overlaps: the 1-minute
        # load average before and after tells whether the comparison was fair.
        machine={**machine(), "load_avg_1m": [load_before, _load_avg()]},
        workload=PLAN_WORKLOAD,
        workload_description=plan_words,
        training_lengths=at_training,
        answer_lengths=lengths.to_json() if lengths is not None else None,
    )


def _time_workload(
    model, tokenizer, queries, prompts, catalog, caps, batch_size, workload, words, label, progress
) -> WorkloadTiming:
    tic = time.perf_counter()
    naive = generate_naive(model, tokenizer, prompts, max_tokens=caps, progress=_step(progress, f"{label} naive"))
    naive_s = time.perf_counter() - tic
    tic = time.perf_counter()
    suite = generate_answers(
        model, tokenizer, prompts, max_tokens=caps, batch_size=batch_size, progress=_step(progress, f"{label} suite")
    )
    suite_s = time.perf_counter() - tic
    return WorkloadTiming(
        workload=workload,
        description=words,
        naive_s=round(naive_s, 3),
        suite_s=round(suite_s, 3),
        speedup=round(naive_s / suite_s, 2) if suite_s > 0 else 0.0,
        prefill_tokens_naive=sum(g.prefill_tokens_computed for g in naive),
        prefill_tokens_suite=sum(g.prefill_tokens_computed for g in suite),
        generated_tokens_naive=sum(g.generated_tokens for g in naive),
        generated_tokens_suite=sum(g.generated_tokens for g in suite),
        outputs_differ=sum(a.tokens != b.tokens for a, b in zip(naive, suite, strict=True)),
        verdicts_differ=_verdicts_differ(queries, naive, suite, catalog),
        caps=tuple(caps),
    )


def run_server_bench(
    model_path: Path, queries, catalog, system_prompt: str, *, max_tokens: int, concurrency: int, log_path: Path
) -> dict:
    """The same queries through mlx_lm.server on `model_path` (the folder the in-process runs
    loaded): one at a time, then `concurrency` at a time, to one server, both after one
    untimed warm-up request (answering.concurrency.time_concurrency), with the server's record."""

    conversations = query_conversations(queries, system_prompt)
    load_before = _load_avg()
    # Served as the gates serve by default: this interpreter, mistral-common hidden from the server.
    launcher = serving_environment(None).server_launcher()
    with ModelServer(model_path, log_path, launcher=launcher) as server, server.answering():  # watched
        timing = time_concurrency(
            server.base_url,
            conversations,
            tools=catalog.native_schemas(),
            max_tokens=max_tokens,
            concurrency=concurrency,
        )
        if timing.errors and server.failure_within(2.0):
            raise ServerError(server.failure)
    record = server.record()
    return {
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(timing).items()},
        "startup_s": round(record.startup_s, 3),
        "stop_s": round(record.stop_s, 3) if record.stop_s is not None else None,
        "command": shlex.join(record.command),
        "versions": dict(record.versions),
        "log": str(log_path),
        "load_avg_1m": [load_before, _load_avg()],
    }


def write_result(path: Path, result: BenchResult) -> Path:
    """The JSON line `punie-gates bench` prints, as a file (the gates write reports/bench.json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result)) + "\n", encoding="utf-8")
    return path


def summary(figures: dict) -> str:
    """One line for people: what the bench measured, from its JSON figures, each workload named."""
    n = figures.get("queries", 0)
    line = (
        f"plan's cap: naive {figures['naive_s']:.1f} s, suite {figures['suite_s']:.1f} s: speedup {figures['speedup']:.2f}x "
        f"(prefill {figures['prefill_tokens_naive']:,} vs {figures['prefill_tokens_suite']:,} tokens; "
        f"{n} queries, batch {figures['batch_size']}, cap {figures['max_tokens']} tokens; "
        f"outputs differ {figures['outputs_differ']}/{n}, verdicts differ {figures['verdicts_differ']}/{n})"
    )
    at = figures.get("training_lengths")
    if not at:
        line += "; at the training data's answer lengths: not measured"
    else:
        caps = sorted(at["caps"])
        line += (
            f"; at the training data's answer lengths (caps {caps[0]}-{caps[-1]}, median {caps[len(caps) // 2]}): "
            f"naive {at['naive_s']:.1f} s, suite {at['suite_s']:.1f} s: speedup {at['speedup']:.2f}x "
            f"(generated {at['generated_tokens_naive']:,} tokens; outputs differ {at['outputs_differ']}/{n}, "
            f"verdicts differ {at['verdicts_differ']}/{n})"
        )
    server = figures.get("server")
    if server:
        line += (
            f"; mlx_lm.server: sequential {server['sequential_s']:.1f} s, {server['concurrency']} at a time "
            f"{server['concurrent_s']:.1f} s: {server['speedup']:.2f}x"
        )
    return line


def machine() -> dict:
    """Where the figures were measured."""
    import mlx.core as mx

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mlx_device": str(mx.default_device()),
        "mlx_version": mx.__version__,
    }


def _load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on every platform
        return None


def _verdicts_differ(queries, naive, suite, catalog) -> int:
    return sum(
        score_response(q, a.text, catalog).passed != score_response(q, b.text, catalog).passed
        for q, a, b in zip(queries, naive, suite, strict=True)
    )


def _step(progress, name: str):
    if progress is None:
        return None
    return lambda _step, done, total, **figures: progress(name, done, total, **figures)
