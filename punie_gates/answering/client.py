"""Asking a running `mlx_lm.server` the way Punie's agent does: OpenAI chat completions.

`ask` sends full message lists (system, user, assistant with `tool_calls`, tool) with
`tools`, greedy, `concurrency` at a time (the server batches them), streamed or not,
and returns one `Answer` per conversation: what the API returned, with its timing.

What mlx-lm 0.32.2's server does with them (read in mlx_lm/server.py, checked on the demo):

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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from punie_gates.errors import ServerError

Conversation = tuple[str, Sequence[Mapping[str, Any]]]  # (id, OpenAI chat messages)

DEFAULT_REQUEST_TIMEOUT_S = 1800.0  # one long answer queued behind a full batch on a slow machine
DEFAULT_CONCURRENCY = 8  # the server's default --prompt-concurrency


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
    token_ids: tuple[int, ...] | None = None  # every generated id (non-streamed with token_ids=True), else None
    model: str = ""  # the response's `model`: what the server says answered
    system_fingerprint: str = ""  # the response's `system_fingerprint` ("" when it sent none)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tool calls as {id, name, arguments})."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "tool_calls"}
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls]
        return out


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
    api_key: str = "not-needed",
    progress: Callable[..., None] | None = None,
    token_ids: bool = False,
) -> list[Answer]:
    """Send each conversation as one chat completion, `concurrency` at a time; answers in input order.

    `conversations` are (id, messages) with OpenAI-style messages (system, user, assistant
    with `tool_calls`, tool). A failed request gives an Answer with `error` set.
    `stream=True` also measures time to first chunk. `progress(step, done, total)` is
    called as answers arrive. `token_ids` (non-streamed only) asks for `logprobs`, whose
    entries carry each generated token's id in mlx_lm.server (0.32.2: `{"id", "logprob"}`):
    the model's raw output, before the server's tool parser and detokenizer. `model` and
    `api_key` are the request's (an endpoint's, answering.endpoint; mlx_lm.server started by
    the suite needs neither).
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
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=request_timeout_s)
    request = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    if token_ids:
        if stream:
            raise ValueError("token ids come only with a non-streamed answer")
        request["logprobs"] = True
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
    token_ids: tuple[int, ...] | None = None
    model: str = ""
    system_fingerprint: str = ""

    def identify(self, response: Any) -> None:
        """Keep what a response or chunk says answered (its `model`, `system_fingerprint`)."""
        self.model = self.model or str(getattr(response, "model", None) or "")
        self.system_fingerprint = self.system_fingerprint or str(getattr(response, "system_fingerprint", None) or "")

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
            token_ids=self.token_ids,
            model=self.model,
            system_fingerprint=self.system_fingerprint,
        )


def _read_completion(client, messages: list[dict], request: dict, partial: _Partial) -> None:
    response = client.chat.completions.create(messages=messages, **request)
    if isinstance(response, (str, bytes)) or not hasattr(response, "choices"):
        raise ServerError(f"the response is not a chat completion: {str(response)[:300]!r}")
    partial.identify(response)
    partial.usage = response.usage
    if not response.choices:
        raise ServerError("the response had no choices")
    choice = response.choices[0]
    partial.finish_reason = choice.finish_reason or ""
    partial.token_ids = _token_ids(choice)
    message = choice.message
    partial.content = message.content or ""
    partial.reasoning = getattr(message, "reasoning", None) or ""
    for index, call in enumerate(message.tool_calls or ()):
        function = getattr(call, "function", None)
        partial.add_call(index, call.id, getattr(function, "name", None), getattr(function, "arguments", None))


def _token_ids(choice) -> tuple[int, ...] | None:
    """The generated ids from a choice's logprobs (mlx_lm.server puts each token's id there), or None."""
    entries = getattr(getattr(choice, "logprobs", None), "content", None)
    if not entries:
        return None
    ids = []
    for entry in entries:
        value = getattr(entry, "id", None)
        if value is None and isinstance(getattr(entry, "model_extra", None), dict):
            value = entry.model_extra.get("id")
        if not isinstance(value, int):
            return None  # a server that does not say: no raw output rather than a wrong one
        ids.append(value)
    return tuple(ids)


def _read_stream(client, messages: list[dict], request: dict, partial: _Partial, began: float) -> None:
    chunks = client.chat.completions.create(
        messages=messages, stream=True, stream_options={"include_usage": True}, **request
    )
    with chunks:
        for chunk in chunks:
            partial.identify(chunk)
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
                    partial.add_call(call.index, call.id, function and function.name, function and function.arguments)
                if choice.finish_reason:
                    partial.finish_reason = choice.finish_reason
    if not partial.finish_reason:
        raise ServerError("the stream ended without a finish_reason")
