"""One query's answer in the form the gates score and save, whichever path asked it.

In-process (answering.inprocess) an answer is the decoded text, control tokens kept:
the scorer parses its calls with mlx-lm's parsers, as a runtime would. Through
mlx_lm.server (answering.client) it is what the API returned: `message.content` and
`message.tool_calls` as the server's own tool parser made them. The scorer takes those
calls as they are; tool-call markup left in the content is text the server did not
parse, so no call was made (on a folder with tekken.json mlx-lm 0.32.2 picks no tool
parser at all: see answering/tool_parsing.py).

Saved as JSONL, one record per query: `{"id", "response", "via", "finish_reason"}`, plus
`"tool_calls": [{"id", "name", "arguments"}]` for a server answer (arguments: the JSON
text the API sent). `punie-gates score` re-scores both forms.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.errors import UnsavedResultsError

VIA_SERVER, VIA_INPROCESS = "server", "inprocess"


@dataclass(frozen=True)
class QueryAnswer:
    """One query's answer and what it cost, from either answering path."""

    id: str
    """The query id."""
    text: str
    """In-process: the decoded reply with its control tokens; via the server: message.content."""
    tool_calls: tuple[Mapping[str, str], ...] | None
    """Via the server: message.tool_calls as {id, name, arguments}; None in-process (calls are in text)."""
    via: str
    """"server" or "inprocess"."""
    finish_reason: str
    """"stop", "length" or "tool_calls"."""
    latency_s: float
    """Request sent (or query started) -> last token."""
    ttft_s: float | None
    """-> first token or chunk; None for a server request that was not streamed."""
    prompt_tokens: int | None
    """Tokens of the rendered prompt."""
    generated_tokens: int | None
    """Tokens generated."""
    prefill_tokens: int | None
    """Prompt tokens this query computed (in-process: after the shared prefix; server: not cached)."""
    raw_text: str | None = None
    """What the model generated, control tokens kept, before any server parsing or streaming
    detokenization (in-process: `text`; via the server: its generated ids decoded; None when
    the server did not return them)."""

    @property
    def prompt_tps(self) -> float | None:
        if self.prefill_tokens is None or not self.ttft_s:
            return None
        return self.prefill_tokens / self.ttft_s

    @property
    def generation_tps(self) -> float | None:
        """Tokens per second after the first; None when the first arrived last (a server withholds
        a tool call until it ends, so a reply that opens with a call has ttft == latency)."""
        if self.ttft_s is None or self.generated_tokens is None or self.latency_s - self.ttft_s <= 1e-6:
            return None
        return self.generated_tokens / (self.latency_s - self.ttft_s)

    def record(self) -> dict[str, Any]:
        """The saved JSONL record (the input of `punie-gates score --responses`)."""
        out: dict[str, Any] = {
            "id": self.id,
            "response": self.text,
            "via": self.via,
            "finish_reason": self.finish_reason,
        }
        if self.tool_calls is not None:
            out["tool_calls"] = [dict(c) for c in self.tool_calls]
        if self.raw_text is not None and self.raw_text != self.text:
            out["raw"] = self.raw_text
        return out


def from_generation(generation) -> QueryAnswer:
    """An in-process answer (answering.inprocess.Generation)."""
    g = generation
    return QueryAnswer(
        id=g.id, text=g.text, tool_calls=None, via=VIA_INPROCESS, finish_reason=g.finish_reason,
        latency_s=g.latency_s, ttft_s=g.ttft_s, prompt_tokens=g.prompt_tokens, generated_tokens=g.generated_tokens,
        prefill_tokens=g.prefill_tokens_computed, raw_text=g.text,
    )  # fmt: skip


def from_server(answer, decode=None) -> QueryAnswer:
    """A server answer (answering.client.Answer that did not fail); `decode` (ids -> text) turns
    its generated ids, when the server sent them, into `raw_text`."""
    a = answer
    raw = decode(a.token_ids) if decode is not None and a.token_ids is not None else None
    uncached = a.prompt_tokens - (a.cached_tokens or 0) if a.prompt_tokens is not None else None
    return QueryAnswer(
        id=a.id, text=a.content,
        tool_calls=tuple({"id": c.id, "name": c.name, "arguments": c.arguments} for c in a.tool_calls),
        via=VIA_SERVER, finish_reason=a.finish_reason, latency_s=a.latency_s, ttft_s=a.ttft_s,
        prompt_tokens=a.prompt_tokens, generated_tokens=a.completion_tokens, prefill_tokens=uncached, raw_text=raw,
    )  # fmt: skip


def save_answers(path: Path, answers: Sequence[QueryAnswer]) -> Path:
    """Write one record per answer as JSONL (both forms: text, and the server's calls)."""
    return save_jsonl(path, [answer.record() for answer in answers], "answers")


def save_jsonl(path: Path, records: Sequence[Mapping[str, Any]], what: str) -> Path:
    """Write records as JSONL. When that fails (an unwritable report folder, a full disk) the
    results are not lost: they go to a fresh temporary folder, and UnsavedResultsError (the
    run ends ERROR) names both paths; when they fit nowhere, it carries them for the terminal."""
    path = Path(path)
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="\n") as f:
            f.writelines(line + "\n" for line in lines)
        return path
    except OSError as exc:
        failure = f"cannot write {exc.filename or path} ({exc.strerror or exc})"
    advice = "make the report folder writable (or free space there), or give another --report-dir"
    try:
        kept = Path(tempfile.mkdtemp(prefix="punie-gates-unsaved-")) / path.name
        kept.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    except OSError as exc:
        raise UnsavedResultsError(
            f"{failure}: {advice}; the {len(lines)} {what} could not be kept elsewhere either "
            f"({exc.strerror or exc}): they follow the verdict",
            tuple(lines),
        ) from None
    raise UnsavedResultsError(f"{failure}: {advice}; the {len(lines)} {what} were kept in {kept}")
