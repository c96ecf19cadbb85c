"""Per-step resources in the report: rows per gate, the markdown table, one terminal line per
gate, the work folder's size; user errors as one line; the fusion option."""

from __future__ import annotations

import json
import textwrap

import mlx.core  # noqa: F401  (imported before pytester runs: an in-process run drops what it imported, and mlx cannot be imported twice)
import pytest

from punie_gates.decision.report import markdown, steps_line
from punie_gates.errors import DataFileError, OptionError
from punie_gates.inputs.options import resolve_options
from punie_gates.plugin.step_costs import step_row
from punie_gates.resources import StepCost
from punie_gates.results.document import read_figures

CONFTEST = """
import pytest

pytest_plugins = ["punie_gates.plugin"]


@pytest.fixture(scope="session")
def quantized(gate_steps):
    with gate_steps.measure("quantize") as step:
        step["cached"] = True
    return "q"
"""

GATE_MODULE = """
import pytest

pytestmark = pytest.mark.{gate}


@pytest.fixture(scope="module")
def loaded(quantized, gate_steps, gate_config):
    with gate_steps.measure("load"):
        gate_config.work_dir.mkdir(parents=True, exist_ok=True)
        (gate_config.work_dir / "{gate}.bin").write_bytes(b"x" * 1000)
    return quantized


def test_uses_the_model(loaded):
    assert loaded == "q"


def test_a_step_that_fails(gate_steps):
    with pytest.raises(ZeroDivisionError):
        with gate_steps.measure("answer"):
            1 / 0


@pytest.mark.gate_decision
def test_{gate}_decision(gate_outcome):
    gate_outcome.check()
"""


@pytest.fixture
def fake_run(pytester, tmp_path):
    pytester.makeconftest(CONFTEST)
    gates = pytester.mkdir("gates")
    for gate in ("gate0", "gate1"):
        (gates / f"test_{gate}.py").write_text(GATE_MODULE.format(gate=gate), encoding="utf-8")
    work = tmp_path / "work"
    result = pytester.runpytest("-p", "no:cacheprovider", "gates", "--work-dir", str(work), "--report-dir", "reports")
    doc = json.loads((pytester.path / "reports" / "gate-report.json").read_text(encoding="utf-8"))
    return result, doc, work, (pytester.path / "reports" / "gate-report.md").read_text(encoding="utf-8")


def test_each_gate_gets_its_steps_and_a_session_step_goes_to_the_first_gate(fake_run):
    _, doc, work, _ = fake_run
    gate0, gate1 = (doc["gates"][g]["figures"]["steps"] for g in ("gate0", "gate1"))
    assert [s["step"] for s in gate0] == ["quantize", "load", "answer"]
    assert [s["step"] for s in gate1] == ["load", "answer"], "the session fixture ran once, for gate0"
    quantize, load, answer = gate0
    assert quantize["cached"] is True and quantize["ok"] is True
    assert load["bytes_written"] == 1000 and load["cached"] is False
    assert answer["ok"] is False, "a step that raised is recorded as not ok"
    for row in gate0 + gate1:
        assert {"seconds", "peak_memory_gb", "peak_rss_gb", "rss_scope", "bytes_written"} <= set(row)
        assert row["seconds"] >= 0
    assert doc["work_folder"] == {"path": str(work), "bytes": 2000}


def test_the_markdown_has_a_resources_table_and_the_terminal_a_line_per_gate(fake_run):
    result, _, work, md = fake_run
    assert "## Resources per step" in md
    assert "| gate0 | quantize |" in md and "cached" in md.split("| gate0 | quantize |")[1].splitlines()[0]
    assert "| gate1 | answer |" in md and "FAILED" in md.split("| gate1 | answer |")[1].splitlines()[0]
    assert f"Work folder at the end: `{work}`, 2.0 kB." in md
    assert "- steps:" not in md, "the steps are in the table, not repeated as a figure"
    result.stdout.fnmatch_lines(
        [
            "gate0  steps: quantize *s (cached)*, load *s*+1.0 kB*, answer *s*FAILED*",
            "gate1  steps: load *",
            f"work folder: {work} (2.0 kB;*",
        ]
    )


def test_a_user_error_is_reported_in_one_line(pytester):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    pytester.makepyfile(
        textwrap.dedent("""
        import pytest
        from punie_gates.errors import DiskSpaceError

        @pytest.fixture(scope="session")
        def big():
            raise DiskSpaceError("not enough disk space for the model in the work folder /w: it needs 2 GB")

        def test_a(big):
            pass
    """)
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["DiskSpaceError: not enough disk space for the model in the work folder /w: it needs 2 GB"]
    )
    assert "raise DiskSpaceError" not in result.stdout.str(), "a traceback was shown"


def test_step_rows_round_for_people_and_keep_what_the_caller_added():
    cost = StepCost("fuse", 1.23456, 0.123456, 0.9876543, "step", 1234, True)
    row = step_row(cost, {"cached": True, "method": "streamed"})
    assert row == {
        "step": "fuse",
        "seconds": 1.235,
        "peak_memory_gb": 0.1235,
        "peak_rss_gb": 0.9877,
        "rss_scope": "step",
        "bytes_written": 1234,
        "cached": True,
        "ok": True,
        "method": "streamed",
    }
    steps = read_figures("gate4", {"steps": [row, {"step": "evaluate", "seconds": 3.0, "part_of": "train"}]}).steps
    line = steps_line("gate4", steps or ())
    assert line == "gate4  steps: fuse 1.2s (cached) 0.12/0.99 GB +1.2 kB"


def test_markdown_without_steps_has_no_resources_table():
    doc = {
        "verdict": "GO",
        "candidate": {"spec": "x", "note": None},
        "baseline": None,
        "stopped_at": None,
        "complete": True,
        "reasons": [],
        "flags": [],
        "gates": {},
        "work_folder": None,
    }
    assert "Resources" not in markdown(doc)


def test_fusion_defaults_to_streamed_and_the_option_overrides(tmp_path):
    assert resolve_options({}, root=tmp_path).settings.gate4.fusion == "streamed"
    assert resolve_options({}, root=tmp_path).settings.gate5.fusion == "streamed"
    assert resolve_options({"fusion": "recipe"}, root=tmp_path).settings.gate5.fusion == "recipe"
    assert (
        resolve_options({}, root=tmp_path, environ={"PUNIE_GATES_FUSION": "recipe"}).settings.gate4.fusion == "recipe"
    )


def test_a_wrong_fusion_is_refused_naming_where_it_came_from(tmp_path, repo_root):
    with pytest.raises(OptionError, match='^--fusion "fast": must be one of "streamed", "recipe"'):
        resolve_options({"fusion": "fast"}, root=tmp_path)
    gates = tmp_path / "gates.toml"
    toml = (repo_root / "data" / "gates.toml").read_text(encoding="utf-8")
    gates.write_text(
        toml.replace('fusion = "streamed"               # as [gate4]', 'fusion = "float16"'), encoding="utf-8"
    )
    with pytest.raises(
        DataFileError, match=r'gates.toml: \[gate5\] fusion = "float16": must be one of "streamed", "recipe"'
    ):
        resolve_options({"gates": str(gates)}, root=tmp_path)
