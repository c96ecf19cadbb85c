"""Gate 0's vocabulary look-ups: a marker's id, the control ids, plain-text encoding, the format family.

The markers each chat-format family may emit live here too, with the tool markers
a template must really emit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from punie_gates.model.tokenizer import backend_of

# Format markers per chat-format family: every one the format may emit, and
# the tool markers that must be among those the template really emits.
FAMILY_MARKERS: Mapping[str, tuple[str, ...]] = {
    "mistral": (
        "<s>", "</s>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]",
        "[/AVAILABLE_TOOLS]", "[INST]", "[/INST]", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]",
        "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
    ),
    "qwen3": (
        "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>",
        "</tool_response>",
    ),
}  # fmt: skip
REQUIRED_TOOL_MARKERS: Mapping[str, tuple[str, ...]] = {
    "mistral": (
        "[TOOL_CALLS]", "[ARGS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[AVAILABLE_TOOLS]",
        "[/AVAILABLE_TOOLS]",
    ),
    "qwen3": ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"),
}  # fmt: skip
# Mistral's markers must be control tokens (text cannot forge them). Qwen3 ships
# its tool markers as added, non-special tokens: atomic, so one id is enough.
CONTROL_REQUIRED = {"mistral": True, "qwen3": False}
# The delimiters the seed plan checked, reported with ids as Punie's tracker did.
SEED_DELIMITERS = ("[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[/TOOL_CALLS]")


def id_in_vocab(backend, token: str) -> int | None:
    """The token's id when the vocabulary holds it as one entry, else None."""
    # MistralCommonBackend logs a warning for every miss; misses are expected here.
    logger = logging.getLogger("transformers.tokenization_mistral_common")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        found = backend.convert_tokens_to_ids(token)
    finally:
        logger.setLevel(level)
    if found is None:
        return None
    unk = getattr(backend, "unk_token_id", None)
    if found == unk and token != getattr(backend, "unk_token", None):
        return None
    return int(found)


def control_token_ids(backend) -> set[int]:
    ids = {int(i) for i in (backend.all_special_ids or ())}
    decoder = getattr(type(backend), "added_tokens_decoder", None)
    if isinstance(decoder, property):  # the tokenizers backend: added tokens flagged special
        ids |= {int(i) for i, tok in backend.added_tokens_decoder.items() if getattr(tok, "special", False)}
    return ids


def plain_text_ids(backend, text: str) -> list[int]:
    return [int(i) for i in backend.encode(text, add_special_tokens=False)]


def format_family(tokenizer) -> str:
    """The chat-format family from the vocabulary: 'mistral', 'qwen3' or 'unknown'."""
    backend = backend_of(tokenizer)
    if type(backend).__name__ == "MistralCommonBackend":
        return "mistral"
    # Identify the family by its turn markers, not its tool markers: a tokenizer
    # that lacks a tool marker must still be judged (and fail naming it).
    inst = id_in_vocab(backend, "[INST]")
    if inst is not None and inst in control_token_ids(backend):
        return "mistral"
    template = backend.chat_template if isinstance(backend.chat_template, str) else ""
    if id_in_vocab(backend, "<|im_start|>") is not None and (
        "<tool_call>" in template or id_in_vocab(backend, "<tool_call>") is not None
    ):
        return "qwen3"
    return "unknown"


# -- Gate 0 --------------------------------------------------------------------


def decode_ids(backend, ids: Sequence[int]) -> str:
    return backend.decode(list(ids), skip_special_tokens=False)


def naive_text_probe(tokenizer, marker: str) -> list[int]:
    """What the seed plan's Gate 0 did: encode the marker's text. Kept to show why it misleads."""
    return plain_text_ids(backend_of(tokenizer), marker)
