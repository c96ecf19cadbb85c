"""The gates' servers: one mlx_lm.server at a time, started when first asked, and its record.

A gate module asks one model (the candidate, or its fused model) and, with --baseline,
the production model. Two 20 GB models served at once would not fit beside each other,
so a run has one `ServerSlot`: serving a model stops whichever was served before.
A `ServedModel` is a folder to be served through the slot; it starts its server on
first use and again if the slot served another model meanwhile (the baseline), and
keeps the record of every start for the report. The slot serves every model in one
serving environment (answering.environment: production's interpreter, or ours with
mistral-common hidden) through the folder's serving plan (answering.plan).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from punie_gates.answering.answers import QueryAnswer, from_server
from punie_gates.answering.client import Conversation, ask
from punie_gates.answering.plan import plan_serving
from punie_gates.answering.server import ModelServer, ServerError
from punie_gates.answering.server_record import server_versions
from punie_gates.answering.tool_parsing import server_tool_parsing


class ServerSlot:
    """At most one model server at a time for a run (the session's).

    With `environment` (answering.environment.ServingEnvironment) every model is served by
    that interpreter, through its serving plan (answering.plan, decided on first use and
    kept per folder; serving folders go under `work_dir`). Without it (tests with fake
    servers) a folder is served as is by the given `launcher`.
    """

    def __init__(self, environment=None, work_dir: Path | None = None, **server_options: Any):
        self.environment = environment
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._options = server_options  # ModelServer keyword arguments (tests pass a launcher)
        if environment is not None and "launcher" not in server_options:
            self._options["launcher"] = environment.server_launcher()
        self._owner: ServedModel | None = None
        self._server: ModelServer | None = None
        self._plans: dict[Path, Any] = {}

    def plan(self, owner: ServedModel):
        """The serving plan of `owner`'s folder (None without an environment); ServingPlanError
        when nothing in the environment returns its calls."""
        if self.environment is None:
            return None
        folder = owner.path.resolve()
        if folder not in self._plans:
            self._plans[folder] = plan_serving(folder, self.environment, self.work_dir or folder.parent, owner.tools)
        return self._plans[folder]

    def serve(self, owner: ServedModel) -> ModelServer:
        """The running server of `owner`, started (after stopping any other) if it is not running.

        Raises ServerError when `owner`'s server failed on its own (exited, stalled): a crash
        is reported, never hidden by a quiet restart."""
        if self._owner is owner and self._server is not None:
            if self._server.failure is not None:
                raise ServerError(self._server.failure)
            if self._server.alive():
                return self._server
        plan = self.plan(owner)  # before any server stops or starts: a plan error names the serving cause
        self.stop()
        server = ModelServer(plan.served_folder if plan else owner.path, owner.log_path, **self._options)
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

    def __init__(
        self, slot: ServerSlot, path: Path, log_path: Path, label: str, tools: Sequence[Mapping[str, Any]] = ()
    ):
        self.slot = slot
        self.path = Path(path)
        self.log_path = Path(log_path)
        self.label = label  # "candidate", "fused candidate", "baseline"
        self.tools = tuple(tools)  # the tools it is asked with (the plan checks the parser reads their calls)
        self.runs: list[ModelServer] = []  # every server started for it, in order

    @property
    def server(self) -> ModelServer:
        """The running ModelServer (started now if it is not running)."""
        return self.slot.serve(self)

    @property
    def base_url(self) -> str:
        """The running server's OpenAI base URL (started now if it is not running)."""
        return self.server.base_url

    @property
    def plan(self):
        """Its serving plan (answering.plan.ServingPlan), or None without a serving environment."""
        return self.slot.plan(self)

    def stop(self) -> None:
        self.slot.stop(self)

    def answering(self):
        """A block in which requests to the running server are in flight (ModelServer.answering)."""
        return self.server.answering()

    def check(self, unanswered: int, asked: int) -> None:
        """After `unanswered` of `asked` requests failed: raise the one ServerError that names
        why, when it is the server (it exited, stalled or died); nothing otherwise."""
        why = self.runs[-1].failure_within(2.0) if unanswered and self.runs else None
        if why is not None:
            raise ServerError(f"{self.label}: {unanswered} of {asked} requests got no answer: {why}")

    def request_options(self) -> dict[str, Any]:
        """`ask` keyword arguments beyond the defaults: none for a server the suite started."""
        return {}

    def saw(self, answers: Sequence[Any]) -> None:
        """What the answers say about the server (a started server's record holds its command instead)."""

    def failure(self, failed: Sequence[Any], answers: Sequence[Any]) -> ServerError:
        """The error for requests that failed, quoting the server's log (one line)."""
        return ServerError(
            f"{len(failed)} of {len(answers)} requests to mlx_lm.server ({self.label}, {self.path}) failed; "
            f"first: {failed[0].id}: {' '.join(failed[0].error.split())}; {self.server.log_summary()}"
        )

    def record(self) -> dict[str, Any]:
        """What the report holds about this model's server: command, versions, tool parsing, plan, starts."""
        started = [s for s in self.runs if s.startup_s is not None]
        out: dict[str, Any] = {"model": self.label, "path": str(self.path), "log": str(self.log_path)}
        if started:
            out["command"] = shlex.join(started[-1].command)
        plan = self.slot._plans.get(self.path.resolve()) if self.slot.environment is not None else None
        if plan is not None:
            out["versions"] = dict(plan.versions)
            out["plan"] = plan.to_json()
            s = plan.served
            out["tool_parsing"] = {
                "tokenizer_class": s.get("tokenizer_class"),
                "tool_parser": s.get("tool_parser"),
                "tool_call_start": s.get("tool_call_start"),
                "detokenizer": s.get("detokenizer"),
                "returns_tool_calls": plan.calls_returned,
            }
        else:
            out["versions"] = server_versions()
            out["tool_parsing"] = _tool_parsing_record(self.path)
        out["starts"] = [
            {"pid": s.pid, "startup_s": round(s.startup_s, 3),
             "stop_s": round(s.stop_s, 3) if s.stop_s is not None else None,
             "longest_silence_s": round(s.longest_silence_s, 1)}
            for s in started
        ]  # fmt: skip
        return out


def _tool_parsing_record(path: Path) -> dict[str, Any]:
    try:
        parsing = _tool_parsing(str(path))
    except Exception as exc:  # noqa: BLE001 - the record must not hide the answers
        return {"error": f"{type(exc).__name__}: {exc}"}
    out = {
        "tokenizer_class": parsing.tokenizer_class,
        "tool_parser": parsing.tool_parser,
        "tool_call_start": parsing.tool_call_start,
        "detokenizer": parsing.detokenizer,
        "returns_tool_calls": parsing.returns_tool_calls,
    }
    if not parsing.returns_tool_calls:
        out["note"] = (
            f"mlx_lm.server picks no tool parser for this folder ({parsing.tokenizer_class}): tool calls "
            "come back as plain text in message.content and count as no call"
        )
    return out


@lru_cache(maxsize=16)
def _tool_parsing(path: str):
    # Loading a tokenizer takes seconds; folders are keyed by their content, so one look each.
    return server_tool_parsing(Path(path))


def ask_queries(
    served: ServedModel | Any,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    concurrency: int,
    stream: bool = True,
    warm_up: bool = True,
    progress: Callable[..., None] | None = None,
    raw: bool = False,
) -> list[QueryAnswer]:
    """Every conversation as a chat completion to `served`, `concurrency` at a time, in input order.

    With `raw` each answer is asked unstreamed with its generated ids (answering.client.ask
    token_ids) and keeps them decoded as `raw_text`: what the model wrote, beside what the
    API returned. With `warm_up` the first conversation is asked alone before the others: the server then
    holds the shared head (system prompt and tools) in its prompt cache when the rest arrive
    together, as it does for every request after the first on a long-running server.
    A failed request raises the model's own error (nothing was measured): ServerError with
    the server's log, or for an answering.endpoint.Endpoint (which stands in for a
    ServedModel) EndpointError naming its URL and what it returned; when the server itself
    failed (exited, stalled: ModelServer.failure), that one cause.
    """
    conversations = list(conversations)
    if not conversations:
        return []
    server = served.server
    first, rest = (conversations[:1], conversations[1:]) if warm_up and concurrency > 1 else ([], conversations)
    common = {
        "tools": tools,
        "max_tokens": max_tokens,
        "stream": stream and not raw,
        "token_ids": raw,
        **served.request_options(),
    }
    with server.answering():
        answers = ask(server.base_url, first, concurrency=1, **common) if first else []
        served.check(sum(bool(a.error) for a in answers), len(answers))
        done = len(answers)

        def shown(step, n, total, **figures):
            if progress is not None:
                progress(step, done + n, done + total, **figures)

        answers += ask(server.base_url, rest, concurrency=concurrency, progress=shown, **common)
    served.saw(answers)
    failed = [a for a in answers if a.error]
    served.check(len(failed), len(answers))
    if failed:
        raise served.failure(failed, answers)
    decode = raw_decoder(served.plan.served_folder if served.plan else served.path) if raw else None
    return [from_server(a, decode) for a in answers]


def time_alone(
    served: ServedModel | Any,
    conversations: Sequence[Conversation],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: int,
    progress: Callable[..., None] | None = None,
) -> list[QueryAnswer]:
    """Each conversation alone, streamed, one after the other (what a user waits for one request):
    the timing both a served model and an endpoint answer with (Answerer.time_each)."""
    return ask_queries(
        served,
        conversations,
        tools=tools,
        max_tokens=max_tokens,
        concurrency=1,
        stream=True,
        warm_up=False,
        progress=progress,
    )


def raw_decoder(folder: Path):
    """ids -> text with control tokens kept, by the served folder's tokenizer.json (the tokenizers
    library alone: no chat template, no backend choice), or None without a tokenizer.json."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    tokenizer = _tokenizer_json(str(path))
    return lambda ids: tokenizer.decode(list(ids), skip_special_tokens=False)


@lru_cache(maxsize=8)
def _tokenizer_json(path: str):
    # Devstral's is 17 MB: read once per folder, not once per gate's batch of answers.
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)
