"""One way to ask a model, chosen once per run: the `Answerer` every gate asks through.

A gate asks a model four things: answer a batch of queries (Gates 3-5), time queries
one at a time (Gate 2, Gate 5's speed check), continue conversations after a tool
result (the multi-turn pass), and say how it was served (the report). `Answerer` is
that interface; `ServerAnswerer` answers through `mlx_lm.server` (Punie's path: a
`serving.ServedModel` started on first use through the run's one `ServerSlot`) and
`InProcessAnswerer` generates in this process (the reference path: the model is loaded
only when first asked). `make_answerer` builds one from `--answer-via`; it carries the
tools, the token budget, the batch size and the progress callback, so no caller
outside answering/ knows which path it asks through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from punie_gates.answering.answers import VIA_INPROCESS, VIA_SERVER, QueryAnswer, from_generation
from punie_gates.answering.client import DEFAULT_REQUEST_TIMEOUT_S, Conversation
from punie_gates.answering.conversation import AskMany, ask_each, in_process_ask, server_ask
from punie_gates.answering.endpoint import EndpointAnswerer
from punie_gates.answering.inprocess import generate_answers, generate_naive
from punie_gates.answering.prompts import render_prompt
from punie_gates.answering.serving import ServedModel, ask_queries, time_alone
from punie_gates.model.tokenizer import training_tokenizer_config

ANSWER_VIA = (VIA_SERVER, VIA_INPROCESS)
VIA_ENDPOINT = "endpoint"  # not an --answer-via choice: chosen by a --candidate/--baseline URL


@dataclass(frozen=True)
class AnswerSettings:
    """What every question to a model is asked with, the same for both paths."""

    tools: tuple[Mapping[str, Any], ...]
    """The tool schemas passed natively with every request (the catalog's native tools)."""
    max_tokens: int
    """The token budget of a batch answer and of a conversation's reply."""
    batch_size: int
    """Queries asked at once (server: concurrent requests; in-process: rows decoded together)."""
    progress: Callable[..., None] | None = None
    """progress(step, done, total, **figures), or None."""


class Answerer(Protocol):
    """A model the gates ask, however it is served."""

    label: str  # "candidate", "fused candidate", "baseline"
    via: str  # "server", "inprocess" or "endpoint"
    path: Path | None  # the model folder (None for an endpoint: it has no files)

    def answer(self, conversations: Sequence[Conversation]) -> list[QueryAnswer]:
        """Each conversation's greedy answer, `batch_size` at a time, in input order."""
        ...

    def time_each(self, conversations: Sequence[Conversation], *, max_tokens: int) -> list[QueryAnswer]:
        """Each conversation alone, one after the other, timed (what a user waits for one request)."""
        ...

    def ask_many(self) -> AskMany:
        """The AskMany that continues conversations (answering.conversation), the same path."""
        ...

    def prompt_tokenizer(self):
        """The tokenizer (an mlx-lm TokenizerWrapper) that renders this path's prompts."""
        ...

    def release(self) -> None:
        """Free what answering holds (stop the server); the next question starts it again."""
        ...

    def serving_change(self) -> str | None:
        """The change Punie must make to serve this model as the suite did (the serving plan's), or None."""
        ...

    def record(self) -> dict[str, Any]:
        """How this model was asked, for the report (gates.gateN.figures.answering)."""
        ...


class ServerAnswerer:
    """Answers through the model's `mlx_lm.server` (started on first use, one model at a time)."""

    via = VIA_SERVER

    def __init__(self, served, settings: AnswerSettings):
        self.served = served  # an answering.serving.ServedModel
        self.settings = settings
        self.label = served.label
        self.path = served.path

    def answer(self, conversations: Sequence[Conversation]) -> list[QueryAnswer]:
        s = self.settings
        # Unstreamed with the generated ids: each answer keeps what the model wrote beside what
        # the API returned, so a miss can be told the model's, the server's or the stream's.
        return ask_queries(
            self.served,
            conversations,
            tools=s.tools,
            max_tokens=s.max_tokens,
            concurrency=s.batch_size,
            progress=s.progress,
            raw=True,
        )

    def time_each(self, conversations: Sequence[Conversation], *, max_tokens: int) -> list[QueryAnswer]:
        return time_alone(
            self.served,
            conversations,
            tools=self.settings.tools,
            max_tokens=max_tokens,
            progress=self.settings.progress,
        )

    def ask_many(self) -> AskMany:
        import openai

        served, tools, budget = self.served, self.settings.tools, self.settings.max_tokens

        def ask(messages):
            # The base URL is read per question: the slot may have restarted the server meanwhile.
            # No retries (a retried request hides a failure); a dead or stalled server is one ServerError.
            client = openai.OpenAI(
                base_url=served.base_url, api_key="not-needed", max_retries=0, timeout=DEFAULT_REQUEST_TIMEOUT_S
            )
            try:
                return server_ask(client, "default_model", tools, max_tokens=budget)(messages)
            finally:
                client.close()

        asking = ask_each(ask, concurrency=self.settings.batch_size)

        def ask_many(batch):
            with served.answering():
                replies = asking(batch)
            served.check(sum(isinstance(r, Exception) for r in replies), len(replies))
            return replies

        return ask_many

    def prompt_tokenizer(self):
        """As production's server loads it (no mistral-common: TokenizersBackend beside tekken.json),
        which is also how training loads it (model.tokenizer.training_tokenizer_config)."""
        from mlx_lm.utils import load_tokenizer

        return load_tokenizer(self.path, tokenizer_config_extra=training_tokenizer_config(self.path))

    def release(self) -> None:
        self.served.stop()

    def serving_change(self) -> str | None:
        plan = self.served.plan
        return plan.change if plan is not None else None

    def record(self) -> dict[str, Any]:
        out = {"via": self.via}
        if self.served.runs:
            out.update(self.served.record())
        return out


class InProcessAnswerer:
    """Answers generated in this process, greedy, on the model `load()` returns when first asked."""

    via = VIA_INPROCESS

    def __init__(self, load: Callable[[], Any], path: Path, label: str, settings: AnswerSettings):
        self._load = load  # -> (model, tokenizer), or anything with .model and .tokenizer
        self.path = Path(path)
        self.label = label
        self.settings = settings

    def loaded(self) -> tuple[Any, Any]:
        """(model, tokenizer): loaded by the caller's fixture, held for its scope."""
        got = self._load()
        return (got.model, got.tokenizer) if hasattr(got, "model") else tuple(got)

    def _prompts(self, tokenizer, conversations: Sequence[Conversation]) -> list[tuple[str, list[int]]]:
        tools = [dict(t) for t in self.settings.tools]
        return [(qid, render_prompt(tokenizer, list(messages), tools)) for qid, messages in conversations]

    def answer(self, conversations: Sequence[Conversation]) -> list[QueryAnswer]:
        model, tokenizer = self.loaded()
        s = self.settings
        generations = generate_answers(
            model,
            tokenizer,
            self._prompts(tokenizer, conversations),
            max_tokens=s.max_tokens,
            batch_size=s.batch_size,
            progress=s.progress,
        )
        return [from_generation(g) for g in generations]

    def time_each(self, conversations: Sequence[Conversation], *, max_tokens: int) -> list[QueryAnswer]:
        model, tokenizer = self.loaded()
        return [
            from_generation(g)
            for g in generate_naive(
                model,
                tokenizer,
                self._prompts(tokenizer, conversations),
                max_tokens=max_tokens,
                progress=self.settings.progress,
            )
        ]

    def ask_many(self) -> AskMany:
        model, tokenizer = self.loaded()
        s = self.settings
        return in_process_ask(
            model, tokenizer, s.tools, max_tokens=s.max_tokens, batch_size=s.batch_size, progress=s.progress
        )

    def prompt_tokenizer(self):
        return self.loaded()[1]

    def release(self) -> None:
        """Nothing: the loaded model is the caller's fixture's to release."""

    def serving_change(self) -> str | None:
        return None

    def record(self) -> dict[str, Any]:
        return {"via": self.via, "model": self.label, "path": str(self.path)}


def make_answerer(
    via: str,
    *,
    label: str,
    path: Path | None,
    settings: AnswerSettings,
    slot=None,
    log_path: Path | None = None,
    load: Callable[[], Any] | None = None,
    endpoint=None,
) -> Answerer:
    """The one place the answering path is chosen: `via` "server" serves `path` through `slot`
    (its log at `log_path`); "inprocess" generates on what `load()` returns; "endpoint" asks
    `endpoint` (answering.endpoint.Endpoint: a model someone else serves, named by its URL)."""
    if via == VIA_ENDPOINT:
        if endpoint is None:
            raise ValueError("answering via an endpoint needs the Endpoint")
        return EndpointAnswerer(endpoint, settings)
    if via == VIA_SERVER:
        if slot is None or log_path is None:
            raise ValueError("answering via the server needs the run's ServerSlot and a log path")
        return ServerAnswerer(ServedModel(slot, path, log_path, label, settings.tools), settings)
    if via == VIA_INPROCESS:
        if load is None:
            raise ValueError("answering in-process needs a loader for the model")
        return InProcessAnswerer(load, path, label, settings)
    raise ValueError(f"answering via {via!r}: expected one of {', '.join(ANSWER_VIA)}")
