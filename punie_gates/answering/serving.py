"""The gates' servers: one mlx_lm.server at a time, started when first asked, and its record.

A gate module asks one model (the candidate, or its fused model) and, with --baseline,
the production model. Two 20 GB models served at once would not fit beside each other,
so a run has one `ServerSlot`: serving a model stops whichever was served before.
A `ServedModel` is a folder to be served through the slot; it starts its server on
first use and again if the slot served another model meanwhile (the baseline), and
keeps the record of every start for the report.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from punie_gates.answering.answers import QueryAnswer, from_server
from punie_gates.answering.server import (
    Conversation,
    ModelServer,
    ServerError,
    ask,
    server_tool_parsing,
    server_versions,
)


class ServerSlot:
    """At most one model server at a time for a run (the session's)."""

    def __init__(self, **server_options: Any):
        self._options = server_options  # ModelServer keyword arguments (tests pass a launcher)
        self._owner: ServedModel | None = None
        self._server: ModelServer | None = None

    def serve(self, owner: ServedModel) -> ModelServer:
        """The running server of `owner`, started (after stopping any other) if it is not running."""
        if self._owner is owner and self._server is not None and self._server.alive():
            return self._server
        self.stop()
        server = ModelServer(owner.path, owner.log_path, **self._options)
        owner.runs.append(server)
        server.start()  # stops itself if it does not become ready
        self._owner, self._server = owner, server
        return server

    def stop(self, owner: ServedModel | None = None) -> None:
        """Stop the running server (only if it is `owner`'s, when given)."""
        if owner is not None and self._owner is not owner:
            return
        server, self._owner, self._server = self._server, None, None
        if server is not None:
            server.stop()


class ServedModel:
    """A model folder answered through mlx_lm.server, started on demand through a slot."""

    def __init__(self, slot: ServerSlot, path: Path, log_path: Path, label: str):
        self.slot = slot
        self.path = Path(path)
        self.log_path = Path(log_path)
        self.label = label  # "candidate", "fused candidate", "baseline"
        self.runs: list[ModelServer] = []  # every server started for it, in order

    @property
    def server(self) -> ModelServer:
        """The running ModelServer (started now if it is not running)."""
        return self.slot.serve(self)

    @property
    def base_url(self) -> str:
        """The running server's OpenAI base URL (started now if it is not running)."""
        return self.server.base_url

    def stop(self) -> None:
        self.slot.stop(self)

    def record(self) -> dict[str, Any]:
        """What the report holds about this model's server: command, versions, tool parsing, starts."""
        started = [s for s in self.runs if s.startup_s is not None]
        out: dict[str, Any] = {"model": self.label, "path": str(self.path), "log": str(self.log_path)}
        if started:
            out["command"] = shlex.join(started[-1].command)
        out["versions"] = server_versions()
        try:
            parsing = _tool_parsing(str(self.path))
        except Exception as exc:  # noqa: BLE001 - the record must not hide the answers
            out["tool_parsing"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            out["tool_parsing"] = {
                "tokenizer_class": parsing.tokenizer_class,
                "tool_parser": parsing.tool_parser,
                "tool_call_start": parsing.tool_call_start,
                "detokenizer": parsing.detokenizer,
                "returns_tool_calls": parsing.returns_tool_calls,
            }
            if not parsing.returns_tool_calls:
                out["tool_parsing"]["note"] = (
                    f"mlx_lm.server picks no tool parser for this folder ({parsing.tokenizer_class}): tool calls "
                    "come back as plain text in message.content and count as no call"
                )
        out["starts"] = [
            {"pid": s.pid, "startup_s": round(s.startup_s, 3),
             "stop_s": round(s.stop_s, 3) if s.stop_s is not None else None}
            for s in started
        ]  # fmt: skip
        return out


@lru_cache(maxsize=16)
def _tool_parsing(path: str):
    # Loading a tokenizer takes seconds; folders are keyed by their content, so one look each.
    return server_tool_parsing(Path(path))


def ask_queries(
    served: ServedModel,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    concurrency: int,
    stream: bool = True,
    warm_up: bool = True,
    progress: Callable[..., None] | None = None,
) -> list[QueryAnswer]:
    """Every conversation as a chat completion to `served`, `concurrency` at a time, in input order.

    With `warm_up` the first conversation is asked alone before the others: the server then
    holds the shared head (system prompt and tools) in its prompt cache when the rest arrive
    together, as it does for every request after the first on a long-running server.
    A failed request raises ServerError with the server's log (nothing was measured).
    """
    conversations = list(conversations)
    if not conversations:
        return []
    server = served.server
    first, rest = (conversations[:1], conversations[1:]) if warm_up and concurrency > 1 else ([], conversations)
    common = {"tools": tools, "max_tokens": max_tokens, "stream": stream}
    answers = ask(server.base_url, first, concurrency=1, **common) if first else []
    done = len(answers)

    def shown(step, n, total, **figures):
        if progress is not None:
            progress(step, done + n, done + total, **figures)

    answers += ask(server.base_url, rest, concurrency=concurrency, progress=shown, **common)
    failed = [a for a in answers if a.error]
    if failed:
        raise ServerError(
            f"{len(failed)} of {len(answers)} requests to mlx_lm.server ({served.label}, {served.path}) failed; "
            f"first: {failed[0].id}: {failed[0].error}\nlast lines of {served.log_path}:\n{server.log_tail()}"
        )
    return [from_server(a) for a in answers]
