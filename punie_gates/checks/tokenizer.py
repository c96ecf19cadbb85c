"""Gate 0: does the candidate's tokenizer keep its tool-call format intact?

The check reads what the model's own chat template emits for a tool
conversation and looks each format marker up in the vocabulary. It never
probes a marker by encoding its text: Mistral's own backend splits
"[TOOL_CALLS]" typed as text on purpose (text must not inject control tokens),
so that probe calls every marker multi-token, a false NO-GO. The seed plan's
`[/TOOL_CALLS]` is reported the way Punie's tracker did, but Devstral's format
never emits it (a call ends at `</s>`), so it fails nothing by itself.

Only tokenizer files are read, never weights: a folder holding just the
tokenizer passes Gate 0 when its tokenizer is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from punie_gates.model.tokenizer import (
    backend_of,
    record_name,
    render_ids,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "Gate0Report",
    "MarkerReport",
    "ParityReport",
    "canonical_conversation",
    "check_parity",
    "format_family",
    "find_split_markers",
    "inspect_tokenizer",
    "naive_text_probe",
]


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

_CALL_ID = "a1b2c3d4e"  # nine alphanumerics: the id shape mistral-common accepts


@dataclass(frozen=True)
class MarkerReport:
    marker: str
    ids: tuple[int, ...]  # the vocabulary id, or the pieces plain text gives when not in it
    in_vocab_id: int | None
    is_control: bool
    single: bool  # one vocabulary id, and every emitted occurrence is that id
    emitted: bool  # the chat template writes it for the canonical conversation
    text_produces_it: bool  # plain-text encoding yields the id (safe Mistral backends: no)
    note: str = ""

    def figure(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "id": self.in_vocab_id,
            "single": self.single,
            "control": self.is_control,
            "emitted": self.emitted,
            "text_can_produce": self.text_produces_it,
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True)
class Gate0Report:
    tokenizer_class: str
    family: str  # "mistral", "qwen3" or "unknown"
    markers: tuple[MarkerReport, ...]
    seed_delimiters: tuple[MarkerReport, ...]
    finetuning_render_ok: bool  # the canonical conversation, ending with an assistant turn
    render_error: str  # why that rendering failed ("" when it worked)
    canonical_ids: tuple[int, ...]
    marker_failures: tuple[str, ...]

    @property
    def failures(self) -> tuple[str, ...]:
        render = () if self.finetuning_render_ok else (
            "the tokenizer cannot render a training conversation ending with an assistant turn "
            f"(mlx-lm's LoRA training would crash on such examples): {self.render_error}",
        )
        return render + self.marker_failures

    @property
    def passed(self) -> bool:
        return not self.failures

    def marker(self, name: str) -> MarkerReport:
        for report in self.markers + self.seed_delimiters:
            if report.marker == name:
                return report
        raise KeyError(name)

    def marker_figures(self) -> dict[str, dict[str, Any]]:
        return {m.marker: m.figure() for m in self.markers}

    def seed_figures(self) -> dict[str, dict[str, Any]]:
        return {m.marker: m.figure() for m in self.seed_delimiters}




@dataclass(frozen=True)
class ParityReport:
    records_checked: int
    mismatched: int
    examples: tuple[str, ...]  # the first `limit` mismatches, described

    def figure(self) -> dict[str, Any]:
        return {"records_checked": self.records_checked, "mismatches": self.mismatched, "first": list(self.examples)}


# -- loading -------------------------------------------------------------------








# -- the canonical conversation ------------------------------------------------


def canonical_conversation() -> tuple[list[dict], list[dict]]:
    """(messages, tools): system, tools, user, preamble + tool call, result, final answer."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "execute_code",
                "description": "Run Python code in the sandbox; typed tools are callable in it.",
                "parameters": {
                    "type": "object",
                    "properties": {"code": {"type": "string", "description": "Python source to run."}},
                    "required": ["code"],
                },
            },
        }
    ]
    code = "result = typecheck('src/')\nprint(result.error_count)"
    messages = [
        {"role": "system", "content": "You are Punie, an AI coding assistant."},
        {"role": "user", "content": "Check types in src/"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": _CALL_ID, "type": "function", "function": {"name": "execute_code", "arguments": {"code": code}}}
            ],
        },
        {"role": "tool", "tool_call_id": _CALL_ID, "content": "3"},
        {"role": "assistant", "content": "There are 3 type errors."},
    ]
    return messages, tools








# -- vocabulary look-ups -------------------------------------------------------


def _vocab_id(backend, token: str) -> int | None:
    """The token's id when the vocabulary holds it as one entry, else None."""
    import logging

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


