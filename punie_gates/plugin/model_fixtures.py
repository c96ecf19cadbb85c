"""Session and module fixtures for the candidate: its name, tokenizer and loaded models.

Each fixture does its work once per scope; one that fails raises CandidateError
with what to do, and pytest reports that same error for every test that needs it.
"""

from __future__ import annotations

import pytest

from punie_gates.answering import environment
from punie_gates.answering.answerer import AnswerSettings, make_answerer
from punie_gates.answering.endpoint import Endpoint
from punie_gates.answering.serving import ServerSlot
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
        quantized = ensure_bits(
            resolved.path,
            gate_config.work_dir,
            gate_config.target_bits,
            fresh=gate_config.fresh,
            progress=progress,
            memory_budget_gb=gate_config.settings.gate1.memory_budget_gb,
        )
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

    with holding(
        lambda: _measured_load(gate_steps, "load baseline", gate_config, gate_config.baseline, progress)
    ) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def baseline_at_target_bits(gate_config, progress):
    """The production model's folder (--baseline) at the target bits, not loaded; None without one."""
    if not gate_config.baseline or gate_config.baseline_endpoint:
        return None  # an endpoint baseline has no folder: it is asked where it runs (baseline_answerer)

    resolved = _resolve(gate_config, gate_config.baseline)
    return ensure_bits(
        resolved.path, gate_config.work_dir, gate_config.target_bits, fresh=gate_config.fresh, progress=progress
    )


# Gates that train serve their fused model; the others the candidate at the target bits.
SERVES_FUSED = ("gate4", "gate5")


@pytest.fixture(scope="session")
def serving_environment(gate_config):
    """The interpreter that serves every model (--serve-python, else ours with mistral-common hidden)."""

    return environment.serving_environment(gate_config.serve_python)


@pytest.fixture(scope="session")
def server_slot(gate_config, serving_environment):
    """The run's one mlx_lm.server slot: serving a model stops the one served before; every
    model is served in the serving environment through its serving plan."""

    slot = ServerSlot(serving_environment, gate_config.work_dir, stall_timeout_s=gate_config.server_stall_timeout_s)
    yield slot
    slot.stop()


def _record_answering(request, gate: str, key: str, value) -> None:
    # Into gates.<gate>.figures.answering, from module fixtures (gate_record is per test).
    session_of(request.config).logs.add_answering(gate, key, value)


def _gate(request) -> str:
    gate = gate_of(request.node)
    if gate is None:
        raise pytest.UsageError(f"{request.node.nodeid}: {request.fixturename} needs a gateN marker")
    return gate


def _answerer(request, gate_config, *, role: str, path, label: str, load_fixture: str):
    """The one place a gate's answering path is built from --answer-via (answering.answerer):
    its tools, token budget, batch size and progress, the server slot and log, or the
    module fixture that loads the model in-process when first asked."""

    gate = _gate(request)
    settings = AnswerSettings(
        tools=tuple(request.getfixturevalue("catalog").native_schemas()),
        max_tokens=gate_config.max_tokens,
        batch_size=gate_config.gen_batch_size,
        progress=request.getfixturevalue("progress"),
    )
    if _endpoint_of(gate_config, role):  # asked where it runs, whatever --answer-via says: it has no files
        return make_answerer(
            "endpoint", label=label, path=None, settings=settings, endpoint=_endpoint(gate_config, role)
        )
    suffix = "-baseline" if role == "baseline" else ""
    slot = request.getfixturevalue("server_slot") if gate_config.answer_via == "server" else None
    return make_answerer(
        gate_config.answer_via,
        label=label,
        path=path,
        settings=settings,
        slot=slot,
        log_path=gate_config.report_dir / f"{gate}{suffix}-server.log",
        load=lambda: request.getfixturevalue(load_fixture),
    )


def _endpoint_of(gate_config, role: str) -> str | None:
    """The URL the role's model is named by (--candidate or --baseline), or None."""
    return gate_config.candidate_endpoint if role == "candidate" else gate_config.baseline_endpoint


def _endpoint(gate_config, role: str):
    """The --candidate or --baseline URL as an answering.endpoint.Endpoint (probed on first use)."""

    url, model = (
        (gate_config.candidate, gate_config.candidate_model)
        if role == "candidate"
        else (gate_config.baseline, gate_config.baseline_model)
    )
    return Endpoint(
        url, label=role, model=model, api_key_env=gate_config.api_key_env, timeout_s=gate_config.endpoint_timeout_s
    )


def _answering(request, gate_config, answerer, key: str):
    try:
        yield answerer
    finally:
        answerer.release()
        record = answerer.record()
        gate = _gate(request)
        if key == "server":
            _record_answering(request, gate, "via", answerer.via)
        if answerer.via == "server" and len(record) > 1:  # a server was started
            _record_answering(request, gate, key, record)
        elif answerer.via == "endpoint" and record.get("models") is not None:  # the endpoint was asked
            _record_answering(request, gate, "endpoint" if key == "server" else "baseline_endpoint", record)


@pytest.fixture(scope="module")
def answerer(request, gate_config):
    """The module's model as the gates ask it (answering.answerer.Answerer), through
    mlx_lm.server or in-process (--answer-via). Gates 4-5 ask their fused model, the others
    the candidate at the target bits. A server starts on first use (and again if the
    baseline was served meanwhile) and stops after the module, whatever happened in it;
    its log is gateN-server.log in the report folder."""
    if gate_config.candidate_endpoint:
        path, label, load = None, "candidate", "candidate_model"  # no folder: the endpoint is asked
    elif _gate(request) in SERVES_FUSED:
        path, label, load = request.getfixturevalue("fused"), "fused candidate", "fused_model"
    else:
        path, label, load = request.getfixturevalue("candidate_at_target_bits").path, "candidate", "candidate_model"
    yield from _answering(
        request,
        gate_config,
        _answerer(request, gate_config, role="candidate", path=path, label=label, load_fixture=load),
        "server",
    )


@pytest.fixture(scope="module")
def baseline_answerer(request, gate_config, baseline_at_target_bits):
    """The baseline (--baseline) asked the same way as the candidate (its own chat template,
    its own tool parser when served), or None without --baseline. Serving it stops the
    candidate's server first: one model at a time. A baseline named by its URL (production's
    own server) is asked there (answering.endpoint), whatever --answer-via says."""
    if baseline_at_target_bits is None and not gate_config.baseline_endpoint:
        yield None
        return
    path = baseline_at_target_bits.path if baseline_at_target_bits is not None else None
    yield from _answering(
        request,
        gate_config,
        _answerer(request, gate_config, role="baseline", path=path, label="baseline", load_fixture="baseline_model"),
        "baseline_server",
    )


def _resolve(gate_config, spec: str):
    return resolve_candidate(spec, cache_dir=gate_config.cache_dir, offline=gate_config.offline, need_weights=True)


def _load(gate_config, spec: str, progress):
    return load_named(spec, gate_config, progress=progress)


def _measured_load(gate_steps, step: str, gate_config, spec: str, progress):
    with gate_steps.measure(step):
        return _load(gate_config, spec, progress)
