"""The Apple Silicon workflow judges several candidates at once: a matrix, then one comparison.

The workflow is parsed (pyyaml) and its wiring checked: the plan job turns the
`candidates` input into the matrix the go-no-go job runs (one candidate per runner,
`max_parallel` at once, no fail-fast), each run uploads its report under a name the
compare job downloads, and the compare job runs `punie-gates compare` over them and
uploads the page. The plan's Python and the compare step's shell are run here as written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "apple-silicon.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _step(job: dict, name_part: str) -> dict:
    (step,) = [s for s in job["steps"] if name_part in str(s.get("name", s.get("id", "")))]
    return step


def test_dispatch_takes_a_list_of_candidates_and_max_parallel(workflow):
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # yaml reads the key `on` as True
    assert {"candidates", "max_parallel", "runner", "baseline", "run_all_gates"} <= set(inputs)
    assert inputs["runner"]["default"] == "self-hosted"


def test_the_matrix_runs_one_candidate_per_runner(workflow):
    plan, run = workflow["jobs"]["plan"], workflow["jobs"]["go-no-go"]
    assert plan["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    assert run["needs"] == "plan"
    strategy = run["strategy"]
    assert strategy["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert strategy["max-parallel"] == "${{ fromJSON(inputs.max_parallel) }}"
    assert strategy["fail-fast"] is False
    assert "self-hosted" in run["runs-on"] and "ARM64" in run["runs-on"]
    assert run["env"]["CANDIDATE"] == "${{ matrix.candidate }}" and "${{ matrix.slot }}" in run["env"]["REPORTS"]
    gates = _step(run, "Go/no-go")["run"]
    assert '--candidate="$CANDIDATE"' in gates and '--report-dir="$REPORTS"' in gates
    upload = _step(run, "Upload report")
    assert upload["if"] == "always()" and upload["with"]["name"] == "gate-report-${{ matrix.slot }}"
    assert upload["with"]["path"].startswith("${{ env.REPORTS }}")


def test_the_compare_job_ranks_every_uploaded_report(workflow):
    job = workflow["jobs"]["compare"]
    assert job["needs"] == ["plan", "go-no-go"] and job["if"].startswith("always()")
    download = _step(job, "Download")
    assert download["uses"].startswith("actions/download-artifact@") and download["with"]["pattern"] == "gate-report-*"
    assert "punie-gates compare" in _step(job, "Compare")["run"]
    upload = _step(job, "Upload the comparison")
    assert upload["if"] == "always()" and upload["with"]["path"] == "compare/"


def _plan(workflow, candidates: str, max_parallel: str, tmp_path: Path) -> subprocess.CompletedProcess:
    step = _step(workflow["jobs"]["plan"], "plan")
    assert step["shell"] == "python"
    out = tmp_path / "github_output"
    out.write_text("")
    env = {**os.environ, "CANDIDATES": candidates, "MAX_PARALLEL": max_parallel, "GITHUB_OUTPUT": str(out)}
    return subprocess.run([sys.executable, "-c", step["run"]], env=env, capture_output=True, text=True, timeout=60)


def test_the_plan_turns_the_input_into_the_matrix(workflow, tmp_path):
    proc = _plan(workflow, "mlx-community/Qwen3-8B-4bit, demo\n/Users/ci/models/devstral\n", "2", tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = (tmp_path / "github_output").read_text().splitlines()
    matrix = json.loads(line.removeprefix("matrix="))
    assert [e["candidate"] for e in matrix["include"]] == [
        "mlx-community/Qwen3-8B-4bit",
        "demo",
        "/Users/ci/models/devstral",
    ]
    slots = [e["slot"] for e in matrix["include"]]
    assert (
        slots == sorted(slots) and len(set(slots)) == 3
    )  # artifacts sort in the order given: the first is the baseline
    assert all("/" not in s for s in slots)  # artifact names may not hold a slash
    for bad, why in (("  ,\n", "names no candidate"), ("demo", "max_parallel")):
        proc = _plan(workflow, bad, "0" if why == "max_parallel" else "1", tmp_path)
        assert proc.returncode != 0 and why in proc.stderr


def test_the_compare_step_runs_as_written(workflow, tmp_path):
    """Three downloaded reports with answers and one without: the page ranks three, the other is named."""
    ideal = tomllib.loads((REPO / "fixtures" / "responses" / "ideal_mistral.toml").read_text())["case"]
    for n, wrong in enumerate((0, 3, 1)):
        run = tmp_path / "runs" / f"gate-report-0{n}-model_{n}"
        run.mkdir(parents=True)
        lines = [
            json.dumps({"id": c["id"], "response": "no" if i < wrong else c["response"]}) for i, c in enumerate(ideal)
        ]
        (run / "gate5-responses.jsonl").write_text("\n".join(lines) + "\n")
    stopped = tmp_path / "runs" / "gate-report-03-stopped"
    stopped.mkdir()
    (stopped / "gate-report.json").write_text('{"verdict": "NO_GO"}')
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = _step(workflow["jobs"]["compare"], "Compare")["run"]
    proc = subprocess.run(
        [bash, "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert out["baseline"]["label"].startswith("A: gate-report-00")
    assert [r["label"][:1] for r in out["ranking"]] == ["C", "B"]
    assert "gate-report-03-stopped" in (tmp_path / "compare" / "left-out.txt").read_text()
    assert (tmp_path / "compare" / "compare.html").is_file()
