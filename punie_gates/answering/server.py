"""The `mlx_lm.server` process: spawned on a loopback port, waited for, stopped on every path.

`ModelServer` runs the server as a child process in its own process group for the
length of a `with` block (or between `start()` and `stop()`); how it is asked lives in
`client.py`, which tool parser it picks for a folder in `tool_parsing.py`, timing
batches against single requests in `concurrency.py`. The process group's signals and
exits are in `process_group.py`, the HTTP it is probed with in `local_http.py`, its watch
while it serves in `server_watch.py`, what a run was (`ServerRecord`) in `server_record.py`.

What mlx-lm 0.32.2's server does (read in mlx_lm/server.py, checked on the demo candidate):

- Readiness. The HTTP port opens before the model is loaded: the model loads in the
  generation thread, and `GET /health` says `{"status": "ok"}` while that thread is
  alive, loading or not. It says 503 once the thread died (a model that fails to load);
  the process itself keeps running. So `ModelServer` waits for /health and then sends
  a one-token `/v1/completions` request, which returns only once the model is loaded.
  `/v1/models` scans the Hugging Face cache: not a readiness probe.
- Stopping. No SIGTERM handler: SIGTERM ends it at once. SIGINT shuts down the HTTP
  server and joins the generation thread. `--trust-remote-code` is off unless given.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from punie_gates.answering import process_group, server_guard
from punie_gates.answering.local_http import free_port, http_status, post
from punie_gates.answering.process_group import (
    exit_code,
    exit_text,
    has_exited,
    install_signal_handling,
    signal_group,
    wait_exit,
)
from punie_gates.answering.server_record import ServerRecord, server_versions
from punie_gates.answering.server_watch import ServerWatch
from punie_gates.errors import ServerError  # noqa: F401  (raised here; defined with the other user errors)
from punie_gates.progress import notice

SERVER_MODULE = ("-m", "mlx_lm", "server")  # `python -m mlx_lm.server` prints a deprecation notice
DEFAULT_STARTUP_TIMEOUT_S = 600.0  # a 24B model loads in tens of seconds; a cold disk is slower
DEFAULT_STOP_TIMEOUT_S = 15.0
DEFAULT_STALL_TIMEOUT_S = 120.0  # /health silent this long: the server is stopped (docs/reliability-servers.md)
_LOG_TAIL_LINES = 40


# --- the server process -------------------------------------------------------------


class ModelServer:
    """`mlx_lm.server` on a loopback port, in its own process group, for a `with` block.

    The server's stdout and stderr go to `log_path` (appended). Entering waits until
    the model is loaded (`ServerError`, quoting the log, if the process exits, the model
    fails to load, or `startup_timeout_s` passes). Leaving, on any path (exception,
    Ctrl-C), and a SIGTERM to this process, stop the whole group: SIGTERM, a bounded
    wait, then SIGKILL. `launcher` replaces `python -m mlx_lm server` (tests use fakes).

    Watched while requests are in flight (inside `answering()`): a thread checks every
    few seconds that the process still runs and that /health answers within
    HEALTH_TIMEOUT_S. A server that exits, reports /health 503, or leaves /health silent
    for `stall_timeout_s` (it is then killed, which ends the requests waiting on it) sets
    `failure`, one line the request layer raises as ServerError (answering.server_watch).
    A killed run takes its server with it (answering.server_guard), and a server left by
    an earlier run in the log's folder is stopped at start, with a notice.
    """

    def __init__(
        self,
        model_path: Path | str,
        log_path: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        max_tokens: int | None = None,
        prompt_cache_size: int | None = None,
        decode_concurrency: int | None = None,
        prompt_concurrency: int | None = None,
        chat_template_args: Mapping[str, Any] | None = None,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        launcher: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.model_path = Path(model_path).expanduser().resolve()
        self.log_path = Path(log_path)
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._watch = ServerWatch(stall_timeout_s)  # refuses a stall timeout that is not positive seconds
        if any(a.startswith("--trust-remote-code") for a in extra_args):
            raise ValueError("ModelServer never passes --trust-remote-code: a candidate may not run its own code")
        self._options: list[str] = ["--log-level", log_level]
        for flag, value in (
            ("--max-tokens", max_tokens),
            ("--prompt-cache-size", prompt_cache_size),
            ("--decode-concurrency", decode_concurrency),
            ("--prompt-concurrency", prompt_concurrency),
        ):
            if value is not None:
                self._options += [flag, str(int(value))]
        if chat_template_args:
            self._options += ["--chat-template-args", json.dumps(dict(chat_template_args))]
        self._options += list(extra_args)
        self._launcher = tuple(launcher) if launcher is not None else (sys.executable, *SERVER_MODULE)
        self._env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._proc: subprocess.Popen | None = None
        self._stopped = False
        self._log_handle = None
        self.command: tuple[str, ...] = ()
        self.startup_s: float | None = None
        self.stop_s: float | None = None
        self._guard_fd: int | None = None  # the write end of the watchdog's pipe (server_guard)
        self._pid_file: Path | None = None

    # public face ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def record(self) -> ServerRecord:
        if self.startup_s is None:
            raise RuntimeError("the server has not started")
        return ServerRecord(
            command=self.command,
            pid=self._proc.pid,
            versions=server_versions(),
            base_url=self.base_url,
            log_path=self.log_path,
            startup_s=self.startup_s,
            stop_s=self.stop_s,
        )

    def alive(self) -> bool:
        return self._proc is not None and not has_exited(self._proc)

    @property
    def failure(self) -> str | None:
        """Why the server stopped serving when nobody asked it to (exited, stalled, unhealthy),
        in one line with the end of its log; None while it serves, or after `stop`."""
        proc = self._proc
        if (self._watch.failure is None and self.startup_s is not None and proc is not None
                and not self._watch.stopping.is_set() and has_exited(proc)):  # fmt: skip
            self._watch.failure = self._failed(exit_text(exit_code(proc)))
        return self._watch.failure

    @property
    def longest_silence_s(self) -> float:
        """The longest time /health went unanswered while watched."""
        return self._watch.longest_silence_s

    @contextmanager
    def answering(self) -> Iterator[ModelServer]:
        """Requests are in flight inside this block: the watch probes /health (see the class docstring)."""
        with self._watch.answering():
            yield self

    def failure_within(self, seconds: float) -> str | None:
        """`failure`, waiting up to `seconds` for it: a request can fail a moment before the
        process it talked to is seen to have exited."""
        deadline = time.monotonic() + seconds
        while self.failure is None and time.monotonic() < deadline and not self._watch.stopping.is_set():
            time.sleep(0.05)
        return self.failure

    def log_summary(self, lines: int = 6) -> str:
        """`last lines of LOG: a | b | c`: the log's last lines in one line (a cause is one line
        in the verdict), without the HTTP access lines ('"POST /v1/... HTTP/1.1" 200 -') that
        bury the error."""
        kept = [line.strip() for line in self.log_tail().splitlines() if line.strip() and "HTTP/1." not in line]
        return f"last lines of {self.log_path}: {' | '.join(kept[-lines:])[-800:]}"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until its model answers (ServerError if it does not)."""
        if self._proc is not None:
            raise RuntimeError("this ModelServer was already started")
        if not (self.model_path / "config.json").is_file():
            # Also keeps mlx-lm from taking a missing folder for a hub repo id.
            raise ServerError(f"{self.model_path}: not a model folder (no config.json); pass a local MLX model folder")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for said in server_guard.stop_leftovers(self.log_path.parent):
            notice(said)
        started = time.perf_counter()
        attempts = 1 if self.port is not None else 3  # a free port may be taken before the server binds it
        for attempt in range(attempts):
            if self.port is None or attempt:
                self.port = free_port(self.host)
            try:
                self._spawn()
                self._wait_ready(started)
                break
            except ServerError as exc:
                in_use = "Address already in use" in str(exc)
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise
            except BaseException:
                self.stop()  # Ctrl-C or SIGTERM while waiting: no server may stay behind
                raise
        self.startup_s = time.perf_counter() - started
        url = f"http://{self.host}:{self.port}/health"
        threading.Thread(
            target=self._watch.run,
            args=(self._proc, url, lambda: self.failure, self._failed),
            name=f"watch mlx_lm.server {self.pid}",
            daemon=True,
        ).start()

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, bounded wait, SIGKILL); idempotent."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        self._watch.stop()  # what happens to the process from here on is no failure
        began = time.perf_counter()
        try:
            if not has_exited(proc):
                signal_group(proc.pid, signal.SIGTERM)
                wait_exit(proc, self.stop_timeout_s)
        finally:
            # Also reached on a second Ctrl-C during the wait above. The leader is not reaped
            # yet (a zombie at worst), so its group id still names its group: SIGKILL the
            # leader if it is still there and any children it left.
            if proc.returncode is None:
                signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                pass
            self._stopped = True
            process_group.LIVE.discard(self)
            server_guard.remove_pid_file(self._pid_file)
            if self._guard_fd is not None:
                os.close(self._guard_fd)  # the watchdog died with the group; nothing reads it now
                self._guard_fd = None
            if self._log_handle is not None:
                self._log_handle.close()
                self._log_handle = None
            if self.stop_s is None and self.startup_s is not None:
                self.stop_s = time.perf_counter() - began

    # internals --------------------------------------------------------------------

    def _spawn(self) -> None:
        self.command = (
            *self._launcher,
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(self.port),
            *self._options,
        )  # fmt: skip
        install_signal_handling()
        self._log_handle = self.log_path.open("a", encoding="utf-8")
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log_handle.write(f"# punie-gates: {when} starting: {shlex.join(self.command)}\n")
        self._log_handle.flush()
        # The server dies with this process even when it is SIGKILLed (server_guard): the
        # watchdog's pipe stays open here as long as we live. The parent-death signal fires
        # when the forking *thread* exits, so it is asked for from the main thread only.
        watch_fd, self._guard_fd = os.pipe()
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            self._proc = subprocess.Popen(
                server_guard.guarded(self.command, watch_fd, parent_death_signal=main_thread),
                stdin=subprocess.DEVNULL,
                stdout=self._log_handle,
                stderr=subprocess.STDOUT,
                env=self._env,
                pass_fds=(watch_fd,),
                start_new_session=True,  # its own process group: a terminal's Ctrl-C reaches us, and we stop it
            )
        except BaseException:
            os.close(self._guard_fd)
            self._guard_fd = None
            raise
        finally:
            os.close(watch_fd)
        self._stopped = False
        self._watch.stopping.clear()
        process_group.LIVE.add(self)
        try:
            self._pid_file = server_guard.write_pid_file(self.log_path.parent, self._proc.pid, self.command,
                                                         self.log_path)  # fmt: skip
        except OSError:
            self._pid_file = None  # the guards above still hold; only a later clean-up loses its record

    def _fail(self, what: str) -> ServerError:
        return ServerError(f"mlx_lm.server {what} (command: {shlex.join(self.command)}); {self.log_summary()}")

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout_s
        root = f"http://{self.host}:{self.port}"
        while True:  # 1. the HTTP port answers
            self._check_running()
            if time.perf_counter() > deadline:
                raise self._fail(f"did not open port {self.port} within {self.startup_timeout_s:.0f} s")
            status = http_status(f"{root}/health", timeout=1.0)
            if status == 200:
                break
            if status is not None:
                raise self._fail(f"reported /health {status}: its model did not load")
            time.sleep(0.1)
        # 2. The model loads after the port opens; this request returns once it is loaded.
        body = json.dumps({"prompt": "ready", "max_tokens": 1}).encode()
        request = urllib.request.Request(
            f"{root}/v1/completions", data=body, headers={"Content-Type": "application/json"}
        )
        result: dict[str, Any] = {}
        worker = threading.Thread(target=post, args=(request, deadline, result), daemon=True)
        worker.start()
        while worker.is_alive():  # poll, so a dying process or Ctrl-C is seen at once
            worker.join(timeout=0.1)
            self._check_running()
            if time.perf_counter() > deadline + 1.0:
                raise self._fail(f"did not load its model within {self.startup_timeout_s:.0f} s")
        if result.get("status") != 200:
            raise self._fail(f"failed its first request ({result.get('error') or result.get('status')})")

    def _check_running(self) -> None:
        if self._proc is not None and has_exited(self._proc):
            raise self._fail(f"{exit_text(exit_code(self._proc))} before it was ready")

    def _failed(self, what: str) -> str:
        return f"mlx_lm.server (pid {self.pid}, {self.model_path.name}) {what}; {self.log_summary(4)}"
