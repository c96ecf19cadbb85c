"""Gate settings: every value of gates.toml and every overriding option is either in force
or refused naming the file and key (or the option); no value can buy a pass."""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from punie_gates.errors import DataFileError, OptionError, UserError
from punie_gates.inputs import paths
from punie_gates.inputs.gates import builtin_gates, load_gates
from punie_gates.inputs.option_table import OPTIONS
from punie_gates.inputs.options import resolve_options
from punie_gates.inputs.settings import TABLES, setting_rows

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = tomllib.loads((paths.data_dir() / "gates.toml").read_text(encoding="utf-8"))
KEYS = [(table, key) for table, key, _, _ in setting_rows()]


def toml_value(value) -> str:
    """`value` as TOML writes it (nan and inf included)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def write_gates(path: Path, table: str, key: str, value) -> Path:
    lines = []
    for name, values in DEFAULTS.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(value if (name, k) == (table, key) else v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def in_force(settings, table: str, key: str, value) -> bool:
    held = getattr(settings.of(table), key)
    return type(held) is type(value) and held == value or (isinstance(held, float) and held == float(value))


values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 5, 10, 11, 100, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, -1.0, 1e-9, 1e300, math.nan, math.inf, -math.inf]),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["streamed", "recipe", "", " ", "5", "nan"]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.fixed_dictionaries({"a": st.integers(-3, 3)}),
)


@given(key=st.sampled_from(KEYS), value=values)
def test_every_value_is_in_force_or_refused_naming_file_and_key(tmp_path_factory, key, value):
    table, name = key
    path = write_gates(tmp_path_factory.mktemp("gates") / "neg.toml", table, name, value)
    try:
        registry = load_gates(path, like=builtin_gates())
    except UserError as exc:
        assert isinstance(exc, DataFileError)
        assert f"{path}: [{table}] {name} = " in str(exc), str(exc)
        return
    assert in_force(registry.settings, table, name, value)
    held = getattr(registry.settings.of(table), name)
    assert not isinstance(held, float) or math.isfinite(held)  # nan and inf never pass


OVERRIDING = [opt for opt in OPTIONS if opt.sets]


@given(opt=st.sampled_from(OVERRIDING), value=values)
def test_every_overriding_option_is_in_force_or_refused_naming_the_option(tmp_path_factory, opt, value):
    if not isinstance(value, opt.type) or isinstance(value, bool):
        return  # the flag's type was checked by pytest's parser before this
    try:
        cfg = resolve_options({opt.dest: value}, root=tmp_path_factory.getbasetemp(), environ={})
    except OptionError as exc:
        assert str(exc).startswith(f"{opt.flag} "), str(exc)
        return
    for target in opt.sets:
        assert in_force(cfg.settings, *target.split("."), value)


def test_the_default_settings_load_and_every_key_has_a_rule():
    settings = builtin_gates().settings
    assert {(t, k) for t, values in DEFAULTS.items() for k in values if k not in ("name", "kind", "depends")} == set(
        KEYS
    )
    assert settings.said("gate4", "min_correct").endswith("gates.toml: [gate4] min_correct = 6")


@pytest.mark.parametrize(("ini_or_env", "says"), [
    ({"environ": {"PUNIE_GATES_FUSION": "fast"}}, 'environment variable PUNIE_GATES_FUSION="fast" (--fusion): must be one of'),
    ({"ini": {"memory_budget_gb": "-1"}}, "ini key memory_budget_gb = -1.0 (--memory-budget-gb): must be a finite number above 0"),
    ({"ini": {"memory_budget_gb": "inf"}}, "ini key memory_budget_gb = inf (--memory-budget-gb): must be"),
])  # fmt: skip
def test_an_option_set_outside_the_command_line_is_named_where_it_was_set(tmp_path, ini_or_env, says):
    ini = ini_or_env.get("ini", {})
    with pytest.raises(OptionError) as raised:
        resolve_options({}, root=tmp_path, environ=ini_or_env.get("environ", {}), ini=ini.get)
    assert str(raised.value).startswith(says), str(raised.value)


def test_a_gates_file_value_is_blamed_on_the_file_not_on_an_option(tmp_path):
    path = write_gates(tmp_path / "budget.toml", "gate1", "memory_budget_gb", -1)
    with pytest.raises(DataFileError) as raised:
        resolve_options({"gates": str(path)}, root=tmp_path, environ={})
    assert str(raised.value).startswith(f"{path}: [gate1] memory_budget_gb = -1: must be a finite number above 0")
    assert "--memory-budget-gb" not in str(raised.value)


def test_settings_that_cannot_hold_together_name_both_keys(tmp_path):
    path = write_gates(tmp_path / "slow.toml", "gate5", "slowdown_flag", 6.0)
    with pytest.raises(DataFileError, match=r"\[gate5\] slowdown_flag = 6.0 is above .*\[gate5\] slowdown_max = 5.0"):
        load_gates(path, like=builtin_gates())
    with pytest.raises(OptionError, match=r"^--gate4-examples 0: must be a whole number from 1"):
        resolve_options({"gate4_examples": 0}, root=tmp_path, environ={})


def test_every_setting_is_documented_with_its_range():
    doc = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [row for row in setting_rows() if f"| `[{row[0]}]` | `{row[1]}` | {row[2]} | {row[3]} |" not in doc]
    assert not missing, (
        f"docs/settings.md lacks these rows (`python -m punie_gates.inputs.settings` prints them): {missing}"
    )
    assert set(TABLES) == {t for t, _ in KEYS} | {"gate0"}


@pytest.mark.parametrize(
    ("table", "key", "value", "says"),
    [
        ("gate4", "min_correct", -3, "[gate4] min_correct = -3: must be a whole number from 0"),
        ("gate2", "max_avg_latency_s", math.nan, "[gate2] max_avg_latency_s = nan: must be a finite number above 0"),
    ],
)
def test_a_run_with_a_refused_setting_ends_error_naming_the_key(
    pytester, tmp_path_factory, monkeypatch, table, key, value, says
):
    """The gate modules as a user runs them: the run stops at the settings, before any model is built."""
    cache = tmp_path_factory.mktemp("cache")
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    shutil.copytree(REPO / "tests" / "gates", pytester.path / "gates")
    gates = write_gates(pytester.path / "neg.toml", table, key, value)
    reports = pytester.path / "reports"
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PUNIE_GATES_CANDIDATE", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "gates", "-m", table, "--run-all-gates",
                                           "--gates", str(gates), "--candidate", "demo", "--report-dir", str(reports),
                                           timeout=300)  # fmt: skip
    out = result.stdout.str()
    assert result.ret == 6, out
    assert f"{gates}: {says}" in out and "PASSED" not in out and "passed" not in out.split("punie-gates verdict")[-1]
    doc = json.loads((reports / "gate-report.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "ERROR" and not doc["complete"] and says in doc["reasons"][0]
    assert not any(cache.iterdir()), "nothing is built before the settings are checked"
