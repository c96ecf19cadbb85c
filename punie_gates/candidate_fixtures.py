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
def candidate_weights(gate_config, progress):
    """The candidate's folder at the target bits (quantized by the suite if needed), not loaded.

    Training and fusion (Gates 4, 5) read this path and load their own copy, so
    no generation model has to stay resident beside them.
    """
    from punie_gates.smoke import ensure_bits

    resolved = _resolve(gate_config, gate_config.candidate)
    return ensure_bits(resolved.path, gate_config.work_dir, _bits(gate_config), fresh=gate_config.fresh, progress=progress)


@pytest.fixture(scope="module")
def candidate_model(gate_config, candidate_weights, progress):
    """The candidate at the target bits, loaded for one gate module (punie_gates.smoke.LoadedModel).

    Module scope on purpose: a 24B model at 5 bits is ~16 GB, and Gates 4 and 5
    load training copies; keeping this one for the whole session would double that.
    """
    loaded = _load(gate_config, gate_config.candidate, progress)
    yield loaded
    del loaded
    _release()


@pytest.fixture(scope="module")
def baseline_model(gate_config, progress):
    """The production model (--baseline) loaded the same way for one module, or None."""
    if not gate_config.baseline:
        yield None
        return
    loaded = _load(gate_config, gate_config.baseline, progress)
    yield loaded
    del loaded
    _release()


def _bits(gate_config) -> int:
    from punie_gates.smoke import TARGET_BITS

    return int(gate_config.gate("gate1").get("target_bits", TARGET_BITS))


def _resolve(gate_config, spec: str):
    return resolve_candidate(spec, cache_dir=gate_config.cache_dir, offline=gate_config.offline, need_weights=True)


def _load(gate_config, spec: str, progress):
    from punie_gates.smoke import load_model

    return load_model(
        _resolve(gate_config, spec),
        work_dir=gate_config.work_dir,
        memory_budget_gb=gate_config.memory_budget_gb,
        bits=_bits(gate_config),
        fresh=gate_config.fresh,
        progress=progress,
    )


def _release() -> None:
    # pytest drops its cached value right after this teardown; collecting and
    # clearing MLX's buffer cache here (and again before every load) keeps the
    # next module from starting with the last one's model still resident.
    import gc

    import mlx.core as mx

    gc.collect()
    mx.clear_cache()
