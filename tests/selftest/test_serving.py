"""The gates' server slot (one model served at a time), ask_queries, and --answer-via."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from punie_gates.answering.server import ServerError
from punie_gates.answering.serving import ServedModel, ServerSlot, ask_queries
from punie_gates.errors import OptionError
from punie_gates.inputs.options import resolve_options

HERE = Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fake_mlx_server.py")]
USER = [{"role": "user", "content": "Check types in src/"}]


def _model(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_one_model_is_served_at_a_time(tmp_path):
    slot = ServerSlot(launcher=FAKE)
    candidate = ServedModel(slot, _model(tmp_path, "candidate"), tmp_path / "candidate.log", "candidate")
    baseline = ServedModel(slot, _model(tmp_path, "baseline"), tmp_path / "baseline.log", "baseline")
    try:
        first = candidate.server
        assert candidate.server is first  # reused while it runs
        theirs = baseline.server
        assert not first.alive() and theirs.alive()  # serving the baseline stopped the candidate
        again = candidate.server  # asked again: started again, the baseline stopped
        assert again is not first and again.alive() and not theirs.alive()
        assert [len(candidate.runs), len(baseline.runs)] == [2, 1]
        baseline.stop()  # not the one running: nothing happens
        assert again.alive()
        record = candidate.record()
        assert (
            record["model"] == "candidate" and len(record["starts"]) == 2 and "fake_mlx_server.py" in record["command"]
        )
        assert record["starts"][0]["stop_s"] is not None
    finally:
        slot.stop()
    assert not again.alive()


def test_ask_queries_answers_in_order_after_a_warm_up(tmp_path):
    slot = ServerSlot(launcher=FAKE)
    served = ServedModel(slot, _model(tmp_path, "m"), tmp_path / "m.log", "candidate")
    seen = []
    try:
        answers = ask_queries(
            served,
            [(f"q{i}", USER) for i in range(5)],
            tools=None,
            max_tokens=8,
            concurrency=3,
            progress=lambda step, done, total, **_: seen.append((done, total)),
        )
    finally:
        slot.stop()
    assert [a.id for a in answers] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(a.via == "server" and a.text == "fake answer" and a.tool_calls == () for a in answers)
    assert seen[-1] == (5, 5)


def test_a_server_that_dies_while_answering_is_an_error_with_its_log(tmp_path):
    slot = ServerSlot(launcher=[*FAKE, "--fake-die-after", "2"])
    served = ServedModel(slot, _model(tmp_path, "m"), tmp_path / "m.log", "fused candidate")
    try:
        with pytest.raises(ServerError) as info:
            ask_queries(served, [(f"q{i}", USER) for i in range(4)], tools=None, max_tokens=8, concurrency=1)
    finally:
        slot.stop()
    # One line: the server named as exited, with its status and the end of its log.
    message = str(info.value)
    assert "\n" not in message and message.startswith("fused candidate: 3 of 4 requests got no answer: ")
    assert re.search(
        r"mlx_lm.server \(pid \d+, m\) exited with code 1; last lines of .*m.log: .*fake server dies", message
    )


def test_answer_via_defaults_to_the_server_and_names_a_bad_value(tmp_path):
    assert resolve_options({}, root=tmp_path, environ={}).answer_via == "server"
    assert resolve_options({}, root=tmp_path, environ={"PUNIE_GATES_ANSWER_VIA": "inprocess"}).answer_via == "inprocess"
    assert (
        resolve_options(
            {}, root=tmp_path, ini=lambda k: "inprocess" if k == "answer_via" else None, environ={}
        ).answer_via
        == "inprocess"
    )
    with pytest.raises(OptionError, match="environment variable PUNIE_GATES_ANSWER_VIA: --answer-via must be one of"):
        resolve_options({}, root=tmp_path, environ={"PUNIE_GATES_ANSWER_VIA": "http"})
    with pytest.raises(OptionError, match="--answer-via must be one of server, inprocess"):
        resolve_options({"answer_via": "both"}, root=tmp_path, environ={})
