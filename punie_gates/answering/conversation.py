"""Punie's agent loop, bounded and offline: the model calls a tool, the query's data answers.

Punie's agent sends the model's `execute_code` call to its sandbox and gives the
printed result back as a `tool` message; the model then answers from it. Here the
sandbox is the query's `results` (data/queries.toml): which typed tools a call's
code calls is read with `ast` (punie_gates.formats.code_analysis, never run), and each
called tool's result text comes back, in the order the code first calls them, once
per tool whatever the arguments. The loop stops when a reply has no call (the
answer), after `max_turns` replies, when a call asks for a tool the query gives no
result for, when a call is unusable (malformed, or code that calls no typed tool:
only running it could say what it prints), or when `ask` fails (e.g. a chat template
that cannot render a tool turn). Every stop is recorded, never raised.

Messages are in the structured form the converter writes (punie_gates.formats.to_mistral):
assistant turns carry `tool_calls` with 9-character ids and dict arguments, results
are `tool` messages with the matching `tool_call_id`, so the model's own chat
template renders them as training did.

`ask` is any answering path: `in_process_ask` (mlx-lm generation on a loaded
model) or a model server adapter built on `reply_from_message`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from punie_gates.answering.answers import save_jsonl
from punie_gates.answering.inprocess import generate_answers
from punie_gates.answering.prompts import render_prompt

# Old flat modules (the lead rewrites these when merging). The tool-call parser and
# the code analysis are pure functions of text and catalog; answering/ needs them to
# know what a reply calls.
from punie_gates.errors import UserError
from punie_gates.formats.code_analysis import analyse_code
from punie_gates.formats.to_mistral import make_call_id  # the converter's id rule: 9 letters/digits
from punie_gates.formats.tool_calls import ParsedCall, parse_calls
from punie_gates.inputs import readers
from punie_gates.inputs.catalog import Catalog
from punie_gates.inputs.queries import Query

# Why a conversation ended.
ANSWERED = "answered"  # the last reply has no tool call
MAX_TURNS = "max_turns"  # the last allowed reply still called a tool
NO_RESULT = "no_result"  # a call needs a tool result the query does not give
UNUSABLE_CALL = "unusable_call"  # a call the agent could not run or the suite cannot answer
ASK_FAILED = "ask_failed"  # the answering path raised (template, tokenizer, server)
STOPS = (ANSWERED, MAX_TURNS, NO_RESULT, UNUSABLE_CALL, ASK_FAILED)
_MARKERS = ("[TOOL_CALLS]", "<tool_call>")


@dataclass(frozen=True)
class Reply:
    """One model reply as an answering path returned it."""

    text: str  # the raw text (in-process: decoded with control tokens; server: the content)
    content: str  # the text without its tool-call markup: the assistant message's content
    calls: tuple[ParsedCall, ...]  # the tool calls, structured (a malformed one carries .error)


@dataclass(frozen=True)
class Turn:
    """One reply of a conversation and what the world answered to its calls."""

    reply: Reply
    tools: tuple[tuple[str, ...], ...]  # per call: the typed tools it calls
    results: tuple[str, ...]  # per call: the tool message's content ("" when none was sent)
    stop: str | None = None  # why the conversation ended after this turn (one of STOPS)
    detail: str = ""  # the stop's explanation


@dataclass(frozen=True)
class Conversation:
    """A query's whole exchange: the prompt, every reply, every tool result."""

    query_id: str
    messages: tuple[Mapping[str, Any], ...]  # prompt, then assistant and tool messages
    turns: tuple[Turn, ...]  # every model reply, in order (the first one included)
    stop: str  # why it ended (one of STOPS)
    detail: str  # the stop's explanation, e.g. which tool had no result
    prompt_messages: int = 0  # how many of `messages` are the prompt

    @property
    def final(self) -> Reply | None:
        """The last reply (None when even the first is missing)."""
        return self.turns[-1].reply if self.turns else None

    @property
    def tool_results(self) -> tuple[str, ...]:
        """Every tool message's content, in order."""
        return tuple(m["content"] for m in self.messages if m.get("role") == "tool")


# --- replies ------------------------------------------------------------------------


def reply_from_text(text: str, fmt: str = "auto", tools: list[dict] | None = None) -> Reply:
    """A reply from raw generated text, its calls parsed as the runtime parses them."""
    calls = parse_calls(text, fmt, tools=tools)
    return Reply(text, _content(text) if calls else text.strip(), calls)


def _content(text: str) -> str:
    cut = min((i for i in (text.find(m) for m in _MARKERS) if i >= 0), default=len(text))
    return text[:cut].strip()


