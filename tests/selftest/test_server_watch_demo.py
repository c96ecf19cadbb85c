"""A user's Gate 3 run on the demo, answering through the real mlx_lm.server, hit by real signals.

`python -m pytest tests/gates -m gate3 --run-all-gates --candidate demo` in a subprocess;
once the server answers its first chat request:
- SIGKILL of the pytest process: `pgrep -f "mlx_lm[. ]server"` finds no server of that run
  10 s later (answering.server_guard);
- SIGSTOP of the server, with `--server-stall-timeout 4`: the run ends ERROR (exit 6) within
  the documented time (docs/reliability-servers.md), saying the server stopped responding.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_server import _wait_gone

from punie_gates.decision.verdict import EXIT_NOT_JUDGED

REPO = Path(__file__).resolve().parents[2]
STALL_S = 4.0


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of the runs, with the demo at the target bits already in its cache."""
    from punie_gates.inputs.options import resolve_options
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.quantize import ensure_bits

    cache = Path(os.environ.get("PUNIE_GATES_CACHE") or tmp_path_factory.mktemp("cache"))
    bits = resolve_options({"candidate": "demo"}, root=REPO, environ={}).target_bits
    ensure_bits(ensure_demo_model(cache), cache / "work", bits)
    env = {**os.environ, "PUNIE_GATES_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    for name in ("PUNIE_GATES_CANDIDATE", "PUNIE_GATES_WORK_DIR", "PUNIE_GATES_ANSWER_VIA", "PUNIE_GATES_REPORT_DIR"):
        env.pop(name, None)
    return env


def _gate3(env: dict[str, str], reports: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(REPO / "tests" / "gates"), "-m", "gate3",
            "--run-all-gates", "--candidate", "demo", f"--report-dir={reports}", *args]  # fmt: skip
    out = (reports.parent / f"{reports.name}.out").open("w")
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _answering_server(run: subprocess.Popen, reports: Path, timeout: float = 300) -> tuple[int, list[str]]:
    """The run's server (pid, argv) once it has received a chat request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, (reports.parent / f"{reports.name}.out").read_text()[-3000:]
        for pid_file in (reports / ".servers").glob("*.json"):
            record = json.loads(pid_file.read_text())
            log = Path(record["log"])
            if log.is_file() and "POST /v1/chat/completions" in log.read_text(errors="replace"):
                return record["pid"], record["command"]
        time.sleep(0.2)
    raise AssertionError(
        f"the run never answered through a server: {(reports.parent / f'{reports.name}.out').read_text()[-3000:]}"
    )


def _servers_of(command: list[str]) -> list[str]:
    """What `pgrep -f "mlx_lm[. ]server"` finds of this run's server (its port is its own)."""
    port = command[command.index("--port") + 1]
    found = subprocess.run(["pgrep", "-af", "mlx_lm[. ]server"], capture_output=True, text=True, check=False).stdout
    return [line for line in found.splitlines() if re.search(rf"--port {port}( |$)", line)]


def test_a_sigkilled_run_leaves_no_server(env, tmp_path):
    reports = tmp_path / "reports"
    run = _gate3(env, reports)
    try:
        _, command = _answering_server(run, reports)
        assert _servers_of(command), "pgrep must see the running server"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _servers_of(command) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _servers_of(command), f"10 s after the SIGKILL: {_servers_of(command)}"
        log = (reports / "gate3-server.log").read_text(errors="replace")
        assert "the run that started this server is gone: stopping the server" in log  # the watchdog's word
    finally:
        run.kill()
        run.wait()


def test_a_stopped_server_ends_the_run_error_within_the_stall_timeout(env, tmp_path):
    reports = tmp_path / "reports"
    run = _gate3(env, reports, "--server-stall-timeout", str(STALL_S))
    try:
        pid, command = _answering_server(run, reports)
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        assert _wait_gone(pid, STALL_S + 10 + 5), "the stopped server was not killed in time"
        killed_after = time.monotonic() - stopped
        ret = run.wait(timeout=180)  # then the run writes its report (slow on a loaded machine)
    finally:
        run.kill()
        run.wait()
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError):
            pass
    out = (tmp_path / "reports.out").read_text()
    assert ret == EXIT_NOT_JUDGED, out[-3000:]
    # Documented: killed within the stall timeout plus a probe's timeout and an interval.
    assert STALL_S <= killed_after < STALL_S + 10 + 5, killed_after
    doc = json.loads((reports / "gate-report.json").read_text())
    assert doc["verdict"] == "ERROR" and doc["complete"] is False
    reasons = " ".join(doc["reasons"])
    assert "stopped responding: /health did not answer for" in reasons and "--server-stall-timeout" in reasons
    assert "finish_reason" not in out
    assert not _servers_of(command)
