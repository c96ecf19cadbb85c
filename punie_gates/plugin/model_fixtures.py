"""Session and module fixtures for the candidate: its name, tokenizer and loaded models.

Each fixture does its work once per scope; one that fails raises CandidateError
with what to do, and pytest reports that same error for every test that needs it.
"""

from __future__ import annotations

import pytest

from punie_gates.model.candidate import Candidate, resolve_candidate


@pytest.fixture(scope="session")
def candidate(gate_config) -> Candidate:
    """The candidate resolved to a local folder, tokenizer and config only (no weights)."""
    return resolve_candidate(gate_config.candidate, cache_dir=gate_config.cache_dir, offline=gate_config.offline)


@pytest.fixture(scope="session")
def candidate_tokenizer(candidate):
    """The candidate's tokenizer as mlx-lm loads it for training (Gate 0 checks this one)."""
    from punie_gates.model.tokenizer import load_candidate_tokenizer

    return load_candidate_tokenizer(candidate.path)


@pytest.fixture(scope="session")
def candidate_serving_tokenizer(candidate):
    """The same tokenizer in its default mode: generation prompts end with a user turn,
    which Mistral's backend refuses in finetuning mode."""
    from punie_gates.model.tokenizer import load_candidate_tokenizer

    return load_candidate_tokenizer(candidate.path, serving=True)


@pytest.fixture(scope="session")
def candidate_at_target_bits(gate_config, progress):
    """The candidate's folder at the target bits (a model.quantize.Quantized record), not loaded.

    Training and fusion (Gates 4, 5) read its path and load their own copy, so
    no generation model has to stay resident beside them.
    """
    from punie_gates.model.quantize import ensure_bits

    resolved = _resolve(gate_config, gate_config.candidate)
    return ensure_bits(resolved.path, gate_config.work_dir, gate_config.target_bits, fresh=gate_config.fresh,
                       progress=progress, memory_budget_gb=gate_config.memory_budget_gb)


@pytest.fixture(scope="module")
def candidate_model(gate_config, candidate_at_target_bits, progress):
    """The candidate at the target bits, loaded for one gate module (model.loading.LoadedModel)."""
    from punie_gates.model.loading import holding

    with holding(lambda: _load(gate_config, gate_config.candidate, progress)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def baseline_model(gate_config, progress):
    """The production model (--baseline) loaded the same way for one module, or None."""
    if not gate_config.baseline:
        yield None
        return
    from punie_gates.model.loading import holding

    with holding(lambda: _load(gate_config, gate_config.baseline, progress)) as loaded:
        yield loaded


def _resolve(gate_config, spec: str):
    return resolve_candidate(spec, cache_dir=gate_config.cache_dir, offline=gate_config.offline, need_weights=True)


def _load(gate_config, spec: str, progress):
    from punie_gates.model.loading import load_named

    return load_named(spec, gate_config, progress=progress)
