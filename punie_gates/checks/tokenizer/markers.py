"""Gate 0's marker check: render the canonical tool conversation and judge each format marker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from punie_gates.checks.tokenizer.vocabulary import (
    CONTROL_REQUIRED,
    FAMILY_MARKERS,
    REQUIRED_TOOL_MARKERS,
    SEED_DELIMITERS,
    control_token_ids,
    decode_ids,
    format_family,
    id_in_vocab,
    plain_text_ids,
)
from punie_gates.model.tokenizer import backend_of, render_ids

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
        render = (
            ()
            if self.finetuning_render_ok
            else (
                "the tokenizer cannot render a training conversation ending with an assistant turn "
                f"(mlx-lm's LoRA training would crash on such examples): {self.render_error}",
            )
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


# -- Gate 0 --------------------------------------------------------------------


def _marker_report(backend, marker: str, ids: Sequence[int], text: str, controls: set[int]) -> MarkerReport:
    vocab_id = id_in_vocab(backend, marker)
    plain = plain_text_ids(backend, marker)
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
    start = id_in_vocab(backend, "[TOOL_CALLS]")
    if start is None or start not in ids:
        return None
    inner = {i for i in (id_in_vocab(backend, "[ARGS]"), id_in_vocab(backend, "[CALL_ID]")) if i is not None}
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
    text = decode_ids(backend, ids) if ids else ""
    controls = control_token_ids(backend)

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
