"""A user's mistake is not a verdict, and no report is stale, lost or misplaced: the plugin
driven through pytester on fake gate modules (fast; tests/selftest/test_run_safety_demo.py
does the same on the demo candidate with real signals).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from punie_gates.decision import report_folder
from punie_gates.decision.verdict import EXIT_NOT_JUDGED

GATES = ("gate0", "gate1", "gate2", "gate3", "gate4", "gate5")


def write_gates(
    pytester, bodies: dict[str, str] | None = None, fixtures: dict[str, str] | None = None, conftest: str = ""
) -> None:
    """Six fake gate modules; `bodies[gate]` replaces a gate's check, `fixtures[gate]` its arguments."""
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]\n' + conftest)
    gates_dir = pytester.mkdir("gates")
    for gate in GATES:
        args = (fixtures or {}).get(gate, "gate_record")
        body = (bodies or {}).get(gate, "pass")
        (gates_dir / f"test_{gate}_fake.py").write_text(
            "import pytest\n"
            f"pytestmark = [pytest.mark.{gate}]\n\n"
            f"def test_check({args}):\n"
            + "".join(f"    {line}\n" for line in body.splitlines())
            + "\n\ndef test_other(gate_record):\n    pass\n\n"
            "@pytest.mark.gate_decision\n"
            f"def test_{gate}_decision(gate_outcome):\n    gate_outcome.check()\n"
        )


def run(pytester, *args, reports: Path | None = None):
    reports = reports or pytester.path / "reports"
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", str(reports), "--candidate", "demo",
                                "gates", *args, no_reraise_ctrlc=True)  # fmt: skip
    path = reports / "gate-report.json"
    return result, (json.loads(path.read_text()) if path.is_file() else None)


BROKEN_FIXTURE = """
import pytest
from punie_gates.errors import CandidateError

@pytest.fixture(scope="session")
def candidate_folder():
    raise CandidateError("candidate 'nowhere': no such folder; pass an existing MLX model folder")
"""


def test_a_user_error_is_said_once_and_is_not_a_no_go(pytester):
    # Every test of gate0 and gate1 needs the broken session fixture: pytest alone repeats it per test.
    write_gates(pytester, fixtures={"gate0": "candidate_folder", "gate1": "candidate_folder"},
                conftest=BROKEN_FIXTURE)  # fmt: skip
    result, doc = run(pytester, "--run-all-gates")
    out = result.stdout.str()
    assert result.ret == EXIT_NOT_JUDGED, out
    assert out.count("no such folder; pass an existing MLX model folder") == 1, out
    assert "Traceback" not in out and "CandidateError" not in out
    assert doc["verdict"] == "ERROR" and doc["stopped_at"] is None and not doc["complete"]
    assert doc["reasons"] == ["not judged: candidate 'nowhere': no such folder; pass an existing MLX model folder"]
    assert doc["gates"]["gate0"]["status"] == "error" and doc["gates"]["gate1"]["status"] == "not_run"
    result.stdout.fnmatch_lines(["VERDICT: ERROR: not judged*", "  - candidate 'nowhere': no such folder*"])
    assert len(result.outlines) < 40, out


