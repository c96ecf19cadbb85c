"""Gate 5 (hard): full training, fused to 5 bits, judged on the 40 validation queries.

All converted training conversations, 500 iterations at the seed's settings on
the 5-bit model Gate 1 made, the seed's fusion, then: validation loss falls by
at least 80%, the quantized fuse keeps the adapter's effect, the model fits in
20 GB on disk, and the 40 queries reach 34/40 with every category at its
minimum (data/queries.toml). Each query is its own test (a detail: its failure
alone does not fail the gate); the aggregate test decides. With --baseline,
generation speed is compared in this same run: slower by 2x or more is flagged,
beyond 5x fails.

Training is the long step (days on the real model): it checkpoints as it goes
and a rerun resumes from the last checkpoint; finished adapters and fused
models are reused from --work-dir unless --fresh.
"""

from __future__ import annotations

import statistics

import pytest

pytestmark = [pytest.mark.gate5]


def pytest_generate_tests(metafunc):
    # One test per query, named by its id (field_access-03): read the query file
    # the run uses at collection time.
    if "query_id" in metafunc.fixturenames:
        from punie_gates import config as gate_options
        from punie_gates.catalog import load_catalog
        from punie_gates.queries import load_queries

        cfg = gate_options.from_pytest(metafunc.config)
        ids = [q.id for q in load_queries(cfg.queries_path, catalog=load_catalog(cfg.tools_path)).queries]
        metafunc.parametrize("query_id", ids, ids=ids)


@pytest.fixture(scope="module")
def records(training_data, gate_config):
    train, valid = training_data
    if not train.records or not valid.records:
        pytest.fail(
            f"no usable training data in {gate_config.training_data}: {train.converted} training and "
            f"{valid.converted} validation conversations converted",
            pytrace=False,
        )
    return list(train.records), list(valid.records)


@pytest.fixture(scope="module")
def trained(candidate_weights, records, gate_config, progress):
    from punie_gates.gate_steps import train_for_gate

    train, valid = records
    return train_for_gate(candidate_weights.path, train, valid, gate_config, iters=gate_config.gate5_iters, progress=progress)


@pytest.fixture(scope="module")
def fused(candidate_weights, trained, gate_config, progress):
    from punie_gates.gate_steps import fuse_for_gate

    return fuse_for_gate(candidate_weights.path, trained.adapter_dir, gate_config, progress=progress)


@pytest.fixture(scope="module")
def fused_model(fused):
    """The fused model loaded for generation; released when the module ends."""
    import mlx.core as mx
    from mlx_lm import load

    model, tokenizer = load(str(fused))
    yield model, tokenizer
    del model
    mx.clear_cache()


@pytest.fixture(scope="module")
def answers(fused_model, query_set, catalog, system_prompt, gate_config, progress):
    """Greedy answers to all 40 queries, generated once for the per-query tests."""
    from punie_gates.gate_steps import answer_queries

    model, tokenizer = fused_model
    generations = answer_queries(
        model, tokenizer, query_set.queries, catalog=catalog, system_prompt=system_prompt,
        gate_config=gate_config, progress=progress, save_as="gate5-responses.jsonl",
    )
    return {g.id: g for g in generations}


def test_validation_loss_reduction(trained, records, gate_config, gate_record):
    from punie_gates.training import plot_loss_curve, write_loss_curve

    curve = trained.curve
    report = gate_config.report_dir
    png = plot_loss_curve(curve, report / "gate5-loss-curve.png", f"Gate 5 LoRA: {trained.iters_done} iterations")
    write_loss_curve(curve, report / "gate5-loss-curve.json")
    gate_record("loss_curve", curve.to_json())
    gate_record("loss_curve_png", str(png))
    gate_record("loss", curve.summary())
    gate_record("examples", {"train": len(records[0]), "valid": len(records[1])})
    gate_record("training", {
        "iters": trained.iters_done,
        "resumed_from": trained.resumed_from,
        "cached": trained.cached,
        "seconds": round(trained.seconds, 1),
        "lora_layers": trained.lora_layers,
        "adapter_dir": str(trained.adapter_dir),
        "settings": trained.info.get("settings"),
    })
    need = float(gate_config.gate("gate5")["min_val_loss_reduction"])
    assert curve.reduction is not None, f"expected >= 2 validation points, found {curve.valid}"
    assert curve.end < curve.start, f"validation loss ended at {curve.end:.4f}, above where it started ({curve.start:.4f})"
    assert curve.reduction >= need, (
        f"validation loss fell {curve.reduction:.1%} ({curve.start:.4f} -> {curve.end:.4f}) over "
        f"{trained.iters_done} iterations; expected >= {need:.0%}"
    )


