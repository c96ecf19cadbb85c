"""The two answering paths on the demo: mlx_lm.server (the default) against in-process (the reference).

Both ask the 40 validation queries through the gates' own step (checks.steps.answer_queries)
on the demo at the target bits, and every answer is scored by the same scorer. They agree
on every verdict; where their texts differ, it is what the server's streaming
detokenizer documents (answering/tool_parsing.py): it drops an answer's leading spaces
and may turn characters that span two tokens into U+FFFD. The server runs as by default
(answering/environment.py: mistral-common hidden), so it loads TokenizersBackend with
mlx-lm's mistral tool parser, and each server answer keeps the model's raw text (its
generated ids decoded), which equals the in-process text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from punie_gates.checks.scoring import score_answer


def _ascii_skeleton(text: str) -> str:
    """The text without what the server's detokenizer changes (non-ASCII characters, U+FFFD, spaces)."""
    return "".join(c for c in text if c.isascii() and not c.isspace())


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    from punie_gates.answering.answerer import AnswerSettings, make_answerer
    from punie_gates.answering.environment import serving_environment
    from punie_gates.answering.serving import ServerSlot
    from punie_gates.checks.steps import answer_queries
    from punie_gates.inputs.catalog import load_catalog
    from punie_gates.inputs.queries import load_queries
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.loading import holding, load_folder
    from punie_gates.model.quantize import ensure_bits

    tmp = tmp_path_factory.mktemp("answer-via")
    cache = Path(os.environ.get("PUNIE_GATES_CACHE") or tmp / "cache")
    catalog = load_catalog()
    queries = load_queries(catalog=catalog).queries
    folder = ensure_bits(ensure_demo_model(cache), cache / "work", 5).path
    settings = AnswerSettings(tools=tuple(catalog.native_schemas()), max_tokens=8, batch_size=8)
    system_prompt = "You are Punie, a Python coding assistant."

    slot = ServerSlot(serving_environment(None), tmp / "work")
    served = make_answerer(
        "server", label="candidate", path=folder, settings=settings, slot=slot, log_path=tmp / "reports" / "server.log"
    )
    try:
        via_server = answer_queries(served, queries, system_prompt=system_prompt, save_to=tmp / "server.jsonl")
    finally:
        slot.stop()
    with holding(lambda: load_folder(folder)) as loaded:
        in_process = answer_queries(
            make_answerer("inprocess", label="candidate", path=folder, settings=settings, load=lambda: loaded),
            queries,
            system_prompt=system_prompt,
            save_to=tmp / "inprocess.jsonl",
        )
    return queries, catalog, via_server, in_process, served


def test_both_paths_reach_the_same_verdicts(both_paths):
    queries, catalog, via_server, in_process, _ = both_paths
    served_passed = in_process_passed = 0
    for q, s, i in zip(queries, via_server, in_process, strict=True):
        a, b = score_answer(q, s, catalog), score_answer(q, i, catalog)
        served_passed += a.passed
        in_process_passed += b.passed
        assert a.passed == b.passed, (q.id, a.reason, b.reason)
    assert served_passed == in_process_passed


def test_their_answers_differ_only_as_documented(both_paths):
    queries, _, via_server, in_process, served = both_paths
    assert [a.via for a in via_server] == ["server"] * len(queries)
    assert [a.via for a in in_process] == ["inprocess"] * len(queries)
    record = served.record()
    assert record["tool_parsing"]["returns_tool_calls"] is True
    assert record["plan"]["tool_parser"] == "mlx_lm.tool_parsers.mistral"
    for s, i in zip(via_server, in_process, strict=True):
        assert s.raw_text is not None and s.raw_text.strip() == i.text.strip(), (s.id, s.raw_text, i.text)
        assert s.generated_tokens == i.generated_tokens == 8 and s.finish_reason == i.finish_reason == "length"
        # Texts are not compared for equality: the server's detokenizer may change them (see above).
        assert _ascii_skeleton(s.text) == _ascii_skeleton(i.text), (s.id, s.text, i.text)
