"""A training gate's multi-turn pass: conversations tallied, judged, reported, re-scored.

Fake models (AskMany callables, no mlx) play both sides: one that calls the query's
tools and answers with its facts, and wrong ones (a hallucinated count, no call at
all). They run through the pass as Gate 5 runs it, through `punie-gates score
--conversations`, into the report page's view, and through the Gate 5 module itself
(pytester, the pass's fixture replaced by the fake) for the flag and the hard mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from punie_gates.answering.conversation import reply_from_text
from punie_gates.checks.multiturn import (
    followup_rows,
    judge_multi_turn,
    paired_followup,
    run_multi_turn,
    tool_queries,
    with_baseline,
)
from punie_gates.commands import score as score_command
from punie_gates.inputs.facts import alternatives
from punie_gates.inputs.queries import load_queries

REPO = Path(__file__).resolve().parents[2]
SYSTEM = "You are Punie."


def first_call(query) -> str:
    """A first reply in Devstral's form calling every tool the query names (and its follow-up tool)."""
    tools = [*query.listed_tools, *([query.followup_tool] if query.followup_tool else [])]
    code = "\n".join(f"print({t}('src/'))" for t in dict.fromkeys(tools))
    return "Let me check.[TOOL_CALLS]execute_code[ARGS]" + json.dumps({"code": code})


class FakeModel:
    """An AskMany answering each conversation from its query (found by the user turn)."""

    def __init__(self, queries, answer) -> None:
        self.by_text = {q.text: q for q in queries.queries}
        self.answer, self.batches = answer, []

    def __call__(self, batch):
        self.batches.append(len(batch))
        out = []
        for messages in batch:
            query = self.by_text[next(m["content"] for m in messages if m["role"] == "user")]
            out.append(reply_from_text(self.answer(query)))
        return out


def states_facts(query) -> str:
    return "Done: " + ", ".join(alternatives(f)[0] for f in query.answer_facts) + "."


def hallucinates(query) -> str:
    return "I found 977 problems."


def run(queries, catalog, answer, tmp_path=None, first=first_call, qs=None):
    qs = qs or queries
    model = FakeModel(qs, answer)
    multi = run_multi_turn(
        qs.queries,
        {q.id: first(q) for q in qs.queries},
        model,
        catalog=catalog,
        system_prompt=SYSTEM,
        max_turns=qs.max_turns,
        save_to=tmp_path / "gate5-conversations.jsonl" if tmp_path else None,
    )
    return multi, model


def test_a_model_that_states_the_results_passes_every_conversation(queries, catalog, tmp_path):
    multi, model = run(queries, catalog, states_facts, tmp_path)
    tools = tool_queries(queries.queries)
    assert [q.id for q in multi.queries] == [q.id for q in tools] and len(tools) == 32
    assert model.batches == [32]  # one round: every conversation asked at once
    assert all(s.passed for s in multi.scores), [s.reason for s in multi.scores if not s.passed]
    verdict = judge_multi_turn(multi, queries, judge=True)
    assert verdict.judged == "flag" and verdict.problem is None and not verdict.fails
    figures = verdict.to_json()
    assert (figures["correct"], figures["total"], figures["met"], figures["asked"]) == (32, 32, True, 32)
    assert figures["stops"] == {"answered": 32} and figures["conversations"] == str(multi.path)
    assert figures["categories"]["cross_tool"] == {
        **figures["categories"]["cross_tool"],
        "correct": 5,
        "total": 5,
        "min": 3,
    }
    assert figures["categories"]["discrimination"]["total"] == 2  # its direct queries have no follow-up
    assert figures["interval"]["passed"] == 32 and 0 < figures["interval"]["low"] < 1


def test_hallucinated_counts_flag_gate5_or_fail_it_when_hard(queries, catalog, tmp_path):
    multi, _ = run(queries, catalog, hallucinates)
    assert not any(s.passed for s in multi.scores)
    assert all("'977'" in s.reason for s in multi.scores)
    verdict = judge_multi_turn(multi, queries, judge=True)
    assert verdict.judged == "flag" and not verdict.fails
    assert verdict.problem.startswith("multi-turn pass: 0/32 conversations passed, expected >= 26")
    assert "cross_tool: 0/5 (min 3)" in verdict.problem
    hard = load_queries(_variant(tmp_path, "hard = false", "hard = true"), catalog)
    assert judge_multi_turn(multi, hard, judge=True).fails