def test_lora_survives_quantization(candidate_tokenizer, candidate_weights, trained, fused, records, gate_config, gate_record):
    from punie_gates.gate_steps import measure_retention
    from punie_gates.sampling import stratified_sample

    sample = stratified_sample(records[1], gate_config.gate4_valid_examples, gate_config.seed)
    retention = measure_retention(candidate_tokenizer, candidate_weights.path, trained.adapter_dir, fused, sample)
    gate_record("lora_retention", retention.to_json())
    need = float(gate_config.gate("gate5")["min_lora_retention"])
    assert retention.kl_adapter_vs_base > 0, "the adapter does not change the model's predictions: nothing to retain"
    assert retention.value >= need, (
        f"the {retention.bits}-bit fuse keeps {retention.value:.2f} of the adapter's effect on next-token "
        f"predictions; expected >= {need}: quantization rounded the LoRA delta away"
    )


def test_size_on_disk(fused, gate_config, gate_record):
    from punie_gates.fusion import model_size_gb

    size = model_size_gb(fused)
    limit = float(gate_config.gate("gate5")["max_disk_gb"])
    gate_record("fused_model", {"path": str(fused), "disk_gb": round(size, 3)})
    assert size <= limit, f"the fused 5-bit model takes {size:.2f} GB on disk; expected <= {limit:.0f} GB"


@pytest.mark.gate_detail
def test_query(query_id, answers, query_set, catalog):
    from punie_gates.scoring import score_response

    score = score_response(query_set.by_id(query_id), answers[query_id].text, catalog)
    assert score.passed, f"{query_id}: {score.reason}"


def test_overall_and_per_category(answers, query_set, catalog, gate_config, gate_record):
    from punie_gates.gate_steps import generation_figures
    from punie_gates.scoring import score_response

    scores = {q.id: score_response(q, answers[q.id].text, catalog) for q in query_set.queries}
    by_category: dict[str, list[bool]] = {}
    for q in query_set.queries:
        by_category.setdefault(q.category, []).append(scores[q.id].passed)
    correct = sum(s.passed for s in scores.values())
    thresholds = query_set.thresholds
    gate_record("correct", correct)
    gate_record("total", len(scores))
    gate_record("categories", {
        c: {"correct": sum(v), "total": len(v), "min": thresholds.category_min.get(c)} for c, v in by_category.items()
    })
    gate_record("queries", [{**s.to_json(), "response": answers[i].text[:300]} for i, s in scores.items()])
    gate_record("responses", str(gate_config.report_dir / "gate5-responses.jsonl"))
    gate_record("avg_latency_s", round(statistics.fmean(g.latency_s for g in answers.values()), 3))
    gate_record("generation", generation_figures(answers.values(), gate_config))

    short = [
        f"{c}: {sum(by_category.get(c, []))}/{len(by_category.get(c, []))} (min {m})"
        for c, m in thresholds.category_min.items()
        if sum(by_category.get(c, [])) < m
    ]
    problems = []
    if correct < thresholds.overall_min:
        problems.append(f"{correct}/{len(scores)} correct, expected >= {thresholds.overall_min}")
    if short:
        problems.append("categories below their minimum: " + ", ".join(short))
    assert not problems, "; ".join(problems)


def test_speed_against_baseline(
    fused_model, baseline_model, query_set, catalog, system_prompt, gate_config, gate_record, progress
):
    if baseline_model is None:
        gate_record("speed", "not applicable: no --baseline given (Gate 2 compares with Punie's reported figure)")
        return
    from punie_gates.gate_steps import validation_prompts
    from punie_gates.generation import generate_naive

    tools = catalog.native_schemas()
    max_tokens = int(gate_config.gate("gate2")["max_tokens"])
    queries = query_set.for_gate("gate2")

    def average(model, tokenizer) -> float:
        prompts = validation_prompts(tokenizer, queries, system_prompt, tools)
        generations = generate_naive(model, tokenizer, prompts, max_tokens=max_tokens, progress=progress)
        return statistics.fmean(g.latency_s for g in generations)

    mine = average(*fused_model)
    theirs = average(baseline_model.model, baseline_model.tokenizer)
    ratio = mine / theirs if theirs else float("inf")
    spec = gate_config.gate("gate5")
    flag, limit = float(spec["slowdown_flag"]), float(spec["slowdown_max"])
    gate_record("speed", {
        "queries": [q.id for q in queries],
        "max_tokens": max_tokens,
        "fused_avg_latency_s": round(mine, 3),
        "baseline_avg_latency_s": round(theirs, 3),
        "slowdown": round(ratio, 3),
        "flagged": ratio >= flag,
    })
    if flag <= ratio <= limit:
        gate_record("flags", [f"{ratio:.1f}x slower than the baseline (acceptable up to {limit:g}x, flagged from {flag:g}x)"])
    assert ratio <= limit, (
        f"the fused model averages {mine:.2f} s per query against the baseline's {theirs:.2f} s: "
        f"{ratio:.1f}x slower, expected <= {limit:.0f}x"
    )


@pytest.mark.gate_decision
def test_gate5_decision(gate_outcome):
    gate_outcome.check()
