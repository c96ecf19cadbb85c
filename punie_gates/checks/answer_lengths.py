"""How long the training data's own answers are, in the candidate's tokens: the bench's
second workload.

The plan capped every validation answer at 512 tokens, but Phase 27's assistant
turns are far shorter (FACTS: p50 55, p90 116 tekken tokens in Qwen3 form): a run
where nothing stops before 512 measures decoding, not the validation workload. So
the bench also answers each query with its own cap, drawn deterministically from
the lengths of the assistant turns in the training data it is given.

A turn's length is what the model emits for it in the converted (candidate) form:
its text, each tool call as `[TOOL_CALLS]name[ARGS]{json}` (two control tokens
plus the encoded name and arguments) and the end token. On the demo's tokenizer
that equals, for 300 Phase 27 conversations checked, the tokens between `[/INST]`
(or `[/TOOL_RESULTS]`) and `</s>` of the conversation rendered by the chat
template (the self-test checks it on the demo data).
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AnswerLengths:
    """The distribution of the training data's assistant-turn lengths, in tokens."""

    turns: int  # assistant turns counted
    p50: int
    p90: int
    p99: int
    max: int
    mean: float
    source: str  # where the turns came from (the training data folder)

    def to_json(self) -> dict:
        data = asdict(self)
        data["mean"] = round(self.mean, 1)
        return data

    def describe(self) -> str:
        return (
            f"p50 {self.p50}, p90 {self.p90}, p99 {self.p99}, max {self.max} tokens over {self.turns} assistant turns"
        )


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def turn_length(tokenizer, message: dict) -> int:
    """Tokens the model emits for one assistant message (converted form), the end token included."""
    count = len(_encode(tokenizer, message.get("content") or ""))
    for call in message.get("tool_calls") or ():
        function = call["function"]
        arguments = function.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        count += 2 + len(_encode(tokenizer, function["name"])) + len(_encode(tokenizer, arguments))
    return count + 1


def answer_token_lengths(tokenizer, records: Iterable[dict]) -> list[int]:
    """The length of every assistant turn of `records` ({"messages": [...]}, converted form), in order."""
    return [turn_length(tokenizer, m) for r in records for m in r["messages"] if m.get("role") == "assistant"]


def _quantile(ordered: Sequence[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(lengths: Sequence[int], source: str) -> AnswerLengths:
    if not lengths:
        raise ValueError(f"{source}: no assistant turns to take answer lengths from")
    ordered = sorted(lengths)
    return AnswerLengths(
        turns=len(ordered),
        p50=_quantile(ordered, 0.50),
        p90=_quantile(ordered, 0.90),
        p99=_quantile(ordered, 0.99),
        max=ordered[-1],
        mean=statistics.fmean(ordered),
        source=source,
    )


def draw_caps(lengths: Sequence[int], n: int, *, seed: int = 0, limit: int | None = None) -> list[int]:
    """`n` per-query caps that follow the distribution of `lengths`, the same for the same inputs.

    Stratified rather than sampled: cap i is the length at quantile (i + 0.5) / n,
    so 10 queries span the distribution instead of landing wherever 10 random draws
    fall; the caps are then shuffled with `seed` so that no query always gets the
    longest. `limit` (the run's --max-tokens) bounds every cap.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not lengths:
        raise ValueError("no lengths to draw caps from")
    ordered = sorted(lengths)
    caps = [max(1, ordered[min(len(ordered) - 1, int((i + 0.5) * len(ordered) / n))]) for i in range(n)]
    random.Random(seed).shuffle(caps)
    return [min(c, limit) for c in caps] if limit is not None else caps
