"""A served model watched while requests are in flight: /health probed every few seconds, and a
server that exits, reports /health 503, or leaves /health silent for the stall timeout is
killed (which ends the requests waiting on it), its failure said in one line.

One `ServerWatch` per `ModelServer` (answering/server.py), which starts `run` in a thread once
the model answers and calls `stop` before it stops the process, so that nothing that happens
to the process from then on counts as a failure.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from punie_gates.answering.local_http import http_status
from punie_gates.answering.process_group import signal_group

HEALTH_TIMEOUT_S = 5.0  # one /health probe; a busy but working server answers in well under a second
WATCH_INTERVAL_S = 5.0  # between probes (each is a line in the server's log)


class ServerWatch:
    """One server run's watch: the requests in flight, the longest /health silence, the failure seen."""

    def __init__(self, stall_timeout_s: float):
        if not 0 < stall_timeout_s < float("inf"):
            raise ValueError(f"stall_timeout_s must be a positive number of seconds, got {stall_timeout_s}")
        self.stall_timeout_s = float(stall_timeout_s)
        self.longest_silence_s = 0.0  # the longest time /health went unanswered while watched
        self.failure: str | None = None
        self.stopping = threading.Event()  # set by stop(): what happens to the process from then on is no failure
        self._in_flight = 0  # `answering()` blocks open: /health is probed only then
        self._in_flight_lock = threading.Lock()
        self._kill_lock = threading.Lock()  # the watch kills only a process stop() has not begun to reap

    def stop(self) -> None:
        """The server is being stopped: the watch kills nothing and records no failure from now on."""
        with self._kill_lock:
            self.stopping.set()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Requests are in flight inside this block: the watch probes /health."""
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def run(
        self, proc: subprocess.Popen, url: str, failed: Callable[[], str | None], said: Callable[[str], str]
    ) -> None:
        """While the server runs: its process (`failed()`: the server's failure, an exit included),
        and /health at `url` answering. `said(why)` is the failure's line for a server killed here."""
        probe_timeout = min(HEALTH_TIMEOUT_S, self.stall_timeout_s / 2)
        interval = min(WATCH_INTERVAL_S, self.stall_timeout_s / 4)
        silent_since: float | None = None
        misses = 0
        while not self.stopping.wait(interval):
            if failed() is not None:
                return  # it exited (`failure` says how)
            if not self._in_flight:
                silent_since, misses = None, 0  # idle: nobody waits on it (an exit is still seen above)
                continue
            asked = time.monotonic()
            status = http_status(url, timeout=probe_timeout)
            if self.stopping.is_set() or failed() is not None:
                return
            if status == 200:
                silent_since, misses = None, 0
                continue
            if status is not None:
                self._kill(proc, said, f"reported /health {status} while serving (its generation thread died); "
                                 "it was stopped")  # fmt: skip
                return
            silent_since = asked if silent_since is None else silent_since
            misses += 1
            silent = time.monotonic() - silent_since
            self.longest_silence_s = max(self.longest_silence_s, silent)
            # Two misses at least: one late probe after this process itself was paused is no stall.
            if misses >= 2 and silent >= self.stall_timeout_s:
                self._kill(
                    proc,
                    said,
                    f"stopped responding: /health did not answer for {silent:.0f} s (the stall "
                    f"timeout is {self.stall_timeout_s:g} s: --server-stall-timeout); it was killed",
                )
                return

    def _kill(self, proc: subprocess.Popen, said: Callable[[str], str], why: str) -> None:
        """Record `why` as the failure and kill the group, unless stop() got there first."""
        with self._kill_lock:
            if self.stopping.is_set():
                return
            self.failure = said(why)
            signal_group(proc.pid, signal.SIGKILL)  # ends the requests waiting on it
