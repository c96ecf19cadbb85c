"""Answers through `mlx_lm.server`, the way Punie's agent gets them.

Punie's agent sends OpenAI chat-completion requests with `tools` (temperature 0) to
`mlx_lm.server` and sees what the server's chat template, tool parser and streaming
detokenizer make of the model's tokens. `ModelServer` runs that server as a child
process for the length of a `with` block; `ask` sends full message lists to it
concurrently (the server batches them) and returns one `Answer` per conversation.

What mlx-lm 0.32.2's server does (read in mlx_lm/server.py, mlx_lm/tokenizer_utils.py,
mlx_lm/tool_parsers/mistral.py, and checked on the demo candidate):

- Readiness. The HTTP port opens before the model is loaded: the model loads in the
  generation thread, and `GET /health` says `{"status": "ok"}` while that thread is
  alive, loading or not. It says 503 once the thread died (a model that fails to load);
  the process itself keeps running. So `ModelServer` waits for /health and then sends
  a one-token `/v1/completions` request, which returns only once the model is loaded.
  `/v1/models` scans the Hugging Face cache: not a readiness probe.
- Prompt. A chat request is rendered with `tokenizer.apply_chat_template(messages,
  tools=tools, add_generation_prompt=True)`, plus `--chat-template-args` and the
  request's `chat_template_kwargs`. On the demo the tools are rendered: a system + user
  request with the catalog's 3 tools has 716 prompt tokens, as an in-process render
  (15 without tools). `--chat-template` breaks a folder with tekken.json:
  `MistralCommonBackend.from_pretrained` rejects the `chat_template` argument and the
  model never loads (every request: "generation thread died").
- Tool parser. Chosen once at load from the tokenizer: `tool_parser_type` in
  tokenizer_config.json, else a marker in `tokenizer.chat_template` (`[TOOL_CALLS]` ->
  the `mistral` parser), else the vocabulary. With tekken.json in the folder,
  transformers gives `MistralCommonBackend`, whose `chat_template` is None: mlx-lm then
  finds NO tool parser, logs "Received tools but model does not support tool calling"
  on every request with tools, and returns a call as plain `content` text
  (`[TOOL_CALLS]read_file[ARGS]{...}`), `tool_calls` None, finish_reason "stop". The demo
  has tekken.json, so on the demo the server never returns `message.tool_calls`.
  Without tekken.json (`TokenizersBackend`, tokenizer.json + chat_template.jinja) the
  `mistral` parser is picked and `[TOOL_CALLS]name[ARGS]{json}` comes back as
  `message.tool_calls` (arguments re-serialized with `json.dumps`, a fresh uuid as id,
  finish_reason "tool_calls"); text before the marker stays in `content`. A call whose
  JSON is cut off (max_tokens) is dropped with a logged warning, and its text is lost.
  `server_tool_parsing()` reports which case a model folder is in.
- Detokenizer. Both modes use the same streaming detokenizer (tokenizer.json's
  ByteLevel decoder -> `BPEStreamingDetokenizer`), which drops the leading spaces of an
  answer. Under `MistralCommonBackend` it also turns every character that spans two
  tokens into U+FFFD. Phase 27's 1386 assistant turns, encoded and streamed back: 44
  change under MistralCommonBackend (40 of them the ✓ and ✗ in Punie's code), 4
  (leading spaces) under TokenizersBackend; `tokenizer.decode` gives all back exactly.
- Streaming. Chunks are sent only outside a tool call; a call is sent whole (id, name,
  full arguments, `index`) in one delta once it ends, and Mistral calls end only at EOS,
  so for a reply that starts with a call the first chunk is the last one and `ttft_s`
  equals `latency_s`. `usage` comes only with `stream_options={"include_usage": true}`,
  in a final chunk with no choices. Keep-alive lines during prompt processing are SSE
  comments, ignored by the client.
- Batching and cache. Concurrent requests are decoded together (BatchGenerator, up to
  `--decode-concurrency` 32, prefill `--prompt-concurrency` 8). An LRU prompt cache of
  `--prompt-cache-size` (default 10) entries reuses the longest cached prefix;
  `usage.prompt_tokens_details.cached_tokens` says how much was reused. Size 0 keeps
  nothing (each entry is evicted as it is inserted). Requests sent together still reuse
  the shared head: on a fresh demo server, 7 of 8 queries sent at once found the 714
  tokens of system prompt and tools cached (the first one's head is stored before the
  others start). Batching pays only with that reuse on this CPU: 10 queries
  x 32 tokens took 8.8 s one at a time and 5.7 s eight at a time with the cache, but
  16.3 s and 27.2 s with prompt_cache_size=0 (batched prefill is slower here).
- Stopping. No SIGTERM handler: SIGTERM ends it at once. SIGINT shuts down the HTTP
  server and joins the generation thread. `--trust-remote-code` is off unless given.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from punie_gates.errors import ServerError  # noqa: F401  (raised here; defined with the other user errors)

Conversation = tuple[str, Sequence[Mapping[str, Any]]]  # (id, OpenAI chat messages)

SERVER_MODULE = ("-m", "mlx_lm", "server")  # `python -m mlx_lm.server` prints a deprecation notice
DEFAULT_STARTUP_TIMEOUT_S = 600.0  # a 24B model loads in tens of seconds; a cold disk is slower
DEFAULT_STOP_TIMEOUT_S = 15.0
DEFAULT_REQUEST_TIMEOUT_S = 1800.0  # one long answer queued behind a full batch on a slow machine
DEFAULT_CONCURRENCY = 8  # the server's default --prompt-concurrency
_LOG_TAIL_LINES = 40




@dataclass(frozen=True)
class ToolCall:
    """One entry of `message.tool_calls`, as the server sent it."""

    id: str
    name: str
    arguments: str  # the raw JSON string the API returned


@dataclass(frozen=True)
class Answer:
    """What the server returned for one conversation."""

    id: str
    content: str  # message content ("" when the server sent none)
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str  # "stop", "length", "tool_calls"; "" when the request failed early
    latency_s: float  # request sent -> last byte received
    ttft_s: float | None  # request sent -> first content/tool-call chunk (streamed requests only)
    prompt_tokens: int | None  # from `usage`
    completion_tokens: int | None
    cached_tokens: int | None  # prompt tokens the server's prompt cache supplied
    reasoning: str = ""  # the server's `reasoning` field, for models with thinking markers
    error: str = ""  # why the request failed ("" when it did not); content may be partial

    def to_dict(self) -> dict:
        """A JSON-ready dict (tool calls as {id, name, arguments})."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "tool_calls"}
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls]
        return out


