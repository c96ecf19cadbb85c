"""Gate 2 (soft): generation latency over the query file's gate2 queries, chosen to be representative.

Each query is asked the way the agent asks it: alone, greedy, through the candidate's
chat template with the tools passed natively, and a fixed token budget. By default
through mlx_lm.server, streamed (latency and time to first token are what a Punie user
waits); with --answer-via inprocess generated in this process, the full prompt every
time. Punie's reported average ([gate2] reference_latency_s) is a figure from another machine; the per-query ratio to
a --baseline measured the same way in this same run is the one to trust.
"""

from __future__ import annotations

import json
import statistics

import pytest

pytestmark = [pytest.mark.gate2]


def _timed(answerer, queries, system_prompt, max_tokens):
    """Each query alone, timed, through the run's answering path."""
    from punie_gates.checks.steps import time_queries

    return time_queries(answerer, queries, system_prompt=system_prompt, max_tokens=max_tokens)


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _round(value, digits):
    return round(value, digits) if value is not None else None


def _summary(answers) -> dict:
    return {
        "avg_latency_s": statistics.fmean(g.latency_s for g in answers),
        "avg_ttft_s": _mean(g.ttft_s for g in answers),
        "avg_prompt_tps": _mean(g.prompt_tps for g in answers),
        "avg_generation_tps": _mean(g.generation_tps for g in answers),
        "per_query": [
            {
                "id": g.id,
                "latency_s": round(g.latency_s, 3),
                "ttft_s": _round(g.ttft_s, 3),
                "prompt_tokens": g.prompt_tokens,
                "prefill_tokens": g.prefill_tokens,
                "generated_tokens": g.generated_tokens,
                "finish_reason": g.finish_reason,
                "prompt_tps": _round(g.prompt_tps, 1),
                "generation_tps": _round(g.generation_tps, 1),
            }
            for g in answers
        ],
    }


def test_latency(
    benchmark,
    answerer,
    baseline_answerer,
    query_set,
    system_prompt,
    gate_config,
    settings,
    gate_id,
    gate_record,
    gate_steps,
):
    max_tokens = settings.max_tokens
    queries = query_set.for_gate(gate_id)
    assert queries, f"Gate 2 needs queries in {gate_config.queries_path} [gates] {gate_id}, found none"

    # One round: each query is a long generation on the real machine; the spread
    # across the queries is the statistic, not repeated rounds of the same ones.
    with gate_steps.measure("answer"):
        answers = benchmark.pedantic(
            _timed,
            args=(answerer, queries, system_prompt, max_tokens),
            rounds=1,
            iterations=1,
        )
    summary = _summary(answers)
    avg = summary["avg_latency_s"]
    reference = settings.reference_latency_s
    gate_record.update(
        max_tokens=max_tokens,
        queries=[q.id for q in queries],
        timed_via=gate_config.answer_via,
        avg_latency_s=round(avg, 3),
        ratio_to_punie_reported=round(avg / reference, 3),
        punie_reported_latency_s=reference,
        **{key: summary[key] for key in ("avg_ttft_s", "avg_prompt_tps", "avg_generation_tps", "per_query")},
    )

    if baseline_answerer is not None:
        # Served (or loaded) the same way, after the candidate's server stopped: one model at a time.
        with gate_steps.measure("answer baseline"):
            base = _timed(baseline_answerer, queries, system_prompt, max_tokens)
        base_summary = _summary(base)
        base_avg = base_summary["avg_latency_s"]
        for mine, theirs in zip(summary["per_query"], base_summary["per_query"], strict=True):
            mine["baseline_latency_s"], mine["baseline_ttft_s"] = theirs["latency_s"], theirs["ttft_s"]
            mine["ratio_to_baseline"] = (
                round(mine["latency_s"] / theirs["latency_s"], 3) if theirs["latency_s"] else None
            )
        gate_record.update(
            per_query=summary["per_query"],
            baseline_avg_latency_s=round(base_avg, 3),
            baseline_avg_ttft_s=_round(base_summary["avg_ttft_s"], 3),
            ratio_to_baseline_same_run=round(avg / base_avg, 3) if base_avg else None,
        )

    out = gate_config.report_dir / "gate2-benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = benchmark.stats.stats.as_dict() if getattr(benchmark, "stats", None) else {}
    out.write_text(json.dumps({"benchmark": stats, **summary}, indent=2) + "\n", encoding="utf-8")
    gate_record.update(benchmark_json=str(out))

    limit = settings.max_avg_latency_s
    assert avg <= limit, (
        f"average latency {avg:.2f} s over {len(queries)} queries exceeds {limit:g} s "
        f"({avg / reference:.1f}x Punie's reported {reference:.2f} s)"
    )


@pytest.mark.gate_detail  # a measurement of the suite's method, not of the candidate: it never fails the gate
def test_speed_to_verdict(
    request,
    answerer,
    query_set,
    catalog,
    system_prompt,
    training_data,
    gate_config,
    settings,
    gate_record,
    gate_steps,
    progress,
):
    """--bench: the validation queries (the first `[gate2] bench_queries`, all 40 by default) answered the plan's way (one at a time, the full
    prompt each time) and the suite's way (shared prefix once, batches), timed side by
    side on this model, at the plan's cap and at the training data's answer lengths;
    the figures `punie-gates bench` prints, in the report."""
    if not gate_config.bench:
        pytest.skip("--bench not given: timing the plan's generation against the suite's doubles its cost")
    if gate_config.candidate_endpoint:
        pytest.skip("an endpoint has no files: the bench times generation in this process")
    from dataclasses import asdict

    answerer.release()  # the in-process bench loads the model here: not beside a served copy
    candidate_model = request.getfixturevalue("candidate_model")

    from punie_gates.checks.bench import run_bench, summary, write_result

    with gate_steps.measure("bench"):
        result = run_bench(
            candidate_model.model,
            candidate_model.tokenizer,
            query_set.queries[: settings.bench_queries],
            catalog,
            system_prompt,
            max_tokens=gate_config.max_tokens,
            batch_size=gate_config.gen_batch_size,
            candidate=gate_config.candidate,
            training_records=[*training_data[0].records, *training_data[1].records],
            training_source=str(gate_config.training_data),
            seed=gate_config.seed,
            progress=progress,
        )
    figures = asdict(result)
    gate_record.update(
        bench=figures,
        bench_json=str(write_result(gate_config.report_dir / "bench.json", result)),
        bench_summary=summary(figures),
    )


@pytest.mark.gate_decision
def test_gate2_decision(gate_outcome):
    gate_outcome.check()
