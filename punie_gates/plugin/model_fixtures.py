"""Session and module fixtures for the candidate: its name, tokenizer and loaded models.

Each fixture does its work once per scope; one that fails raises CandidateError
with what to do, and pytest reports that same error for every test that needs it.
"""

from __future__ import annotations

import pytest

from punie_gates.answering.serving import ServedModel, ServerSlot
from punie_gates.model.candidate import Candidate, resolve_candidate
from punie_gates.model.loading import holding, load_named
from punie_gates.model.quantize import ensure_bits
from punie_gates.model.tokenizer import load_candidate_tokenizer
from punie_gates.plugin.session import gate_of, session_of


@pytest.fixture(scope="session")
def candidate(gate_config) -> Candidate:
    """The candidate resolved to a local folder, tokenizer and config only (no weights)."""
    return resolve_candidate(gate_config.candidate, cache_dir=gate_config.cache_dir, offline=gate_config.offline)


@pytest.fixture(scope="session")
def candidate_tokenizer(candidate):
    """The candidate's tokenizer as mlx-lm loads it for training (Gate 0 checks this one)."""
    return load_candidate_tokenizer(candidate.path)


@pytest.fixture(scope="session")
def candidate_serving_tokenizer(candidate):
    """The same tokenizer in its default mode: generation prompts end with a user turn,
    which Mistral's backend refuses in finetuning mode."""
    return load_candidate_tokenizer(candidate.path, serving=True)


@pytest.fixture(scope="session")
def candidate_at_target_bits(gate_config, gate_steps, progress):
    """The candidate's folder at the target bits (a model.quantize.Quantized record), not loaded.

    Training and fusion (Gates 4, 5) read its path and load their own copy, so
    no generation model has to stay resident beside them.
    """
    resolved = _resolve(gate_config, gate_config.candidate)
    with gate_steps.measure("quantize") as step:
        quantized = ensure_bits(resolved.path, gate_config.work_dir, gate_config.target_bits, fresh=gate_config.fresh,
                                progress=progress, memory_budget_gb=gate_config.memory_budget_gb)
        step["cached"] = quantized.cached
        if not quantized.quantized_by_suite:
            step["note"] = f"already at {gate_config.target_bits} bits: nothing to do"
    return quantized


@pytest.fixture(scope="module")
def candidate_model(gate_config, candidate_at_target_bits, gate_steps, progress):
    """The candidate at the target bits, loaded for one gate module (model.loading.LoadedModel)."""
    with holding(lambda: _measured_load(gate_steps, "load", gate_config, gate_config.candidate, progress)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def baseline_model(gate_config, gate_steps, progress):
    """The production model (--baseline) loaded the same way for one module, or None."""
    if not gate_config.baseline:
        yield None
        return

    with holding(lambda: _measured_load(gate_steps, "load baseline", gate_config, gate_config.baseline, progress)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def baseline_at_target_bits(gate_config, progress):
    """The production model's folder (--baseline) at the target bits, not loaded; None without one."""
    if not gate_config.baseline:
        return None

    resolved = _resolve(gate_config, gate_config.baseline)
    return ensure_bits(resolved.path, gate_config.work_dir, gate_config.target_bits, fresh=gate_config.fresh, progress=progress)


# Gates that train serve their fused model; the others the candidate at the target bits.
SERVES_FUSED = ("gate4", "gate5")


@pytest.fixture(scope="session")
def server_slot():
    """The run's one mlx_lm.server slot: serving a model stops the one served before."""
    slot = ServerSlot()
    yield slot
    slot.stop()


def _record_answering(request, gate: str, key: str, value) -> None:
    # Into gates.<gate>.figures.answering, from module fixtures (gate_record is per test).
    session = session_of(request.config)
    answering = dict(session.logs[gate].figures.get("answering") or {})
    answering[key] = value
    session.record(gate, "answering", answering)


def _gate(request) -> str:
    gate = gate_of(request.node)
    if gate is None:
        raise pytest.UsageError(f"{request.node.nodeid}: {request.fixturename} needs a gateN marker")
    return gate


@pytest.fixture(scope="module")
def answer_server(request, gate_config, server_slot):
    """The module's model behind mlx_lm.server (answering.serving.ServedModel), or None with
    --answer-via inprocess. Gates 4-5 serve their fused model, the others the candidate at
    the target bits. `.server` is the running ModelServer (started on first use, and again
    if the baseline was served meanwhile), `.base_url` its OpenAI URL. Stopped after the
    module, whatever happened in it; the server's log is gateN-server.log in the report folder."""
    gate = _gate(request)
    if gate_config.answer_via != "server":
        _record_answering(request, gate, "via", gate_config.answer_via)
        yield None
        return

    if gate in SERVES_FUSED:
        path, label = request.getfixturevalue("fused"), "fused candidate"
    else:
        path, label = request.getfixturevalue("candidate_at_target_bits").path, "candidate"
    served = ServedModel(server_slot, path, gate_config.report_dir / f"{gate}-server.log", label)
    try:
        yield served
    finally:
        served.stop()
        if served.runs:
            _record_answering(request, gate, "via", "server")
            _record_answering(request, gate, "server", served.record())


@pytest.fixture(scope="module")
def baseline_server(request, gate_config, server_slot, baseline_at_target_bits):
    """The baseline (--baseline) behind mlx_lm.server, served the same way as the candidate
    (its own chat template, its own tool parser), or None (no baseline, or --answer-via
    inprocess). Serving it stops the candidate's server first: one model at a time."""
    if baseline_at_target_bits is None or gate_config.answer_via != "server":
        yield None
        return

    gate = _gate(request)
    served = ServedModel(server_slot, baseline_at_target_bits.path,
                         gate_config.report_dir / f"{gate}-baseline-server.log", "baseline")
    try:
        yield served
    finally:
        served.stop()
        if served.runs:
            _record_answering(request, gate, "baseline_server", served.record())


def _resolve(gate_config, spec: str):
    return resolve_candidate(spec, cache_dir=gate_config.cache_dir, offline=gate_config.offline, need_weights=True)


def _load(gate_config, spec: str, progress):
    return load_named(spec, gate_config, progress=progress)


def _measured_load(gate_steps, step: str, gate_config, spec: str, progress):
    with gate_steps.measure(step):
        return _load(gate_config, spec, progress)
