"""One server run for a whole batch of questions, and the bench's one-at-a-time vs batched timing."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.answering.client import DEFAULT_CONCURRENCY, Answer, Conversation, ask
from punie_gates.answering.server import DEFAULT_STARTUP_TIMEOUT_S, ModelServer
from punie_gates.answering.server_record import ServerRecord


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
