"""A child process in its own process group: whether it exited (seen without reaping it), how,
its group signalled, and every server still live stopped when this process gets SIGTERM or
exits."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time
from typing import Protocol


class Stoppable(Protocol):
    """What LIVE holds: a server whose stop() ends its process group (idempotent)."""

    def stop(self) -> None: ...


def has_exited(proc: subprocess.Popen) -> bool:
    """Whether the process ended, without reaping it where the OS allows (see ModelServer.stop)."""
    if proc.returncode is not None:
        return True
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return proc.poll() is not None
    return proc.poll() is not None


def exit_code(proc: subprocess.Popen) -> int | None:
    if proc.returncode is None and hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is not None:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    return proc.returncode


def exit_text(code: int | None) -> str:
    """`exited with code 3`, `was killed by signal 9 (SIGKILL)`."""
    if code is None or code >= 0:
        return f"exited with code {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"


def wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not has_exited(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# Servers still running, stopped by a SIGTERM to this process and at interpreter exit.
LIVE: set[Stoppable] = set()
_handlers_installed = False


def install_signal_handling() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers exit
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # Die of SIGTERM as we would have without this handler (a SystemExit here could
            # be caught, e.g. by a test runner, and the run would go on).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def _stop_all() -> None:
    for server in list(LIVE):
        server.stop()
