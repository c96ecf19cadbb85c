"""Gate 4 (hard): a small LoRA run, fused and quantized to the target bits, answers enough gate4 queries.

The cheapest training signal. [gate4] examples conversations sampled to keep the
training data's mix of tool families (punie_gates.formats.sampling) and
valid_examples validation ones, converted to the candidate's chat form; `iters`
iterations at the [training] settings on the model Gate 1 made; then the seed's
fusion (fuse dequantized, quantize to the target bits). It passes when
validation loss fell, the quantized fuse kept the adapter's effect (measured:
the plan only assumed it), and the fused model answers at least `min_correct`
of the query file's gate4 queries, asked with the system prompt and tools
training used (data/gates.toml holds the figures). The multi-turn pass (the tool results sent back,
the answers scored) is reported, not judged.

Adapters and fused models are cached in --work-dir, keyed by their inputs;
an interrupted training resumes from its last checkpoint (--fresh ignores both).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gate4]


@pytest.fixture(scope="module")
def records(usable_training_data, gate_config, settings):
    """(train, valid) records for this gate: stratified samples of the converted data."""
    from punie_gates.formats.sampling import stratified_sample

    train, valid = usable_training_data
    return (
        stratified_sample(train, settings.examples, gate_config.seed),
        stratified_sample(valid, settings.valid_examples, gate_config.seed),
    )


@pytest.fixture(scope="module")
def gate_queries(query_set, gate_id):
    return query_set.for_gate(gate_id)


def test_training_sample(records, training_data, gate_config, settings, gate_record):
    from collections import Counter

    from punie_gates.formats.sampling import record_family

    train, valid = records
    converted_train, converted_valid = training_data
    rejects = converted_train.rejects + converted_valid.rejects
    if rejects:
        gate_record.update(first_rejects=[f"line {r.line}: {r.reason}" for r in rejects[:5]])
    wanted = {"train": settings.examples, "valid": settings.valid_examples}
    gate_record.update(
        training_data=str(gate_config.training_data),
        converted={"train": converted_train.converted, "valid": converted_valid.converted},
        rejected={"train": converted_train.rejected, "valid": converted_valid.rejected},
        examples={"train": len(train), "valid": len(valid), "requested": wanted},
        families=dict(Counter(record_family(r) for r in train).most_common()),
    )
    assert len(train) == min(wanted["train"], converted_train.converted), (
        f"expected a sample of {wanted['train']} training conversations "
        f"(or all {converted_train.converted}), found {len(train)}"
    )
    assert len(valid) == min(settings.valid_examples, converted_valid.converted)


def test_validation_loss_falls(trained, gate_config, gate_id, gate_record):
    from punie_gates.checks.steps import training_figures

    gate_record.update(
        **training_figures(trained, gate_config.report_dir, gate_id, f"Gate 4 LoRA: {trained.iters_done} iterations")
    )
    curve = trained.curve
    assert curve.start is not None and len(curve.valid) >= 2, f"expected >= 2 validation points, found {curve.valid}"
    assert curve.end < curve.start, (
        f"validation loss ended at {curve.end:.4f}, not below where it started ({curve.start:.4f}) after "
        f"{trained.iters_done} iterations: the adapter did not learn the training data"
    )


def test_lora_survives_quantization(retention, fused, settings, gate_record):
    from punie_gates.checks.steps import retention_problem
    from punie_gates.model.folder import disk_gb

    gate_record.update(
        lora_retention=retention.to_json(), fused_model={"path": str(fused), "disk_gb": round(disk_gb(fused), 3)}
    )
    problem = retention_problem(retention, settings.min_lora_retention)
    assert problem is None, problem


def test_prompts_match_training(answers, gate_record):
    gate_record.update(prompt_matches_training=answers.prompt_mismatch is None)
    assert answers.prompt_mismatch is None, answers.prompt_mismatch


def test_gate4_queries(answers, answer_scores, answer_rows, answerer, gate_config, settings, gate_record):
    from punie_gates.checks.attribution import miss_reason
    from punie_gates.checks.comparison import interval_figures
    from punie_gates.checks.judgment import criteria_json

    scores = list(answer_scores.values())
    counts, lead, tail = miss_reason(answer_rows, answerer.serving_change())
    correct = sum(s.passed for s in scores)
    need = settings.min_correct
    gate_record.update(
        queries=answer_rows,
        misses_by_cause=counts,
        interval=interval_figures(answers.queries, answer_scores)["interval"],
        correct=correct,
        total=len(scores),
        responses=str(gate_config.report_dir / "gate4-responses.jsonl"),
        criteria=criteria_json([("overall", correct, len(scores), need)]),
    )
    failed = "; ".join(f"{s.id}: {s.reason}" for s in scores if not s.passed)
    message = (
        f"{lead}expected >= {need}/{len(scores)} correct answers from the fused model, found {correct}{tail}: {failed}"
    )
    assert correct >= need, message[:1500]


@pytest.mark.gate_detail
def test_gate4_multi_turn(answer_rows, conversations, query_set, catalog, gate_record):
    """Reported, not judged (Gate 5 judges the multi-turn pass), so a detail: its failure
    alone does not fail the gate."""
    from punie_gates.checks.multiturn import followup_rows, judge_multi_turn

    gate_record.update(
        queries=followup_rows(answer_rows, conversations, catalog),
        followup=judge_multi_turn(conversations, query_set, judge=False).to_json(),
    )


def test_against_baseline(answers, baseline_answers, conversations, catalog, gate_config, gate_record):
    """With --baseline: the production model's answers beside the fused candidate's, scored
    alike, with both intervals and the paired test (recorded; Gate 5 judges on every validation query)."""
    from punie_gates.checks.comparison import (
        NO_BASELINE,
        compare_with_baseline,
        comparison_figures,
        query_rows,
        score_both,
    )

    if baseline_answers is None:
        gate_record.update(comparison={"made": False, "reason": NO_BASELINE})
        return
    queries = answers.queries
    mine, theirs = score_both(queries, answers.generations, baseline_answers, catalog)
    comparison = compare_with_baseline(queries, mine, theirs, alpha=None)
    figures = comparison_figures(queries, mine, theirs, comparison)
    from punie_gates.checks.multiturn import followup_rows

    rows = query_rows(queries, mine, answers.generations, theirs, baseline_answers)
    from punie_gates.checks.attribution import causes_line, count_causes

    theirs_by_cause = count_causes(r["baseline"] for r in rows if isinstance(r.get("baseline"), dict))
    mine_by_cause = count_causes(rows)
    gate_record.update(
        queries=followup_rows(rows, conversations, catalog),  # the multi-turn verdicts stay
        baseline_misses_by_cause=theirs_by_cause,
        misses_by_cause_summary="; ".join(
            x for x in (causes_line("candidate", mine_by_cause), causes_line("baseline", theirs_by_cause)) if x
        ),
        **figures,  # categories, intervals, the paired test, comparison
        baseline_responses=str(gate_config.report_dir / "gate4-baseline-responses.jsonl"),
    )


@pytest.mark.gate_detail
def test_gate4_heldout_next_steps(heldout_turns, heldout, baseline_heldout, gate_record):
    """The next step at every held-out turn of the training data (checks.heldout), paired with
    the baseline's: reported, not judged, so a detail."""
    from punie_gates.checks.heldout import heldout_figures, paired_heldout, with_baseline

    if heldout is None:
        gate_record.update(heldout={"measured": False, "reason": "--heldout-limit 0"})
        return
    figures = heldout_figures(heldout_turns, heldout)
    if baseline_heldout is not None:
        figures = with_baseline(figures, paired_heldout(heldout_turns, heldout, baseline_heldout))
    gate_record.update(heldout=figures)


@pytest.mark.gate_decision
def test_gate4_decision(gate_outcome):
    gate_outcome.check()