@dataclass(frozen=True)
class ServerRecord:
    """How a server run was started and what it cost."""

    command: tuple[str, ...]  # the exact argv
    pid: int  # the server process (and its process group)
    versions: Mapping[str, str | None]
    base_url: str  # e.g. http://127.0.0.1:41234/v1
    log_path: Path
    startup_s: float  # start -> model loaded and a one-token request answered
    stop_s: float | None  # stop requested -> process gone (None while running)


@dataclass(frozen=True)
class ServerRun:
    """Answers from one server run, with the record of that server."""

    answers: tuple[Answer, ...]
    server: ServerRecord
    answer_s: float  # wall time of all requests together


@dataclass(frozen=True)
class ConcurrencyTiming:
    """The same requests sent one at a time, then `concurrency` at a time, to one server."""

    sequential_s: float
    concurrent_s: float
    speedup: float  # sequential_s / concurrent_s
    concurrency: int
    queries: int
    max_tokens: int
    sequential_completion_tokens: int  # both passes should generate the same amount
    concurrent_completion_tokens: int
    sequential_cached_tokens: int  # prompt-cache reuse in each pass (0 with prompt_cache_size=0)
    concurrent_cached_tokens: int
    errors: int  # failed requests over both passes


def server_versions() -> dict[str, str | None]:
    """Versions of what shapes the server's answers (python, mlx, mlx-lm, transformers, ...)."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("mlx", "mlx-lm", "transformers", "mistral-common", "tokenizers", "openai"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- the server process -------------------------------------------------------------


class ModelServer:
    """`mlx_lm.server` on a loopback port, in its own process group, for a `with` block.

    The server's stdout and stderr go to `log_path` (appended). Entering waits until
    the model is loaded (`ServerError`, quoting the log, if the process exits, the model
    fails to load, or `startup_timeout_s` passes). Leaving, on any path (exception,
    Ctrl-C), and a SIGTERM to this process, stop the whole group: SIGTERM, a bounded
    wait, then SIGKILL. `launcher` replaces `python -m mlx_lm server` (tests use fakes).
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
        launcher: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.model_path = Path(model_path).expanduser().resolve()
        self.log_path = Path(log_path)
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
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
        return self._proc is not None and not _has_exited(self._proc)

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

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, bounded wait, SIGKILL); idempotent."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        began = time.perf_counter()
        try:
            if not _has_exited(proc):
                _signal_group(proc.pid, signal.SIGTERM)
                _wait_exit(proc, self.stop_timeout_s)
        finally:
            # Also reached on a second Ctrl-C during the wait above. The leader is not reaped
            # yet (a zombie at worst), so its group id still names its group: SIGKILL the
            # leader if it is still there and any children it left.
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                pass
            self._stopped = True
            _LIVE.discard(self)
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
        _install_signal_handling()
        self._log_handle = self.log_path.open("a", encoding="utf-8")
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log_handle.write(f"# punie-gates: {when} starting: {shlex.join(self.command)}\n")
        self._log_handle.flush()
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=self._env,
            start_new_session=True,  # its own process group: a terminal's Ctrl-C reaches us, and we stop it
        )
        self._stopped = False
        _LIVE.add(self)

    def _fail(self, what: str) -> ServerError:
        return ServerError(
            f"mlx_lm.server {what}.\ncommand: {shlex.join(self.command)}\n"
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout_s
        root = f"http://{self.host}:{self.port}"
        while True:  # 1. the HTTP port answers
            self._check_running()
            if time.perf_counter() > deadline:
                raise self._fail(f"did not open port {self.port} within {self.startup_timeout_s:.0f} s")
            status = _http_status(f"{root}/health", timeout=1.0)
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
        worker = threading.Thread(target=_post, args=(request, deadline, result), daemon=True)
        worker.start()
        while worker.is_alive():  # poll, so a dying process or Ctrl-C is seen at once
            worker.join(timeout=0.1)
            self._check_running()
            if time.perf_counter() > deadline + 1.0:
                raise self._fail(f"did not load its model within {self.startup_timeout_s:.0f} s")
        if result.get("status") != 200:
            raise self._fail(f"failed its first request ({result.get('error') or result.get('status')})")

    def _check_running(self) -> None:
        if self._proc is not None and _has_exited(self._proc):
            code = _exit_code(self._proc)
            raise self._fail(f"exited with code {code} before it was ready")


def _post(request: urllib.request.Request, deadline: float, result: dict) -> None:
    try:
        with urllib.request.urlopen(request, timeout=max(deadline - time.perf_counter(), 1.0)) as response:
            result["status"] = response.status
            response.read()
    except urllib.error.HTTPError as exc:
        result["status"] = exc.code
        result["error"] = f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        result["error"] = f"{type(exc).__name__}: {exc}"


def _http_status(url: str, timeout: float) -> int | None:
    """The status of GET url, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _has_exited(proc: subprocess.Popen) -> bool:
    """Whether the process ended, without reaping it where the OS allows (see ModelServer.stop)."""
    if proc.returncode is not None:
        return True
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return proc.poll() is not None
    return proc.poll() is not None


def _exit_code(proc: subprocess.Popen) -> int | None:
    if proc.returncode is None and hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is not None:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    return proc.returncode


def _wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _has_exited(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# Servers still running, stopped by a SIGTERM to this process and at interpreter exit.
_LIVE: set[ModelServer] = set()
_handlers_installed = False


def _install_signal_handling() -> None:
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
    for server in list(_LIVE):
        server.stop()


# --- asking ---------------------------------------------------------------------------


def ask(
    base_url: str,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    stream: bool = True,
    temperature: float = 0.0,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    model: str = "default_model",
    progress: Callable[..., None] | None = None,
) -> list[Answer]:
    """Send each conversation as one chat completion, `concurrency` at a time; answers in input order.

    `conversations` are (id, messages) with OpenAI-style messages (system, user, assistant
    with `tool_calls`, tool). A failed request gives an Answer with `error` set.
    `stream=True` also measures time to first chunk. `progress(step, done, total)` is
    called as answers arrive.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    ids = [qid for qid, _ in conversations]
    if len(set(ids)) != len(ids):
        raise ValueError("conversation ids must be unique")
    if not conversations:
        return []
    import openai

    # No retries: a retried request would hide a failure and double its latency.
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=request_timeout_s)
    request = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    if tools:
        request["tools"] = [dict(t) for t in tools]
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(conversations)), thread_name_prefix="ask")
    try:
        futures = [
            pool.submit(_ask_one, client, qid, [dict(m) for m in messages], request, stream)
            for qid, messages in conversations
        ]
        if progress is not None:
            for done, _ in enumerate(as_completed(futures), 1):
                progress("ask via server", done, len(futures))
        return [f.result() for f in futures]
    finally:
        # On Ctrl-C do not wait for answers still being generated; stopping the server ends them.
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()