def test_gate4_reports_and_a_file_without_followup_is_not_judged(queries, catalog, tmp_path):
    multi, _ = run(queries, catalog, hallucinates)
    report = judge_multi_turn(multi, queries, judge=False)
    assert report.judged.startswith("not judged") and report.problem is None and not report.fails
    assert "met" not in report.to_json() and report.to_json()["correct"] == 0
    source = queries.path.read_text(encoding="utf-8")
    start, end = source.index("\n[followup]\n"), source.index("\n[settings]\n")
    bare = load_queries(_write(tmp_path, source[:start] + source[end:]), catalog)
    assert bare.followup_thresholds is None
    verdict = judge_multi_turn(multi, bare, judge=True)
    assert "has no [followup]" in verdict.judged and verdict.problem is None
    # part of the file's tool queries: the file's minimums do not apply
    part = run_multi_turn(
        queries.queries[:12],
        {q.id: first_call(q) for q in queries.queries[:12]},
        FakeModel(queries, hallucinates),
        catalog=catalog,
        system_prompt=SYSTEM,
        max_turns=4,
    )
    verdict = judge_multi_turn(part, queries, judge=True)
    assert verdict.judged == "not judged: the pass covers 7 of the file's 32 tool queries" and verdict.problem is None
    assert all(c["min"] is None for c in verdict.to_json()["categories"].values())


def test_a_model_that_never_calls_fails_every_follow_up_saying_why(queries, catalog):
    multi, model = run(queries, catalog, states_facts, first=lambda q: "Sure, here is the answer.")
    assert model.batches == []  # nothing came back to answer from: the model is not asked again
    assert all("no tool call, so no result to answer from" in s.reason for s in multi.scores)
    assert multi.asked == 0


def test_rows_carry_both_turns_and_the_baseline_side(queries, catalog):
    multi, _ = run(queries, catalog, states_facts)
    first = [
        {"id": "existing_lsp-01", "passed": True, "reason": "PASS: first", "response": "x"},
        {"id": "direct_answers-01", "passed": False, "reason": "FAIL"},
    ]
    rows = followup_rows(first, multi, catalog)
    assert len(rows) == 2 + 31  # rows for the tool queries the first turn did not record
    row = rows[0]
    assert row["passed"] and row["reason"] == "PASS: first"  # the first turn untouched
    followup = row["followup"]
    assert {"response", "passed", "reason", "tools", "fields"} <= set(followup)
    assert followup["passed"] and followup["response"].startswith("Done: config.py") and followup["tools"] == []
    assert "followup" not in rows[1]  # a direct query has no follow-up
    # a workflow's second call shows its tools and the fields its code reads
    workflow = queries.by_id("cross_tool-02")

    def call(code):
        return "Let me check.[TOOL_CALLS]execute_code[ARGS]" + json.dumps({"code": code})

    seen = []

    def second_call(query):
        if query.id == workflow.id and not seen:
            seen.append(query.id)
            return call("r = typecheck('src/app/forms.py')\nprint(r.error_count, r.errors)")
        return states_facts(query)

    def first_status(q):
        return call("print(git_status('.'))") if q.id == workflow.id else first_call(q)

    again, _ = run(queries, catalog, second_call, first=first_status)
    (row,) = [r for r in followup_rows(None, again, catalog) if r["id"] == workflow.id]
    followup = row["followup"]
    assert followup["passed"], followup["reason"]
    assert (
        followup["response"].startswith("[reply 2] Let me check.")
        and "\n[reply 3] Done: forms.py" in followup["response"]
    )
    assert (followup["tools"], followup["fields"]) == (["typecheck"], ["error_count", "errors"])
    base = followup_rows(rows, multi, catalog, side="baseline")
    assert base[0]["baseline"]["followup"]["passed"] and base[0]["followup"]["passed"]


def test_paired_comparison_of_two_models(queries, catalog):
    good, _ = run(queries, catalog, states_facts)
    bad, _ = run(queries, catalog, hallucinates)
    paired = paired_followup(list(good.scores), list(bad.scores)[:-1], queries)
    assert len(paired.ids) == 31 and paired.only_candidate == (good.scores[-1].id,) and not paired.only_baseline
    m = paired.overall.mcnemar
    assert (m.only_candidate, m.only_baseline, m.both_passed) == (31, 0, 0) and m.p_two_sided < 1e-6
    assert paired.overall.candidate.passed == 31 and paired.overall.baseline.passed == 0
    assert paired.categories["existing_lsp"].mcnemar.only_candidate == 5
    figures = with_baseline(judge_multi_turn(good, queries, judge=True).to_json(), paired)
    cat = figures["categories"]["existing_lsp"]
    assert {"correct", "min", "interval", "baseline_interval", "mcnemar"} <= set(cat)
    assert figures["mcnemar"]["only_candidate"] == 31 and figures["unpaired"]["candidate"] == [good.scores[-1].id]
    with pytest.raises(ValueError, match="more than one conversation"):
        paired_followup(list(good.scores) * 2, list(bad.scores), queries)


