"""The plugin end to end on fake gate modules: ordering, statuses, verdict, reports, exit codes."""

from __future__ import annotations

import json

from punie_gates.decision.verdict import EXIT_NOT_JUDGED

GATES = ("gate0", "gate1", "gate2", "gate3", "gate4", "gate5")

BODIES = {
    "pass": "pass",
    "fail": "assert False, '{gate} broke: expected 1, found 2'",
    "error": "raise RuntimeError('{gate} could not measure')",
}


def write_gates(pytester, outcomes=None, missing=(), detail_fails=False):
    outcomes = outcomes or {}
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    gates_dir = pytester.mkdir("gates")
    for gate in GATES:
        if gate in missing:
            continue
        body = BODIES[outcomes.get(gate, "pass")].format(gate=gate)
        fixture = "broken" if outcomes.get(gate) == "error" else "gate_record"
        detail = ""
        if detail_fails:
            detail = (
                "@pytest.mark.gate_detail\n"
                "@pytest.mark.parametrize('q', ['a-01', 'a-02'])\n"
                "def test_query(q):\n    assert q == 'a-01', f'{q} failed its query'\n\n"
            )
        (gates_dir / f"test_{gate}_fake.py").write_text(
            "import pytest\n"
            f"pytestmark = [pytest.mark.{gate}]\n\n"
            "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture could not load the model')\n\n"
            f"def test_check({fixture}):\n"
            f"    {fixture}.update(steps=[dict(step='answer', seconds=42.0)]) if hasattr({fixture}, 'update') else None\n"
            f"    {body}\n\n"
            f"{detail}"
            "@pytest.mark.gate_decision\n"
            f"def test_{gate}_decision(gate_outcome):\n    gate_outcome.check()\n"
        )
    return gates_dir


def run(pytester, *args):
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--report-dir", str(pytester.path / "reports"), "--candidate", "demo", *args
    )
    doc = json.loads((pytester.path / "reports" / "gate-report.json").read_text())
    return result, doc


def statuses(doc):
    return {g: doc["gates"][g]["status"] for g in GATES}


def test_all_gates_pass_is_go(pytester):
    write_gates(pytester)
    result, doc = run(pytester, "gates")
    assert result.ret == 0
    assert doc["verdict"] == "GO" and doc["stopped_at"] is None
    assert set(statuses(doc).values()) == {"passed"}
    assert doc["gates"]["gate0"]["figures"] == {"steps": [{"step": "answer", "seconds": 42.0}]}
    assert doc["candidate"]["is_demo"] and "RANDOM weights" in doc["candidate"]["note"]
    assert (pytester.path / "reports" / "gate-report.md").read_text().startswith("# punie-gates report: GO")
    result.stdout.fnmatch_lines(["*punie-gates verdict*", "candidate: demo (*RANDOM weights*", "VERDICT: GO"])


