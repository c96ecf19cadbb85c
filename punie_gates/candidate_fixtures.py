"""Session fixtures for the candidate: its name, tokenizer and loaded model.

Loaded by punie_gates.plugin (`pytest_plugins`). Each fixture does its work
once per session; one that fails raises CandidateError with what to do, and
pytest reports that same error for every test that needs it.
"""

from __future__ import annotations

import pytest

from punie_gates.candidate import Candidate, resolve_candidate


@pytest.fixture(scope="session")
def candidate(gate_config) -> Candidate:
    """The candidate resolved to a local folder, tokenizer and config only (no weights)."""
    return resolve_candidate(gate_config.candidate, cache_dir=gate_config.cache_dir, offline=gate_config.offline)


@pytest.fixture(scope="session")
def candidate_tokenizer(candidate):
    """The candidate's tokenizer as mlx-lm loads it for training (Gate 0 checks this one)."""
    from punie_gates.tokenizer_check import load_candidate_tokenizer

    return load_candidate_tokenizer(candidate.path)


@pytest.fixture(scope="session")
def candidate_serving_tokenizer(candidate):
    """The same tokenizer in its default mode: generation prompts end with a user turn,
    which Mistral's backend refuses in finetuning mode."""
    from punie_gates.tokenizer_check import load_candidate_tokenizer

    return load_candidate_tokenizer(candidate.path, serving=True)


@pytest.fixture(scope="session")
def candidate_model(gate_config, progress):
    """The candidate at the target bits, loaded once for generation (punie_gates.smoke.LoadedModel)."""
    return _load(gate_config, gate_config.candidate, progress)


@pytest.fixture(scope="session")
def baseline_model(gate_config, progress):
    """The production model (--baseline) loaded the same way, or None when not given."""
    if not gate_config.baseline:
        return None
    return _load(gate_config, gate_config.baseline, progress)


def _load(gate_config, spec: str, progress):
    from punie_gates.smoke import TARGET_BITS, load_model

    resolved = resolve_candidate(spec, cache_dir=gate_config.cache_dir, offline=gate_config.offline, need_weights=True)
    return load_model(
        resolved,
        work_dir=gate_config.work_dir,
        memory_budget_gb=gate_config.memory_budget_gb,
        bits=int(gate_config.gate("gate1").get("target_bits", TARGET_BITS)),
        fresh=gate_config.fresh,
        progress=progress,
    )
