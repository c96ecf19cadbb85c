"""Format-marker text inside converted training records that would reach the model split into pieces."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from punie_gates.checks.tokenizer.vocabulary import (
    FAMILY_MARKERS,
    SEED_DELIMITERS,
    format_family,
    id_in_vocab,
    plain_text_ids,
)
from punie_gates.model.tokenizer import backend_of, record_name


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a record, with where it sits (messages[2].content)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def find_split_markers(
    records: Iterable[Mapping], tokenizer, family: str | None = None, label: str | Sequence[str] = "record"
) -> list[str]:
    """Format-marker text inside converted records that would not reach the model as its marker.

    A marker typed as text (say "[/TOOL_CALLS]" or, with a v3 vocabulary,
    "[ARGS]") that the tokenizer cuts into pieces teaches the model a format it
    never serves. For Mistral, literal control-marker text is flagged even when
    this backend would turn it into the control id: mistral-common splits such
    text, so training and serving would disagree. Qwen3's data carries its tool
    markers as text by design; only a split one is flagged there.
    """
    backend = backend_of(tokenizer)
    family = family or format_family(tokenizer)
    names = tuple(dict.fromkeys(FAMILY_MARKERS.get(family, ()) + (SEED_DELIMITERS if family == "mistral" else ())))
    if not names:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    verdicts: dict[str, str | None] = {}

    def verdict(marker: str) -> str | None:
        if marker not in verdicts:
            vocab_id = id_in_vocab(backend, marker)
            pieces = plain_text_ids(backend, marker)
            if vocab_id is None or pieces != [vocab_id]:
                verdicts[marker] = f"{len(pieces)} pieces {pieces}"
            elif family == "mistral":
                verdicts[marker] = f"control id {vocab_id} here, pieces under mistral-common"
            else:
                verdicts[marker] = None
        return verdicts[marker]

    found: list[str] = []
    for index, record in enumerate(records):
        for where, text in _strings(record, ""):
            for hit in dict.fromkeys(pattern.findall(text)):
                problem = verdict(hit)
                if problem:
                    found.append(f"{record_name(label, index)} {where}: {hit!r} as text becomes {problem}")
    return found
