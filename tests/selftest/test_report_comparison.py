"""The comparison with the baseline and how answers were asked, in gate-report.md and the terminal."""

from __future__ import annotations

from punie_gates.checks.comparison import NO_BASELINE, compare_with_baseline, comparison_figures, query_rows
from punie_gates.checks.scoring import Score
from punie_gates.decision.report import Report, markdown, terminal_lines
from punie_gates.decision.verdict import GateResult, decide
from punie_gates.inputs.queries import Query

KINDS = {"gate0": "hard", "gate1": "hard", "gate2": "soft", "gate3": "caution", "gate4": "hard", "gate5": "hard"}


class _Answer:
    def __init__(self, text, tool_calls=()):
        self.text, self.tool_calls = text, tool_calls


def _gate5_figures(with_baseline: bool) -> dict:
    qs = [Query(f"cross_tool-0{i}", "cross_tool", "q", "tool") for i in range(1, 6)]
    mine = {q.id: Score(q.id, i < 2, ("typecheck",), ("errors",), f"reason {q.id}", ()) for i, q in enumerate(qs)}
    theirs = {q.id: Score(q.id, True, ("ruff_check",), (), "PASS: base", ()) for q in qs}
    answers = {q.id: _Answer("text | with a pipe", ({"name": "execute_code", "arguments": "{}"},)) for q in qs}
    figures = {"correct": 2, "total": 5, "answering": {"via": "server", "server": {
        "model": "fused candidate", "command": "python -m mlx_lm server --model /m", "log": "/r/gate5-server.log",
        "versions": {"mlx-lm": "0.32.2"}, "tool_parsing": {"tool_parser": None, "tokenizer_class": "MistralCommonBackend",
                                                            "note": "no parser"},
        "starts": [{"pid": 1, "startup_s": 3.2, "stop_s": 0.1}]}}}  # fmt: skip
    if with_baseline:
        comparison = compare_with_baseline(qs, mine, theirs, 0.05)
        figures.update(comparison_figures(qs, mine, theirs, comparison))
        figures["queries"] = query_rows(qs, mine, answers, theirs, answers)
    else:
        figures["queries"] = query_rows(qs, mine, answers)
        figures["comparison"] = {"made": False, "reason": NO_BASELINE}
    return figures


def _report(figures: dict, baseline: str | None) -> Report:
    results = {g: GateResult(g, "passed", k, name=g, figures=figures if g == "gate5" else {}) for g, k in KINDS.items()}
    return Report(decide(results), results, candidate="demo", baseline=baseline, answer_via="server")


def test_terminal_has_one_line_per_compared_gate():
    lines = terminal_lines(_report(_gate5_figures(True), "demo"))
    assert "answers: through mlx_lm.server (mlx-lm 0.32.2)" in lines
    line = next(x for x in lines if x.startswith("gate5 vs baseline"))
    assert line.startswith("gate5 vs baseline: candidate 2/5 [") and "vs baseline 5/5 [" in line
    assert "McNemar 0 vs 3 discordant, p = 0.25 (one-sided 0.125): fewer passes, not significant: flagged" in line


def test_markdown_puts_both_models_side_by_side():
    md = markdown(_report(_gate5_figures(True), "demo").to_json())
    assert "- baseline: `demo`" in md and "answers came through mlx_lm.server" in md
    assert "| query | candidate | tools | fields | reason | baseline | tools | fields | reason |" in md
    assert (
        "| cross_tool-01 | pass | typecheck | errors | reason cross_tool-01 | pass | ruff_check | - | PASS: base |"
        in md
    )
    assert "| category | candidate | minimum | baseline | paired (exact McNemar) |" in md
    assert "| overall | 2/5 [" in md and "only candidate 0, only baseline 3; p = 0.25" in md
    assert "- fused candidate server: `python -m mlx_lm server --model /m` (started in 3.2 s" in md
    assert "tool parser: None (tokenizer MistralCommonBackend): no parser" in md
    assert "- queries: `" not in md  # shown as the table, not as clipped JSON


def test_without_a_baseline_the_report_says_no_comparison_was_made():
    report = _report(_gate5_figures(False), None)
    md = markdown(report.to_json())
    assert "no comparison with the production model was made; the verdict rests on the thresholds alone" in md
    assert "| query | candidate | tools | fields | reason |\n" in md
    lines = terminal_lines(report)
    assert f"gate5 vs baseline: {NO_BASELINE}" in lines
