"""Validation prompts rendered exactly the way training rendered its conversations.

Training (mlx-lm's ChatDataset) renders each record with the candidate's own chat
template and the record's tools passed natively: `apply_chat_template(messages,
tools=tools, return_dict=False)`. A validation prompt that differs in the system
prompt or the tools block asks the tuned model a question in a format it never saw
(a mismatch of this kind once cost Punie 60 points), so prompts here go through the
same call, and `prefix_mismatch` proves the shared head is identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from punie_gates.inputs.paths import data_dir

# Two probe user texts that differ in their first character: the rendered ids of
# (system, probe) agree exactly up to where the user's text starts.
_PROBES = ("Alpha probe question.", "Zulu probe question.")


def query_messages(system_prompt: str, text: str) -> list[dict]:
    """The chat a validation query is asked in: the training system prompt, then the query."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": text}]


def render_prompt(tokenizer, messages: Sequence[Mapping], tools: Sequence[Mapping] | None) -> list[int]:
    """Token ids of `messages` + the generation prompt, tools passed to the template natively.

    Same call as mlx-lm's training path (TokenizerWrapper or a transformers tokenizer);
    `tools` empty or None renders no tools block, as a record without tools would.
    """
    out = tokenizer.apply_chat_template(
        [dict(m) for m in messages],
        tools=[dict(t) for t in tools] if tools else None,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    return _as_ids(out)


def _as_ids(out: Any) -> list[int]:
    # Backends differ: a list, a BatchEncoding/dict with input_ids, or one nested row.
    if isinstance(out, Mapping):
        out = out["input_ids"]
    if hasattr(out, "tolist"):
        out = out.tolist()
    if out and isinstance(out[0], list):
        if len(out) != 1:
            raise ValueError(f"expected one rendered conversation, got {len(out)}")
        out = out[0]
    if not out or not all(isinstance(i, int) for i in out):
        raise ValueError(f"chat template rendered no token ids (got {type(out).__name__})")
    return list(out)


def prompt_head(tokenizer, system_messages: Sequence[Mapping], tools: Sequence[Mapping] | None) -> list[int]:
    """Ids every prompt with these leading messages and tools shares before the user's text."""
    a, b = (render_prompt(tokenizer, [*system_messages, {"role": "user", "content": p}], tools) for p in _PROBES)
    return a[: _common_prefix_len(a, b)]


def training_prompt_prefix(tokenizer, training_record: Mapping) -> list[int]:
    """The head (system prompt + tools block, up to the user's text) training rendered for a record."""
    messages = training_record.get("messages")
    if not messages:
        raise ValueError("training record has no messages")
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if first_user is None:
        raise ValueError("training record has no user turn")
    return prompt_head(tokenizer, messages[:first_user], training_record.get("tools"))


def prefix_mismatch(
    tokenizer,
    training_record: Mapping,
    validation_messages: Sequence[Mapping],
    tools: Sequence[Mapping] | None,
) -> str | None:
    """None when a validation prompt renders the same head as training; else where they diverge.

    Compares the ids up to the user turn's text: same system prompt, same tools
    block, same template. The message quotes both sides around the first difference.
    """
    first_user = next((i for i, m in enumerate(validation_messages) if m.get("role") == "user"), None)
    if first_user is None:
        raise ValueError("validation messages have no user turn")
    train = training_prompt_prefix(tokenizer, training_record)
    valid = prompt_head(tokenizer, validation_messages[:first_user], tools)
    if train == valid:
        return None
    at = _common_prefix_len(train, valid)

    def around(ids: list[int]) -> str:
        lo = max(0, at - 8)
        return repr(tokenizer.decode(ids[lo : at + 12]))

    return (
        f"validation prompt diverges from the training prompt at token {at} of the head "
        f"(training head {len(train)} tokens, validation head {len(valid)}): "
        f"training renders ...{around(train)}..., validation renders ...{around(valid)}...; "
        "the system prompt or the tools block differs from what training used"
    )


def default_system_prompt(train_records: Iterable[Mapping] | Any = None) -> str:
    """The system prompt training used most often; data/system_prompt.txt when there is none.

    Accepts records (`{"messages": ...}`) or anything with `.records` (a ConversionResult).
    Ties go to the prompt seen first.
    """
    records = getattr(train_records, "records", train_records) or ()
    counts = Counter(
        msgs[0]["content"]
        for r in records
        if (msgs := r.get("messages")) and msgs[0].get("role") == "system" and msgs[0].get("content")
    )
    if counts:
        return counts.most_common(1)[0][0]

    path = data_dir() / "system_prompt.txt"
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path}: empty system prompt file")
    return text


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