def _control_ids(backend) -> set[int]:
    ids = {int(i) for i in (backend.all_special_ids or ())}
    decoder = getattr(type(backend), "added_tokens_decoder", None)
    if isinstance(decoder, property):  # the tokenizers backend: added tokens flagged special
        ids |= {int(i) for i, tok in backend.added_tokens_decoder.items() if getattr(tok, "special", False)}
    return ids


def _text_ids(backend, text: str) -> list[int]:
    return [int(i) for i in backend.encode(text, add_special_tokens=False)]


def format_family(tokenizer) -> str:
    """The chat-format family from the vocabulary: 'mistral', 'qwen3' or 'unknown'."""
    backend = backend_of(tokenizer)
    if type(backend).__name__ == "MistralCommonBackend":
        return "mistral"
    # Identify the family by its turn markers, not its tool markers: a tokenizer
    # that lacks a tool marker must still be judged (and fail naming it).
    inst = _vocab_id(backend, "[INST]")
    if inst is not None and inst in _control_ids(backend):
        return "mistral"
    template = backend.chat_template if isinstance(backend.chat_template, str) else ""
    if _vocab_id(backend, "<|im_start|>") is not None and (
        "<tool_call>" in template or _vocab_id(backend, "<tool_call>") is not None
    ):
        return "qwen3"
    return "unknown"


# -- Gate 0 --------------------------------------------------------------------


def _decode(backend, ids: Sequence[int]) -> str:
    return backend.decode(list(ids), skip_special_tokens=False)


def _marker_report(backend, marker: str, ids: Sequence[int], text: str, controls: set[int]) -> MarkerReport:
    vocab_id = _vocab_id(backend, marker)
    plain = _text_ids(backend, marker)
    in_text = text.count(marker)
    in_ids = ids.count(vocab_id) if vocab_id is not None else 0
    emitted = in_text > 0 or in_ids > 0
    # Every place the template writes the marker must come out as its one id.
    single = vocab_id is not None and in_ids >= in_text
    return MarkerReport(
        marker=marker,
        ids=(vocab_id,) if vocab_id is not None else tuple(plain),
        in_vocab_id=vocab_id,
        is_control=vocab_id is not None and vocab_id in controls,
        single=single,
        emitted=emitted,
        text_produces_it=vocab_id is not None and plain == [vocab_id],
    )


def _call_end(backend, ids: Sequence[int], controls: set[int]) -> str | None:
    """The control token that closes the first tool call in the rendered ids."""
    start = _vocab_id(backend, "[TOOL_CALLS]")
    if start is None or start not in ids:
        return None
    inner = {i for i in (_vocab_id(backend, "[ARGS]"), _vocab_id(backend, "[CALL_ID]")) if i is not None}
    for token in ids[ids.index(start) + 1 :]:
        if token in controls and token not in inner:
            return backend.convert_ids_to_tokens(token)
    return "the end of the sequence"


def inspect_tokenizer(tokenizer) -> Gate0Report:
    """Render the canonical tool conversation through the tokenizer and judge its markers."""
    backend = backend_of(tokenizer)
    family = format_family(tokenizer)
    failures: list[str] = []
    messages, tools = canonical_conversation()

    render_error = ""
    try:
        ids = render_ids(tokenizer, messages, tools)
    except Exception as exc:
        render_error = f"{type(exc).__name__}: {exc}"
        try:  # still read the markers from the serving-shaped prefix
            ids = render_ids(tokenizer, messages[:-1], tools)
        except Exception:
            ids = []
    text = _decode(backend, ids) if ids else ""
    controls = _control_ids(backend)

    if family == "unknown":
        failures.append(
            f"unknown chat format: {type(backend).__name__} has neither Mistral's [INST] control token "
            "nor Qwen3's <|im_start|> with <tool_call>, so Gate 0 cannot tell which markers must hold"
        )
    markers = tuple(_marker_report(backend, m, ids, text, controls) for m in FAMILY_MARKERS.get(family, ()))
    by_name = {m.marker: m for m in markers}
    for name in REQUIRED_TOOL_MARKERS.get(family, ()):
        m = by_name[name]
        if m.in_vocab_id is None:
            how = "the template emits it as" if m.emitted else "its text is"
            failures.append(
                f"{name} is not one token: the vocabulary has no such entry; {how} {len(m.ids)} pieces {list(m.ids)}"
            )
        elif not m.emitted and ids:
            failures.append(f"{name} is never emitted by the chat template for a tool conversation")
    for m in markers:
        if not m.emitted:
            continue
        if not m.single:
            if m.in_vocab_id is not None:  # in the vocabulary, yet the rendering split it somewhere
                failures.append(f"{m.marker} is emitted as pieces, not as its id {m.in_vocab_id}")
            elif m.marker not in REQUIRED_TOOL_MARKERS.get(family, ()):
                failures.append(f"{m.marker} is emitted but is {len(m.ids)} pieces {list(m.ids)}")
        elif CONTROL_REQUIRED.get(family, True) and not m.is_control:
            failures.append(f"{m.marker} is one id ({m.in_vocab_id}) but not a control token: plain text can forge it")

    seeds: tuple[MarkerReport, ...] = ()
    if family == "mistral":
        end = _call_end(backend, ids, controls)
        seeds = tuple(_marker_report(backend, s, ids, text, controls) for s in SEED_DELIMITERS)
        if not ids:
            unknown = "unknown: the canonical conversation did not render"
            seeds = tuple(replace(s, note=unknown) for s in seeds)
        else:
            absent = "not emitted by this format" + (f" (a call ends at {end})" if end else "")
            seeds = tuple(s if s.emitted else replace(s, note=absent) for s in seeds)
    return Gate0Report(
        tokenizer_class=type(backend).__name__,
        family=family,
        markers=markers,
        seed_delimiters=seeds,
        finetuning_render_ok=not render_error,
        render_error=render_error,
        canonical_ids=tuple(ids),
        marker_failures=tuple(failures),
    )


