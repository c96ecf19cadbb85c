"""The acceptance gates end to end on the built-in demo candidate, run by pytester.

The gate modules are copied from tests/gates into a scratch folder and run as a
user runs them (`pytest --candidate demo ...`). The demo is built once into a
session cache shared by every inner run; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from punie_gates.inputs import paths
from punie_gates.formats import tekken

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
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--report-dir", str(reports), "gates", *args, timeout=1500)
    doc = json.loads((reports / "gate-report.json").read_text())
    return result, doc


def statuses(doc):
    return {g: doc["gates"][g]["status"] for g in GATES}


def test_gate0_passes_on_the_demo(suite):
    result, doc = run(suite, "-m", "gate0", "--candidate", "demo")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert statuses(doc)["gate0"] == "passed" and doc["verdict"] == "INCOMPLETE"
    figures = doc["gates"]["gate0"]["figures"]
    seed = figures["seed_delimiters"]
    # Punie's recorded ids, read from what the template renders and from the vocabulary.
    assert {m: seed[m]["ids"] for m in ("[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")} == {
        "[TOOL_CALLS]": [9], "[TOOL_RESULTS]": [7], "[/TOOL_RESULTS]": [8]}
    closing = seed["[/TOOL_CALLS]"]
    assert closing["ids"] == [1091, 1047, 9197, 8568, 74483, 1083, 1093] and not closing["emitted"]
    assert closing["note"] == "not emitted by this format (a call ends at </s>)"
    assert figures["markers"]["[ARGS]"]["single"] and figures["markers"]["[ARGS]"]["control"]
    assert figures["tokenizer_class"] == "MistralCommonBackend"
    assert figures["parity"]["mismatches"] == 0 and figures["parity"]["records_checked"] > 0


def _tokenizer_only_candidate(root: Path, layout: str) -> Path:
    """A candidate folder made elsewhere: tokenizer and config files, no weights at all."""
    folder = root / f"tok-{layout}"
    tekken.save_hf_tokenizer(tekken.write_tekken(folder / "tekken.json", layout), folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "mistral3", "text_config": {"model_type": "ministral3"}}))
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
    assert statuses(doc) == {"gate0": "passed", "gate1": "failed", "gate2": "skipped",
                             "gate3": "skipped", "gate4": "skipped", "gate5": "skipped"}
    reasons = " ".join(doc["gates"]["gate1"]["reasons"])
    assert "define" in reasons or "parse" in reasons  # the gibberish is quoted with why it fails
    figures = doc["gates"]["gate1"]["figures"]
    assert figures["bits"] == 5 and figures["peak_memory_gb"] > 0
    assert doc["candidate"]["is_demo"]
    assert (suite.path / "reports" / "gate-report.md").is_file()
    result.stdout.fnmatch_lines(["*VERDICT: NO_GO (stopped at gate1)*"])


def test_every_gate_runs_with_run_all_gates(suite):
    """All six gates run past Gate 1's failure: passed or failed, none skipped."""
    gates = small_gates(suite, gate4__valid_examples=2)
    result, doc = run(
        suite, "--candidate", "demo", "--run-all-gates", f"--gates={gates}", *small_data(suite),
        "--gate4-iters", "2", "--gate5-iters", "2", "--gate4-examples", "4", "--max-tokens", "8",
        "--gen-batch-size", "8", "--bench",
    )
    assert result.ret == 1
    assert (doc["verdict"], doc["stopped_at"]) == ("NO_GO", "gate1")
    for gate, status in statuses(doc).items():
        assert status in ("passed", "failed"), (gate, status, doc["gates"][gate]["reasons"])
    g2, g3 = doc["gates"]["gate2"]["figures"], doc["gates"]["gate3"]["figures"]
    assert g2["avg_latency_s"] > 0 and len(g2["per_query"]) == 10
    assert (suite.path / "reports" / "gate2-benchmark.json").is_file()
    assert "well_formed_calls" in g3
    # --bench: the plan's way and the suite's, side by side, the figures `punie-gates bench` prints
    bench = g2["bench"]
    assert (bench["queries"], bench["batch_size"], bench["max_tokens"]) == (40, 8, 8)
    assert bench["prefill_tokens_suite"] < bench["prefill_tokens_naive"] and bench["speedup"] > 0
    assert json.loads((suite.path / "reports" / "bench.json").read_text()) == bench
    result.stdout.fnmatch_lines(["speed to verdict (--bench): plan's cap: naive * s, suite * s: speedup *x (prefill *"
                                 "; at the training data's answer lengths (caps *): naive * s, suite * s: speedup *x*"])
    assert bench["workload"] == "plan_cap" and bench["training_lengths"]["workload"] == "training_lengths"
    assert len(bench["training_lengths"]["caps"]) == 40 and max(bench["training_lengths"]["caps"]) <= 8
    g4 = doc["gates"]["gate4"]["figures"]
    assert g4["loss_curve"]["valid"] and "lora_retention" in g4
    # what each step cost, per gate; Gate 4 fused through the streamed path
    steps = {gate: [s["step"] for s in doc["gates"][gate]["figures"]["steps"]] for gate in GATES[1:]}
    assert steps["gate1"] == ["quantize", "load", "smoke"] and steps["gate3"] == ["load", "answer"]
    assert steps["gate2"] == ["load", "answer", "bench"]
    assert steps["gate4"] == ["train", "evaluate", "fuse", "retention", "load", "answer"]
    fuse = next(s for s in doc["gates"]["gate4"]["figures"]["steps"] if s["step"] == "fuse")
    assert fuse["method"] == "streamed" and fuse["bytes_written"] > 0 and fuse["peak_memory_gb"] > 0
    assert g4["fusion"]["method"] == "streamed" and g4["fusion"]["fallback"] is None
    assert doc["work_folder"]["bytes"] > 0
    result.stdout.fnmatch_lines(["gate4  steps: train *s*, fuse *s *, retention *"])
    g5 = doc["gates"]["gate5"]["figures"]
    assert "lora_retention" in g5 and g5["total"] == 40
    # the shared prefix is prefilled once, not once per query
    assert g5["generation"]["prefill_tokens_suite"] < g5["generation"]["prefill_tokens_naive"] / 4


def test_gate0_flags_validation_conversations_found_in_training(suite):
    folder = suite.path / "leaky"
    folder.mkdir()
    source = paths.fixtures_dir() / "demo-training"
    train = (source / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:6]
    valid = (source / "valid.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:1]
    (folder / "train.jsonl").write_text("".join(train), encoding="utf-8")
    (folder / "valid.jsonl").write_text("".join(valid + train[2:3]), encoding="utf-8")
    result, doc = run(suite, "-m", "gate0", "--candidate", "demo", f"--training-data={folder}")
    assert result.ret == 0 and doc["gates"]["gate0"]["status"] == "passed"
    overlap = doc["gates"]["gate0"]["figures"]["data_overlap"]
    assert overlap["valid_in_train"] == 1 and overlap["valid_in_train_lines"] == [2]
    assert any("1 of 2 validation conversations also appear" in f for f in doc["flags"])
