"""Servers watched while they work, and none outliving its run: real signals, fake servers.

SIGKILL of the server while it answers -> one ServerError naming the signal; SIGSTOP ->
stopped after the stall timeout; SIGKILL of the process that started it -> the server
is gone (each guard of answering.server_guard alone); a server an earlier run left
behind -> stopped by the next run. tests/selftest/test_server_watch_demo.py does the
same through a user's gate run on the demo with the real mlx_lm.server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_server import _child_pid, _gone, _wait_gone

from punie_gates.answering import server_guard
from punie_gates.answering.serving import ServedModel, ServerSlot, ask_queries
from punie_gates.errors import ServerError

HERE = Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fake_mlx_server.py")]
USER = [{"role": "user", "content": "Check types in src/"}]
SLOW_REPLY = json.dumps(["x"] * 3000)  # ~30 s of streaming at the fake's 10 ms a token
LINUX = sys.platform.startswith("linux")


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _answering(tmp_path: Path, **options) -> tuple[ServerSlot, ServedModel]:
    slot = ServerSlot(launcher=[*FAKE, "--fake-reply", SLOW_REPLY], **options)
    return slot, ServedModel(slot, _model(tmp_path), tmp_path / "reports" / "gate3-server.log", "candidate")


def _signalled_while_answering(tmp_path: Path, sig: int, **options) -> tuple[str, float, int, ServedModel]:
    """Ask 3 slow queries, send `sig` to the server 1 s in: (the ServerError's text, seconds
    from asking to the error, the server's pid, the served model)."""
    slot, served = _answering(tmp_path, **options)
    try:
        pid = served.server.pid
        threading.Timer(1.0, os.kill, (pid, sig)).start()
        began = time.monotonic()
        with pytest.raises(ServerError) as info:
            ask_queries(served, [(f"q{i}", USER) for i in range(3)], tools=None, max_tokens=4000, concurrency=3)
        return str(info.value), time.monotonic() - began, pid, served
    finally:
        slot.stop()


def test_a_server_killed_while_answering_is_named_once_with_its_signal(tmp_path):
    message, took, pid, _ = _signalled_while_answering(tmp_path, signal.SIGKILL)
    assert "\n" not in message, message  # one cause, one line
    assert message.startswith("candidate: ") and "requests got no answer" in message
    assert f"mlx_lm.server (pid {pid}, model) was killed by signal 9 (SIGKILL)" in message
    assert "last lines of" in message and "gate3-server.log" in message and "finish_reason" not in message
    assert took < 10
    assert not (tmp_path / "reports" / ".servers").exists()  # its pid file went with it


def test_a_stopped_server_is_killed_after_the_stall_timeout_and_says_so(tmp_path):
    message, took, pid, served = _signalled_while_answering(tmp_path, signal.SIGSTOP, stall_timeout_s=2.0)
    assert "stopped responding: /health did not answer for" in message and "the stall timeout is 2 s" in message
    assert "it was killed" in message and "\n" not in message
    # SIGSTOP after 1 s, then the stall timeout, one probe's timeout and one interval at most.
    assert 1.0 + 2.0 <= took < 1.0 + 2.0 + 1.0 + 0.5 + 3.0, took
    assert _wait_gone(pid, 5)
    record = served.record()["starts"][0]
    assert record["longest_silence_s"] >= 2.0 and record["stop_s"] is not None


def test_a_failed_server_is_not_quietly_restarted(tmp_path):
    slot = ServerSlot(launcher=[*FAKE, "--fake-mode", "light"])
    served = ServedModel(slot, _model(tmp_path), tmp_path / "gate3-server.log", "candidate")
    try:
        pid = served.server.pid
        os.kill(pid, signal.SIGKILL)
        assert _wait_gone(pid, 5)
        with pytest.raises(ServerError, match=r"was killed by signal 9"):
            served.server  # noqa: B018 - the property starts or returns the server
        assert len(served.runs) == 1
    finally:
        slot.stop()


# --- a killed run takes its server with it -----------------------------------------------

DRIVER = textwrap.dedent(
    """
    import json, sys, threading, time
    from punie_gates.answering.server import ModelServer

    model, log, launcher, how = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    if how == "unguarded":  # as a server started before the guards existed
        from punie_gates.answering import server_guard
        server_guard.guarded = lambda command, fd, **_: list(command)
    server = ModelServer(model, log, launcher=launcher)
    if how == "worker-thread":  # no parent-death signal from a thread: the watchdog alone
        spawner = threading.Thread(target=server.start)
        spawner.start()
        spawner.join()
    else:
        server.start()
    print(json.dumps({"server": server.pid}), flush=True)
    time.sleep(120)
    """
)


def _driver(tmp_path: Path, how: str, *fake_options: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    log = tmp_path / "reports" / "gate3-server.log"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(_model(tmp_path)), str(log), json.dumps([*FAKE, *fake_options]), how],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    line = driver.stdout.readline()
    assert line, driver.stderr.read()
    return driver, json.loads(line)["server"]


def _watchdog_of(server_pid: int) -> int:
    """The guard's watchdog: the process in the server's group that runs server_guard.py."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != server_pid:
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[2]) == server_pid and b"server_guard.py" in cmdline:
                return int(entry.name)
    raise AssertionError(f"no watchdog in process group {server_pid}")


@pytest.mark.skipif(not LINUX, reason="reads /proc; macOS has the watchdog alone, read in server_guard.py")
@pytest.mark.parametrize("guard", ["parent-death signal", "watchdog"])
def test_a_sigkilled_run_takes_its_server_with_it(tmp_path, guard):
    how = "main-thread" if guard == "parent-death signal" else "worker-thread"
    driver, server = _driver(tmp_path, how, "--fake-mode", "light", "--fake-child")
    child = _child_pid(tmp_path / "reports" / "gate3-server.log")
    try:
        if guard == "parent-death signal":
            os.kill(_watchdog_of(server), signal.SIGKILL)  # the parent-death signal alone must do it
        else:
            _watchdog_of(server)  # it is there
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        assert _wait_gone(server, 10), f"{guard}: the server outlived its run"
        if guard == "watchdog":
            assert _wait_gone(child, 10)  # the watchdog kills the server's whole group
            assert "the run that started this server is gone" in (tmp_path / "reports" / "gate3-server.log").read_text()
    finally:
        driver.kill()
        for pid in (server, child):
            try:
                os.killpg(pid, signal.SIGKILL) if pid == server else os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- a server an earlier run left behind ---------------------------------------------------


def test_a_server_left_by_an_earlier_run_is_stopped_by_the_next(tmp_path, pytester):
    driver, orphan = _driver(tmp_path, "unguarded", "--fake-mode", "light", "--fake-child")
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    reports = tmp_path / "reports"
    pid_file = reports / ".servers" / f"{orphan}.json"
    try:
        time.sleep(0.5)
        assert not _gone(orphan) and pid_file.is_file()  # an orphan, as before the guards
        assert server_guard.parent_of(orphan) != driver.pid

        pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]\n')
        gates = pytester.mkdir("gates")
        (gates / "test_gate0_fake.py").write_text(
            "import pytest\npytestmark = [pytest.mark.gate0]\n\ndef test_check(gate_record):\n    pass\n\n"
            "@pytest.mark.gate_decision\ndef test_gate0_decision(gate_outcome):\n    gate_outcome.check()\n"
        )
        result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", str(reports), "--candidate", "demo",
                                    "gates")  # fmt: skip
        said = (
            f"*stopped mlx_lm.server pid {orphan}, left running by an earlier run (pid {driver.pid})*gate3-server.log*"
        )
        result.stdout.fnmatch_lines([said])
        assert _wait_gone(orphan, 10) and not pid_file.exists()
    finally:
        try:
            os.killpg(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_pid_file_whose_pid_runs_something_else_is_dropped_untouched(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # The pid of a live process, recorded with another command line: a reused pid.
        server_guard.write_pid_file(tmp_path, sleeper.pid, ("python", "-m", "mlx_lm", "server"), tmp_path / "x.log")
        record = tmp_path / ".servers" / f"{sleeper.pid}.json"
        record.write_text(json.dumps({**json.loads(record.read_text()), "owner": 1}))
        assert server_guard.stop_leftovers(tmp_path) == []
        assert sleeper.poll() is None and not record.exists()
        (tmp_path / ".servers" / "broken.json").write_text("{")
        assert server_guard.stop_leftovers(tmp_path) == [] and not (tmp_path / ".servers" / "broken.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_stall_timeout_is_an_option_an_ini_key_and_an_environment_variable(tmp_path):
    from punie_gates.errors import OptionError
    from punie_gates.inputs.options import resolve_options

    def resolved(given=None, environ=None, ini=None):
        return resolve_options(
            given or {},
            root=tmp_path,
            environ=environ or {},
            ini=(lambda k: ini if k == "server_stall_timeout" else None),
        ).server_stall_timeout_s

    assert resolved() == 120.0
    assert resolved(ini="30") == 30.0
    assert resolved(environ={"PUNIE_GATES_SERVER_STALL_TIMEOUT": "45"}, ini="30") == 45.0
    assert resolved({"server_stall_timeout": 5.0}, {"PUNIE_GATES_SERVER_STALL_TIMEOUT": "45"}) == 5.0
    for bad in ("0", "-1", "nan", "inf"):
        with pytest.raises(OptionError, match="--server-stall-timeout must be a positive number of seconds"):
            resolved(environ={"PUNIE_GATES_SERVER_STALL_TIMEOUT": bad})
    with pytest.raises(OptionError, match="--server-stall-timeout must be a positive number of seconds, got -1"):
        resolved({"server_stall_timeout": -1.0})
    with pytest.raises(OptionError, match="ini key 'server_stall_timeout'.*needs float"):
        resolved(ini="soon")


def test_the_report_says_when_a_server_paused_while_answering():
    from punie_gates.decision.report_markdown import _server_lines
    from punie_gates.results.document import read_figures

    def line(silence: float) -> str:
        start = {"pid": 1, "startup_s": 3.2, "stop_s": 0.1, "longest_silence_s": silence}
        figures = read_figures(
            "gate3", {"answering": {"via": "server", "server": {"model": "candidate", "starts": [start]}}}
        )
        return "\n".join(_server_lines(figures.answering))

    assert "/health unanswered" not in line(0.0)
    assert "(started in 3.2 s, stopped in 0.1 s, /health unanswered for up to 95 s while answering)" in line(95.0)


def test_a_server_that_exits_while_starting_is_one_cause_too(tmp_path):
    from punie_gates.answering.server import ModelServer

    server = ModelServer(_model(tmp_path), tmp_path / "gate3-server.log", launcher=[*FAKE, "--fake-mode", "exit"])
    with pytest.raises(ServerError) as info:
        server.start()
    message = str(info.value)
    assert "\n" not in message  # the verdict shows one line per cause: one cause, not the log's 40 lines
    assert message.startswith("mlx_lm.server exited with code 3 before it was ready (command: ")
    assert "last lines of" in message and message.endswith("ValueError: fake failure at startup")
