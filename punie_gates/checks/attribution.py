"""Whose miss is it: the model's, the server's or the stream's, told from the raw text beside the API's answer.

A failing answer reads the same whether the model never called, or called well and the
server dropped the call. So each answer keeps what the model generated (`raw_text`:
in-process the decoded text; through mlx_lm.server its generated ids, which the server
returns as `logprobs` entries, decoded by the served tokenizer.json) beside what the API
returned (`text` = message.content, `tool_calls`). A failing row's cause:

- `server`: the raw text holds a call the API did not return as tool_calls: left in the
  content (no tool parser), dropped (a parser that could not read it), or cut off (the
  token budget ended inside it, and the server drops an unfinished call);
- `stream`: the content is the raw text damaged by detokenization (U+FFFD where the raw
  text has none, `Ġ`/`Ċ` byte-level pieces, spaces lost inside the text);
- `model`: everything else (no call, wrong tool, bad arguments, wrong fields, a wrong or
  empty direct answer).

Without raw text (a server that does not return ids) the content alone decides: call
markup left in it is `server`, damage marks are `stream`. As BFCL keeps
`model_result_raw` beside `model_result_decoded`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MODEL, SERVER, STREAM = "model", "server", "stream"
CAUSES = (MODEL, SERVER, STREAM)
_MARKERS = ("[TOOL_CALLS]", "<tool_call>")
_SPECIALS = ("</s>", "<s>", "<|im_end|>", "<|endoftext|>", "<|im_start|>")
_BYTE_LEVEL = ("Ġ", "Ċ")
_QUOTE = 160


def _quote(text: str) -> str:
    text = text or ""
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


def _visible(raw: str) -> str:
    """The raw text before its first call marker, without control tokens: what content should be."""
    cut = min((i for i in (raw.find(m) for m in _MARKERS) if i >= 0), default=len(raw))
    text = raw[:cut]
    for special in _SPECIALS:
        text = text.replace(special, "")
    return text


def _damaged(content: str, raw: str | None) -> str | None:
    """How the content is damaged by detokenization relative to the raw text, or None."""
    if "\ufffd" in content and (raw is None or "\ufffd" not in raw):
        return "U+FFFD in the content"
    marks = [m for m in _BYTE_LEVEL if m in content and (raw is None or m not in raw)]
    if marks:
        return f"byte-level pieces {', '.join(marks)} in the content"
    if raw is not None:
        visible = _visible(raw)
        if content.strip() != visible.strip() and "".join(content.split()) == "".join(visible.split()):
            return "whitespace lost or changed inside the text"
    return None


def _raw_calls(raw: str) -> int:
    """How many call openings the raw text holds."""
    return sum(raw.count(m) for m in _MARKERS)


def miss_cause(answer, tools: Sequence[Mapping[str, Any]] | None = None) -> tuple[str, str]:
    """(cause, explanation quoting the raw text) for a failing answer (answering.answers.QueryAnswer)."""
    raw = getattr(answer, "raw_text", None)
    content = answer.text or ""
    api_calls = len(answer.tool_calls or ()) if answer.tool_calls is not None else None
    if api_calls is None:  # in-process: the text is the raw output, parsed as the runtime parses it
        return MODEL, f"the model wrote {_quote(content)}"
    if raw is not None:
        written = _raw_calls(raw)
        if written > api_calls:
            if any(m in content for m in _MARKERS):
                how = "left it in message.content (no tool parser read it)"
            elif answer.finish_reason == "length":
                how = "dropped it: the token budget ended inside the call"
            else:
                how = "dropped it (its tool parser could not read it)"
            return SERVER, (
                f"the model wrote {written} call(s) but the API returned {api_calls} as tool_calls: the "
                f"server {how}; raw text {_quote(raw)}"
            )
        damage = _damaged(content, raw)
        if damage:
            return STREAM, f"{damage}: content {_quote(content)}, raw text {_quote(raw)}"
        return MODEL, f"the model wrote {_quote(raw)}"
    if api_calls == 0 and any(m in content for m in _MARKERS):
        return SERVER, f"the content holds call text the server did not return as tool_calls: {_quote(content)}"
    damage = _damaged(content, None)
    if damage:
        return STREAM, f"{damage}: {_quote(content)} (no raw text: the server did not return its ids)"
    return MODEL, f"the API returned {_quote(content)} (no raw text: the server did not return its ids)"


def attribute(row: dict[str, Any], answer) -> dict[str, Any]:
    """The row with `cause` and `cause_detail` when it failed (passed rows are returned as they are)."""
    if row.get("passed", True):
        return row
    cause, detail = miss_cause(answer)
    return {**row, "cause": cause, "cause_detail": detail}


def count_causes(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Misses by cause over rows that carry one."""
    counts = Counter(r["cause"] for r in rows if isinstance(r, Mapping) and r.get("cause") in CAUSES)
    return {c: counts[c] for c in CAUSES if counts[c]}


def causes_line(label: str, counts: Mapping[str, int]) -> str:
    """E.g. "candidate misses by cause: server 4, model 1" ("" when there are none)."""
    if not counts:
        return ""
    return f"{label} misses by cause: " + ", ".join(f"{c} {n}" for c, n in counts.items())


def only_server(counts: Mapping[str, int]) -> bool:
    """True when every miss is the server's (and there is at least one)."""
    return bool(counts) and set(counts) == {SERVER}


def miss_reason(
    rows: Iterable[Mapping[str, Any]], change: str | None = None, label: str = "candidate"
) -> tuple[dict[str, int], str, str]:
    """(counts, lead, tail) for a gate's failure message: `lead` opens it when every miss is the
    server's (naming the serving change Punie must make), `tail` counts the misses by cause."""
    counts = count_causes(rows)
    lead = ""
    if only_server(counts):
        lead = (
            "every miss is the server's, not the model's"
            + (f" (serving change Punie must make: {change})" if change else "")
            + ": "
        )
    tail = f" [{causes_line(label, counts)}]" if counts else ""
    return counts, lead, tail
