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

Parity is judged against an independent reference: mistral-common's encoder for
the candidate's own vocabulary (`build_reference`: its tekken.json, else a tekken
reference built from its tokenizer.json with tekken's own split pattern; none
buildable is a failure, never "not applicable"). When tekken.json ships, mlx-lm
loads MistralCommonBackend, which is that same encoder, so its agreement proves
little (`Reference.independent` says so); the folder's chat template is then what
the tokenizers backend (LM Studio, llama.cpp, transformers) renders with, and is
compared as its own path: a difference there is a flag, a difference on mlx-lm's
path a failure.

Ids back to text (`check_round_trip`): tokenizer.decode and mlx-lm's streaming
detokenizer must give every probe text and every assistant turn of the training
data back exactly (leading spaces dropped at the start of a reply are mlx-lm's
convention). Decision on one known defect: under MistralCommonBackend, mlx-lm's
BPEStreamingDetokenizer reads mistral-common's pieces as byte-level ones, so a
character spanning several tokens streams as U+FFFD (45 of Phase 27's 1,547
assistant turns, Punie's ✓ and ✗) and one ending a reply makes it raise. That is a
flag with its count, not a failure: decode is exact, training and the scorer's
reading of calls are unaffected, ASCII text streams exactly, and serving from the
folder without tekken.json fixes it (the flag says when that was measured clean).
Any other difference (spaces, newlines, a missing ByteLevel decoder printing Ġ and
Ċ) fails Gate 0: every reply would be corrupted and Gate 1 would blame the model.
Likewise `tool_parsing_of` records the tool parser mlx_lm.server would pick; none
(MistralCommonBackend has no chat template to pick one from) is a flag: Gate 0
judges tokenization, and the fix is in how the model is served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from punie_gates.formats.tekken import ReferenceUnavailable
from punie_gates.model.tokenizer import (
    backend_of,
    record_name,
    render_ids,
    render_prompt_ids,
    tekken_path_of,
)

if TYPE_CHECKING:
    from punie_gates.answering.tool_parsing import ToolParsing

__all__ = [
    "DETOKENIZER_PROBES",
    "DetokenizerReport",
    "Gate0Report",
    "MarkerReport",
    "ParityReport",
    "Reference",
    "ReferenceUnavailable",
    "assistant_texts",
    "build_reference",
    "canonical_conversation",
    "check_parity",
    "check_round_trip",
    "compare_path",
    "expectations",
    "mlx_path_name",
    "reference_ids",
    "serving_prompts",
    "tool_parsing_of",
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
    headline: str = ""  # the first mismatch in a few words: "X has '</s>' where mistral-common has '[TOOL_CALLS]' at ..."

    def figure(self) -> dict[str, Any]:
        return {"records_checked": self.records_checked, "mismatches": self.mismatched, "first": list(self.examples)}


@dataclass(frozen=True)
class Reference:
    """mistral-common's own encoder for the candidate's vocabulary: what every rendering
    path of the candidate is compared with."""

    finetuning: Any
    """MistralTokenizer in "finetuning" mode: training records (ending with an assistant turn)."""
    serving: Any
    """The same vocabulary in "test" mode: generation prompts (ending with a user or tool turn)."""
    source: str
    """Where the vocabulary came from, said for people."""
    version: str
    """The tokenizer version it encodes, and why that one."""
    independent: bool
    """False when mlx-lm's own backend is this very encoder (MistralCommonBackend on the same tekken.json)."""

    def figure(self) -> dict[str, Any]:
        return {"source": self.source, "version": self.version, "independent_of_mlx_lm": self.independent}


@dataclass(frozen=True)
class DetokenizerReport:
    """Ids back to text, through tokenizer.decode and mlx-lm's streaming detokenizer."""

    backend: str
    """The transformers tokenizer class."""
    detokenizer: str
    """mlx-lm's streaming detokenizer class (what mlx_lm.server and generate stream with)."""
    decoder: str
    """tokenizer.json's decoder, as its file says (or why there is none)."""
    checked: int
    """Texts round-tripped."""
    decode_wrong: tuple[str, ...]
    """Texts tokenizer.decode does not give back, first difference shown (all of them counted)."""
    decode_wrong_count: int
    """How many texts tokenizer.decode gets wrong."""
    stream_wrong: tuple[str, ...]
    """Texts the streaming detokenizer corrupts beyond multi-token characters, described."""
    stream_wrong_count: int
    """How many."""
    replaced: int
    """Texts whose only streaming damage is to non-ASCII characters (U+FFFD where a character
    spans several tokens, or the detokenizer raising at the end of one)."""
    replaced_chars: tuple[str, ...]
    """Those characters (the most frequent first)."""
    replaced_first: tuple[str, ...]
    """The first such texts, described."""
    stream_raised: tuple[str, ...] = ()
    """Of `replaced`, the texts the streaming detokenizer raised on (a server request would fail), described."""
    stream_raised_count: int = 0
    """How many."""

    @property
    def cause(self) -> str:
        """The decoder problem behind a wrong decode, when the files show one."""
        return "" if self.decoder.startswith(("ByteLevel", "mistral-common")) else self.decoder

    def figure(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "detokenizer": self.detokenizer,
            "decoder": self.decoder,
            "texts": self.checked,
            "decode_wrong": self.decode_wrong_count,
            "stream_wrong": self.stream_wrong_count,
            "stream_raised": self.stream_raised_count,
            "stream_replacement_chars": self.replaced,
            "replaced_chars": list(self.replaced_chars),
            "first": list(self.decode_wrong[:1] + self.stream_wrong[:1] + self.stream_raised[:1] + self.replaced_first[:1]),
        }


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


@lru_cache(maxsize=4)
def _reference(path: Path, mtime_ns: int, size: int, mode: str = "finetuning"):
    """mistral-common's tokenizer for a tekken file in `mode`, loaded once (~1 s).

    `mtime_ns` and `size` only key the cache: a rewritten file is loaded again.
    """
    from punie_gates.formats.tekken import reference_tokenizer

    return reference_tokenizer(path, validation_mode=mode)


def _load_reference(path: Path, mode: str):
    path = Path(path).resolve()
    stat = path.stat()
    try:
        return _reference(path, stat.st_mtime_ns, stat.st_size, mode)
    except Exception as exc:  # mistral-common's own validation of the file
        raise ReferenceUnavailable(f"mistral-common cannot load {path.name}: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=2)
def _built_reference(tokenizer_json: Path, mtime_ns: int, size: int) -> tuple[Any, Any, str]:
    """(finetuning, serving, version) of a tekken reference built from a tokenizer.json."""
    import json
    import tempfile

    from punie_gates.formats.tekken import reference_tokenizer, tekken_from_tokenizer_json

    try:
        doc = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReferenceUnavailable(f"{tokenizer_json.name} cannot be read: {exc}") from None
    tekken, version = tekken_from_tokenizer_json(doc)
    with tempfile.TemporaryDirectory(prefix="punie-gates-reference-") as scratch:
        path = Path(scratch) / "tekken.json"  # mistral-common recognises a tekken file by its name
        path.write_text(json.dumps(tekken), encoding="utf-8")
        try:
            return reference_tokenizer(path, "finetuning"), reference_tokenizer(path, "test"), version
        except Exception as exc:
            raise ReferenceUnavailable(f"mistral-common rejects the vocabulary of {tokenizer_json.name}: {exc}") from None


def build_reference(folder: Path, tokenizer=None) -> Reference:
    """mistral-common's encoder for the candidate's own vocabulary.

    Its tekken.json when one is shipped; otherwise a tekken reference built from its
    tokenizer.json's vocabulary and special tokens (formats.tekken), for the version
    those tokens imply. Raises ReferenceUnavailable saying why none can be built.
    `tokenizer` (mlx-lm's) only says whether the reference is independent of it.
    """
    import json

    folder = Path(folder)
    tekken = tekken_path_of(folder)
    mistral_backend = tokenizer is not None and type(backend_of(tokenizer)).__name__ == "MistralCommonBackend"
    if tekken is not None:
        try:
            version = str(json.loads(tekken.read_text(encoding="utf-8"))["config"]["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReferenceUnavailable(f"tekken.json has no readable config.version ({exc})") from None
        return Reference(
            finetuning=_load_reference(tekken, "finetuning"),
            serving=_load_reference(tekken, "test"),
            source="the candidate's tekken.json",
            version=f"{version} (tekken.json config.version)",
            independent=not mistral_backend,
        )
    tokenizer_json = folder / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise ReferenceUnavailable("the folder ships neither tekken.json nor tokenizer.json to take a vocabulary from")
    stat = tokenizer_json.stat()
    finetuning, serving, version = _built_reference(tokenizer_json.resolve(), stat.st_mtime_ns, stat.st_size)
    return Reference(
        finetuning=finetuning,
        serving=serving,
        source="tokenizer.json's vocabulary and special tokens (no tekken.json shipped)",
        version=version,
        independent=True,
    )


def serving_prompts(
    records: Sequence[Mapping], names: Sequence[str], limit: int | None = None
) -> tuple[list[dict], list[str]]:
    """Each record's generation prompt: its messages before the final assistant turn (ending
    with the user or tool turn the model answers), with its tools. With `limit`, the first
    record's and then records spread evenly, `limit` in all (prompts are prefixes of the
    records already compared whole: a sample finds a serving-mode difference)."""
    prompts, labels = [], []
    if limit is not None and len(records) > limit:
        step = (len(records) - 1) / max(1, limit - 1)
        picked = sorted({round(k * step) for k in range(limit)})
        records, names = [records[i] for i in picked], [names[i] for i in picked]
    for record, name in zip(records, names):
        messages = list(record["messages"])
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
        if last and messages[last - 1].get("role") in ("user", "tool"):
            prompts.append({"messages": messages[:last], "tools": record.get("tools")})
            labels.append(f"{name} (its prompt)")
    return prompts, labels


def reference_ids(records: Sequence[Mapping], reference: Reference, *, serving: bool = False) -> list[list[int] | str]:
    """mistral-common's ids for each record (or why it rejects it), to compare several paths with."""
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    encoder = reference.serving if serving else reference.finetuning
    out: list[list[int] | str] = []
    for record in records:
        try:
            messages, tools = list(record["messages"]), record.get("tools") or None
            request = ChatCompletionRequest.from_openai(messages=messages, tools=tools)
            out.append(list(encoder.encode_chat_completion(request).tokens))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def check_parity(
    records: Sequence[Mapping],
    tokenizer,
    reference: Reference | Path,
    limit: int | None = 1,
    rendered: Sequence[Sequence[int] | None] | None = None,
    label: str | Sequence[str] = "record",
    *,
    serving: bool = False,
    path_name: str = "mlx-lm",
    expected: Sequence[Sequence[int] | str] | None = None,
) -> ParityReport:
    """Compare the ids a rendering path gives with mistral-common's reference encoding.

    The reference is `encode_chat_completion` of the candidate's vocabulary in
    finetuning mode (training records) or, with `serving`, in test mode for
    generation prompts rendered as mlx_lm.server renders them. `reference` may be a
    tekken file. `rendered` reuses ids already rendered by `render_records`,
    `expected` the reference's own ids from `reference_ids`.
    Mismatches are counted over every record; the first `limit` are described with
    the position and the tokens around it; `path_name` names the path in them.
    """
    if not isinstance(reference, Reference):
        reference = Reference(_load_reference(reference, "finetuning"), _load_reference(reference, "test"),
                              str(reference), "", True)
    encoder = reference.serving if serving else reference.finetuning
    if expected is None:
        expected = reference_ids(records, reference, serving=serving)
    ref_pieces = encoder.instruct_tokenizer.tokenizer.id_to_piece
    render = render_prompt_ids if serving else render_ids
    backend = backend_of(tokenizer)
    examples: list[str] = []
    mismatched = 0
    headline = ""

    def mismatch(text: str, short: str = "") -> None:
        nonlocal mismatched, headline
        mismatched += 1
        headline = headline or short or text
        if limit is None or len(examples) < limit:
            examples.append(text)

    for index, record in enumerate(records):
        name = record_name(label, index)
        try:
            ours = list(rendered[index]) if rendered is not None and rendered[index] is not None else None
            if ours is None:
                ours = render(tokenizer, record["messages"], record.get("tools"))
        except Exception as exc:
            mismatch(f"{name}: {path_name} cannot render it: {type(exc).__name__}: {exc}")
            continue
        theirs = expected[index]
        if isinstance(theirs, str):
            mismatch(f"{name}: mistral-common rejects it: {theirs}")
            continue
        theirs = list(theirs)
        if ours == theirs:
            continue
        at = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        here = repr(_decode(backend, [ours[at]])) if at < len(ours) else "the end"
        there = repr(ref_pieces(theirs[at])) if at < len(theirs) else "the end"
        mismatch(
            f"{name}: ids differ at position {at}, {path_name} has {here} where mistral-common has {there} "
            f"({path_name} {len(ours)} ids, mistral-common {len(theirs)}): "
            f"{path_name} {_window(ours, at, lambda i: _decode(backend, [i]))} | "
            f"mistral-common {_window(theirs, at, ref_pieces)}",
            f"{path_name} has {here} where mistral-common has {there} at position {at} of {name}",
        )
    return ParityReport(records_checked=len(records), mismatched=mismatched, examples=tuple(examples), headline=headline)


@dataclass(frozen=True)
class Expectations:
    """mistral-common's ids for a run's records and for a sample of their prompts, computed
    once for every rendering path compared with them."""

    records: tuple[Mapping, ...]
    """The records, as trained (the canonical conversation first)."""
    names: tuple[str, ...]
    """Where each record came from."""
    record_ids: tuple[Sequence[int] | str, ...]
    """The reference's ids for each record (or why it rejects it)."""
    prompts: tuple[Mapping, ...]
    """Generation prompts of records spread evenly (serving_prompts)."""
    prompt_names: tuple[str, ...]
    """Where each prompt came from."""
    prompt_ids: tuple[Sequence[int] | str, ...]
    """The reference's ids for each prompt, in serving ("test") mode."""


def expectations(records: Sequence[Mapping], names: Sequence[str], reference: Reference, prompts: int) -> Expectations:
    sampled, labels = serving_prompts(records, names, limit=prompts)
    return Expectations(
        tuple(records), tuple(names), tuple(reference_ids(records, reference)),
        tuple(sampled), tuple(labels), tuple(reference_ids(sampled, reference, serving=True)),
    )  # fmt: skip


def compare_path(
    expected: Expectations, tokenizer, serving_tokenizer, reference: Reference, path_name: str, rendered=None
) -> tuple[ParityReport, ParityReport]:
    """(as trained, as served): one rendering path against the reference on every record
    and on the sampled prompts. `rendered` reuses ids already rendered for the records."""
    train = check_parity(expected.records, tokenizer, reference, rendered=rendered, label=expected.names,
                         path_name=path_name, expected=expected.record_ids)
    serve = check_parity(expected.prompts, serving_tokenizer, reference, serving=True, label=expected.prompt_names,
                         path_name=path_name, expected=expected.prompt_ids)
    return train, serve


def mlx_path_name(folder: Path, tokenizer) -> str:
    """mlx-lm's rendering path for a folder, said for people."""
    from punie_gates.model.tokenizer import shipped_template

    backend = type(backend_of(tokenizer)).__name__
    if backend == "MistralCommonBackend":
        return f"mlx-lm ({backend}, from tekken.json)"
    return f"mlx-lm ({backend}, {shipped_template(folder) or 'no chat template'})"


# -- ids back to text ------------------------------------------------------------------

# What every reply is made of: spaces, newlines, indentation, tabs, code, and the
# non-ASCII Punie's own code prints (its typed tools report with ✓ and ✗).
DETOKENIZER_PROBES: Mapping[str, str] = {
    "spaces": "Hello, my name is Punie.  Two  spaces, then   three.",
    "newlines": "first line\nsecond line\n\nafter a blank line\n",
    "indentation": "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    return all(n % d for d in range(2, n))\n",
    "tabs": "name\tcount\n\tindented with a tab\r\nwindows line end",
    "code": 'result = typecheck("src/")\nprint(f"{result.error_count} errors: {[e.message for e in result.errors]}")',
    "non_ascii": "✓ 3 passed, ✗ 1 failed: café, naïve, Grüß dich, 中文, 🎉",
}


def assistant_texts(records: Sequence[Mapping], names: Sequence[str]) -> list[tuple[str, str]]:
    """(where, text) of every assistant turn: its text and its calls' arguments as the
    model writes them (JSON), i.e. what a reply streams."""
    import json

    out = []
    for record, name in zip(records, names):
        for index, message in enumerate(record["messages"]):
            if message.get("role") != "assistant":
                continue
            calls = [json.dumps(c["function"]["arguments"], ensure_ascii=False) for c in message.get("tool_calls") or ()]
            text = (message.get("content") or "") + "".join(calls)
            if text:
                out.append((f"{name} messages[{index}]", text))
    return out


def _difference(expected: str, got: str) -> str:
    at = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    lo = max(0, at - 12)
    return f"at character {at}: expected {expected[lo:at + 12]!r}, got {got[lo:at + 12]!r}"


def _decoder_description(backend, folder: Path | None) -> str:
    import json

    if type(backend).__name__ == "MistralCommonBackend":
        return "mistral-common's own decode (MistralCommonBackend)"
    path = Path(folder) / "tokenizer.json" if folder is not None else None
    if path is None or not path.is_file():
        return "no tokenizer.json to read a decoder from"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "tokenizer.json cannot be read"
    decoder = doc.get("decoder")
    if not decoder:
        return ("tokenizer.json has no decoder, so byte-level pieces come back as text (Ġ for a space, Ċ for a "
                "newline); add its ByteLevel decoder")
    if decoder.get("type") != "ByteLevel" and "ByteLevel" in json.dumps(doc.get("pre_tokenizer")):
        return f"tokenizer.json's decoder is {decoder.get('type')}, not the ByteLevel decoder its pre-tokenizer needs"
    return str(decoder.get("type"))


class _StreamRaised(Exception):
    """mlx-lm's streaming detokenizer raised on these ids (the message says where and what)."""


def _streamed(tokenizer, ids: Sequence[int]) -> str:
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    step = "add_token"
    try:
        for token in ids:
            detokenizer.add_token(int(token))
        step = "finalize"
        detokenizer.finalize()
    except Exception as exc:  # the finding: mlx_lm.server's request would fail here
        raise _StreamRaised(f"{type(detokenizer).__name__}.{step} raised {type(exc).__name__}: {exc}") from None
    return detokenizer.text


def _leading_spaces_only(text: str, streamed: str) -> bool:
    """Whether `streamed` is `text` less some of its leading spaces (mlx-lm trims the start of a reply)."""
    return streamed == text or (text.endswith(streamed) and not text[: len(text) - len(streamed)].strip(" "))


def check_round_trip(tokenizer, texts: Sequence[tuple[str, str]], folder: Path | None = None, limit: int = 3) -> DetokenizerReport:
    """Encode each text, then decode it with tokenizer.decode and stream it through mlx-lm's
    detokenizer (`tokenizer` is an mlx-lm TokenizerWrapper); both must give it back exactly.

    Leading spaces the streaming detokenizer drops at the start of a reply are mlx-lm's
    convention and not counted. A stream difference that vanishes once the text's
    non-ASCII characters are taken out (U+FFFD in place of a character that spans
    several tokens, or the detokenizer raising at the end of one) is counted apart
    (`replaced`): it corrupts only those characters. Anything else is `stream_wrong`.
    """
    from collections import Counter

    backend = backend_of(tokenizer)
    decode_wrong: list[str] = []
    stream_wrong: list[str] = []
    replaced_first: list[str] = []
    raised: list[str] = []
    counts = [0, 0, 0, 0]
    chars: Counter[str] = Counter()

    def streams_right(text: str) -> tuple[bool, str, str | None]:
        ids = [int(i) for i in backend.encode(text, add_special_tokens=False)]
        try:
            streamed = _streamed(tokenizer, ids)
        except _StreamRaised as exc:
            return False, f"{exc} (at the end of {text[-24:]!r})", None
        return _leading_spaces_only(text, streamed), f"the stream {_difference(text, streamed)}", streamed

    for where, text in texts:
        ids = [int(i) for i in backend.encode(text, add_special_tokens=False)]
        decoded = backend.decode(ids, skip_special_tokens=False)
        if decoded != text:
            counts[0] += 1
            if len(decode_wrong) < limit:
                decode_wrong.append(f"{where}: tokenizer.decode {_difference(text, decoded)}")
        right, why, streamed = streams_right(text)
        if right:
            continue
        ascii_text = "".join(c for c in text if ord(c) < 128)
        if ascii_text != text and streams_right(ascii_text)[0]:
            counts[2] += 1
            if streamed is None:  # it raised on the character that ends the text
                chars.update(c for c in text[::-1][:1] if ord(c) >= 128)
            else:
                chars.update(c for c in text if ord(c) >= 128 and c not in streamed)
            if " raised " in why:
                counts[3] += 1
                if len(raised) < limit:
                    raised.append(f"{where}: {why}")
            elif len(replaced_first) < limit:
                replaced_first.append(f"{where}: {why}")
        else:
            counts[1] += 1
            if len(stream_wrong) < limit:
                stream_wrong.append(f"{where}: {why}")
    return DetokenizerReport(
        backend=type(backend).__name__,
        detokenizer=type(tokenizer.detokenizer).__name__,
        decoder=_decoder_description(backend, folder),
        checked=len(texts),
        decode_wrong=tuple(decode_wrong),
        decode_wrong_count=counts[0],
        stream_wrong=tuple(stream_wrong),
        stream_wrong_count=counts[1],
        replaced=counts[2],
        replaced_chars=tuple(c for c, _ in chars.most_common(8)),
        replaced_first=tuple(replaced_first),
        stream_raised=tuple(raised),
        stream_raised_count=counts[3],
    )


def tool_parsing_of(tokenizer) -> ToolParsing:
    """Which tool parser mlx_lm.server picks for this tokenizer (a TokenizerWrapper loaded as
    the server loads it: default mode), read from the wrapper, not guessed."""
    from punie_gates.answering.tool_parsing import ToolParsing

    parser = tokenizer.tool_parser
    return ToolParsing(
        tokenizer_class=type(backend_of(tokenizer)).__name__,
        tool_parser=getattr(parser, "__module__", None) if parser is not None else None,
        tool_call_start=tokenizer.tool_call_start,
        detokenizer=type(tokenizer.detokenizer).__name__,
    )


def naive_text_probe(tokenizer, marker: str) -> list[int]:
    """What the seed plan's Gate 0 did: encode the marker's text. Kept to show why it misleads."""
    return _text_ids(backend_of(tokenizer), marker)
