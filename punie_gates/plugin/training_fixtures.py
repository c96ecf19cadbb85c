"""Module fixtures the training gates (4 and 5) share: train, fuse, load the fused model, answer.

A training gate module must define two module fixtures, which these fixtures build on:
`records` ((train, valid) for its run, drawn from `usable_training_data`) and
`gate_queries` (what it asks). A module whose tests need either without defining it is
refused at collection, naming the module (`check_training_modules`). These fixtures do
the rest for the module's gate, so the two gates train, fuse and answer exactly alike,
score the answers once (`answer_scores`, `answer_rows`: what every test that reports the
queries starts from), and measure the next step on the training data's held-out split
(`heldout`, `baseline_heldout`: checks.heldout) the same way.
"""

from __future__ import annotations

import pytest

from punie_gates.checks.comparison import query_rows
from punie_gates.checks.heldout import heldout_set, run_heldout, write_turns
from punie_gates.checks.multiturn import first_reply, run_multi_turn
from punie_gates.checks.scoring import score_answer
from punie_gates.checks.steps import (
    answer_gate_queries,
    answer_queries,
    fuse_for_gate,
    measure_retention,
    train_for_gate,
)
from punie_gates.errors import DataFileError
from punie_gates.formats.sampling import stratified_sample
from punie_gates.model.loading import holding, load_folder
from punie_gates.plugin.session import session_of

# The module fixtures a training gate module defines itself.
TRAINING_MODULE_FIXTURES = {
    "records": "(train, valid) records for the gate's run, drawn from usable_training_data",
    "gate_queries": "the queries the gate asks (query_set.for_gate(gate_id), or every query)",
}


def check_training_modules(items) -> None:
    """pytest.UsageError naming the module when a test needs a training module fixture
    (TRAINING_MODULE_FIXTURES) that its module does not define."""
    for item in items:
        defined = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", None)
        if defined is None:
            continue
        missing = [n for n in TRAINING_MODULE_FIXTURES if n in item.fixturenames and not defined.get(n)]
        if missing:
            module = getattr(getattr(item, "module", None), "__name__", str(item.path))
            needs = "; ".join(f"`{n}`: {TRAINING_MODULE_FIXTURES[n]}" for n in missing)
            raise pytest.UsageError(
                f"{module} ({item.path}): {item.name} uses the training gates' fixtures "
                f"(plugin/training_fixtures.py), which need the module fixtures it does not define: {needs}"
            )


def pytest_collection_modifyitems(items):
    check_training_modules(items)


@pytest.fixture(scope="module")
def training_gate(gate_id) -> str:
    """The training gate of the module asking (its gateN marker)."""
    return gate_id


@pytest.fixture(scope="module")
def usable_training_data(training_data, gate_config) -> tuple[list[dict], list[dict]]:
    """Every converted (train, valid) record; a run with none of either fails here, saying so."""
    train, valid = training_data
    if not train.records or not valid.records:
        raise DataFileError(
            f"no usable training data in {gate_config.training_data}: {train.converted} training and "
            f"{valid.converted} validation conversations converted ({train.rejected + valid.rejected} rejected)"
        )
    return list(train.records), list(valid.records)


@pytest.fixture(scope="module")
def trained(candidate_at_target_bits, records, gate_config, settings, training_gate, gate_steps, progress):
    """The LoRA adapter trained on `records` (cached by its inputs; resumes from checkpoints)."""
    train, valid = records
    validating = []  # seconds of each validation-loss pass, which training reports as it goes

    def watch(step, done, total, **figures):
        if step == "validate":
            validating.append(float(figures.get("seconds", 0.0)))
        progress(step, done, total, **figures)

    with gate_steps.measure("train") as step:
        result = train_for_gate(
            candidate_at_target_bits.path, train, valid, gate_config, iters=settings.iters, progress=watch
        )
        step.update(cached=result.cached, iters=result.iters_done, resumed_from=result.resumed_from)
    if validating:  # a part of the train step, not beside it: its own peaks are not separable
        gate_steps.add(
            training_gate,
            {"step": "evaluate", "seconds": round(sum(validating), 3), "part_of": "train", "passes": len(validating)},
        )
    return result


@pytest.fixture(scope="module")
def fused(candidate_at_target_bits, trained, gate_config, training_gate, gate_steps, pytestconfig, progress):
    """The fused model's folder at the target bits (streamed or the recipe: --fusion)."""
    with gate_steps.measure("fuse") as step:
        result = fuse_for_gate(
            candidate_at_target_bits.path, trained.adapter_dir, gate_config, gate=training_gate, progress=progress
        )
        step.update(cached=result.cached, method=result.method)
        if result.fallback:
            step["fallback"] = result.fallback
    session_of(pytestconfig).logs.record(training_gate, "the fused fixture", fusion=result.to_json())
    return result.path


@pytest.fixture(scope="module")
def retention(
    candidate_tokenizer, candidate_at_target_bits, trained, fused, records, gate_config, settings, gate_steps
):
    """How much of the adapter's effect the fused model keeps, on a sample of the validation
    records (the gate's `retention_examples`: every extra record costs three forward passes)."""

    sample = stratified_sample(records[1], settings.retention_examples, gate_config.seed)
    with gate_steps.measure("retention"):
        return measure_retention(candidate_tokenizer, candidate_at_target_bits.path, trained.adapter_dir, fused, sample)