# -- training data -------------------------------------------------------------


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
            vocab_id = _vocab_id(backend, marker)
            pieces = _text_ids(backend, marker)
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


def _window(ids: Sequence[int], at: int, pieces) -> str:
    lo, hi = max(0, at - 3), min(len(ids), at + 4)
    shown = [f"{i}:{pieces(i)!r}" for i in ids[lo:hi]]
    return ("... " if lo else "") + " ".join(shown) + (" ..." if hi < len(ids) else "")


@lru_cache(maxsize=2)
def _reference(path: Path, mtime_ns: int, size: int):
    """mistral-common's tokenizer for a tekken file in finetuning mode, loaded once (~1 s).

    `mtime_ns` and `size` only key the cache: a rewritten file is loaded again.
    """
    from punie_gates.formats.tekken import reference_tokenizer

    return reference_tokenizer(path, validation_mode="finetuning")


def check_parity(
    records: Sequence[Mapping],
    tokenizer,
    tekken_path: Path,
    limit: int | None = 1,
    rendered: Sequence[Sequence[int] | None] | None = None,
    label: str | Sequence[str] = "record",
) -> ParityReport:
    """Compare the ids mlx-lm trains on with mistral-common's reference encoding.

    The reference is `encode_chat_completion` of the tekken file in finetuning
    mode. `rendered` reuses ids already rendered by `render_records`. Mismatches
    are counted over every record; the first `limit` are described with the
    position and the tokens around it.
    """
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    path = Path(tekken_path).resolve()
    stat = path.stat()
    reference = _reference(path, stat.st_mtime_ns, stat.st_size)
    ref_pieces = reference.instruct_tokenizer.tokenizer.id_to_piece
    backend = backend_of(tokenizer)
    examples: list[str] = []
    mismatched = 0

    def mismatch(text: str) -> None:
        nonlocal mismatched
        mismatched += 1
        if limit is None or len(examples) < limit:
            examples.append(text)

    for index, record in enumerate(records):
        name = record_name(label, index)
        try:
            ours = list(rendered[index]) if rendered is not None and rendered[index] is not None else None
            if ours is None:
                ours = render_ids(tokenizer, record["messages"], record.get("tools"))
        except Exception as exc:
            mismatch(f"{name}: mlx-lm cannot render it: {type(exc).__name__}: {exc}")
            continue
        try:
            messages, tools = list(record["messages"]), record.get("tools") or None
            request = ChatCompletionRequest.from_openai(messages=messages, tools=tools)
            theirs = list(reference.encode_chat_completion(request).tokens)
        except Exception as exc:
            mismatch(f"{name}: mistral-common rejects it: {type(exc).__name__}: {exc}")
            continue
        if ours == theirs:
            continue
        at = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        mismatch(
            f"{name}: ids differ at position {at} (mlx-lm {len(ours)} ids, mistral-common {len(theirs)}): "
            f"mlx-lm {_window(ours, at, lambda i: _decode(backend, [i]))} | "
            f"mistral-common {_window(theirs, at, ref_pieces)}"
        )
    return ParityReport(records_checked=len(records), mismatched=mismatched, examples=tuple(examples))


def naive_text_probe(tokenizer, marker: str) -> list[int]:
    """What the seed plan's Gate 0 did: encode the marker's text. Kept to show why it misleads."""
    return _text_ids(backend_of(tokenizer), marker)
