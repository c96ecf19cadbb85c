"""Options: a flag wins over the environment, which wins over an ini key, then the default."""

from __future__ import annotations

import json

import pytest

from punie_gates.inputs.option_table import DEFAULT_BATCH_SIZE

SHOW = """
import json

def test_show(gate_config):
    print("\\nCONFIG=" + json.dumps({"bench": gate_config.bench, "gen_batch_size": gate_config.gen_batch_size,
                                  "max_tokens": gate_config.max_tokens}))
"""


def shown(pytester, *args, ini: str = "") -> tuple[object, dict | None]:
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", *args)
    line = next((ln for ln in result.outlines if ln.startswith("CONFIG=")), None)
    return result, (json.loads(line.removeprefix("CONFIG=")) if line else None)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("PUNIE_GATES_BENCH", "PUNIE_GATES_GEN_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults(pytester):
    _, cfg = shown(pytester)
    assert cfg == {"bench": False, "gen_batch_size": DEFAULT_BATCH_SIZE, "max_tokens": 512}


def test_flag_beats_environment_beats_ini(pytester, monkeypatch):
    _, cfg = shown(pytester, ini="gen_batch_size = 2\nbench = true")
    assert cfg["gen_batch_size"] == 2 and cfg["bench"] is True
    monkeypatch.setenv("PUNIE_GATES_GEN_BATCH_SIZE", "3")
    monkeypatch.setenv("PUNIE_GATES_BENCH", "0")
    _, cfg = shown(pytester, ini="gen_batch_size = 2\nbench = true")
    assert cfg["gen_batch_size"] == 3 and cfg["bench"] is False
    _, cfg = shown(pytester, "--gen-batch-size", "5", "--bench", ini="gen_batch_size = 2")
    assert cfg["gen_batch_size"] == 5 and cfg["bench"] is True


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("PUNIE_GATES_BENCH", "maybe", "environment variable PUNIE_GATES_BENCH: expected one of"),
        (
            "PUNIE_GATES_GEN_BATCH_SIZE",
            "eight",
            "environment variable PUNIE_GATES_GEN_BATCH_SIZE: --gen-batch-size needs int, got 'eight'",
        ),
        (
            "PUNIE_GATES_GEN_BATCH_SIZE",
            "0",
            "environment variable PUNIE_GATES_GEN_BATCH_SIZE=0 (--gen-batch-size): must be a whole number from 1",
        ),
    ],
)
def test_a_bad_value_is_named_with_its_source(pytester, monkeypatch, env, value, says):
    monkeypatch.setenv(env, value)
    result, cfg = shown(pytester)
    assert cfg is None
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{says}*"])


def test_a_bad_ini_value_is_named(pytester):
    result, cfg = shown(pytester, ini="bench = sometimes")
    assert cfg is None
    result.stdout.fnmatch_lines(["*ini key 'bench': expected one of*"])
