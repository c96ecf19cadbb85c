"""Gate 0 (hard), tokenizer side: the candidate's tool format survives tokenization.

The seed plan's Gate 0 encoded a guessed `[/TOOL_CALLS]` as text, found 7 pieces
and stopped the evaluation; Devstral's format never emits that text (a call ends
at `</s>`). Here the markers are those the candidate's own chat template emits,
looked up in its vocabulary; the seed's delimiters are reported beside them.
Nothing here opens a weights file.
"""

from __future__ import annotations

import time

import pytest

from punie_gates.checks import tokenizer as tc
from punie_gates.model import tokenizer as mt

pytestmark = [pytest.mark.gate0]


@pytest.fixture(scope="module", autouse=True)
def gate0_clock() -> float:
    return time.perf_counter()


@pytest.fixture(scope="module")
def gate0_report(candidate_tokenizer) -> tc.Gate0Report:
    return tc.inspect_tokenizer(candidate_tokenizer)


@pytest.fixture(scope="module")
def converted_records(training_data) -> tuple[list[dict], list[str]]:
    """Every converted training record, with a name saying where it came from."""
    records: list[dict] = []
    names: list[str] = []
    for split, result in zip(("train", "valid"), training_data):
        lines = result.record_lines or tuple(range(len(result.records)))
        for record, line in zip(result.records, lines):
            records.append(record)
            names.append(f"{split}.jsonl line {line}" if result.record_lines else f"{split}[{line}]")
    return records, names


@pytest.fixture(scope="module")
def rendered_records(converted_records, candidate_tokenizer) -> mt.Rendered:
    records, names = converted_records
    return mt.render_records(records, candidate_tokenizer, label=names)


def test_tokenizer_format_is_known(candidate, gate0_report, gate_record):
    gate_record("candidate", candidate.name)
    gate_record("tokenizer_class", gate0_report.tokenizer_class)
    gate_record("format_family", gate0_report.family)
    assert gate0_report.family != "unknown", "; ".join(gate0_report.marker_failures)
    if candidate.family in tc.FAMILY_MARKERS:
        assert gate0_report.family == candidate.family, (
            f"{candidate.name}: config.json says a {candidate.family} model but its tokenizer "
            f"({gate0_report.tokenizer_class}) has the {gate0_report.family} chat format"
        )


def test_tool_markers_are_single_control_tokens(gate0_report, gate_record):
    gate_record("markers", gate0_report.marker_figures())
    gate_record("seed_delimiters", gate0_report.seed_figures())
    gate_record("canonical_conversation_ids", len(gate0_report.canonical_ids))
    assert not gate0_report.marker_failures, (
        f"{gate0_report.tokenizer_class}: the tool-call format does not survive tokenization: "
        + "; ".join(gate0_report.marker_failures)
    )


def test_renders_a_training_conversation(gate0_report, gate_record):
    gate_record("finetuning_render", "ok" if gate0_report.finetuning_render_ok else gate0_report.render_error)
    assert gate0_report.finetuning_render_ok, (
        f"{gate0_report.tokenizer_class} cannot render a conversation ending with an assistant turn, "
        f"which mlx-lm's ChatDataset renders for every training example: {gate0_report.render_error} "
        f"(load it with tokenizer_config={dict(mt.FINETUNING_TOKENIZER_CONFIG)})"
    )


def test_training_data_renders(rendered_records, gate_record):
    gate_record("training_render", {"records": len(rendered_records.ids), "failed": len(rendered_records.errors)})
    errors = rendered_records.errors
    assert not errors, f"{len(errors)} converted training example(s) cannot be rendered: " + "; ".join(errors[:3])


def test_training_data_holds_no_split_marker(converted_records, candidate_tokenizer, gate0_report, gate_record):
    records, names = converted_records
    found = tc.find_split_markers(records, candidate_tokenizer, family=gate0_report.family, label=names)
    gate_record("split_markers", {"count": len(found), "first": found[:3]})
    assert not found, (
        f"{len(found)} place(s) in the converted training data write a format marker as text, "
        "which the model would learn as something other than the marker: " + "; ".join(found[:3])
    )


def test_tokenizer_parity_with_mistral_common(
    candidate, candidate_tokenizer, gate0_report, converted_records, rendered_records, gate_record
):
    if gate0_report.family != "mistral":
        gate_record("parity", f"not applicable: the {gate0_report.family} format has no mistral-common reference")
        return
    tekken = mt.tekken_path_of(candidate.path)
    if tekken is None:
        gate_record("parity", "not applicable (no tekken.json in candidate)")
        return
    records, names = converted_records
    started = time.perf_counter()
    parity = tc.check_parity(records, candidate_tokenizer, tekken, limit=1, rendered=rendered_records.ids, label=names)
    gate_record("parity", {**parity.figure(), "seconds": round(time.perf_counter() - started, 2)})
    assert parity.mismatched == 0, (
        f"{parity.mismatched} of {parity.records_checked} training examples get other ids from mlx-lm "
        f"({gate0_report.tokenizer_class}) than from mistral-common's reference encoder: {parity.examples[0]}"
    )


@pytest.mark.gate_decision
def test_gate0_decision(gate_outcome, gate_record, gate0_clock):
    gate_record("seconds", round(time.perf_counter() - gate0_clock, 2))
    gate_outcome.check()
