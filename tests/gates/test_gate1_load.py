"""Gate 1 (hard): the candidate loads in MLX at the target bits, fits the memory budget and writes code.

The candidate is quantized to the target bits ([gate1] target_bits) unless it is
already there; that model is the one every later gate uses. A model whose
answer to a plain coding request is not Python defining a function stops the
evaluation here, with its answer quoted. The demo's random weights fail here
on purpose.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gate1]


def test_loads_at_target_bits(candidate_model, settings, gate_record):
    target = settings.target_bits
    gate_record.update(**candidate_model.figures(), target_bits=target)
    assert candidate_model.bits == target, (
        f"expected the loaded model at {target} bits, found {candidate_model.bits} "
        f"(config.json of {candidate_model.path}); later gates would measure another model"
    )


def test_peak_memory_within_budget(candidate_model, settings, gate_record):
    budget = settings.memory_budget_gb
    gate_record.update(memory_budget_gb=budget)
    assert candidate_model.peak_memory_gb <= budget, (
        f"expected peak memory while loading <= {budget:g} GB, found {candidate_model.peak_memory_gb:.2f} GB "
        f"({candidate_model.name} at {candidate_model.bits} bits); it would not run beside the agent"
    )


def test_smoke_writes_a_python_function(candidate_model, settings, gate_record, gate_steps):
    from punie_gates.checks.smoke import run_smoke

    with gate_steps.measure("smoke"):
        result = run_smoke(
            candidate_model.model,
            candidate_model.tokenizer,
            prompt=settings.smoke_prompt,
            max_tokens=settings.smoke_max_tokens,
        )
    gate_record.update(**result.figures())
    problems = [] if result.passed else [result.failure_message()]
    budget = settings.memory_budget_gb
    if result.peak_memory_gb > budget:
        problems.append(f"expected peak memory while generating <= {budget:g} GB, found {result.peak_memory_gb:.2f} GB")
    if problems and candidate_model.is_demo:
        what = "the demo candidate (random weights)" if candidate_model.name == "demo" else "a built-in demo candidate"
        problems.append(f"this is {what}: it is expected to fail here")
    assert not problems, "; ".join(problems)


@pytest.mark.gate_decision
def test_gate1_decision(gate_outcome):
    gate_outcome.check()
