"""`punie-gates compare A B C`: three runs ranked against a baseline run on one page and one JSON line."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from punie_gates.commands import main

REPO = Path(__file__).resolve().parents[2]
IDEAL = tomllib.loads((REPO / "fixtures" / "responses" / "ideal_mistral.toml").read_text())["case"]
WRONG = "I cannot help with that."


def write_run(folder: Path, broken=(), dropped=(), *, verdict=None, seconds=None, peak=None) -> Path:
    folder.mkdir()
    lines = [
        json.dumps({"id": c["id"], "response": WRONG if c["id"] in broken else c["response"]}) + "\n"
        for c in IDEAL
        if c["id"] not in dropped
    ]
    (folder / "gate5-responses.jsonl").write_text("".join(lines))
    if verdict:
        doc = {
            "verdict": verdict,
            "candidate": {"spec": folder.name},
            "seconds": seconds,
            "gates": {
                "gate1": {"figures": {"peak_memory_gb": peak / 2}},
                "gate5": {"figures": {"steps": [{"step": "train", "peak_memory_gb": peak}]}},
            },
        }
        (folder / "gate-report.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def three_runs(tmp_path):
    """The baseline passes all 40; 'worse' breaks four; 'close' breaks one and skips two queries."""
    ids = [c["id"] for c in IDEAL]
    base = write_run(tmp_path / "production", verdict="GO", seconds=100.0, peak=19.5)
    worse = write_run(tmp_path / "worse", broken=ids[:4], verdict="NO_GO", seconds=250.5, peak=12.0)
    close = write_run(
        tmp_path / "close", broken=ids[4:5], dropped=ids[-2:], verdict="GO_WITH_FLAGS", seconds=80.0, peak=16.25
    )
    return base, worse, close, ids


def test_three_runs_ranked_against_the_first(three_runs, tmp_path, capsys, monkeypatch):
    base, worse, close, ids = three_runs
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(base), str(worse), str(close)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["baseline"]["label"] == "A: production" and out["baseline"]["verdict"] == "GO"
    assert [r["label"] for r in out["ranking"]] == ["C: close", "B: worse"]  # best first
    assert (out["compared"], out["answered"], out["on_intersection"]) == (38, 40, True)
    assert out["baseline"]["left_out"] == ids[-2:] and out["ranking"][0]["left_out"] == []
    close_row, worse_row = out["ranking"]
    assert (close_row["passed"], close_row["total"], worse_row["passed"]) == (37, 38, 34)
    assert close_row["mcnemar"]["only_baseline"] == 1 and close_row["mcnemar"]["p_two_sided"] == 1.0
    assert worse_row["mcnemar"]["only_baseline"] == 4 and worse_row["mcnemar"]["p_candidate_worse"] == pytest.approx(
        0.0625
    )
    assert (worse_row["seconds"], worse_row["peak_memory_gb"], close_row["peak_memory_gb"]) == (250.5, 12.0, 16.25)
    assert out["queries"][ids[0]] == {"A: production": True, "C: close": True, "B: worse": False}
    assert set(out["categories"]["direct_answers"]) == {"A: production", "B: worse", "C: close"}
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")
    assert page.count('class="query-row"') == 38
    assert "compared on the 38 all of them answered" in page and ids[-1] in page
    assert "250.5 s" in page and "16.25 GB" in page and "NO_GO" in page


def test_baseline_option_picks_the_run_to_rank_against(three_runs, tmp_path, capsys):
    base, worse, close, _ = three_runs
    assert main(["compare", str(worse), str(close), "--baseline", str(base), "--out", str(tmp_path / "c.html")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"]["folder"] == str(base) and [r["folder"] for r in out["ranking"]] == [str(close), str(worse)]


def test_two_runs_keep_the_paired_page(three_runs, tmp_path, capsys):
    base, worse, _, _ = three_runs
    assert main(["compare", str(base), str(worse), "--out", str(tmp_path / "c.html")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"a", "b", "compared", "only_in_a", "only_in_b", "mcnemar", "categories", "html"}
    assert (out["a"]["passed"], out["b"]["passed"], out["mcnemar"]["only_a"]) == (40, 36, 4)


def test_one_run_is_not_a_comparison(three_runs, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["compare", str(three_runs[0])])
    assert exited.value.code == 2 and "at least two report folders" in capsys.readouterr().err


def test_a_report_written_before_the_typed_results_still_labels_its_run(tmp_path):
    """The keys never changed: a report from an earlier suite (no `criteria`, no gate `flags`, steps in
    the older step -> figures form, a key this suite no longer knows) and one with a hand-edited value
    of the wrong type are read, what fits is shown, and nothing stops the readers."""
    from punie_gates.checks.rescoring import rescore_folder
    from punie_gates.decision import compare
    from punie_gates.decision.html import report_page
    from punie_gates.decision.report import markdown
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries

    folder = write_run(tmp_path / "old")
    old = {
        "suite": "punie-gates 0.0.9",
        "verdict": "NO_GO",
        "stopped_at": "gate5",
        "complete": True,
        "reasons": ["gate5 (full) failed: 30/40 correct"],
        "candidate": {"spec": "mlx-community/old", "is_demo": False, "note": None},
        "seconds": 4200,
        "gates": {
            "gate1": {"name": "load", "kind": "hard", "status": "passed", "seconds": 3, "reasons": [],
                      "figures": {"peak_memory_gb": 14.5, "a_figure_since_renamed": 1}},
            "gate5": {"name": "full", "kind": "hard", "status": "failed", "seconds": 4000,
                      "reasons": ["30/40 correct"],
                      "figures": {"correct": "thirty", "total": 40, "steps": {"train": {"seconds": 3900}}}},
        },
    }  # fmt: skip
    (folder / "gate-report.json").write_text(json.dumps(old))
    run = compare.run_of(rescore_folder(folder, load_queries(), load_catalog()))
    assert (run.verdict, run.candidate, run.seconds, run.peak_memory_gb) == ("NO_GO", "mlx-community/old", 4200, 14.5)
    text = markdown(old)
    assert text.startswith("# punie-gates report: NO_GO") and "| gate5 | full | hard | **failed** | 4000.0 |" in text
    assert "- correct: `thirty`" in text  # the recorded value is still listed as recorded
    page = report_page(old, folder)
    assert page.verdict == "NO_GO" and [g.key_figures for g in page.gates] == [(), ()]  # "thirty" is no count
    assert [t.title for t in page.tables] == ["gate5: resources per step"]
