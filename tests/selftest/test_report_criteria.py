"""Each count criterion against its interval in gate-report.json/md and the terminal: a note
that never changes the verdict (34/40 stays GO), and what the paired comparison could see."""

from __future__ import annotations

from punie_gates.checks.judgment import criteria_json, tally
from punie_gates.checks.scoring import Score
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
    assert (
        f"- {doc['criteria']['inside_interval']} of {doc['criteria']['count']} count criteria were decided inside" in md
    )
    assert any(line.startswith("criteria: ") for line in terminal_lines(report))


def test_40_and_20_of_40_are_decided_by_the_data():
    for passed, met in ((40, "pass"), (20, "FAIL")):
        doc = _report(_gate5(passed)).to_json()
        overall = next(r for r in doc["criteria"]["rows"] if r["criterion"] == "overall")
        assert overall["decided"] == "by the data" and overall["note"] is None
        assert f"| gate5 | overall | {passed}/40 | 34 | 85% |" in markdown(
            doc
        ) and f"| {met} | by the data |" in markdown(doc)


def test_gate4_and_multi_turn_criteria_are_gathered_too():
    gate5 = {
        **_gate5(40),
        "followup": {"criteria": criteria_json([("multi-turn overall", 20, 30, 24)], "conversations")},
    }
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


def _heldout(with_baseline: bool) -> dict:
    from punie_gates.answering.conversation import reply_from_message
    from punie_gates.checks.heldout import heldout_figures, heldout_set, paired_heldout, run_heldout
    from punie_gates.checks.heldout import with_baseline as merge
    from punie_gates.formats.to_mistral import convert_training_folder
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.paths import data_dir, fixtures_dir

    catalog = load_catalog(data_dir() / "tools.toml")
    folder = fixtures_dir() / "demo-training"
    hset = heldout_set(folder, convert_training_folder(folder, tools=catalog.native_schemas())[1], catalog)
    text = run_heldout(hset, lambda batch: [reply_from_message({"content": "Done."}) for _ in batch], catalog)
    figures = heldout_figures(hset, text)
    return merge(figures, paired_heldout(hset, text, text, alpha=0.05)) if with_baseline else figures


def test_the_heldout_measure_stands_beside_the_queries(tmp_path):
    from punie_gates.decision.html import report_page, write_html

    report = _report({**_gate5(34), "heldout": _heldout(True)}, {"heldout": _heldout(False)})
    doc = report.to_json()
    md = markdown(doc)
    assert "- held-out next steps (a measure beside the queries): candidate 10/17 [" in md
    assert ", baseline 10/17 [" in md and "could not be seen with 17 turns" in md
    assert "- heldout: `" not in md  # shown as lines, not as clipped JSON
    lines = terminal_lines(report)
    assert any(x.startswith("gate5 held-out next steps: 10/17 [") and "vs baseline" in x for x in lines)
    assert any(x.startswith("gate4 held-out next steps: 10/17 [") for x in lines)
    page = report_page(doc)
    titles = [t.title for t in page.tables]
    assert "gate5: held-out next steps (a measure beside the queries)" in titles
    assert "gate5: criteria against their intervals" in titles
    assert any("count criteria were decided inside their interval" in n for n in page.notes)
    html = write_html(tmp_path, doc).read_text(encoding="utf-8")
    assert "inside the interval" in html and "held-out next steps" in html
