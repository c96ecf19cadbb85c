"""Whose miss: the raw text beside what the API returned decides model, server or stream; the
default serving environment hides mistral-common from the server's process only."""

from __future__ import annotations

import subprocess
import sys

from punie_gates.answering.answers import QueryAnswer
from punie_gates.answering.environment import serving_environment
from punie_gates.checks.attribution import attribute, count_causes, miss_cause, miss_reason

CALL = '[TOOL_CALLS]execute_code[ARGS]{"code": "print(git_status(\'.\'))"}'


def _answer(text: str, tool_calls=(), raw: str | None = None, finish: str = "stop", via: str = "server") -> QueryAnswer:
    return QueryAnswer(
        id="q",
        text=text,
        tool_calls=tuple(tool_calls) if via == "server" else None,
        via=via,
        finish_reason=finish,
        latency_s=1.0,
        ttft_s=None,
        prompt_tokens=10,
        generated_tokens=5,
        prefill_tokens=10,
        raw_text=raw,
    )


def test_a_call_left_in_the_content_is_the_servers():
    cause, detail = miss_cause(_answer(CALL, raw=CALL + "</s>"))
    assert cause == "server" and "left it in message.content" in detail and "[TOOL_CALLS]execute_code" in detail


def test_a_call_the_api_dropped_is_the_servers_and_a_cut_off_one_says_so():
    assert miss_cause(_answer("", raw=CALL + "</s>"))[0] == "server"
    cause, detail = miss_cause(_answer("", raw=CALL[:30], finish="length"))
    assert cause == "server" and "token budget" in detail


def test_no_call_written_is_the_models():
    cause, detail = miss_cause(_answer("I cannot help.", raw="I cannot help.</s>"))
    assert cause == "model" and "I cannot help." in detail
    assert miss_cause(_answer("garbage", via="inprocess"))[0] == "model"


def test_text_damaged_by_the_detokenizer_is_the_streams():
    assert miss_cause(_answer("caf\ufffd", raw="café</s>"))[0] == "stream"
    assert miss_cause(_answer("HelloĠworld", raw="Hello world</s>"))[0] == "stream"
    assert miss_cause(_answer("Helloworld x", raw="Hello world x</s>"))[0] == "stream"  # a space lost inside
    assert miss_cause(_answer("Goodbye", raw="Goodbye</s>"))[0] == "model"  # the same text: the model's words
    assert miss_cause(_answer("3 errors", raw=" 3 errors</s>"))[0] == "model"  # a dropped leading space is no damage


def test_without_raw_text_the_content_decides():
    assert miss_cause(_answer(CALL))[0] == "server"
    assert miss_cause(_answer("caf\ufffd"))[0] == "stream"
    assert miss_cause(_answer("nothing"))[0] == "model"


def test_rows_are_counted_by_cause_and_a_server_only_failure_says_so():
    rows = [attribute({"passed": False}, _answer(CALL, raw=CALL)) for _ in range(3)] + [{"passed": True}]
    counts, lead, tail = miss_reason(rows, "serve a folder without tekken.json")
    assert counts == {"server": 3} == count_causes(rows)
    assert lead.startswith("every miss is the server's") and "without tekken.json" in lead
    assert tail == " [candidate misses by cause: server 3]"
    assert miss_reason([{**rows[0], "cause": "model"}, rows[1]])[1] == ""


def test_the_default_server_cannot_import_mistral_common():
    env = serving_environment(None)
    assert env.hide_mistral_common and env.server_launcher()[:2] == (sys.executable, "-c")
    hide = env.server_launcher()[2].split("; from mlx_lm.server")[0]
    check = (
        f"{hide}; import importlib.util; from transformers.utils.import_utils import is_mistral_common_available; "
        "print(importlib.util.find_spec('mistral_common'), is_mistral_common_available())"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["None", "False"], out.stderr[-500:]
    assert "absent" in env.versions()["mistral-common"]
    assert serving_environment(sys.executable).server_launcher() == (sys.executable, "-m", "mlx_lm", "server")
