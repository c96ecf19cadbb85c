"""Gate 0 (hard), tokenizer side: the candidate's tool format survives tokenization.

The seed plan's Gate 0 encoded a guessed `[/TOOL_CALLS]` as text, found 7 pieces
and stopped the evaluation; Devstral's format never emits that text (a call ends
at `</s>`). Here the markers are those the candidate's own chat template emits,
looked up in its vocabulary; the seed's delimiters are reported beside them.
Nothing here opens a weights file.

Every rendering path the candidate ships is compared with an independent reference,
mistral-common's encoder for its own vocabulary (checks/tokenizer/ says how it is
built): a difference on the path mlx-lm trains and serves with fails the gate; a
difference only in a template mlx-lm does not use (tekken.json present) is a flag
naming the template. Ids must come back as their text through tokenizer.decode and
mlx-lm's streaming detokenizer; damage limited to characters that span several
tokens is a flag. The path production uses (mlx_lm.server and mlx_lm.lora in the
serving environment, through the serving plan) must render the reference's ids too;
a change Punie must make to its serving is a flag naming it.
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


@pytest.fixture(scope="module")
def mistral_family(candidate, gate0_report) -> bool:
    return gate0_report.family == "mistral" or candidate.family == "mistral"


@pytest.fixture(scope="module")
def reference(candidate, candidate_tokenizer, mistral_family):
    """mistral-common's encoder for the candidate's vocabulary, or why none can be built."""
    if not mistral_family:
        return None
    try:
        return tc.build_reference(candidate.path, candidate_tokenizer)
    except tc.ReferenceUnavailable as exc:
        return exc


@pytest.fixture(scope="module")
def with_canonical(converted_records) -> tuple[list[dict], list[str]]:
    """The canonical tool conversation, then every converted training record."""
    messages, tools = tc.canonical_conversation()
    records, names = converted_records
    return [{"messages": messages, "tools": tools}, *records], ["the canonical conversation", *names]


@pytest.fixture(scope="module")
def template_view(candidate):
    """The shipped template as a tokenizers backend renders it, when mlx-lm itself does not
    (tekken.json present): (template name, tokenizer), (name, why not loadable), or None."""
    template = mt.shipped_template(candidate.path)
    if mt.tekken_path_of(candidate.path) is None or template is None:
        return None
    try:
        return template, mt.load_tokenizers_backend(candidate.path)
    except Exception as exc:  # a broken template or tokenizer.json: the finding itself
        return template, f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="module")
def stream_texts(converted_records) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(probe texts, every assistant turn of the training data): what ids must come back as."""
    records, names = converted_records
    return [(f"probe {k}", v) for k, v in tc.DETOKENIZER_PROBES.items()], tc.assistant_texts(records, names)


@pytest.fixture(scope="module")
def serving_plan(candidate, serving_environment, catalog, gate_config, stream_texts):
    """How production's environment serves the folder (answering/plan.py): decided once, for the
    round trip (its probes stream the texts too) and the serving parity (what it renders)."""
    from punie_gates.answering.plan import plan_serving

    texts = tc.texts_to_stream(*stream_texts)
    return plan_serving(candidate.path, serving_environment, gate_config.work_dir, catalog.native_schemas(), texts)


# Generation prompts compared in serving mode: the canonical conversation's and records'
# spread evenly (each prompt is a prefix of a record already compared whole).
SERVING_PROMPTS = 100


@pytest.fixture(scope="module")
def expected_ids(reference, with_canonical) -> tc.Expectations | None:
    """mistral-common's ids for every record and the sampled prompts, computed once."""
    if reference is None or isinstance(reference, Exception):
        return None
    return tc.expectations(*with_canonical, reference, SERVING_PROMPTS)


