"""Gate 0 on the path production uses: the serving environment's ids against mistral-common's reference.

Gate 0's other parity checks render in the suite's own process, where mistral-common is
installed, so with tekken.json in the folder they compare mistral-common with itself.
Production (Punie: mlx-lm 0.30.6, transformers 5.1.0, no mistral-common) renders
generation prompts in `mlx_lm.server` and training records in `mlx_lm.lora`, both
through `mlx_lm.utils.load_tokenizer` in that environment. Here the serving probe
(answering/serving_probe.py), run by the serving interpreter on the folder the serving
plan serves, renders the generation prompts with tools (`apply_chat_template(...,
add_generation_prompt=True)`, as the server renders a chat request) and the training
records (`apply_chat_template(messages, tools=...)`, as mlx_lm.lora's ChatDataset
does), and each must equal the reference's ids. A difference names the first differing
position and its cause where it can be told: the same text split differently is the
pre-tokenizer (transformers warns that Mistral tokenizer.json files saved before 5.0
carry an incorrect regex unless `fix_mistral_regex=True`; the probe says whether the
ids then match, a setting neither mlx_lm.server nor mlx_lm.lora takes from its command
line), other text is the chat template.

What was found, on the demo folder (tekken.json, tokenizer.json, chat_template.jinja),
with transformers 5.25 / mlx-lm 0.32.2 and mistral-common hidden (the default server):
`TokenizersBackend`, `mlx_lm.tool_parsers.mistral`, `BPEStreamingDetokenizer`, the
regex warning printed, and prompts and records equal to the reference. With
mistral-common importable the same folder loads `MistralCommonBackend`, which refuses
to render a record ending with an assistant turn in its default mode: mlx_lm.lora (which
passes no mode) cannot train on it there.

Training (Gates 4-5) runs in the suite's process; it loads the tokenizer with
`mistral_format=False` (model/training.py), which gives the same `TokenizersBackend`
from tokenizer.json and chat_template.jinja, so it renders as mlx_lm.lora does where
mistral-common is absent. The suite's transformers renders it: with --serve-python
naming another transformers, this check's ids are production's, training's the suite's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PathParity:
    """One rendering kind (generation prompts or training records) on the serving path."""

    kind: str
    """"generation prompts" or "training records"."""
    checked: int
    """How many were compared."""
    mismatched: int
    """How many differ from the reference (or cannot be rendered)."""
    first: str
    """The first difference, described (position, tokens, cause), or ""."""
    cause: str
    """"template", "pre-tokenizer", "render" (the path cannot render it) or "" when none differ."""

    def figure(self) -> dict[str, Any]:
        return {"checked": self.checked, "mismatches": self.mismatched, "first": self.first, "cause": self.cause}


def _pieces(reference, ids: Sequence[int]) -> str:
    piece = reference.finetuning.instruct_tokenizer.tokenizer.id_to_piece
    return "".join(piece(i) for i in ids)


def compare(
    kind: str, names: Sequence[str], got: Sequence[Any], expected: Sequence[Any], reference, path: str
) -> PathParity:
    """The probe's ids (`got`: a list of ids, or {"error"}) against the reference's (`expected`: ids or
    why mistral-common rejects it), item by item."""
    piece = reference.finetuning.instruct_tokenizer.tokenizer.id_to_piece
    mismatched, first, cause = 0, "", ""
    for name, ours, theirs in zip(names, got, expected, strict=True):
        if isinstance(theirs, str):
            continue  # the reference rejects it: Gate 0's own parity test reports that
        if isinstance(ours, Mapping):
            mismatched += 1
            if not first:
                first, cause = f"{name}: {path} cannot render it: {ours.get('error')}", "render"
            continue
        if list(ours) == list(theirs):
            continue
        mismatched += 1
        if first:
            continue
        at = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        here = repr(piece(ours[at])) if at < len(ours) else "the end"
        there = repr(piece(theirs[at])) if at < len(theirs) else "the end"
        same_text = _pieces(reference, ours) == _pieces(reference, theirs)
        cause = "pre-tokenizer" if same_text else "template"
        why = (
            "the same text split into other tokens: the pre-tokenizer regex of tokenizer.json "
            "(transformers' fix_mistral_regex)"
            if same_text
            else "other text: the chat template renders differently"
        )
        first = (
            f"{name}: ids differ at position {at}: {path} has {here} where mistral-common has {there} "
            f"({len(ours)} vs {len(theirs)} ids): {why}"
        )
    return PathParity(kind, len(names), mismatched, first, cause)


def check_serving_parity(plan, expectations, reference) -> tuple[PathParity, PathParity, dict[str, Any]]:
    """(prompts, records, what the probe found): the serving environment's ids for the sampled
    generation prompts and every training record of `expectations` (checks.tokenizer.Expectations)
    on the folder `plan` serves (answering.plan.ServingPlan), against the reference's."""
    found = plan.environment.probe(
        {
            "folder": str(plan.served_folder),
            "prompts": [{"messages": list(p["messages"]), "tools": p.get("tools")} for p in expectations.prompts],
            "records": [{"messages": list(r["messages"]), "tools": r.get("tools")} for r in expectations.records],
        }
    )
    path = f"{found.get('tokenizer_class')} in {plan.environment.describe()}"
    prompts = compare(
        "generation prompts", expectations.prompt_names, found["prompt_ids"], expectations.prompt_ids, reference, path
    )
    records = compare(
        "training records", expectations.names, found["record_ids"], expectations.record_ids, reference, path
    )
    if "pre-tokenizer" in (prompts.cause, records.cause):
        fixed = plan.environment.probe(
            {
                "folder": str(plan.served_folder),
                "tokenizer_config": {"fix_mistral_regex": True},
                "prompts": [{"messages": list(p["messages"]), "tools": p.get("tools")} for p in expectations.prompts],
                "records": [{"messages": list(r["messages"]), "tools": r.get("tools")} for r in expectations.records],
            }
        )
        again = [
            compare(k, n, g, e, reference, path).mismatched
            for k, n, g, e in (
                ("generation prompts", expectations.prompt_names, fixed["prompt_ids"], expectations.prompt_ids),
                ("training records", expectations.names, fixed["record_ids"], expectations.record_ids),
            )
        ]
        found = {**found, "fix_mistral_regex_matches": not any(again)}
    return prompts, records, found
