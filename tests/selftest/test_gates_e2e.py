"""The acceptance gates end to end on the built-in demo candidate, run by pytester.

The gate modules are copied from tests/gates into a scratch folder and run as a
user runs them (`pytest --candidate demo ...`). The demo is built once into a
session cache shared by every inner run; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from punie_gates.formats import tekken
from punie_gates.inputs import paths
from punie_gates.results.document import read_results

REPO = Path(__file__).resolve().parents[2]
GATES = ("gate0", "gate1", "gate2", "gate3", "gate4", "gate5")


@pytest.fixture(scope="module")
def gate_cache(tmp_path_factory) -> Path:
    """One PUNIE_GATES_CACHE for this module: the demo is built once."""
    return tmp_path_factory.mktemp("punie-cache")


@pytest.fixture
def suite(pytester, gate_cache, monkeypatch):
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(gate_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PUNIE_GATES_CANDIDATE", raising=False)
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    shutil.copytree(REPO / "tests" / "gates", pytester.path / "gates")
    return pytester


def small_gates(pytester, **overrides) -> Path:
    """data/gates.toml with CI-sized generation budgets (the thresholds are unchanged)."""
    data = tomllib.loads((paths.data_dir() / "gates.toml").read_text(encoding="utf-8"))
    data["gate1"]["smoke_max_tokens"] = 48
    data["gate2"]["max_tokens"] = 8
    data["gate5"]["speed_max_tokens"] = 8
    for key, value in overrides.items():
        gate, name = key.split("__")
        data[gate][name] = value
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = pytester.path / "small-gates.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def small_data(pytester, train: int = 6, valid: int = 2) -> list[str]:
    """CI-sized inputs: a few demo conversations and a catalog whose execute_code
    description does not list every typed tool (shorter prompts, same checks)."""
    folder = pytester.path / "small-training"
    folder.mkdir(exist_ok=True)
    source = paths.fixtures_dir() / "demo-training"
    for name, n in (("train.jsonl", train), ("valid.jsonl", valid)):
        lines = (source / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / name).write_text("".join(lines[:n]), encoding="utf-8")
    catalog = (paths.data_dir() / "tools.toml").read_text(encoding="utf-8")
    assert "list_typed_tools = true" in catalog
    tools = pytester.path / "small-tools.toml"
    tools.write_text(catalog.replace("list_typed_tools = true", "list_typed_tools = false"), encoding="utf-8")
    return [f"--training-data={folder}", f"--tools={tools}"]


def run(pytester, *args):
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--report-dir", str(reports), "gates", *args, timeout=1500
    )
    doc = json.loads((reports / "gate-report.json").read_text())
    unknown: list[str] = []
    read_results(doc, unknown)  # every value of the type its results class says (ResultsError names one)
    assert not unknown, f"keys the results classes (punie_gates/results) do not have: {unknown[:10]}"
    return result, doc


def statuses(doc):
    return {g: doc["gates"][g]["status"] for g in GATES}


def _tokenizer_only_candidate(root: Path, layout: str) -> Path:
    """A candidate folder made elsewhere: tokenizer and config files, no weights at all."""
    folder = root / f"tok-{layout}"
    tekken.save_hf_tokenizer(tekken.write_tekken(folder / "tekken.json", layout), folder)
    (folder / "config.json").write_text(
        json.dumps({"model_type": "mistral3", "text_config": {"model_type": "ministral3"}})
    )
    return folder


def test_gate0_on_candidates_without_weights(suite):
    good = _tokenizer_only_candidate(suite.path, "v13")
    data = f"--training-data={paths.fixtures_dir() / 'demo-training'}"
    result, doc = run(suite, "-m", "gate0", "--candidate", str(good), data)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert statuses(doc)["gate0"] == "passed"

    bad = _tokenizer_only_candidate(suite.path, "v3")
    result, doc = run(suite, "-m", "gate0", "--candidate", str(bad), data)
    assert result.ret == 1
    assert (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate0")
    assert "[ARGS]" in " ".join(doc["gates"]["gate0"]["reasons"])
    result.stdout.fnmatch_lines(["*[[]ARGS[]]*"])


def test_full_run_on_the_demo_stops_at_gate1(suite):
    result, doc = run(suite, "--candidate", "demo", "--gates", str(small_gates(suite)))
    assert result.ret == 1
    assert (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate1")
    assert statuses(doc) == {
        "gate0": "passed",
        "gate1": "failed",
        "gate2": "skipped",
        "gate3": "skipped",
        "gate4": "skipped",
        "gate5": "skipped",
    }
    reasons = " ".join(doc["gates"]["gate1"]["reasons"])
    assert "define" in reasons or "parse" in reasons  # the gibberish is quoted with why it fails
    figures = doc["gates"]["gate1"]["figures"]
    assert figures["bits"] == 5 and figures["peak_memory_gb"] > 0
    assert doc["candidate"]["is_demo"]
    assert (suite.path / "reports" / "gate-report.md").is_file()
    result.stdout.fnmatch_lines(["*VERDICT: NO_GO (stopped at gate1)*"])


def servers_left(cache: Path, started_by: int | None = None) -> list[str]:
    """Command lines of mlx_lm.server processes still serving a model from this cache (only those
    started by process `started_by` or its descendants, when given)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        text = " ".join(a.decode("utf-8", "replace") for a in argv)
        serving = state not in ("Z", "X") and "mlx_lm" in text and "server" in text and str(cache) in text
        if serving and (started_by is None or started_by in _ancestors(int(proc.name))):
            found.append(f"{proc.name}: {text}")
    return found


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        out.append(pid)
    return out