def test_a_real_failure_before_the_problem_stays_no_go(pytester):
    write_gates(pytester, bodies={"gate0": "assert False, 'markers split'"}, fixtures={"gate2": "candidate_folder"},
                conftest=BROKEN_FIXTURE)  # fmt: skip
    result, doc = run(pytester, "--run-all-gates")
    assert result.ret == 1 and (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate0")
    assert any("no such folder" in r for r in doc["reasons"])  # and the stop is said


def test_a_full_disk_during_a_gate_is_not_a_verdict(pytester):
    full = "raise OSError(errno.ENOSPC, 'No space left on device', 'reports/gate4-responses.jsonl')"
    write_gates(pytester, bodies={"gate4": "import errno\n" + full})
    result, doc = run(pytester)
    assert result.ret == EXIT_NOT_JUDGED
    assert doc["verdict"] == "ERROR" and "disk full writing reports/gate4-responses.jsonl" in doc["reasons"][0]
    assert doc["gates"]["gate3"]["status"] == "passed" and doc["gates"]["gate5"]["status"] == "not_run"


def test_a_bad_gates_file_reports_into_the_report_dir_asked_for(pytester):
    write_gates(pytester)
    bad = pytester.makefile(".toml", gates="[gate0]\nkind = 'maybe'\n")
    asked = pytester.path / "elsewhere" / "my-reports"
    result, doc = run(pytester, "--gates", str(bad), reports=asked)
    assert result.ret == EXIT_NOT_JUDGED
    assert doc is not None and doc["verdict"] == "ERROR" and str(bad) in doc["reasons"][0]
    assert not (pytester.path / "reports").exists()  # not the checkout's reports/


def gates_file(path: Path, **changed) -> Path:
    """data/gates.toml with `changed["gate4__min_correct"] = value` ..., written as TOML (nan and inf too)."""
    import math
    import tomllib

    from punie_gates.inputs import paths

    def toml(value) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return json.dumps(value)

    data = tomllib.loads((paths.data_dir() / "gates.toml").read_text(encoding="utf-8"))
    for key, value in changed.items():
        table, name = key.split("__")
        data[table][name] = value
    lines = [ln for table, values in data.items()
             for ln in [f"[{table}]", *(f"{k} = {toml(v)}" for k, v in values.items())]]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("changed", "says"), [
    ({"gate4__min_correct": 11}, "impossible.toml: [gate4] min_correct = 11 but * [gates] gate4 has * queries: no model could pass*"),
    ({"gate5__min_val_loss_reduction": 1.5}, "impossible.toml: [gate5] min_val_loss_reduction = 1.5: must be a number from 0 to 1 *"),
    ({"gate4__min_correct": -3}, "impossible.toml: [gate4] min_correct = -3: must be a whole number from 0 *"),
    ({"gate2__max_avg_latency_s": math.nan}, "impossible.toml: [gate2] max_avg_latency_s = nan: must be a finite number above 0*"),
])  # fmt: skip
def test_impossible_thresholds_are_refused_before_any_gate_runs(pytester, changed, says):
    gates = gates_file(pytester.path / "impossible.toml", **changed)
    write_gates(pytester, fixtures={"gate4": "query_set"}, bodies={"gate0": "raise AssertionError('GATE-RAN')"})
    result, doc = run(pytester, "--gates", str(gates))
    assert result.ret == EXIT_NOT_JUDGED and "GATE-RAN" not in result.stdout.str()
    reason = doc["reasons"]
    assert len(reason) == 1 and all(part in reason[0] for part in says.split("*")), reason
    assert {g["status"] for g in doc["gates"].values()} == {"not_run"}


def test_a_training_folder_without_valid_jsonl_names_the_file(pytester):
    folder = pytester.mkdir("data")
    (folder / "train.jsonl").write_text('{"messages": []}\n')
    write_gates(pytester, fixtures={"gate4": "training_data"})
    result, doc = run(pytester, f"--training-data={folder}")
    assert result.ret == EXIT_NOT_JUDGED
    assert doc["reasons"] == [
        f"not judged: training data: {folder} has no valid.jsonl; point --training-data at "
        "a folder holding train.jsonl and valid.jsonl in Qwen3 form (Punie's data/phase27_merged)"
    ]


def test_an_explicit_sample_larger_than_the_data_is_refused(pytester):
    folder = pytester.mkdir("data")
    (folder / "train.jsonl").write_text('{"messages": []}\n' * 3)
    (folder / "valid.jsonl").write_text('{"messages": []}\n')
    write_gates(pytester, fixtures={"gate4": "training_data"})
    result, doc = run(pytester, f"--training-data={folder}", "--gate4-examples", "50")
    assert result.ret == EXIT_NOT_JUDGED
    assert "--gate4-examples 50 is more than the 3 conversations" in doc["reasons"][0]


def test_previous_reports_are_moved_aside_not_mixed_in(pytester):
    write_gates(pytester)
    reports = pytester.path / "reports"
    reports.mkdir()
    # A killed run's leftovers: a GO report of an older run and a half-written temporary file.
    (reports / "gate-report.json").write_text(json.dumps({"verdict": "GO"}))
    (reports / "gate5-responses.jsonl").write_text("old\n")
    (reports / ".gate-report.json.123.tmp").write_text("{")
    (reports / "notes.txt").write_text("mine")  # not the suite's: left alone
    bad = pytester.makefile(".toml", gates="[gate0]\nkind = 'maybe'\n")
    result, doc = run(pytester, "--gates", str(bad))
    assert doc["verdict"] == "ERROR"
    assert not (reports / "gate5-responses.jsonl").exists() and not list(reports.glob(".*.tmp"))
    assert (reports / "notes.txt").read_text() == "mine"
    (moved,) = (reports / "previous").iterdir()
    assert json.loads((moved / "gate-report.json").read_text()) == {"verdict": "GO"}
    result.stdout.fnmatch_lines([f"*moved the previous run's 3 report files to {moved}*"])
    assert doc["run"]["id"] and "gate-report.json" in doc["run"]["files"]
    run_record = json.loads((reports / "run.json").read_text())
    assert run_record["state"] == "not judged" and run_record["run_id"] == doc["run"]["id"]


