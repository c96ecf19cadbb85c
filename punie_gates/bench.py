"""`punie-gates bench`: the plan's validation generation vs the suite's, side by side.

Both runs happen in one process on one loaded model, with the same prompts and the
same token cap: first the plan's way (one query at a time, the full prompt each
time), then the suite's (the shared system-prompt + tools prefix computed once, the
queries decoded in batches). Prints one JSON line; `--json-out` writes it to a file
as well, so the gates can put the same figures in their report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from punie_gates.generation import DEFAULT_BATCH_SIZE

PLAN_MAX_TOKENS = 512  # the plan's validation script capped answers at 512 tokens


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


def run_bench(model, tokenizer, queries, catalog, system_prompt: str, *, max_tokens: int, batch_size: int,
              candidate: str = "", progress=None) -> BenchResult:
    """Time both ways of answering `queries` and compare their outputs and verdicts."""
    from punie_gates.generation import generate_answers, generate_naive, shared_prefix_len
    from punie_gates.prompts import query_messages, render_prompt

    tools = catalog.native_schemas()
    prompts = [(q.id, render_prompt(tokenizer, query_messages(system_prompt, q.text), tools)) for q in queries]
    # Warm up once so neither side pays for first-call setup (kernels, allocator).
    generate_answers(model, tokenizer, prompts[:1], max_tokens=2, prefix_cache=False)

    load_before = _load_avg()
    tic = time.perf_counter()
    naive = generate_naive(model, tokenizer, prompts, max_tokens=max_tokens, progress=_step(progress, "bench naive"))
    naive_s = time.perf_counter() - tic
    tic = time.perf_counter()
    suite = generate_answers(
        model, tokenizer, prompts, max_tokens=max_tokens, batch_size=batch_size, progress=_step(progress, "bench suite")
    )
    suite_s = time.perf_counter() - tic

    return BenchResult(
        naive_s=round(naive_s, 3),
        suite_s=round(suite_s, 3),
        speedup=round(naive_s / suite_s, 2) if suite_s > 0 else 0.0,
        prefill_tokens_naive=sum(g.prefill_tokens_computed for g in naive),
        prefill_tokens_suite=sum(g.prefill_tokens_computed for g in suite),
        shared_prefix_tokens=shared_prefix_len([ids for _, ids in prompts]),
        generated_tokens_naive=sum(g.generated_tokens for g in naive),
        generated_tokens_suite=sum(g.generated_tokens for g in suite),
        outputs_differ=sum(a.tokens != b.tokens for a, b in zip(naive, suite, strict=True)),
        verdicts_differ=_verdicts_differ(queries, naive, suite, catalog),
        queries=len(prompts),
        batch_size=batch_size,
        max_tokens=max_tokens,
        candidate=candidate,
        # Other work on the machine slows whichever run it overlaps: the 1-minute
        # load average before and after tells whether the comparison was fair.
        machine={**machine(), "load_avg_1m": [load_before, _load_avg()]},
    )


def write_result(path: Path, result: BenchResult) -> Path:
    """The JSON line `punie-gates bench` prints, as a file (the gates write reports/bench.json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result)) + "\n", encoding="utf-8")
    return path


def summary(figures: dict) -> str:
    """One line for people: what the bench measured, from its JSON figures."""
    n = figures.get("queries", 0)
    return (
        f"naive {figures['naive_s']:.1f} s, suite {figures['suite_s']:.1f} s: speedup {figures['speedup']:.2f}x "
        f"(prefill {figures['prefill_tokens_naive']:,} vs {figures['prefill_tokens_suite']:,} tokens; "
        f"{n} queries, batch {figures['batch_size']}, cap {figures['max_tokens']} tokens; "
        f"outputs differ {figures['outputs_differ']}/{n}, verdicts differ {figures['verdicts_differ']}/{n})"
    )


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
    from punie_gates.scoring import score_response

    return sum(
        score_response(q, a.text, catalog).passed != score_response(q, b.text, catalog).passed
        for q, a, b in zip(queries, naive, suite, strict=True)
    )


