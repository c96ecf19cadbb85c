"""Parity: the ids each rendering path gives (as trained, as served) against the reference's ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie_gates.checks.tokenizer.reference import Reference, load_reference, reference_ids
from punie_gates.checks.tokenizer.vocabulary import decode_ids
from punie_gates.model.tokenizer import backend_of, record_name, render_ids, render_prompt_ids, shipped_template


@dataclass(frozen=True)
class ParityReport:
    records_checked: int
    mismatched: int
    examples: tuple[str, ...]  # the first `limit` mismatches, described
    headline: str = (
        ""  # the first mismatch in a few words: "X has '</s>' where mistral-common has '[TOOL_CALLS]' at ..."
    )

    def figure(self) -> dict[str, Any]:
        return {"records_checked": self.records_checked, "mismatches": self.mismatched, "first": list(self.examples)}


def _window(ids: Sequence[int], at: int, pieces) -> str:
    lo, hi = max(0, at - 3), min(len(ids), at + 4)
    shown = [f"{i}:{pieces(i)!r}" for i in ids[lo:hi]]
    return ("... " if lo else "") + " ".join(shown) + (" ..." if hi < len(ids) else "")


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
        reference = Reference(
            load_reference(reference, "finetuning"), load_reference(reference, "test"), str(reference), "", True
        )
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
        here = repr(decode_ids(backend, [ours[at]])) if at < len(ours) else "the end"
        there = repr(ref_pieces(theirs[at])) if at < len(theirs) else "the end"
        mismatch(
            f"{name}: ids differ at position {at}, {path_name} has {here} where mistral-common has {there} "
            f"({path_name} {len(ours)} ids, mistral-common {len(theirs)}): "
            f"{path_name} {_window(ours, at, lambda i: decode_ids(backend, [i]))} | "
            f"mistral-common {_window(theirs, at, ref_pieces)}",
            f"{path_name} has {here} where mistral-common has {there} at position {at} of {name}",
        )
    return ParityReport(
        records_checked=len(records), mismatched=mismatched, examples=tuple(examples), headline=headline
    )


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
    train = check_parity(
        expected.records,
        tokenizer,
        reference,
        rendered=rendered,
        label=expected.names,
        path_name=path_name,
        expected=expected.record_ids,
    )
    serve = check_parity(
        expected.prompts,
        serving_tokenizer,
        reference,
        serving=True,
        label=expected.prompt_names,
        path_name=path_name,
        expected=expected.prompt_ids,
    )
    return train, serve


def mlx_path_name(folder: Path, tokenizer) -> str:
    """mlx-lm's rendering path for a folder, said for people."""
    backend = type(backend_of(tokenizer)).__name__
    if backend == "MistralCommonBackend":
        return f"mlx-lm ({backend}, from tekken.json)"
    return f"mlx-lm ({backend}, {shipped_template(folder) or 'no chat template'})"