def test_a_killed_runs_files_are_moved_aside_by_the_next_run(pytester):
    write_gates(pytester)
    reports = pytester.path / "reports"
    folder = report_folder.open_report_folder(reports)  # a run that will never finish...
    (reports / "gate4-responses.jsonl").write_text("from the killed run\n")
    (reports / "resources.csv").write_text("a file of a kind the suite does not name\n")
    folder.release()  # ... its process is gone (run.json still says "running")
    result, doc = run(pytester)
    assert doc["verdict"] == "GO" and doc["complete"]
    (moved,) = (reports / "previous").iterdir()
    assert sorted(p.name for p in moved.iterdir()) == ["gate4-responses.jsonl", "resources.csv", "run.json"]
    assert not (reports / "gate4-responses.jsonl").exists()
    result.stdout.fnmatch_lines(["*moved the previous run's 3 report files*never finished*"])


def test_a_report_folder_in_use_is_refused_at_once(pytester):
    write_gates(pytester, bodies={"gate0": "raise AssertionError('GATE-RAN')"})
    reports = pytester.path / "reports"
    other = report_folder.open_report_folder(reports)  # another run holds it
    try:
        (reports / "gate-report.json").write_text('{"verdict": "theirs"}')
        result, _ = run(pytester)
    finally:
        other.release()
    assert result.ret == EXIT_NOT_JUDGED and "GATE-RAN" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*is in use by another run (pid*", "report: NOT written:*"])
    assert json.loads((reports / "gate-report.json").read_text()) == {"verdict": "theirs"}  # untouched
    assert not (reports / "previous").exists()


def test_an_interrupted_run_is_reported_as_interrupted(pytester):
    write_gates(pytester, bodies={"gate4": "raise KeyboardInterrupt"})
    result, doc = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert doc["verdict"] == "INCOMPLETE" and doc["complete"] is False
    assert doc["interrupted"] == {"by": "KeyboardInterrupt", "gate": "gate4", "test": "test_check"}
    assert doc["reasons"][0].startswith("interrupted (KeyboardInterrupt) while gate4 was running (test_check)")
    assert doc["gates"]["gate3"]["status"] == "passed" and doc["gates"]["gate4"]["status"] == "not_run"
    result.stdout.fnmatch_lines(["VERDICT: INCOMPLETE (interrupted during gate4)"])


@pytest.fixture
def full_disk(tmp_path):
    """A 20 MB tmpfs where the machine allows mounting one (root); None elsewhere."""
    where = tmp_path / "small-disk"
    where.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


FILL = """
import errno
from pathlib import Path
filler = Path({where!r}) / "filler.bin"
try:
    with filler.open("wb") as fh:
        while True:
            fh.write(b"x" * 65536)
            fh.flush()
except OSError as exc:
    assert exc.errno == errno.ENOSPC
"""


def test_a_report_that_cannot_be_written_still_gives_the_verdict(pytester, full_disk, monkeypatch):
    reports = (full_disk or pytester.path) / "reports"
    reports.mkdir()
    (reports / "gate-report.json").write_text(json.dumps({"verdict": "GO", "stale": True}))
    if full_disk is not None:  # a real full disk: the last gate fills it
        write_gates(pytester, bodies={"gate5": FILL.format(where=str(full_disk))})
    else:  # no tmpfs here: the disk is "full" when the report is written
        from punie_gates.decision import report

        def no_space(path, text):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(report, "_atomic_write", no_space)
        write_gates(pytester)
    result, doc = run(pytester, reports=reports)
    assert doc is None  # no report, and above all not the stale GO
    result.stdout.fnmatch_lines(["VERDICT: GO", "report: NOT written: No space left on device writing *"])
    assert not list(reports.glob(".*.tmp")) and not (reports / "gate-report.md").exists()
    assert json.loads((next((reports / "previous").iterdir()) / "gate-report.json").read_text())["stale"]


def test_sigterm_ends_the_run_like_ctrl_c(pytester):
    """CI cancelling a job or `kill PID`: the report says interrupted, and where."""
    write_gates(pytester, bodies={"gate2": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"})
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--report-dir", str(reports),
                                           "--candidate", "demo", "gates")  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["interrupted"] == {"by": "SIGTERM", "gate": "gate2", "test": "test_check"} and not doc["complete"]


def test_models_print_short():
    from punie_gates.model.loading import LoadedModel

    loaded = LoadedModel(object(), object(), Path("/m/q5"), Path("/m"), 5, 8, True, 1.0, 2.0, 3.0, 4.0, 5.0, False, "x")
    assert repr(loaded) == "LoadedModel(name='x', path='/m/q5', bits=5)"
