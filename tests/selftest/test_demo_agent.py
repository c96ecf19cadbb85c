"""The demo-agent candidate: shipped within budget, built from data that holds no validation
query, result or fact, and assembled and named like the random demo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from punie_gates.inputs import paths
from punie_gates.inputs.catalog import load_catalog
from punie_gates.inputs.facts import alternatives, is_number
from punie_gates.inputs.queries import load_queries
from punie_gates.model import artifacts, demo_agent
from punie_gates.model.demo_agent_sources import (
    held_out_hits,
    held_out_strings,
    load_sources,
    target_turns,
)

SHIPPED = paths.fixtures_dir() / "demo-agent"


@pytest.fixture(scope="module")
def query_set():
    return load_queries(catalog=load_catalog())


def test_the_shipped_weights_fit_the_budget_and_are_at_the_gates_bits():
    weights = SHIPPED / "model.safetensors"
    assert weights.stat().st_size <= 20_000_000
    config = json.loads((SHIPPED / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "mistral3" and config["text_config"]["model_type"] == "ministral3"
    assert config["text_config"]["vocab_size"] == 131072
    assert config["quantization"]["bits"] == 5  # data/gates.toml [gate1] target_bits: Gate 1 keeps it as is


def test_held_out_facts_are_names_not_numbers_or_plain_words(query_set):
    held = held_out_strings(query_set)
    assert len(held["query_text"]) == len(query_set.queries)
    assert len(held["tool_result"]) >= sum(1 for q in query_set.queries if q.expect == "tool")
    facts = held["answer_fact"]
    assert "config.py" in facts and "lineitem" in facts
    assert not [f for f in facts if is_number(f)]
    assert "generator" not in facts and "function" not in facts
    # every name-like fact of the file is there
    names = {
        a.lower()
        for q in query_set.queries
        for f in q.answer_facts
        for a in alternatives(f)
        if len(a) >= 5 and any(c in a for c in "._/")
    }
    assert names <= set(facts)


def test_a_training_conversation_holding_a_query_is_left_out(tmp_path, query_set):
    query = next(q for q in query_set.queries if q.expect == "tool")
    clean = {
        "messages": [
            {"role": "system", "content": "You are Punie."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello."},
        ]
    }
    planted = {
        "messages": [
            {"role": "system", "content": "You are Punie."},
            {"role": "user", "content": "  " + query.text.upper() + " "},
            {"role": "assistant", "content": "Sure."},
        ]
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(clean) + "\n" + json.dumps(planted) + "\n", encoding="utf-8")
    suite_only = load_sources(None, load_catalog(), query_set)  # fixtures/demo-training alone
    sources = load_sources(tmp_path, load_catalog(), query_set)
    assert sources.held_out == suite_only.held_out + 1
    assert len(sources.records) == len(suite_only.records) + 1
    assert not any(held_out_hits(json.dumps(r["messages"]), held_out_strings(query_set)) for r in sources.records)


def test_what_it_was_built_from_holds_no_query_text_result_or_fact(query_set):
    """The manifest names its sources by hash; the suite's own source is checked here, and
    Phase 27's when PUNIE_PHASE27_DIR holds the same file."""
    manifest = demo_agent.manifest()
    held = held_out_strings(query_set)
    fixture = paths.fixtures_dir() / "demo-training" / "train.jsonl"
    recorded = {s["name"]: s for s in manifest["sources"]}
    assert recorded["fixtures/demo-training/train.jsonl"]["sha256"] == artifacts.file_fingerprint(fixture)["sha256"]
    kept = load_sources(None, load_catalog(), query_set).records
    assert kept and not [r for r in kept if held_out_hits(json.dumps(r["messages"], ensure_ascii=False), held)]
    phase27 = Path(os.environ.get("PUNIE_PHASE27_DIR", "/nonexistent")) / "train.jsonl"
    if "Punie Phase 27 train.jsonl" in recorded and phase27.is_file():
        assert recorded["Punie Phase 27 train.jsonl"]["sha256"] == artifacts.file_fingerprint(phase27)["sha256"]
        sources = load_sources(phase27.parent, load_catalog(), query_set)
        assert sources.held_out == manifest["held_out"]["conversations_dropped"]
        assert len(sources.records) == manifest["conversations"]["trained_on"]
        assert not [r for r in sources.records if held_out_hits(json.dumps(r["messages"], ensure_ascii=False), held)]


def test_trained_turns_are_the_first_reply_and_replies_to_results():
    messages = [
        {"role": "system"},
        {"role": "user"},
        {"role": "assistant"},
        {"role": "tool"},
        {"role": "assistant"},
        {"role": "user"},
        {"role": "assistant"},
    ]
    assert target_turns(messages) == [(2, "first"), (4, "after_result")]


def test_demo_model_agent_builds_a_marked_demo_into_a_folder(tmp_path, monkeypatch, capsys):
    from punie_gates.commands.demo_model import main
    from punie_gates.model.candidate import resolve_candidate

    monkeypatch.setenv("PUNIE_GATES_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "agent"
    assert main(["--agent", str(target)]) == 0
    assert "demo-agent model ready" in capsys.readouterr().out
    marker = json.loads((target / "punie_gates_demo.json").read_text(encoding="utf-8"))
    assert marker["demo"] and marker["agent"] and not marker["random_weights"]
    assert "weights set from" in marker["built_from"] and "left out" in marker["built_from"]
    assert (target / "model.safetensors").read_bytes() == (SHIPPED / "model.safetensors").read_bytes()
    assert resolve_candidate(str(target), cache_dir=tmp_path / "cache", offline=True).is_demo