BENCH_QUERIES = 8


def test_every_gate_runs_on_the_demo_agent_with_run_all_gates(suite, gate_cache):
    """All six gates run on a candidate that answers (`--candidate demo-agent`),
    the random demo as the baseline: passed or failed, none skipped; answers come through
    mlx_lm.server, its calls come back as tool_calls, tool results are sent back and the
    follow-ups scored, the two models differ query by query (McNemar on discordant pairs),
    misses are counted by cause, and no server is left. (It replaced the same run on the
    random demo, whose answers never called a tool: those paths never ran.)"""
    # The bench times 8 queries, not 40: it proves the wiring and the figures; checks/bench is tested in test_bench.
    gates = small_gates(suite, gate4__valid_examples=2, gate2__bench_queries=BENCH_QUERIES)
    result, doc = run(
        suite,
        "--candidate",
        "demo-agent",
        "--baseline",
        "demo",
        "--run-all-gates",
        f"--gates={gates}",
        "--gate4-iters",
        "2",
        "--gate5-iters",
        "2",
        "--gate4-examples",
        "4",
        "--max-tokens",
        "48",
        "--gen-batch-size",
        "8",
        "--bench",
        "--heldout-limit",
        str(HELDOUT_LIMIT),
    )
    assert result.ret == 1
    assert doc["verdict"] == "NO_GO"
    assert doc["candidate"]["is_demo"] and "SET FROM Punie's training data" in doc["candidate"]["note"]
    assert "left out" in doc["candidate"]["note"]
    for gate, status in statuses(doc).items():
        assert status in ("passed", "failed"), (gate, status, doc["gates"][gate]["reasons"])
    g2, g3 = doc["gates"]["gate2"]["figures"], doc["gates"]["gate3"]["figures"]
    assert g2["avg_latency_s"] > 0 and len(g2["per_query"]) == 10
    assert (suite.path / "reports" / "gate2-benchmark.json").is_file()
    assert g3["well_formed_calls"] >= 1, g3  # parsed from the server's tool_calls
    # --bench: the plan's way and the suite's, side by side, the figures `punie-gates bench` prints
    bench = g2["bench"]
    assert (bench["queries"], bench["batch_size"]) == (BENCH_QUERIES, 8)
    assert bench["prefill_tokens_suite"] < bench["prefill_tokens_naive"] and bench["speedup"] > 0
    assert json.loads((suite.path / "reports" / "bench.json").read_text()) == bench
    g4 = doc["gates"]["gate4"]["figures"]
    assert g4["loss_curve"]["valid"] and "lora_retention" in g4
    # what each step cost, per gate; Gate 4 fused through the streamed path
    steps = {gate: [s["step"] for s in doc["gates"][gate]["figures"]["steps"]] for gate in GATES[1:]}
    # The demo-agent ships at the target bits: Gate 1 loads it as is, nothing quantized.
    assert steps["gate1"] == ["quantize", "load", "smoke"] and steps["gate3"] == ["answer"]
    assert doc["gates"]["gate1"]["figures"]["quantized_by_suite"] is False
    assert steps["gate2"] == ["answer", "answer baseline", "load", "bench"]
    assert steps["gate4"] == [
        "train",
        "evaluate",
        "fuse",
        "retention",
        "answer",
        "multi-turn",
        "answer baseline",
        "held-out",
        "held-out baseline",
    ]
    fuse = next(s for s in doc["gates"]["gate4"]["figures"]["steps"] if s["step"] == "fuse")
    assert fuse["method"] == "streamed" and fuse["bytes_written"] > 0 and fuse["peak_memory_gb"] > 0
    assert doc["work_folder"]["bytes"] > 0
    g5 = doc["gates"]["gate5"]["figures"]
    assert "lora_retention" in g5 and g5["total"] == 40
    assert g5["generation"]["prefill_tokens_suite"] < g5["generation"]["prefill_tokens_naive"] / 4
    assert g5["generation"]["via"] == "server"
    assert_compared_through_the_server(suite.path / "reports", doc, result)
    assert not servers_left(gate_cache)
    _multi_turn_was_reported(suite.path / "reports", doc)
    _heldout_was_reported(suite.path / "reports", doc, result)
    _ran_on_generated_tokens(doc)