@pytest.fixture(scope="module")
def fused_model(fused, gate_steps):
    """(model, tokenizer) of the fused model, held for the module and released after it."""

    def load():
        with gate_steps.measure("load"):
            return load_folder(fused)

    with holding(load) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def answers(answerer, gate_queries, records, catalog, system_prompt, gate_config, training_gate, gate_steps):
    """The fused model's greedy answers to the gate's queries (checks.steps.GateAnswers),
    asked through the module's `answerer` (--answer-via)."""

    with gate_steps.measure("answer"):
        return answer_gate_queries(
            answerer,
            gate_queries,
            records[0][0],
            catalog=catalog,
            system_prompt=system_prompt,
            save_to=gate_config.report_dir / f"{training_gate}-responses.jsonl",
        )


@pytest.fixture(scope="module")
def answer_scores(answers, catalog) -> dict:
    """The fused model's answers scored (checks.scoring.Score by query id), once per module."""
    return {q.id: score_answer(q, answers.generations[q.id], catalog) for q in answers.queries}


@pytest.fixture(scope="module")
def answer_rows(answers, answer_scores) -> list[dict]:
    """A report row per query for the fused model's answers (checks.comparison.query_rows): what
    the tests that record `queries` start from, each adding its own (baseline, multi-turn)."""
    return query_rows(answers.queries, answer_scores, answers.generations)


@pytest.fixture(scope="module")
def baseline_answers(baseline_answerer, gate_queries, system_prompt, gate_config, training_gate, gate_steps):
    """The baseline's answers to the same queries, asked and saved the way the candidate's
    were (gateN-baseline-responses.jsonl); None without --baseline."""
    if baseline_answerer is None:
        return None

    with gate_steps.measure("answer baseline"):
        answers = answer_queries(
            baseline_answerer,
            gate_queries,
            system_prompt=system_prompt,
            save_to=gate_config.report_dir / f"{training_gate}-baseline-responses.jsonl",
        )
    return {a.id: a for a in answers}


@pytest.fixture(scope="module")
def conversation_ask(answerer):
    """What the multi-turn pass asks after each tool result (an AskMany): the same path
    as the first turn, tools passed natively either way."""
    return answerer.ask_many()


@pytest.fixture(scope="module")
def conversations(answers, conversation_ask, query_set, catalog, system_prompt, gate_config, training_gate, gate_steps):
    """The gate's multi-turn pass (checks.multiturn.MultiTurn): each tool query continued from
    its first reply in `answers` (a server's parsed calls kept as it returned them), scored,
    saved as gateN-conversations.jsonl."""

    first = {qid: first_reply(a) for qid, a in answers.generations.items()}
    with gate_steps.measure("multi-turn"):
        return run_multi_turn(
            answers.queries,
            first,
            conversation_ask,
            catalog=catalog,
            system_prompt=system_prompt,
            max_turns=query_set.max_turns,
            save_to=gate_config.report_dir / f"{training_gate}-conversations.jsonl",
        )


@pytest.fixture(scope="module")
def heldout_turns(training_data, gate_config, catalog):
    """The held-out split's scorable turns (checks.heldout.HeldoutSet), cut to --heldout-limit;
    None with --heldout-limit 0."""

    if gate_config.heldout_limit == 0:
        return None
    return heldout_set(gate_config.training_data, training_data[1], catalog, gate_config.heldout_limit)


@pytest.fixture(scope="module")
def heldout(heldout_turns, conversation_ask, catalog, gate_config, training_gate, gate_steps, progress):
    """The fused model's next step at every held-out turn (checks.heldout.HeldoutRun), asked the way
    the multi-turn pass asks, saved as gateN-heldout.jsonl; None when not measured."""

    if heldout_turns is None:
        return None
    with gate_steps.measure("held-out") as step:
        run = run_heldout(heldout_turns, conversation_ask, catalog, batch=gate_config.gen_batch_size, progress=progress)
        step["note"] = f"{len(run.scores)} turns"
    write_turns(gate_config.report_dir / f"{training_gate}-heldout.jsonl", heldout_turns, run)
    return run


@pytest.fixture(scope="module")
def baseline_heldout(heldout_turns, baseline_answerer, catalog, gate_config, training_gate, gate_steps, progress):
    """The baseline's next steps at the same turns, asked the same way; None without --baseline."""
    if heldout_turns is None or baseline_answerer is None:
        return None

    with gate_steps.measure("held-out baseline") as step:
        run = run_heldout(
            heldout_turns,
            baseline_answerer.ask_many(),
            catalog,
            batch=gate_config.gen_batch_size,
            progress=progress,
            step="held-out baseline",
        )
        step["note"] = f"{len(run.scores)} turns"
    write_turns(gate_config.report_dir / f"{training_gate}-baseline-heldout.jsonl", heldout_turns, run)
    return run
