"""Session fixtures for the run's options and data, and the per-test gate helpers."""

from __future__ import annotations

from typing import Any

import pytest

from punie_gates.answering.prompts import default_system_prompt
from punie_gates.errors import DataFileError, UserError
from punie_gates.formats.convert import convert_training_folder
from punie_gates.inputs import options as gate_options
from punie_gates.inputs import paths
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.queries import load_queries
from punie_gates.inputs.readers import read_text
from punie_gates.plugin.recording import GateLogs
from punie_gates.plugin.session import gate_of, session_of
from punie_gates.plugin.terminal import make_progress


@pytest.fixture(scope="session")
def gate_config(pytestconfig) -> gate_options.GateConfig:
    """The resolved options of this run (flags, ini keys, environment, data/gates.toml)."""
    try:
        return session_of(pytestconfig).options()
    except UserError as exc:
        pytest.fail(str(exc), pytrace=False)


class GateRecorder:
    """`gate_record.update(correct=..., total=...)` puts figures in gates.<gate>.figures of the
    report, each checked against the gate's figures class (punie_gates.results: an unknown field
    or a value of the wrong type stops the run, naming the field and the test);
    `gate_record.flag(text)` raises a flag on the gate (several accumulate). Figures are written,
    never read back: a test that needs an earlier test's output gets it from a fixture."""

    def __init__(self, logs: GateLogs, gate: str, test: str):
        self._logs, self.gate, self._test = logs, gate, test

    def update(self, **figures: Any) -> None:
        self._logs.record(self.gate, self._test, **figures)

    def flag(self, text: str) -> None:
        self._logs.flag(self.gate, text)


def _gate_or_fail(request) -> str:
    gate = gate_of(request.node)
    if gate is None:
        raise pytest.UsageError(f"{request.node.nodeid}: {request.fixturename} needs a gateN marker")
    return gate


@pytest.fixture(scope="module")
def gate_id(request) -> str:
    """The gate of the module asking, from its gateN marker (`pytestmark`)."""
    return _gate_or_fail(request)


@pytest.fixture(scope="module")
def settings(gate_config, gate_id):
    """The thresholds and settings of the module's gate, typed and checked (inputs/settings.py),
    the options that override one applied: `settings.min_correct`."""
    return gate_config.settings.of(gate_id)


@pytest.fixture
def gate_record(request) -> GateRecorder:
    """Figures and flags for this test's gate's report entry."""
    return GateRecorder(session_of(request.config).logs, _gate_or_fail(request), request.node.nodeid)


class GateOutcome:
    def __init__(self, session, nodeid: str, gate: str):
        self._session, self._nodeid, self._gate = session, nodeid, gate

    def check(self) -> None:
        """Fail unless every earlier check of this gate passed."""
        problems = self._session.unmet_checks(self._gate, self._nodeid)
        if problems:
            pytest.fail(f"{self._gate} did not pass: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def gate_outcome(request) -> GateOutcome:
    """For a gate's decision test: `gate_outcome.check()`."""
    return GateOutcome(session_of(request.config), request.node.nodeid, _gate_or_fail(request))


@pytest.fixture(scope="session")
def progress(pytestconfig):
    """A `progress(step, done, total, **figures)` callable that writes to the terminal."""
    return make_progress(pytestconfig)


@pytest.fixture(scope="session")
def catalog(gate_config):
    return load_catalog(gate_config.tools_path)


@pytest.fixture(scope="session")
def query_set(gate_config, catalog):
    return load_queries(gate_config.queries_path, catalog=catalog)


@pytest.fixture(scope="session")
def training_data(gate_config, catalog):
    """(train, valid) converted to Mistral form with the catalog's tools, rejects included."""
    folder = gate_config.training_data
    missing = [n for n in ("train.jsonl", "valid.jsonl") if folder is None or not (folder / n).is_file()]
    if missing:
        raise DataFileError(
            f"training data not found: {folder} has no {' and no '.join(missing)} (it must hold train.jsonl and "
            "valid.jsonl in Qwen3 form; point --training-data at Punie's data/phase27_merged folder)"
        )
    try:
        return convert_training_folder(folder, tools=catalog.native_schemas())
    except OSError as exc:
        raise DataFileError(f"training data: cannot read {exc.filename or folder}: {exc.strerror or exc}") from None


@pytest.fixture(scope="session")
def system_prompt(gate_config, training_data) -> str:
    """The validation prompts' system prompt: the one training used, unless given."""
    if gate_config.system_prompt_path is not None:
        return read_text(gate_config.system_prompt_path, "system prompt file (--system-prompt)").strip()
    train, _ = training_data
    return (
        default_system_prompt(train.records)
        or (paths.data_dir() / "system_prompt.txt").read_text(encoding="utf-8").strip()
    )
