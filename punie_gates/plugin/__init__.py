"""The pytest plugin: options, markers, fixtures, gate ordering and the verdict.

The only part of punie_gates that imports pytest. Its hooks are one-liners into
the run's `GateSession` (plugin/session.py); the fixtures live in
plugin/fixtures.py (options, data, the `gate_record` recorder of plugin/recording.py),
plugin/model_fixtures.py (the candidate and its models) and
plugin/training_fixtures.py (the training gates' shared steps). The plugin stays inert
in runs that collect no gate tests, such as the self-tests.

Import direction of the package (a self-test enforces it):
plugin -> decision, checks -> answering, model -> formats, inputs, results -> errors, progress.
"""

from __future__ import annotations

import pytest

from punie_gates.inputs import options as gate_options
from punie_gates.plugin.early import recover_setup
from punie_gates.plugin.session import GateSession

pytest_plugins = [
    "punie_gates.plugin.fixtures",
    "punie_gates.plugin.model_fixtures",
    "punie_gates.plugin.training_fixtures",
    "punie_gates.plugin.step_costs",
]


def pytest_addoption(parser):
    gate_options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # `--candidate PATH`: pytest searched for its config from PATH (see plugin/early.py)

    recover_setup(early_config, parser, args)


def pytest_configure(config):
    GateSession.install(config)