def reply_from_message(message: Mapping[str, Any]) -> Reply:
    """A reply from an OpenAI-style chat-completion message (mlx_lm.server's answer):
    `content` and structured `tool_calls`, arguments as a JSON string or an object."""
    content = message.get("content") or ""
    calls = []
    for raw in message.get("tool_calls") or ():
        function = raw.get("function") or {}
        name, arguments = function.get("name") or "", function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = readers.parse_json(arguments, readers.ARGUMENTS_DEPTH) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                calls.append(ParsedCall(name, None, f"arguments are not valid JSON ({exc.msg})"))
                continue
            except readers.NestingError as exc:
                calls.append(ParsedCall(name, None, f"arguments are {exc}"))
                continue
        if isinstance(arguments, dict):
            calls.append(ParsedCall(name, MappingProxyType(arguments), None))
        else:
            calls.append(ParsedCall(name, None, f"arguments are {type(arguments).__name__}, not a JSON object"))
    return Reply(content, content.strip(), tuple(calls))


def for_openai(messages: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The messages as an OpenAI client sends them: call arguments as JSON strings."""
    out = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {
                    **c,
                    "function": {
                        **c["function"],
                        "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False),
                    },
                }
                for c in message["tool_calls"]
            ]
        out.append(message)
    return out


# --- the loop ------------------------------------------------------------------------

Ask = Callable[[list[dict]], Reply]
# Many conversations at once: one reply, or the exception it raised, per message list.
AskMany = Callable[[list[list[dict]]], Sequence["Reply | Exception"]]


def converse(
    query: Query,
    first: Reply | str,
    ask: Ask,
    *,
    catalog: Catalog,
    prompt: Sequence[Mapping[str, Any]],
    max_turns: int,
    fmt: str = "auto",
) -> Conversation:
    """Continue one query's conversation from its first reply, asking `ask` after each
    tool result, for at most `max_turns` replies in all (the first one included)."""
    return converse_many([(query, first, prompt)], ask_each(ask), catalog=catalog, max_turns=max_turns, fmt=fmt)[0]


def ask_each(ask: Ask, concurrency: int = 1) -> AskMany:
    """An AskMany that asks `ask` once per conversation (e.g. `server_ask`), `concurrency` at a
    time (a server batches concurrent requests), replies in input order, an exception
    standing for the reply it did not give."""

    def one(messages: list[dict]) -> Reply | Exception:
        try:
            return ask(messages)
        except Exception as exc:  # recorded in the conversation, not raised
            return exc

    def ask_many(batch: list[list[dict]]) -> list[Reply | Exception]:
        if concurrency <= 1 or len(batch) <= 1:
            return [one(messages) for messages in batch]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(batch))) as pool:
            return list(pool.map(one, batch))

    return ask_many


def converse_many(
    starts: Sequence[tuple[Query, Reply | str, Sequence[Mapping[str, Any]]]],
    ask_many: AskMany,
    *,
    catalog: Catalog,
    max_turns: int,
    fmt: str = "auto",
) -> list[Conversation]:
    """`converse` for many queries, round by round: each round asks every open
    conversation at once (one batch for a generator or a server), in input order."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    tools = catalog.native_schemas()
    chats = [_Chat(q, catalog, list(prompt)) for q, _, prompt in starts]
    for chat, (_, first, _) in zip(chats, starts):
        chat.take(first if isinstance(first, Reply) else reply_from_text(first, fmt, tools), max_turns)
    while open_chats := [c for c in chats if c.stop is None]:
        try:
            replies = list(ask_many([list(c.messages) for c in open_chats]))
            if len(replies) != len(open_chats):
                raise RuntimeError(f"ask returned {len(replies)} replies for {len(open_chats)} conversations")
        except UserError:
            raise  # e.g. the server died (ServerError): one cause for the run, not one per conversation
        except Exception as exc:  # the whole batch failed: each conversation records it
            replies = [exc] * len(open_chats)
        for chat, reply in zip(open_chats, replies):
            if isinstance(reply, Exception):
                chat.fail(reply)
            else:
                chat.take(reply, max_turns)
    return [c.done() for c in chats]


class _Chat:
    """One conversation in progress."""

    def __init__(self, query: Query, catalog: Catalog, prompt: list[dict]) -> None:
        self.query, self.catalog = query, catalog
        self.prompt_len = len(prompt)
        self.messages: list[dict] = [dict(m) for m in prompt]
        self.turns: list[Turn] = []
        self.stop: str | None = None
        self.detail = ""
        self.digest = hashlib.sha256(query.id.encode()).digest()

    def take(self, reply: Reply, max_turns: int) -> None:
        number = len(self.turns) + 1
        if not reply.calls:
            self.messages.append({"role": "assistant", "content": reply.content})
            self._end(Turn(reply, (), ()), ANSWERED, f"reply {number} answers in text")
            return
        ids = [make_call_id(self.digest, number, k) for k in range(len(reply.calls))]
        # A call-only turn carries no content key, as the converter writes training turns:
        # Mistral's v13 image template drops the calls of a turn whose content is "".
        assistant = {"role": "assistant", **({"content": reply.content} if reply.content else {})}
        usable = [c for c in reply.calls if c.error is None]
        if usable:
            assistant["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": dict(c.arguments)}}
                for cid, c in zip(ids, reply.calls)
                if c.error is None
            ]
        self.messages.append(assistant)
        called, problems, missing = [], [], []
        for index, call in enumerate(reply.calls, 1):
            tools, problem = self._tools_of(call)
            called.append(tools)
            if problem:
                problems.append(f"call {index} of reply {number}: {problem}")
            missing += [t for t in tools if t not in self.query.results]
        if problems:
            self._end(Turn(reply, tuple(called), ()), UNUSABLE_CALL, "; ".join(problems))
            return
        if missing:
            names = ", ".join(dict.fromkeys(missing))
            self._end(
                Turn(reply, tuple(called), ()),
                NO_RESULT,
                f"reply {number} calls {names}, for which query {self.query.id} provides no result",
            )
            return
        results = tuple("\n".join(self.query.results[t] for t in tools) for tools in called)
        for cid, text in zip(ids, results):
            self.messages.append({"role": "tool", "content": text, "tool_call_id": cid})
        if number >= max_turns:
            self._end(
                Turn(reply, tuple(called), results),
                MAX_TURNS,
                f"reply {number} of at most {max_turns} still calls a tool: no answer",
            )
            return
        self.turns.append(Turn(reply, tuple(called), results))

    def _tools_of(self, call: ParsedCall) -> tuple[tuple[str, ...], str | None]:
        """The typed tools a call calls, or why the agent or the suite cannot answer it."""
        if call.error:
            return (), f"malformed ({call.error})"
        native = self.catalog.native_tool(call.name)
        if native is None:
            offered = ", ".join(t["name"] for t in self.catalog.native)
            return (), f"{call.name!r} is not a tool the agent offers ({offered})"
        code_param = native["code_param"]
        if code_param is None:  # e.g. read_file offered directly: its own typed tool
            return ((call.name,), None) if call.name in self.catalog.typed else ((), f"{call.name} has no typed result")
        code = (call.arguments or {}).get(code_param)
        if not isinstance(code, str):
            return (), f"{call.name} without a string {code_param!r} argument"
        facts = analyse_code(code, self.catalog)
        if not facts.parsed:
            return (), f"{call.name} code does not parse ({facts.error})"
        if not facts.calls:
            return (), f"{call.name} code calls no typed tool: only running it could say what it prints"
        return facts.calls, None

    def fail(self, exc: Exception) -> None:
        number = len(self.turns) + 1
        self.stop, self.detail = ASK_FAILED, f"asking for reply {number} failed: {type(exc).__name__}: {exc}"

    def _end(self, turn: Turn, stop: str, detail: str) -> None:
        self.turns.append(Turn(turn.reply, turn.tools, turn.results, stop, detail))
        self.stop, self.detail = stop, detail

    def done(self) -> Conversation:
        assert self.stop is not None
        return Conversation(
            self.query.id, tuple(self.messages), tuple(self.turns), self.stop, self.detail, self.prompt_len
        )