# Held-out turns the full run scores per model and gate (the demo's valid.jsonl has 17): enough to
# prove the measure is run on both models, paired, saved and reported, and that --heldout-limit
# reaches it; scoring every turn is test_heldout.py's (unit tests over all 17).
HELDOUT_LIMIT = 4


def _heldout_was_reported(reports: Path, doc, result) -> None:
    """The held-out next-step measure beside the queries, both models paired, Gate 5's with what
    the paired test could see; each count criterion against its interval."""
    for gate in ("gate4", "gate5"):
        h = doc["gates"][gate]["figures"]["heldout"]
        assert h["available"] > h["total"] == HELDOUT_LIMIT and h["limited"], h
        assert 0 <= h["passed"] <= h["total"], h
        assert h["mcnemar"]["discordant"] == h["mcnemar"]["only_candidate"] + h["mcnemar"]["only_baseline"]
        lines = (reports / f"{gate}-heldout.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == h["total"] and (reports / f"{gate}-baseline-heldout.jsonl").is_file()
    assert " seen with " in doc["gates"]["gate5"]["figures"]["heldout"]["detectable"]["sentence"]
    assert {r["gate"] for r in doc["criteria"]["rows"]} >= {"gate4", "gate5"}
    result.stdout.fnmatch_lines(["gate4 held-out next steps: */* * vs baseline */* * s, limited)"])  # [ is fnmatch's


def _ran_on_generated_tokens(doc) -> None:
    """The paths the random demo never reaches: calls in tool_calls, follow-ups asked with the
    query's results and scored, passes and failures with reasons, discordant pairs, causes."""
    from punie_gates.inputs.queries import load_queries

    queries = {q.id: q for q in load_queries().queries}
    g5 = doc["gates"]["gate5"]["figures"]
    rows = {r["id"]: r for r in g5["queries"]}
    called = [i for i, r in rows.items() if r["tool_calls"]]
    assert len(called) >= 10, called
    assert all(
        c["name"] == "execute_code" and "typecheck" in c["arguments"] for i in called for c in rows[i]["tool_calls"]
    )
    # a tool query whose reply called a typed tool with a result in the query data got a second reply
    asked = [i for i in called if queries[i].expect == "tool" and set(rows[i]["tools"]) & set(queries[i].results)]
    assert asked
    for i in asked:
        assert len(rows[i]["followup"]["turns"]) >= 2, (i, rows[i]["followup"])
    passed = [r for r in rows.values() if r["passed"]]
    failed = [r for r in rows.values() if not r["passed"]]
    assert passed and failed and all(r["reason"] for r in passed + failed)
    assert all(r.get("cause") in ("model", "server", "stream") for r in failed)
    m = g5["mcnemar"]
    assert m["only_candidate"] + m["only_baseline"] >= 1 and 0 <= m["p_two_sided"] <= 1


def _multi_turn_was_reported(reports: Path, doc) -> None:
    """The multi-turn pass: per-query follow-up verdicts and totals in the report,
    conversations saved and re-scorable offline; every direct query has its reason."""
    import subprocess
    import sys

    from punie_gates.inputs.queries import load_queries

    queries = load_queries()
    for gate, judged, total in (("gate4", "not judged", 8), ("gate5", "flag", 32)):
        figures = doc["gates"][gate]["figures"]
        followup = figures["followup"]
        assert followup["judged"].startswith(judged) and followup["total"] == total, followup
        assert sum(c["total"] for c in followup["categories"].values()) == total
        rows = {r["id"]: r for r in figures["queries"]}
        tool = [q.id for q in queries.queries if q.id in rows and q.expect == "tool"]
        assert len(tool) == total and all(isinstance(rows[q]["followup"]["passed"], bool) for q in tool)
        assert followup["correct"] == sum(rows[q]["followup"]["passed"] for q in tool)
        direct = [q.id for q in queries.queries if q.id in rows and q.expect == "direct"]
        assert direct and all(rows[q]["reason"] for q in direct)
        saved = reports / f"{gate}-conversations.jsonl"
        proc = subprocess.run(
            [sys.executable, "-m", "punie_gates", "score", "--conversations", str(saved)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        rescored = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [r["id"] for r in rescored] == tool
        assert [r["passed"] for r in rescored] == [rows[q]["followup"]["passed"] for q in tool]
        assert f"multi-turn: passed {followup['correct']}/{total}" in proc.stderr
    g5 = doc["gates"]["gate5"]
    if g5["figures"]["followup"]["correct"] < 26:  # data/queries.toml [followup] overall_min, a flag
        assert any(f.startswith("multi-turn pass: ") for f in g5["flags"]), g5["flags"]
    assert "multi-turn pass per category" in (reports / "gate-report.html").read_text(encoding="utf-8")


def assert_compared_through_the_server(reports: Path, doc: dict, result) -> None:
    """The report holds both models' answers side by side, the intervals and McNemar, and says how they were asked."""
    assert doc["answering"]["via"] == "server" and "mlx_lm.server" in doc["answering"]["note"]
    g2, g5 = doc["gates"]["gate2"]["figures"], doc["gates"]["gate5"]["figures"]
    assert g2["timed_via"] == "server" and all(q["baseline_latency_s"] > 0 for q in g2["per_query"])
    # streamed: time to first token; None for a reply the token budget cut inside a call
    # (the server holds a call's text until it ends, so no chunk ever came)
    assert any(q["ttft_s"] is not None for q in g2["per_query"])
    for gate in ("gate2", "gate3", "gate4", "gate5"):
        server = doc["gates"][gate]["figures"]["answering"]["server"]
        assert (
            "mlx_lm.server" in server["command"] and " --model " in server["command"] and server["versions"]["mlx-lm"]
        )
        assert all(s["stop_s"] is not None for s in server["starts"]), (gate, server["starts"])
        assert (reports / f"{gate}-server.log").is_file()
    assert doc["gates"]["gate5"]["figures"]["answering"]["baseline_server"]["model"] == "baseline"
    # The demo has tekken.json; served with mistral-common hidden (production's environment has
    # none), mlx_lm.server loads TokenizersBackend and picks mlx-lm's mistral tool parser.
    assert g5["answering"]["server"]["tool_parsing"]["returns_tool_calls"] is True
    assert g5["answering"]["server"]["plan"]["tool_parser"] == "mlx_lm.tool_parsers.mistral"

    rows = g5["queries"]
    assert len(rows) == 40
    for row in rows:
        for side in (row, row["baseline"]):
            assert {"passed", "tools", "fields", "reason", "response", "tool_calls"} <= set(side), row["id"]
    m = g5["mcnemar"]
    assert m["both_passed"] + m["both_failed"] + m["only_candidate"] + m["only_baseline"] == 40
    assert 0 <= m["p_two_sided"] <= 1 and 0 <= m["p_candidate_worse"] <= 1
    assert g5["interval"]["total"] == g5["baseline_interval"]["total"] == 40
    assert 0 <= g5["interval"]["low"] <= g5["interval"]["high"] <= 1
    for name, cat in g5["categories"].items():
        assert {"interval", "baseline_interval", "mcnemar", "min", "correct"} <= set(cat), name
    assert g5["comparison"]["made"] and g5["comparison"]["alpha"] == 0.05
    assert doc["gates"]["gate4"]["figures"]["comparison"]["made"]
    saved = [json.loads(line) for line in (reports / "gate5-baseline-responses.jsonl").read_text().splitlines()]
    assert len(saved) == 40 and all(r["via"] == "server" and "tool_calls" in r for r in saved)

    md = (reports / "gate-report.md").read_text(encoding="utf-8")
    assert "| query | candidate | tools | fields | reason | baseline | tools | fields | reason |" in md
    assert "paired (exact McNemar)" in md and "answers came through mlx_lm.server" in md
    result.stdout.fnmatch_lines([
        "answers: through mlx_lm.server (mlx-lm *)",
        "gate5 vs baseline: candidate */40 [[]*%[]] vs baseline */40 [[]*%[]], McNemar * vs * discordant, p = *",
    ])  # fmt: skip


def test_gate2_fails_a_candidate_too_slow_through_the_server(suite, gate_cache):
    """A budget no model meets: Gate 2 times through mlx_lm.server and fails, naming the average."""
    gates = small_gates(suite, gate2__max_avg_latency_s=0.001)
    result, doc = run(
        suite, "-m", "gate2", "--candidate", "demo", "--run-all-gates", f"--gates={gates}", *small_data(suite)
    )
    g2 = doc["gates"]["gate2"]
    assert g2["status"] == "failed" and g2["figures"]["timed_via"] == "server"
    assert "over 10 queries exceeds 0.001 s" in g2["reasons"][0]
    assert not servers_left(gate_cache)


def test_ctrl_c_during_gate5_leaves_no_server(suite, gate_cache):
    """A real SIGINT while Gate 5's fused model is being served: the run ends, no server stays."""
    import signal
    import subprocess
    import sys
    import time

    gates = small_gates(suite, gate4__valid_examples=2)
    reports = suite.path / "reports-interrupted"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(reports),
        "gates",
        "-m",
        "gate5",
        "--candidate",
        "demo",
        "--run-all-gates",
        f"--gates={gates}",
        *small_data(suite),
        "--gate5-iters",
        "2",
        "--max-tokens",
        "64",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # SIGINT as a terminal delivers it, even when this test runs where SIGINT is ignored (a
    # background job, `cmd &`: the child would inherit SIG_IGN and Python install no Ctrl-C handler).
    proc = subprocess.Popen(
        args,
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 900
        # Training and fusion first (cached after the full run). Only a server this run started
        # counts: one still stopping after an earlier test would send the signal too early.
        while not servers_left(gate_cache, started_by=proc.pid):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "Gate 5's server never started"
            time.sleep(0.2)
        time.sleep(1.0)  # it is starting or answering now
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, out[-3000:]  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out
    deadline = time.monotonic() + 10
    while servers_left(gate_cache) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not servers_left(gate_cache)


def test_gate0_passes_on_the_demo_and_flags_validation_conversations_found_in_training(suite):
    """One Gate 0 run on the demo (it once was two, identical but for the data) proves both: the
    ids Punie recorded, read from the template and the vocabulary, with parity to the reference;
    and a validation conversation also in the training data flagged with its line. Gate 0 on the
    demo's default data is run by test_full_run_on_the_demo_stops_at_gate1 and test_options_as_typed."""
    folder = suite.path / "leaky"
    folder.mkdir()
    source = paths.fixtures_dir() / "demo-training"
    train = (source / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:6]
    valid = (source / "valid.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:1]
    (folder / "train.jsonl").write_text("".join(train), encoding="utf-8")
    (folder / "valid.jsonl").write_text("".join(valid + train[2:3]), encoding="utf-8")
    result, doc = run(suite, "-m", "gate0", "--candidate", "demo", f"--training-data={folder}")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert statuses(doc)["gate0"] == "passed" and doc["verdict"] == "INCOMPLETE"
    figures = doc["gates"]["gate0"]["figures"]
    seed = figures["seed_delimiters"]
    # Punie's recorded ids, read from what the template renders and from the vocabulary.
    assert {m: seed[m]["ids"] for m in ("[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")} == {
        "[TOOL_CALLS]": [9],
        "[TOOL_RESULTS]": [7],
        "[/TOOL_RESULTS]": [8],
    }
    closing = seed["[/TOOL_CALLS]"]
    assert closing["ids"] == [1091, 1047, 9197, 8568, 74483, 1083, 1093] and not closing["emitted"]
    assert closing["note"] == "not emitted by this format (a call ends at </s>)"
    assert figures["markers"]["[ARGS]"]["single"] and figures["markers"]["[ARGS]"]["control"]
    assert figures["tokenizer_class"] == "MistralCommonBackend"
    assert figures["parity"]["mismatches"] == 0 and figures["parity"]["records_checked"] > 0
    overlap = figures["data_overlap"]
    assert overlap["valid_in_train"] == 1 and overlap["valid_in_train_lines"] == [2]
    assert any("1 of 2 validation conversations also appear" in f for f in doc["flags"])
