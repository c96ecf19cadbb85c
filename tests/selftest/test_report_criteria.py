"""Each count criterion against its interval in gate-report.json/md and the terminal: a note
that never changes the verdict (34/40 stays GO), and what the paired comparison could see."""

from __future__ import annotations

from punie_gates.checks.scoring import Score, criteria_json, tally
from punie_gates.decision.report import Report, markdown, terminal_lines
from punie_gates.decision.verdict import GateResult, decide

KINDS = {"gate0": "hard", "gate1": "hard", "gate2": "soft", "gate3": "caution", "gate4": "hard", "gate5": "hard"}


def _gate5(passed: int) -> dict:
    """Gate 5's criteria for `passed` of 40 (5 categories of 8, each with a minimum of 4)."""
    cats = [f"cat{i}" for i in range(5)]
    category = {f"q{i:02d}": cats[i % 5] for i in range(40)}
    scores = [Score(qid, i < passed, (), (), "", ()) for i, qid in enumerate(category)]
    judgment = tally(scores, category, 34, {c: 4 for c in cats})
    return {"correct": passed, "total": 40, "criteria": judgment.criteria_json()}


def _report(gate5: dict, gate4: dict | None = None) -> Report:
    figures = {"gate5": gate5, "gate4": gate4 or {}}
    results = {g: GateResult(g, "passed", k, name=g, figures=figures.get(g, {})) for g, k in KINDS.items()}
    return Report(decide(results), results, candidate="demo")


def test_34_of_40_is_go_with_a_note_naming_its_interval():
    report = _report(_gate5(34))
    assert report.verdict.verdict == "GO" and not report.verdict.flags  # the note is not a flag
    doc = report.to_json()
    overall = next(r for r in doc["criteria"]["rows"] if r["gate"] == "gate5" and r["criterion"] == "overall")
    assert overall["met"] and overall["decided"] == "inside the interval"
    assert overall["note"] == "40 queries cannot tell whether the rate is above 85%; interval 71-93%"
    md = markdown(doc)
    assert "| gate5 | overall | 34/40 | 34 | 85% | 71-93% | pass | inside the interval |" in md
    assert f"- {doc['criteria']['inside_interval']} of {doc['criteria']['count']} count criteria were decided inside" in md
    assert any(line.startswith("criteria: ") for line in terminal_lines(report))


def test_40_and_20_of_40_are_decided_by_the_data():
    for passed, met in ((40, "pass"), (20, "FAIL")):
        doc = _report(_gate5(passed)).to_json()
        overall = next(r for r in doc["criteria"]["rows"] if r["criterion"] == "overall")
        assert overall["decided"] == "by the data" and overall["note"] is None
        assert f"| gate5 | overall | {passed}/40 | 34 | 85% |" in markdown(doc) and f"| {met} | by the data |" in markdown(doc)


def test_gate4_and_multi_turn_criteria_are_gathered_too():
    gate5 = {**_gate5(40), "followup": {"criteria": criteria_json([("multi-turn overall", 20, 30, 24)], "conversations")}}
    gate4 = {"criteria": criteria_json([("overall", 6, 10, 6)])}
    rows = _report(gate5, gate4).to_json()["criteria"]["rows"]
    assert [r["gate"] for r in rows].count("gate4") == 1
    multi = next(r for r in rows if r["criterion"] == "multi-turn overall")
    assert not multi["met"] and multi["decided"] == "inside the interval" and "30 conversations" in multi["note"]
    g4 = next(r for r in rows if r["gate"] == "gate4")
    assert g4["note"] == "10 queries cannot tell whether the rate is above 60%; interval 31-83%"


def test_a_run_without_count_criteria_says_nothing_of_them():
    doc = _report({}).to_json()
    assert doc["criteria"]["count"] == 0 and doc["criteria"]["sentence"] is None
    assert "Criteria against their intervals" not in markdown(doc)


def test_the_comparison_says_what_it_could_see():
    from punie_gates.checks.comparison import compare_with_baseline, comparison_figures
    from punie_gates.inputs.queries import Query

    qs = [Query(f"q{i:02d}", "cat", "q", "tool") for i in range(40)]
    mine = {q.id: Score(q.id, i >= 3, (), (), "", ()) for i, q in enumerate(qs)}
    theirs = {q.id: Score(q.id, True, (), (), "", ()) for q in qs}
    figures = comparison_figures(qs, mine, theirs, compare_with_baseline(qs, mine, theirs, 0.05))
    detect = figures["comparison"]["detectable"]
    assert detect["pairs"] == 40 and detect["alpha"] == 0.05 and 0.1 < detect["difference"] < 0.3
    report = _report({**_gate5(37), **figures})
    sentence = "a difference smaller than"
    assert any(line.startswith(f"gate5 vs baseline: {sentence}") for line in terminal_lines(report))
    assert f"- what the comparison could see: {sentence}" in markdown(report.to_json())