def test_tokenizer_format_is_known(candidate, gate0_report, gate_record):
    gate_record.update(
        candidate=candidate.name,
        tokenizer_class=gate0_report.tokenizer_class,
        format_family=gate0_report.family,
    )
    assert gate0_report.family != "unknown", "; ".join(gate0_report.marker_failures)
    if candidate.family in tc.FAMILY_MARKERS:
        assert gate0_report.family == candidate.family, (
            f"{candidate.name}: config.json says a {candidate.family} model but its tokenizer "
            f"({gate0_report.tokenizer_class}) has the {gate0_report.family} chat format"
        )


def test_tool_markers_are_single_control_tokens(gate0_report, gate_record):
    gate_record.update(
        markers=gate0_report.marker_figures(),
        seed_delimiters=gate0_report.seed_figures(),
        canonical_conversation_ids=len(gate0_report.canonical_ids),
    )
    assert not gate0_report.marker_failures, (
        f"{gate0_report.tokenizer_class}: the tool-call format does not survive tokenization: "
        + "; ".join(gate0_report.marker_failures)
    )


def test_renders_a_training_conversation(gate0_report, gate_record):
    gate_record.update(finetuning_render="ok" if gate0_report.finetuning_render_ok else gate0_report.render_error)
    assert gate0_report.finetuning_render_ok, (
        f"{gate0_report.tokenizer_class} cannot render a conversation ending with an assistant turn, "
        f"which mlx-lm's ChatDataset renders for every training example: {gate0_report.render_error} "
        f"(load it with tokenizer_config={dict(mt.FINETUNING_TOKENIZER_CONFIG)})"
    )


def test_training_data_renders(rendered_records, gate_record):
    gate_record.update(training_render={"records": len(rendered_records.ids), "failed": len(rendered_records.errors)})
    errors = rendered_records.errors
    assert not errors, f"{len(errors)} converted training example(s) cannot be rendered: " + "; ".join(errors[:3])


def test_training_data_holds_no_split_marker(converted_records, candidate_tokenizer, gate0_report, gate_record):
    records, names = converted_records
    found = tc.find_split_markers(records, candidate_tokenizer, family=gate0_report.family, label=names)
    gate_record.update(split_markers={"count": len(found), "first": found[:3]})
    assert not found, (
        f"{len(found)} place(s) in the converted training data write a format marker as text, "
        "which the model would learn as something other than the marker: " + "; ".join(found[:3])
    )


def test_tokenizer_parity_with_mistral_common(
    candidate,
    candidate_tokenizer,
    candidate_serving_tokenizer,
    gate0_report,
    mistral_family,
    reference,
    expected_ids,
    rendered_records,
    gate_record,
):
    if not mistral_family:
        gate_record.update(parity=f"not made: the {gate0_report.family} format has no mistral-common reference")
        return
    assert not isinstance(reference, Exception), (
        f"no independent reference for {candidate.name}'s tokenizer, so the ids mlx-lm trains on cannot be "
        f"checked: {reference}"
    )
    path = tc.mlx_path_name(candidate.path, candidate_tokenizer)
    started = time.perf_counter()
    train, serve = tc.compare_path(
        expected_ids,
        candidate_tokenizer,
        candidate_serving_tokenizer,
        reference,
        "mlx-lm",
        rendered=[None, *rendered_records.ids],
    )
    gate_record.update(parity={
        **reference.figure(), "path": path, **train.figure(),
        "serving": serve.figure(), "seconds": round(time.perf_counter() - started, 2),
    })  # fmt: skip
    differ = train if train.mismatched else serve
    assert not (train.mismatched or serve.mismatched), (
        f"{differ.headline}: {train.mismatched} of {train.records_checked} training examples and "
        f"{serve.mismatched} of {serve.records_checked} generation prompts get other ids from {path} than from "
        f"mistral-common's reference for its own vocabulary ({reference.source}, {reference.version}), so the "
        f"model would be trained and served in another format than its own; first: {differ.examples[0]}"
    )