def test_the_report_page_shows_the_follow_up_and_its_totals(queries, catalog):
    from punie_gates.decision.html import key_figures, report_page
    from punie_gates.results.document import read_figures

    multi, _ = run(queries, catalog, hallucinates)
    figures = {
        "queries": followup_rows(None, multi, catalog),
        "followup": judge_multi_turn(multi, queries, judge=True).to_json(),
    }
    page = report_page({"gates": {"gate5": {"name": "full", "status": "passed", "figures": figures}}})
    (section,) = page.sections
    answer = section.rows[0].answers[0]
    assert answer.followup is not None and answer.followup.passed is False and "977" in answer.followup.response
    (table,) = [t for t in page.tables if "multi-turn" in t.title]
    assert table.rows[0][:4] == ("overall", "0/32 = 0.0% (95% CI 0.0-10.7%)", 26, False)
    assert "0/32 multi-turn" in key_figures(read_figures("gate5", figures))


def test_score_rescores_saved_conversations(queries, catalog, tmp_path, capsys):
    multi, _ = run(queries, catalog, states_facts, tmp_path)
    assert score_command.main(["--conversations", str(multi.path)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in lines] == [q.id for q in multi.queries]
    assert all(r["passed"] for r in lines) and {"stop", "turns", "reason"} <= set(lines[0])
    assert "multi-turn: passed 32/32 tool-query conversations (overall minimum 26: met)" in err
    assert "thresholds: met [flag]" in err
    # a partial file (Gate 4's queries) is tallied, not judged
    partial = tmp_path / "gate4.jsonl"
    partial.write_text("".join(multi.path.read_text().splitlines(keepends=True)[:8]))
    assert score_command.main(["--conversations", str(partial)]) == 0
    assert "cover 8 of 32 tool queries" in capsys.readouterr().err


def test_score_conversations_errors_name_file_and_line(queries, catalog, tmp_path, capsys):
    multi, _ = run(queries, catalog, states_facts, tmp_path)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(multi.path.read_text().splitlines()[0] + "\n{oops\n")
    assert score_command.main(["--conversations", str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{broken}:2: not valid JSON" in err
    for argv in (
        ["--conversations", str(broken), "--responses", str(broken)],
        ["--conversations", str(broken), "--format", "mistral"],
        [],
    ):
        with pytest.raises(SystemExit) as exit_info:
            score_command.main(argv)
        assert exit_info.value.code == 2
    assert "--format applies to --responses" in capsys.readouterr().err


# --- the Gate 5 module with the pass's fixtures replaced by fakes ----------------------------

CONFTEST = """
pytest_plugins = ["punie_gates.plugin"]
import json, os
import pytest

@pytest.fixture(scope="module")
def answer_rows():
    return []  # the first turn's rows (which need a trained model) are not under test here


@pytest.fixture(scope="module")
def conversations(query_set, catalog, gate_config):
    from punie_gates.answering.conversation import reply_from_text
    from punie_gates.checks.multiturn import run_multi_turn

    def ask(batch):
        return [reply_from_text(os.environ["FAKE_ANSWER"]) for _ in batch]

    def first(q):
        code = "\\n".join(f"print({t}('src/'))" for t in q.listed_tools)
        return "[TOOL_CALLS]execute_code[ARGS]" + json.dumps({"code": code})

    return run_multi_turn(query_set.queries, {q.id: first(q) for q in query_set.queries}, ask, catalog=catalog,
                          system_prompt="s", max_turns=query_set.max_turns,
                          save_to=gate_config.report_dir / "gate5-conversations.jsonl")
"""


def _gate5(pytester, monkeypatch, answer, *args):
    monkeypatch.setenv("FAKE_ANSWER", answer)
    pytester.makeconftest(CONFTEST)
    (pytester.path / "test_gate5_full.py").write_text((REPO / "tests" / "gates" / "test_gate5_full.py").read_text())
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(reports),
        "--candidate",
        "demo",
        "--run-all-gates",
        "-k",
        "multi_turn or decision",
        *args,
    )
    return result, json.loads((reports / "gate-report.json").read_text())["gates"]["gate5"]


def test_gate5_flags_a_missed_minimum_and_records_the_pass(pytester, monkeypatch):
    result, gate = _gate5(pytester, monkeypatch, "There are 977 errors.")
    result.assert_outcomes(passed=2)
    assert gate["status"] == "passed"
    assert any(f.startswith("multi-turn pass: 0/32 conversations passed") for f in gate["flags"])
    figures = gate["figures"]
    assert figures["followup"]["judged"] == "flag" and figures["followup"]["total"] == 32
    assert all(r["followup"]["passed"] is False for r in figures["queries"])
    assert (pytester.path / "reports" / "gate5-conversations.jsonl").is_file()


def test_gate5_fails_on_a_hard_minimum(pytester, monkeypatch):
    hard = _variant(pytester.path, "hard = false", "hard = true")
    result, gate = _gate5(pytester, monkeypatch, "There are 977 errors.", f"--queries={hard}")
    result.assert_outcomes(passed=0, failed=2)
    assert gate["status"] == "failed" and "977" in " ".join(gate["reasons"])


def _write(folder: Path, text: str) -> Path:
    path = Path(folder) / "queries-variant.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(folder: Path, old: str, new: str) -> Path:
    source = load_queries().path.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    return _write(folder, source.replace(old, new))