# --- in-process answering -------------------------------------------------------------


def in_process_ask(
    model,
    tokenizer,
    tools: Sequence[Mapping] | None,
    *,
    max_tokens: int,
    fmt: str = "auto",
    batch_size: int = 1,
    progress: Callable[..., None] | None = None,
) -> AskMany:
    """An AskMany on a loaded mlx-lm model: each conversation rendered by the model's own
    chat template with the tools passed natively (as training rendered it), then greedy
    generation. A conversation its template cannot render gets the error, not the batch."""
    schemas = [dict(t) for t in tools] if tools else None

    def ask_many(batch: list[list[dict]]) -> list[Reply | Exception]:
        out: list[Reply | Exception | None] = [None] * len(batch)
        prompts = []
        for index, messages in enumerate(batch):
            try:
                prompts.append((str(index), render_prompt(tokenizer, messages, schemas)))
            except Exception as exc:  # e.g. a template with no tool role, a tokenizer refusing
                out[index] = exc
        if prompts:
            answers = generate_answers(
                model, tokenizer, prompts, max_tokens=max_tokens, batch_size=batch_size, progress=progress
            )
            for generation in answers:
                out[int(generation.id)] = reply_from_text(generation.text, fmt, schemas)
        return out  # type: ignore[return-value]

    return ask_many