def test_every_shipped_template_renders_like_the_reference(
    candidate, mistral_family, reference, template_view, expected_ids, gate_record
):
    """A template mlx-lm does not use (tekken.json decides) is still what transformers'
    tokenizers backend, LM Studio and llama.cpp render with: compared, and flagged."""
    template = mt.shipped_template(candidate.path)
    if not mistral_family:
        gate_record.update(template_parity="not made: no mistral-common reference for this format")
        return
    if template_view is None:
        why = (
            "no chat template ships beside tekken.json"
            if template is None
            else f"{template} is mlx-lm's own path, compared with the reference above"
        )
        gate_record.update(template_parity=why)
        return
    name, view = template_view
    if isinstance(reference, Exception):
        gate_record.update(template_parity=f"not made: {reference}")
        return
    if isinstance(view, str):
        gate_record.update(template_parity=f"not made: {name} cannot be loaded ({view})")
        gate_record.flag(
            f"{name} cannot be loaded by transformers' tokenizers backend ({view}); mlx-lm uses tekken.json, so not a NO-GO"
        )
        return
    started = time.perf_counter()
    train, serve = tc.compare_path(expected_ids, view, view, reference, name)
    gate_record.update(template_parity={
        "template": name, **train.figure(), "serving": serve.figure(), "seconds": round(time.perf_counter() - started, 2),
    })  # fmt: skip
    if train.mismatched or serve.mismatched:
        differ = train if train.mismatched else serve
        gate_record.flag(
            f"{name} differs from mistral-common's reference: {differ.headline} ({train.mismatched} of "
            f"{train.records_checked} training examples, {serve.mismatched} of {serve.records_checked} prompts). "
            "It is what transformers' tokenizers backend, LM Studio and llama.cpp users render with, and mlx-lm "
            "wherever mistral-common is not installed (judged on the serving path); mlx-lm with mistral-common "
            f"renders with tekken.json; first: {differ.examples[0]}"
        )


