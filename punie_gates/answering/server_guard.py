"""No mlx_lm.server outlives the run that started it, even a run that is killed.

A SIGKILL of the run leaves no chance to stop its server: the server must notice by
itself. `guarded(command, ...)` wraps the server's argv in this file, run as a script
with the suite's own interpreter (`python -I server_guard.py ...`: standard library
only, so it works whatever interpreter serves). Between fork and exec it sets up:

- Linux: the parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), which survives
  the exec, so the server itself (same pid) is killed when the run dies. The kernel
  sends it when the *thread* that forked the server exits, not the process: asked for
  only when the main thread spawns (its exit is the process's), else the watchdog alone
  guards.
- Everywhere (macOS has no parent-death signal): a watchdog, a small process in the
  server's process group that blocks reading a pipe whose other end only the run holds.
  The kernel closes that end when the run dies, however it dies; the read then returns
  end-of-file and the watchdog kills the whole group (the server, anything it started,
  itself). No polling: the end-of-file is immediate. When the run stops the server
  itself, the watchdog dies with the group.

Both are checked here on Linux with real signals (tests/selftest/test_server_watch.py);
on macOS only the watchdog applies, and it uses nothing Linux-specific (os.fork, a pipe,
os.killpg).

What escapes both (a server started by an older version, a watchdog killed alone) is
found through pid files: `write_pid_file` records each server at spawn in
`<folder>/.servers/<pid>.json` (removed at stop), and `stop_leftovers(folder)`, run when
a run starts, stops those whose run is gone. It checks that the pid still runs the
recorded command line before it signals anything: a pid reused by another program is
left alone.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PID_DIR = ".servers"  # in the server log's folder (the report folder for the gates)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_HAVE_PROC = Path("/proc/self/cmdline").exists()


# --- the suite's side -------------------------------------------------------------------


def guarded(command: tuple[str, ...], watch_fd: int, *, parent_death_signal: bool) -> list[str]:
    """The argv that runs `command` under both guards; `watch_fd` is the read end of the
    run's pipe (pass it with Popen(pass_fds=...), keep the write end open while it runs)."""
    if not sys.executable:  # an embedded interpreter: nothing to run the guard with
        return list(command)
    flags = ["--pdeathsig"] if parent_death_signal and sys.platform.startswith("linux") else []
    return [sys.executable, "-I", str(Path(__file__).resolve()), *flags,
            "--watch-fd", str(watch_fd), "--parent", str(os.getpid()), "--", *command]  # fmt: skip


def write_pid_file(folder: Path, pid: int, command: tuple[str, ...], log_path: Path) -> Path:
    """Record a server this process started (removed by the caller when it stops it)."""
    where = Path(folder) / PID_DIR
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{pid}.json"
    record = {"pid": pid, "owner": os.getpid(), "command": list(command), "log": str(log_path),
              "started": time.time()}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)
    return path


def stop_leftovers(folder: Path, *, wait_s: float = 5.0) -> list[str]:
    """Stop the servers recorded in `folder` whose run is gone; one sentence per server stopped.

    A record is dropped without signalling anything when its pid no longer runs the
    recorded command (gone, or reused). A server whose parent is still its live run is
    that run's (another process on this folder) and is left alone.
    """
    where = Path(folder) / PID_DIR
    try:
        files = sorted(where.glob("*.json"))
    except OSError:
        return []
    said = []
    for path in files:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            pid, owner, command = int(record["pid"]), int(record["owner"]), [str(a) for a in record["command"]]
        except (OSError, ValueError, KeyError, TypeError):
            _remove(path)  # half-written or foreign: it names nothing we could safely stop
            continue
        if owner == os.getpid():
            continue  # this process's own server
        if not runs_command(pid, command):
            _remove(path)
            continue
        if parent_of(pid) == owner:
            continue  # its run is alive and still holds it
        _stop_group(pid, command, wait_s)
        _remove(path)
        said.append(
            f"stopped mlx_lm.server pid {pid}, left running by an earlier run (pid {owner}) "
            f"that did not stop it; its log: {record.get('log')}"
        )
    return said


def remove_pid_file(path: Path | None) -> None:
    """Remove a server's record, and its folder once empty (no clutter in a report folder)."""
    if path is not None:
        _remove(path)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # another server's record is still there


def runs_command(pid: int, command: list[str]) -> bool:
    """Whether `pid` runs exactly `command` now (False: gone, a zombie, another program)."""
    if _HAVE_PROC:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] == command
    # macOS and other systems without /proc: `ps` prints the arguments joined by spaces.
    return _ps(pid, "command") == " ".join(command)


def parent_of(pid: int) -> int | None:
    if _HAVE_PROC:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None
    out = _ps(pid, "ppid")
    return int(out) if out and out.isdigit() else None


def _ps(pid: int, field: str) -> str | None:
    try:
        done = subprocess.run(["ps", "-ww", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _stop_group(pid: int, command: list[str], wait_s: float) -> None:
    """SIGTERM the server's process group (woken if it was stopped), a bounded wait, SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        _killpg(pid, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and runs_command(pid, command):
        time.sleep(0.05)
    _killpg(pid, signal.SIGKILL)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# --- the server's side (this file run as a script) ---------------------------------------


def _launch(argv: list[str]) -> None:
    """`[--pdeathsig] --watch-fd N --parent PID -- COMMAND...`: set the guards up, exec COMMAND."""
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    watch_fd = int(options[options.index("--watch-fd") + 1])
    parent = int(options[options.index("--parent") + 1])
    if "--pdeathsig" in options:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # on failure the watchdog still guards
    if os.getppid() != parent:
        os._exit(70)  # the run died before the guards were in place: nothing to serve
    _start_watchdog(watch_fd)
    os.execvp(command[0], command)


def _start_watchdog(watch_fd: int) -> None:
    """Fork a watchdog (double fork: nobody has to reap it) that kills this process group at EOF."""
    group = os.getpgrp()
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        os.close(watch_fd)  # the server holds no end of the pipe
        return
    try:
        if os.fork():
            os._exit(0)
        while True:
            try:
                if not os.read(watch_fd, 4096):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        print(
            "[punie-gates] the run that started this server is gone: stopping the server", file=sys.stderr, flush=True
        )
        os.killpg(group, signal.SIGKILL)  # the watchdog too
    finally:
        os._exit(0)


if __name__ == "__main__":
    _launch(sys.argv[1:])