def _ask_one(client, qid: str, messages: list[dict], request: dict, stream: bool) -> Answer:
    began = time.perf_counter()
    partial = _Partial()
    try:
        if stream:
            _read_stream(client, messages, request, partial, began)
        else:
            _read_completion(client, messages, request, partial)
    except Exception as exc:  # noqa: BLE001 - one failed request must not lose the others
        partial.error = f"{type(exc).__name__}: {exc}"
    return partial.answer(qid, time.perf_counter() - began)


@dataclass
class _Partial:
    content: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)  # index -> id, name, arguments
    finish_reason: str = ""
    ttft_s: float | None = None
    usage: Any = None
    error: str = ""

    def add_call(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> None:
        slot = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = call_id or slot["id"]
        slot["name"] = name or slot["name"]
        slot["arguments"] += arguments or ""

    def answer(self, qid: str, latency_s: float) -> Answer:
        usage = self.usage
        details = getattr(usage, "prompt_tokens_details", None)
        return Answer(
            id=qid,
            content=self.content,
            tool_calls=tuple(ToolCall(**self.calls[i]) for i in sorted(self.calls)),
            finish_reason=self.finish_reason,
            latency_s=latency_s,
            ttft_s=self.ttft_s,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            cached_tokens=getattr(details, "cached_tokens", None),
            reasoning=self.reasoning,
            error=self.error,
        )


def _read_completion(client, messages: list[dict], request: dict, partial: _Partial) -> None:
    response = client.chat.completions.create(messages=messages, **request)
    partial.usage = response.usage
    if not response.choices:
        raise ServerError("the response had no choices")
    choice = response.choices[0]
    partial.finish_reason = choice.finish_reason or ""
    message = choice.message
    partial.content = message.content or ""
    partial.reasoning = getattr(message, "reasoning", None) or ""
    for index, call in enumerate(message.tool_calls or ()):
        function = getattr(call, "function", None)
        partial.add_call(index, call.id, getattr(function, "name", None), getattr(function, "arguments", None))


def _read_stream(client, messages: list[dict], request: dict, partial: _Partial, began: float) -> None:
    chunks = client.chat.completions.create(
        messages=messages, stream=True, stream_options={"include_usage": True}, **request
    )
    with chunks:
        for chunk in chunks:
            if chunk.usage is not None:
                partial.usage = chunk.usage
            for choice in chunk.choices or ():
                delta = choice.delta
                reasoning = getattr(delta, "reasoning", None) or ""
                if partial.ttft_s is None and (delta.content or delta.tool_calls or reasoning):
                    partial.ttft_s = time.perf_counter() - began
                partial.content += delta.content or ""
                partial.reasoning += reasoning
                for call in delta.tool_calls or ():
                    function = call.function
                    partial.add_call(
                        call.index, call.id, function and function.name, function and function.arguments
                    )
                if choice.finish_reason:
                    partial.finish_reason = choice.finish_reason
    if not partial.finish_reason:
        raise ServerError("the stream ended without a finish_reason")


# --- one call for a gate, and the bench's comparison ------------------------------------


def answer_via_server(
    model_path: Path | str,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    log_path: Path | str,
    concurrency: int = DEFAULT_CONCURRENCY,
    stream: bool = True,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    **server_options: Any,
) -> ServerRun:
    """Start mlx_lm.server on `model_path`, ask every conversation, stop it: a gate's one call.

    Raises ServerError when the server does not start; failed requests are Answers with
    `error` set. `server_options` go to ModelServer (e.g. prompt_cache_size).
    """
    with ModelServer(model_path, log_path, startup_timeout_s=startup_timeout_s, **server_options) as server:
        began = time.perf_counter()
        answers = ask(
            server.base_url, conversations, tools=tools, max_tokens=max_tokens, concurrency=concurrency, stream=stream
        )
        answer_s = time.perf_counter() - began
    return ServerRun(answers=tuple(answers), server=server.record(), answer_s=answer_s)


def time_concurrency(
    base_url: str,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    stream: bool = False,
    warm_up: bool = True,
) -> ConcurrencyTiming:
    """Time the same requests one at a time, then `concurrency` at a time, on one running server.

    With `warm_up` the first conversation is asked once, untimed, before both passes, so
    both find the shared head (system prompt and tools) in the server's prompt cache, as
    every request after the first of a real run does. The second pass may also reuse the
    first pass's prompts; the cached_tokens fields show how much (the few tokens of each
    user turn when queries share their head). A server started with prompt_cache_size=0
    caches nothing: then the comparison is of batching alone.
    """
    if not conversations:
        raise ValueError("time_concurrency needs at least one conversation")

    def timed(chosen: Sequence[Conversation], width: int) -> tuple[float, list[Answer]]:
        began = time.perf_counter()
        answers = ask(base_url, chosen, tools=tools, max_tokens=max_tokens, concurrency=width, stream=stream)
        return time.perf_counter() - began, answers

    warm = timed(conversations[:1], 1)[1] if warm_up else []
    sequential_s, sequential = timed(conversations, 1)
    concurrent_s, concurrent = timed(conversations, concurrency)

    def total(answers: list[Answer], name: str) -> int:
        return sum(getattr(a, name) or 0 for a in answers)

    return ConcurrencyTiming(
        sequential_s=sequential_s,
        concurrent_s=concurrent_s,
        speedup=sequential_s / concurrent_s if concurrent_s > 0 else float("inf"),
        concurrency=concurrency,
        queries=len(conversations),
        max_tokens=max_tokens,
        sequential_completion_tokens=total(sequential, "completion_tokens"),
        concurrent_completion_tokens=total(concurrent, "completion_tokens"),
        sequential_cached_tokens=total(sequential, "cached_tokens"),
        concurrent_cached_tokens=total(concurrent, "cached_tokens"),
        errors=sum(bool(a.error) for a in warm + sequential + concurrent),
    )


# --- which tool parser the server will use ---------------------------------------------


@dataclass(frozen=True)
class ToolParsing:
    """What mlx_lm.server will do with a model folder's tool calls (found the way it loads them)."""

    tokenizer_class: str  # e.g. MistralCommonBackend (tekken.json present) or TokenizersBackend
    tool_parser: str | None  # module of mlx-lm's parser, None: calls come back as plain content
    tool_call_start: str | None  # the text that opens a call for that parser
    detokenizer: str  # mlx-lm's streaming detokenizer class

    @property
    def returns_tool_calls(self) -> bool:
        return self.tool_parser is not None


def server_tool_parsing(model_path: Path | str) -> ToolParsing:
    """Load the folder's tokenizer as mlx_lm.server does (no model weights) and report its tool parsing."""
    from mlx_lm.utils import load_tokenizer

    wrapper = load_tokenizer(Path(model_path), {"trust_remote_code": False})
    parser = wrapper.tool_parser
    return ToolParsing(
        tokenizer_class=type(wrapper._tokenizer).__name__,
        tool_parser=getattr(parser, "__module__", None) if parser is not None else None,
        tool_call_start=wrapper.tool_call_start,
        detokenizer=type(wrapper.detokenizer).__name__,
    )