def test_hard_failure_stops_and_later_gates_are_skipped(pytester):
    write_gates(pytester, {"gate1": "fail"})
    result, doc = run(pytester, "gates")
    assert result.ret == 1
    assert (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate1")
    assert statuses(doc) == {
        "gate0": "passed",
        "gate1": "failed",
        "gate2": "skipped",
        "gate3": "skipped",
        "gate4": "skipped",
        "gate5": "skipped",
    }
    assert "gate1 broke: expected 1, found 2" in doc["gates"]["gate1"]["reasons"][0]
    assert "depends on gate1" in doc["gates"]["gate2"]["reasons"][0]
    assert "depends on gate4" in doc["gates"]["gate5"]["reasons"][0]
    result.stdout.fnmatch_lines(["VERDICT: NO_GO (stopped at gate1)"])


def test_soft_gate_failure_flags_and_exits_zero(pytester):
    write_gates(pytester, {"gate2": "fail", "gate3": "fail"})
    result, doc = run(pytester, "gates")
    assert doc["verdict"] == "GO_WITH_FLAGS" and len(doc["flags"]) == 2
    assert statuses(doc)["gate4"] == "passed"  # the soft gates do not block Gate 4
    assert result.ret == 0


def test_run_all_gates_runs_past_failures_without_changing_the_verdict(pytester):
    write_gates(pytester, {"gate0": "fail"})
    result, doc = run(pytester, "gates", "--run-all-gates")
    assert (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate0")
    assert statuses(doc)["gate1"] == "passed" and statuses(doc)["gate5"] == "passed"
    assert result.ret == 1


def test_errored_gate_is_reported_as_error(pytester):
    write_gates(pytester, {"gate3": "error"})
    result, doc = run(pytester, "gates")
    assert statuses(doc)["gate3"] == "error"
    assert "could not load the model" in doc["gates"]["gate3"]["reasons"][0]
    assert doc["verdict"] == "NO_GO" and result.ret == 1  # a soft gate that measured nothing is missing


def test_marker_selection_is_incomplete_and_keeps_pytests_exit(pytester):
    write_gates(pytester)
    result, doc = run(pytester, "gates", "-m", "gate0")
    assert result.ret == 0
    assert doc["verdict"] == "INCOMPLETE" and not doc["complete"]
    assert statuses(doc)["gate1"] == "not_run"
    assert "deselected" in doc["gates"]["gate1"]["reasons"][0]


def test_a_missing_gate_module_is_never_go(pytester):
    write_gates(pytester, missing=("gate3",))
    result, doc = run(pytester, "gates")
    assert statuses(doc)["gate3"] == "not_run"
    assert doc["verdict"] == "NO_GO" and result.ret == 1
    assert "not collected" in doc["gates"]["gate3"]["reasons"][0]


def test_detail_failures_do_not_fail_the_gate(pytester):
    write_gates(pytester, detail_fails=True)
    result, doc = run(pytester, "gates")
    assert doc["verdict"] == "GO"
    assert doc["gates"]["gate5"]["tests"] == {"passed": 3, "failed": 1}
    assert result.ret == 0  # the verdict decides the exit status, not the per-query tests


def test_runs_without_gate_tests_are_left_alone(pytester):
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    pytester.makepyfile("def test_x():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", str(pytester.path / "reports"))
    assert result.ret == 0
    assert not (pytester.path / "reports").exists()
    assert "punie-gates verdict" not in result.stdout.str()


def test_a_broken_thresholds_file_is_named(pytester):
    write_gates(pytester)
    bad = pytester.makefile(".toml", gates="[gate0]\nkind = 'maybe'\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--report-dir", str(pytester.path / "reports"), "--gates", str(bad), "gates"
    )
    assert result.ret == EXIT_NOT_JUDGED  # a user's mistake, not a verdict on the candidate
    assert result.stdout.str().count(str(bad)) == 1
    doc = json.loads((pytester.path / "reports" / "gate-report.json").read_text())
    assert doc["verdict"] == "ERROR" and str(bad) in doc["reasons"][0] and not doc["complete"]


def test_a_figure_the_gate_does_not_have_is_refused_naming_it(pytester):
    gates = write_gates(pytester)
    (gates / "test_gate1_fake.py").write_text(
        "import pytest\npytestmark = [pytest.mark.gate1]\n\n"
        "def test_check(gate_record):\n    gate_record.update(smoke_pased=True)\n\n"
        "@pytest.mark.gate_decision\ndef test_gate1_decision(gate_outcome):\n    gate_outcome.check()\n"
    )
    result, doc = run(pytester, "gates")
    assert result.ret == EXIT_NOT_JUDGED  # a gate module's mistake is never a verdict on the candidate
    assert doc["verdict"] == "ERROR"
    reason = doc["reasons"][0]
    assert "test_gate1_fake.py::test_check records 'smoke_pased'" in reason and "Gate1Figures" in reason
    assert "smoke_pased" not in doc["gates"]["gate1"]["figures"]


def test_a_training_module_without_its_fixtures_is_named(pytester):
    gates = write_gates(pytester)
    (gates / "test_gate4_fake.py").write_text(
        "import pytest\npytestmark = [pytest.mark.gate4]\n\n"
        "def test_sample(answer_rows):\n    pass\n\n"
        "@pytest.mark.gate_decision\ndef test_gate4_decision(gate_outcome):\n    gate_outcome.check()\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", str(pytester.path / "reports"), "gates")
    assert result.ret == 4  # a usage error, before anything runs
    result.stderr.fnmatch_lines(["*test_gate4_fake*test_sample*module fixtures it does not define: `records`*"])
