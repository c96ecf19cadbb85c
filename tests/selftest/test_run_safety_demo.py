"""Hostile-tester cases on the demo candidate, driven as a user drives them: `python -m pytest
--candidate demo ...` in subprocesses, with real SIGKILL and SIGINT during Gate 4's training,
two runs at once on one work folder, a same-size corruption of the trained adapters and a
full disk.

One flow shares a work folder so that each training run is short (3 iterations on 2
conversations, Gate 4's training tests only): killed -> resumed (beside a second run that
waits for it and a third that is refused at once) -> adapters damaged -> refused, then
rebuilt and interrupted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from punie_gates.decision.verdict import EXIT_NOT_JUDGED
from punie_gates.inputs import paths

REPO = Path(__file__).resolve().parents[2]
ITERS = 3


class Run:
    """A `python -m pytest` gate run in a subprocess whose output is read as it comes."""

    def __init__(self, root: Path, env: dict, *args: str, reports: str = "reports"):
        self.reports = root / reports
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(root), str(root / "gates"),
                "--candidate", "demo", f"--report-dir={self.reports}", *args]  # fmt: skip
        # SIGINT as a terminal delivers it, even when this test runs where SIGINT is ignored
        # (a background job): Python then installs its Ctrl-C handler as usual.
        self.proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((ln for ln in list(self.lines) if re.search(pattern, ln)), None)
            if hit is not None:
                return hit
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"never saw {pattern!r}; output:\n{self.out[-4000:]}")

    def finish(self, timeout: float = 900) -> int:
        ret = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return ret

    def report(self) -> dict:
        return json.loads((self.reports / "gate-report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """A scratch checkout: the gate modules, 2+1 conversations, a shorter tool catalog, one cache."""
    root = tmp_path_factory.mktemp("safety")
    shutil.copytree(REPO / "tests" / "gates", root / "gates")
    (root / "conftest.py").write_text('pytest_plugins = ["punie_gates.plugin"]\n')
    data = root / "data"
    data.mkdir()
    source = paths.fixtures_dir() / "demo-training"
    for name, n in (("train.jsonl", 2), ("valid.jsonl", 1)):
        lines = (source / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (data / name).write_text("".join(lines[:n]), encoding="utf-8")
    catalog = (paths.data_dir() / "tools.toml").read_text(encoding="utf-8")
    (root / "tools.toml").write_text(catalog.replace("list_typed_tools = true", "list_typed_tools = false"))
    env = {**os.environ, "PUNIE_GATES_CACHE": str(root / "cache"), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    env.pop("PUNIE_GATES_CANDIDATE", None)
    return root, env


def gate4_training(root: Path, *extra: str) -> tuple[str, ...]:
    return ("-m", "gate4", "--run-all-gates", "-k", "training_sample or validation_loss",
            f"--training-data={root / 'data'}", f"--tools={root / 'tools.toml'}",
            f"--work-dir={root / 'work'}", "--gate4-iters", str(ITERS), *extra)  # fmt: skip


def test_killed_resumed_shared_damaged_and_interrupted(flow):
    root, env = flow
    reports = root / "reports"
    reports.mkdir()
    (reports / "gate-report.json").write_text(json.dumps({"verdict": "GO", "from": "an older run"}))

    # 1. SIGKILL during training: nothing of the older run is left beside the killed one's files.
    killed = Run(root, env, *gate4_training(root))
    killed.wait_for(rf"train 2/{ITERS}")  # checkpoint 1 is on disk
    killed.proc.send_signal(signal.SIGKILL)
    killed.finish()
    assert not (reports / "gate-report.json").exists(), "the older run's GO report stayed in place"
    assert json.loads((reports / "run.json").read_text())["state"] == "running"

    # 2. The same command again resumes, and says so; a second run on the same work folder
    #    waits for it and reuses its adapters; a third on the same report folder is refused at once.
    resumed = Run(root, env, *gate4_training(root))
    resumed.wait_for(r"moved the previous run's \d+ report files? .*never finished")
    line = resumed.wait_for(rf"resuming training from iteration \d of {ITERS}")
    waiting = Run(root, env, *gate4_training(root), reports="reports-2")
    refused = Run(root, env, *gate4_training(root))
    started = time.monotonic()
    assert refused.finish() == EXIT_NOT_JUDGED, refused.out[-3000:]
    assert time.monotonic() - started < 120
    assert "is in use by another run" in refused.out and "report: NOT written" in refused.out
    assert resumed.finish() in (0, 1), resumed.out[-3000:]
    assert waiting.finish() in (0, 1), waiting.out[-3000:]
    doc, other = resumed.report(), waiting.report()
    assert doc["interrupted"] is None and doc["run"]["id"] != other["run"]["id"]
    training = doc["gates"]["gate4"]["figures"]["training"]
    assert training["resumed_from"] == int(re.search(r"iteration (\d)", line)[1]) >= 1 and not training["cached"]
    assert "waiting for pid" in waiting.out and "reusing cached lora/" in waiting.out
    assert other["gates"]["gate4"]["figures"]["training"]["cached"]
    assert other["gates"]["gate4"]["figures"]["training"]["adapter_dir"] == training["adapter_dir"]
    moved = [json.loads(p.read_text()) for p in (reports / "previous").glob("*/gate-report.json")]
    assert moved == [{"verdict": "GO", "from": "an older run"}]

    # 3. Same-size damage to the finished adapters: never reused, named.
    adapters = Path(training["adapter_dir"]) / "adapters.safetensors"
    size = adapters.stat().st_size
    with adapters.open("r+b") as fh:
        fh.seek(size // 3)
        fh.write(b"\xff" * min(100_000, size // 3))
    assert adapters.stat().st_size == size
    refuse = Run(root, env, *gate4_training(root, "--damaged-cache=refuse"))
    assert refuse.finish() == EXIT_NOT_JUDGED, refuse.out[-3000:]
    assert refuse.report()["verdict"] == "ERROR"
    assert "adapters.safetensors's content changed since it was built" in refuse.report()["reasons"][0]
    assert refuse.out.count("adapters.safetensors's content changed") == 1

    # 4. ... rebuilt by default; Ctrl-C while it trains is an interruption, not a NO_GO.
    rebuild = Run(root, env, *gate4_training(root))
    rebuild.wait_for(r"cached lora/\w+ is damaged: adapters.safetensors's content changed .*rebuilding it")
    rebuild.wait_for(rf"validate 0/{ITERS}|train 1/{ITERS}")
    rebuild.proc.send_signal(signal.SIGINT)
    assert rebuild.finish() == 2, rebuild.out[-3000:]
    assert rebuild.out.count("is damaged") == 1
    doc = rebuild.report()
    assert doc["verdict"] == "INCOMPLETE" and doc["complete"] is False
    assert doc["interrupted"] == {"by": "KeyboardInterrupt", "gate": "gate4", "test": "test_validation_loss_falls"}
    assert "VERDICT: INCOMPLETE (interrupted during gate4)" in rebuild.out
    assert not list((root / "work" / "lora").glob("*.partial-*")), "the interrupted run left a partial folder"


def test_a_full_work_disk_is_not_a_verdict(flow, tmp_path):
    """Gate 1 must quantize into a work folder on a 20 MB disk: refused before writing, once."""
    root, env = flow
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (tests/selftest/test_run_safety.py injects ENOSPC instead)")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs (test_run_safety.py injects ENOSPC instead)")
    try:
        run = Run(root, env, "-m", "gate1", "--run-all-gates", f"--work-dir={disk / 'work'}", reports="reports-disk")
        ret = run.finish()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    assert ret == EXIT_NOT_JUDGED, run.out[-3000:]
    doc = run.report()
    assert doc["verdict"] == "ERROR" and "not enough disk space" in doc["reasons"][0]
    assert run.out.count("not enough disk space") == 1 and "NO_GO" not in run.out
