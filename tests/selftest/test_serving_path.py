"""The server runs in production's environment: a candidate that really writes calls, served the default
way and through an interpreter that has mistral-common, and a tokenizer.json whose pre-tokenizer
differs from tekken's, run through the gates as a user runs them (pytester).

The candidate (calling_model.py) writes one well-formed `[TOOL_CALLS]execute_code[ARGS]{...}`
for every prompt, laid out with tekken.json beside tokenizer.json (the demo's layout, an MLX
conversion's). Nothing is downloaded; no server outlives a run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from calling_model import build_calling_model
from test_gates_e2e import run, small_data, small_gates

REPO = Path(__file__).resolve().parents[2]
TOOL_QUERIES = 4


@pytest.fixture(scope="module")
def gate_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serving-cache")


@pytest.fixture(scope="module")
def calling(gate_cache, tmp_path_factory) -> Path:
    """The calling candidate with tekken.json (built once for the module)."""
    from punie_gates.model.demo import ensure_demo_model

    demo = ensure_demo_model(gate_cache)
    return build_calling_model(demo, tmp_path_factory.mktemp("calling") / "model", keep_tekken=True)


@pytest.fixture
def suite(pytester, gate_cache, monkeypatch):
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(gate_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("PUNIE_GATES_CANDIDATE", "PUNIE_GATES_SERVE_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    shutil.copytree(REPO / "tests" / "gates", pytester.path / "gates")
    return pytester


def _no_server_left() -> None:
    found = subprocess.run(["pgrep", "-f", "mlx_lm[. ]server"], capture_output=True, text=True).stdout.split()
    mine = [pid for pid in found if _child_of_this_test(int(pid))]
    assert not mine, f"mlx_lm.server still running: {mine}"


def _child_of_this_test(pid: int) -> bool:
    """Whether a process's command line names this test's folders (other runs on the machine are not ours)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "serving-cache" in command


def _gate3(suite, candidate: Path, *extra: str):
    args = [
        "-m",
        "gate3",
        "--run-all-gates",
        "--candidate",
        str(candidate),
        "--max-tokens",
        "48",
        f"--gates={small_gates(suite)}",
        *small_data(suite),
        *extra,
    ]
    result, doc = run(suite, *args)
    _no_server_left()
    return doc, doc["gates"]["gate3"]


def _tool_rows(gate):
    return [r for r in gate["figures"]["queries"] if r["expect"] == "tool"]


def test_default_serving_counts_the_calls_of_a_tekken_folder(suite, calling):
    """mistral-common hidden from the server: TokenizersBackend, mlx-lm's mistral parser, all 4 calls counted."""
    doc, gate = _gate3(suite, calling)
    assert gate["figures"]["well_formed_calls"] == TOOL_QUERIES, gate["reasons"]
    assert all(r["valid_calls"] == 1 and "cause" not in r for r in _tool_rows(gate))
    [plan] = doc["answering"]["serving"]
    assert plan["tokenizer_class"] == "TokenizersBackend"
    assert plan["tool_parser"] == "mlx_lm.tool_parsers.mistral"
    assert plan["change"] is None
    assert "hidden from the server" in plan["versions"]["mistral-common"]


def test_a_production_interpreter_with_mistral_common_loses_every_call_to_the_server(suite, calling):
    """--serve-python naming an interpreter with mistral-common (this venv's, unhidden): the server
    returns no tool_calls; every miss is attributed to the server and the reason names the change."""
    doc, gate = _gate3(suite, calling, "--serve-python", sys.executable)
    rows = _tool_rows(gate)
    assert gate["figures"]["well_formed_calls"] == 0
    assert [r["cause"] for r in rows] == ["server"] * TOOL_QUERIES, rows
    assert all("[TOOL_CALLS]execute_code[ARGS]" in r["cause_detail"] for r in rows)
    assert gate["figures"]["misses_by_cause"] == {"server": TOOL_QUERIES}
    first = gate["reasons"][0]
    assert "every miss is the server's, not the model's" in first and "without tekken.json" in first, first
    [plan] = doc["answering"]["serving"]
    assert plan["tokenizer_class"] == "MistralCommonBackend" and plan["tool_parser"] is None
    assert plan["returns_tool_calls"] is False and "tekken.json" in plan["change"]


def test_a_pre_tokenizer_that_differs_from_tekken_fails_gate0_on_the_serving_path(suite, calling, tmp_path):
    """tokenizer.json's split regex changed (tekken.json kept): the suite's own MistralCommonBackend
    path still matches the reference, the path production uses does not, and Gate 0 says why."""
    folder = tmp_path / "regex"
    shutil.copytree(calling, folder)
    doc = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    split = doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]
    split["Regex"] = split["Regex"].replace("[^\\r\\n\\p{L}\\p{N}]?", "")  # " Hello" splits into " " + "Hello"
    (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    result, report = run(suite, "-m", "gate0", "--candidate", str(folder), *small_data(suite))
    gate = report["gates"]["gate0"]
    parity = gate["figures"]["serving_parity"]
    assert gate["status"] == "failed", gate
    assert parity["records"]["mismatches"] > 0 and parity["records"]["cause"] == "pre-tokenizer", parity
    assert any("on the path production uses" in r and "pre-tokenizer" in r for r in gate["reasons"]), gate["reasons"]
    _no_server_left()
