"""The held-out next-step measure: which turns it scores, how it scores a reply, its figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from punie_gates.answering.conversation import reply_from_message
from punie_gates.checks.heldout import (
    heldout_figures,
    heldout_problem,
    heldout_set,
    paired_heldout,
    run_heldout,
    score_turn,
    with_baseline,
)
from punie_gates.formats.to_mistral import convert_training_folder
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.paths import data_dir, fixtures_dir

DEMO = fixtures_dir() / "demo-training"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(data_dir() / "tools.toml")


def _set(folder: Path, catalog, limit=None):
    _, valid = convert_training_folder(folder, tools=catalog.native_schemas())
    return heldout_set(folder, valid, catalog, limit)


def _reference_reply(turn, folder: Path, catalog):
    """The reference's own next message, as a server would return it."""
    _, valid = convert_training_folder(folder, tools=catalog.native_schemas())
    line, nth = turn.id[1:].split(".")
    record = valid.records[valid.record_lines.index(int(line))]
    message = [m for m in record["messages"] if m["role"] == "assistant"][int(nth) - 1]
    return reply_from_message({"content": message.get("content", ""), "tool_calls": message.get("tool_calls")})


def _code_reply(code: str, content: str = ""):
    return reply_from_message(
        {
            "content": content,
            "tool_calls": [{"function": {"name": "execute_code", "arguments": json.dumps({"code": code})}}],
        }
    )


def test_every_assistant_turn_of_the_demo_split_is_a_turn(catalog):
    hset = _set(DEMO, catalog)
    assert (hset.available, hset.conversations, hset.overlap) == (17, 10, 0)
    assert sum(t.expect == "tool" for t in hset.turns) == 7
    first_tool = next(t for t in hset.turns if t.expect == "tool")
    assert first_tool.prompt[-1]["role"] == "user" and first_tool.tools == ("typecheck",)
    after = [t for t in hset.turns if t.category == "answer_after_result"]
    assert after and all(t.prompt[-1]["role"] == "tool" and t.expect == "direct" for t in after)


def test_conversations_also_in_train_are_left_out(tmp_path, catalog):
    for name in ("train.jsonl", "valid.jsonl"):
        shutil.copy(DEMO / name, tmp_path / name)
    shared = (DEMO / "valid.jsonl").read_text(encoding="utf-8").splitlines()[1]  # a tool conversation
    with (tmp_path / "train.jsonl").open("a", encoding="utf-8") as f:
        f.write(shared + "\n")
    hset = _set(tmp_path, catalog)
    assert (hset.overlap, hset.conversations, hset.available) == (1, 9, 15)
    assert not any(t.id.startswith("L2.") for t in hset.turns)
    assert len(_set(tmp_path, catalog, limit=4).turns) == 4


def test_the_reference_passes_its_own_turns(catalog):
    hset = _set(DEMO, catalog)
    for turn in hset.turns:
        score = score_turn(turn, _reference_reply(turn, DEMO, catalog), catalog)
        assert score.passed, (turn.id, score.reason)


def test_a_reply_fails_with_other_tools_extra_tools_bad_code_or_unknown_fields(catalog):
    turn = next(t for t in _set(DEMO, catalog).turns if t.tools == ("typecheck",))
    assert score_turn(turn, _code_reply("r = typecheck('src/')\nprint(r.error_count)"), catalog).passed
    wrong = score_turn(turn, _code_reply("r = ruff_check('src/')\nprint(r.violation_count)"), catalog)
    extra = score_turn(
        turn, _code_reply("print(typecheck('src/').error_count, ruff_check('src/').violation_count)"), catalog
    )
    broken = score_turn(turn, _code_reply("r = typecheck('src/'\nprint(r)"), catalog)
    unknown = score_turn(turn, _code_reply("print(typecheck('src/').bogus_field)"), catalog)
    text = score_turn(turn, reply_from_message({"content": "No errors."}), catalog)
    failed = score_turn(turn, RuntimeError("template"), catalog)
    for score in (wrong, extra, broken, unknown, text, failed):
        assert not score.passed, score.reason
    assert "besides the reference's tools" in extra.reason and "bogus_field" in unknown.reason


def test_a_direct_turn_passes_with_text_and_fails_with_a_call(catalog):
    turn = next(t for t in _set(DEMO, catalog).turns if t.category == "direct_answers")
    assert score_turn(turn, reply_from_message({"content": "A small anonymous function."}), catalog).passed
    assert not score_turn(turn, _code_reply("print(git_status('.').clean)"), catalog).passed


def test_figures_with_a_baseline_and_a_criterion(catalog):
    hset = _set(DEMO, catalog)
    text_only = lambda batch: [reply_from_message({"content": "Done."}) for _ in batch]  # noqa: E731
    perfect = lambda batch: [_reference_reply(t, DEMO, catalog) for t in hset.turns[: len(batch)]]  # noqa: E731
    seen = []

    def progress(step, done, total):
        seen.append((step, done, total))

    mine = run_heldout(hset, text_only, catalog, batch=100, progress=progress)
    theirs = run_heldout(hset, perfect, catalog, batch=100)
    assert seen == [("held-out", 17, 17)]
    figures = heldout_figures(hset, mine, minimum=12)
    assert (figures["total"], figures["passed"], figures["tool_turns"], figures["tool_turns_passed"]) == (17, 10, 7, 0)
    assert figures["interval"]["low"] < 10 / 17 < figures["interval"]["high"]
    assert figures["categories"]["direct_answers"]["passed"] == figures["categories"]["direct_answers"]["total"]
    assert figures["criteria"][0]["criterion"] == "held-out overall" and not figures["criteria"][0]["met"]
    assert heldout_problem(figures) == "held-out next steps: 10/17 turns passed, expected >= 12"
    assert heldout_problem(heldout_figures(hset, mine)) is None  # a measure only
    both = with_baseline(figures, paired_heldout(hset, mine, theirs, alpha=0.05))
    assert both["baseline_passed"] == 17 and both["mcnemar"]["only_baseline"] == 7
    assert both["mcnemar"]["p_candidate_worse"] == pytest.approx(2**-7)
    assert "could not be seen with 17 turns" in both["detectable"]["sentence"]
    assert both["categories"]["direct_answers"]["mcnemar"]["discordant"] == 0


def test_a_limit_leaves_the_criterion_unjudged(catalog):
    hset = _set(DEMO, catalog, limit=5)
    run = run_heldout(hset, lambda batch: [reply_from_message({"content": "x"}) for _ in batch], catalog, batch=2)
    figures = heldout_figures(hset, run, minimum=3)
    assert figures["limited"] and not figures["judged"] and figures["criteria"] == []
    assert "cannot be judged" in heldout_problem(figures)


def test_the_limit_is_an_option_ini_key_and_environment_variable(tmp_path):
    from punie_gates.errors import OptionError
    from punie_gates.inputs.options import resolve_options

    assert resolve_options({}, root=tmp_path, environ={}).heldout_limit is None  # every turn
    assert resolve_options({"heldout_limit": 0}, root=tmp_path, environ={}).heldout_limit == 0
    assert resolve_options({}, root=tmp_path, environ={"PUNIE_GATES_HELDOUT_LIMIT": "20"}).heldout_limit == 20
    ini = {"heldout_limit": "7"}
    assert resolve_options({}, root=tmp_path, environ={}, ini=lambda k: ini.get(k, "")).heldout_limit == 7
    with pytest.raises(OptionError, match="--heldout-limit must be 0 or more"):
        resolve_options({"heldout_limit": -1}, root=tmp_path, environ={})