def test_ids_come_back_as_the_same_text(
    candidate, candidate_serving_tokenizer, stream_texts, template_view, serving_plan, gate_record
):
    """tokenizer.decode and mlx-lm's streaming detokenizer on probe texts and every assistant turn
    of the training data, judged where they are served: the serving probe streams them in the
    serving environment on the folder the serving plan serves (what mlx_lm.server streams with).
    The suite's own load (mistral-common installed) is measured beside it and flags nothing."""
    probes, turns = stream_texts
    started = time.perf_counter()
    on_probes, on_data = tc.check_served_round_trip(serving_plan, probes, turns)
    served = f"{on_probes.backend} in {serving_plan.environment.describe()}, {serving_plan.served_folder}"
    gate_record.update(
        detokenizer={
            **on_probes.figure(),
            "training_data": on_data.figure(),
            "served": served,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    # The suite's own load, streamed only when it is not the served backend (then it is reported, never judged).
    if type(mt.backend_of(candidate_serving_tokenizer)).__name__ != on_probes.backend:
        here = [tc.check_round_trip(candidate_serving_tokenizer, t, candidate.path) for t in (probes, turns)]
        gate_record.update(
            detokenizer_in_suite={
                **here[0].figure(),
                "training_data": here[1].figure(),
                "judged": False,
                "note": f"the suite's own load ({here[0].backend}, what mlx-lm gives where mistral-common is "
                f"installed), not what is served ({served}): reported, flags nothing",
            },
        )
    view = template_view[1] if template_view and not isinstance(template_view[1], str) else None
    others = [tc.check_round_trip(view, t, candidate.path) for t in (probes, turns)] if view is not None else []
    if others:
        gate_record.update(detokenizer_without_tekken={**others[0].figure(), "training_data": others[1].figure()})
        if wrong := [r for r in others if r.decode_wrong_count or r.stream_wrong_count]:
            gate_record.flag(
                f"without tekken.json ({wrong[0].backend}, as LM Studio and other tokenizers-backend users load it) "
                f"ids do not come back as their text"
                + (f" ({wrong[0].cause})" if wrong[0].cause else "")
                + f": {(wrong[0].decode_wrong + wrong[0].stream_wrong)[0]}"
            )
    if on_probes.replaced or on_data.replaced:
        chars = " ".join(dict.fromkeys(on_data.replaced_chars + on_probes.replaced_chars))
        raised = on_probes.stream_raised_count + on_data.stream_raised_count
        gate_record.flag(
            f"mlx_lm.server would stream {chars} as U+FFFD: {on_data.replaced} of {on_data.checked} assistant "
            f"turns of the training data, {on_probes.replaced} of {on_probes.checked} probe texts"
            + (f" ({raised} raising at the end of a reply)" if raised else "")
            + f" ({on_probes.detokenizer} over {served}); tokenizer.decode gives them back exactly"
            + f"; first: {(on_data.replaced_first + on_probes.stream_raised + on_probes.replaced_first)[0]}"
        )
    wrong = [r for r in (on_probes, on_data) if r.decode_wrong_count or r.stream_wrong_count]
    assert not wrong, (
        f"{wrong[0].cause or 'ids do not come back as the text they encode'}: tokenizer.decode gets "
        f"{on_probes.decode_wrong_count} of {on_probes.checked} probe texts and {on_data.decode_wrong_count} of "
        f"{on_data.checked} assistant turns wrong, mlx-lm's streaming detokenizer ({on_probes.detokenizer}) "
        f"{on_probes.stream_wrong_count} and {on_data.stream_wrong_count} ({served}); every reply would "
        f"be corrupted text and Gate 1 would blame the model; first: {(wrong[0].decode_wrong + wrong[0].stream_wrong)[0]}"
    )


def test_served_and_trained_as_production_renders(
    candidate, candidate_tokenizer, serving_environment, serving_plan, reference, expected_ids, gate_record
):
    """How production's environment serves the folder (the serving plan: backend, tool parser,
    detokenizer, template; the change Punie must make, a flag), and the ids it renders there
    for generation prompts and training records against the reference (checks/serving_parity.py)."""
    from punie_gates.checks.serving_parity import check_serving_parity

    plan = serving_plan
    gate_record.update(serving_plan=plan.to_json())
    if plan.change:
        gate_record.flag(f"Punie must change how it serves {candidate.name}: {plan.change}")
    if expected_ids is None or isinstance(reference, Exception):
        gate_record.update(serving_parity="not made: no mistral-common reference for this format")
        return
    prompts, records, found = check_serving_parity(plan, expected_ids, reference)
    same_path = (
        serving_environment.hide_mistral_common
        and plan.served_folder == candidate.path.resolve()
        and found.get("tokenizer_class") == type(mt.backend_of(candidate_tokenizer)).__name__
    )
    gate_record.update(
        serving_parity={
            "prompts": prompts.figure(),
            "records": records.figure(),
            "regex_warning": found.get("regex_warning"),
            "fix_mistral_regex_matches": found.get("fix_mistral_regex_matches"),
            **({"same_path_as": "parity"} if same_path else {}),
        },
    )
    # The same backend on the same files in the same libraries as the parity check above: judged there once.
    differ = [p for p in (prompts, records) if p.mismatched and not same_path]
    fix = (
        " (with fix_mistral_regex=True the ids match; mlx_lm.server and mlx_lm.lora take no such setting "
        "from their command line)"
        if found.get("fix_mistral_regex_matches")
        else ""
    )
    assert not differ, (
        f"on the path production uses ({plan.environment.describe()}, {plan.served_folder}), "
        + "; ".join(f"{p.mismatched} of {p.checked} {p.kind}" for p in differ)
        + f" get other ids than mistral-common's reference: training and serving would feed the model another "
        f"format than its own; first: {differ[0].first}{fix}"
    )


@pytest.mark.gate_decision
def test_gate0_decision(gate_outcome, gate_record, gate0_clock):
    gate_record.update(seconds=round(time.perf_counter() - gate0_clock, 2))
    gate_outcome.check()