def server_ask(client, model: str, tools: Sequence[Mapping] | None, *, max_tokens: int) -> Ask:
    """An Ask through an OpenAI-compatible server (mlx_lm.server, as Punie's agent talks
    to it): greedy, tools passed natively, the server's parsed `tool_calls` taken as is.
    `client` is an `openai.OpenAI` (or anything with its chat.completions.create)."""

    def ask(messages: list[dict]) -> Reply:
        response = client.chat.completions.create(
            model=model,
            messages=for_openai(messages),
            tools=[dict(t) for t in tools] if tools else None,
            temperature=0.0,
            max_tokens=max_tokens,
        )
        message = response.choices[0].message
        return reply_from_message(message.model_dump() if hasattr(message, "model_dump") else dict(message))

    return ask


# --- saved conversations --------------------------------------------------------------


def conversation_record(conversation: Conversation) -> dict:
    """One JSONL record: id, the whole message list, and per turn the raw text, the
    parsed calls, the tools each call called and what came back."""
    return {
        "id": conversation.query_id,
        "messages": [dict(m) for m in conversation.messages],
        "prompt_messages": conversation.prompt_messages,
        "turns": [
            {
                "text": t.reply.text,
                "content": t.reply.content,
                "calls": [
                    {
                        "name": c.name,
                        "arguments": dict(c.arguments) if c.arguments is not None else None,
                        "error": c.error,
                    }
                    for c in t.reply.calls
                ],
                "tools": [list(tools) for tools in t.tools],
                "results": list(t.results),
                **({"stop": t.stop, "detail": t.detail} if t.stop else {}),
            }
            for t in conversation.turns
        ],
        "stop": conversation.stop,
        "detail": conversation.detail,
    }


def conversation_from_record(record: Mapping[str, Any]) -> Conversation:
    """The inverse of `conversation_record`; raises ValueError naming the bad key."""
    try:
        turns = []
        for t in record["turns"]:
            calls = tuple(
                ParsedCall(
                    c["name"], MappingProxyType(c["arguments"]) if c["arguments"] is not None else None, c["error"]
                )
                for c in t["calls"]
            )
            reply = Reply(t["text"], t["content"], calls)
            turns.append(
                Turn(
                    reply, tuple(tuple(x) for x in t["tools"]), tuple(t["results"]), t.get("stop"), t.get("detail", "")
                )
            )
        stop = record["stop"]
        if stop not in STOPS:
            raise ValueError(f"unknown stop {stop!r} (one of {', '.join(STOPS)})")
        return Conversation(
            record["id"],
            tuple(record["messages"]),
            tuple(turns),
            stop,
            record.get("detail", ""),
            record.get("prompt_messages", 0),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a saved conversation ({type(exc).__name__}: {exc})") from None


def write_conversations(path: Path, conversations: Sequence[Conversation]) -> Path:
    """Save conversations as JSONL, one record per query (see `conversation_record`)."""

    return save_jsonl(path, [conversation_record(c) for c in conversations], "conversations")


@dataclass(frozen=True)
class SavedConversations:
    """What a conversations file held."""

    conversations: tuple[Conversation, ...]
    lines: tuple[int, ...] = ()  # the file line of each conversation
    errors: tuple[str, ...] = ()  # each names the file and line


def read_conversations(path: Path) -> SavedConversations:
    """Read a conversations JSONL; every bad line is reported with file and line."""
    path = Path(path)
    try:
        lines = readers.read_jsonl(path, "conversations file")
    except UserError as exc:
        return SavedConversations((), (), (str(exc),))
    conversations, numbers, errors = [], [], []
    for line in lines:
        if line.problem:
            errors.append(f"{path}:{line.number}: {line.problem}")
            continue
        try:
            conversations.append(conversation_from_record(line.value))
            numbers.append(line.number)
        except ValueError as exc:
            errors.append(f"{path}:{line.number}: {exc}")
    if not conversations and not errors:
        errors.append(f"{path}: no conversations")
    return SavedConversations(tuple(conversations), tuple(numbers), tuple(errors))