def _step(progress, name: str):
    if progress is None:
        return None
    return lambda _step, done, total, **figures: progress(name, done, total, **figures)


def _load_candidate(spec: str, progress=None):
    """(model, tokenizer) of a candidate loaded as the gates load it: at the target bits (5)."""
    import tomllib

    from punie_gates import paths
    from punie_gates.candidate import resolve_candidate
    from punie_gates.smoke import TARGET_BITS, load_model

    gate1 = tomllib.loads((paths.data_dir() / "gates.toml").read_text(encoding="utf-8")).get("gate1", {})
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    cache = paths.cache_dir()
    candidate = resolve_candidate(spec, cache_dir=cache, offline=offline, need_weights=True)
    loaded = load_model(
        candidate,
        work_dir=Path(os.environ.get("PUNIE_GATES_WORK_DIR") or cache / "work"),
        memory_budget_gb=float(gate1.get("memory_budget_gb", 20.0)),
        bits=int(gate1.get("target_bits", TARGET_BITS)),
        progress=progress,
    )
    return loaded.model, loaded.tokenizer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="punie-gates bench",
        description="Time the plan's validation generation (one query at a time, full prompt) against the "
        "suite's (shared-prefix cache + batching) on the same model in one process; print one JSON line.",
    )
    p.add_argument("--candidate", default=os.environ.get("PUNIE_GATES_CANDIDATE", "demo"),
                   help="'demo' (built-in, offline), an MLX model folder or a Hugging Face repo id (fetched unless "
                        "HF_HUB_OFFLINE=1); loaded at the gates' target bits (default: demo)")
    p.add_argument("--queries", type=Path, default=None, help="query file (default: data/queries.toml)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N queries (default: all of them)")
    p.add_argument("--tools", type=Path, default=None, help="tool catalog (default: data/tools.toml)")
    p.add_argument("--system-prompt", type=Path, default=None,
                   help="system prompt text (default: data/system_prompt.txt)")
    p.add_argument("--max-tokens", type=int, default=PLAN_MAX_TOKENS,
                   help=f"token cap per answer, both runs (default: the plan's {PLAN_MAX_TOKENS})")
    p.add_argument("--gen-batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"queries decoded together in the suite's run (default: {DEFAULT_BATCH_SIZE})")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON result to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.max_tokens < 1 or args.gen_batch_size < 1 or (args.limit is not None and args.limit < 1):
        print("punie-gates bench: --max-tokens, --gen-batch-size and --limit must be >= 1", file=sys.stderr)
        return 2
    from punie_gates.candidate import CandidateError
    from punie_gates.catalog import CatalogError, load_catalog
    from punie_gates.progress import null_progress, progress_printer
    from punie_gates.prompts import default_system_prompt
    from punie_gates.queries import QueryFileError, load_queries

    try:
        catalog = load_catalog(args.tools)
        queries = load_queries(args.queries, catalog=catalog).queries[: args.limit]
    except (CatalogError, QueryFileError) as exc:
        print(f"punie-gates bench: {exc}", file=sys.stderr)
        return 2
    if args.system_prompt is not None:
        system_prompt = args.system_prompt.read_text(encoding="utf-8").strip()
    else:
        system_prompt = default_system_prompt(())
    progress = null_progress if args.quiet else progress_printer(lambda line: print(line, file=sys.stderr, flush=True))

    try:
        model, tokenizer = _load_candidate(args.candidate, progress)
    except CandidateError as exc:
        print(f"punie-gates bench: {exc}", file=sys.stderr)
        return 2
    result = run_bench(model, tokenizer, queries, catalog, system_prompt, max_tokens=args.max_tokens,
                       batch_size=args.gen_batch_size, candidate=args.candidate, progress=progress)
    print(json.dumps(asdict(result)), flush=True)
    if args.json_out is not None:
        write_result(args.json_out, result)
    return 0
