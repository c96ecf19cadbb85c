"""ModelServer and ask: lifecycle with fake servers, forced tool-call output, one real mlx_lm.server run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from punie_gates.answering.client import Answer, ToolCall, _Partial, ask
from punie_gates.answering.server import ModelServer, ServerError
from punie_gates.answering.server_record import server_versions
from punie_gates.answering.tool_parsing import server_tool_parsing

HERE = Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fake_mlx_server.py")]
USER = [{"role": "user", "content": "Check types in src/"}]
TOOL_REPLY = ["Let me check.", {"control": "[TOOL_CALLS]"}, "read_file[ARGS]", '{"path": "src/a.py"}']


def _gone(pid: int) -> bool:
    """True when no process (zombies count as gone) has this pid."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _child_pid(log: Path) -> int:
    for line in log.read_text().splitlines():
        if line.startswith("fake child pid "):
            return int(line.split()[-1])
    raise AssertionError(f"no child pid in {log}")


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    """A folder that passes ModelServer's check; fakes never read it."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    from punie_gates.model.demo import ensure_demo_model

    cache = os.environ.get("PUNIE_GATES_CACHE") or tmp_path_factory.mktemp("cache")
    return ensure_demo_model(Path(cache))


def _fake(*options: str) -> list[str]:
    return [*FAKE, *options]


# --- lifecycle ---------------------------------------------------------------------


def test_a_server_that_never_opens_its_port_times_out_and_is_killed(model_dir, tmp_path):
    log = tmp_path / "server.log"
    server = ModelServer(model_dir, log, launcher=_fake("--fake-mode", "silent", "--fake-child"), startup_timeout_s=3)
    with pytest.raises(ServerError) as info:
        server.start()
    message = str(info.value)
    assert "did not open port" in message and "fake server pid" in message  # quotes the log
    assert str(model_dir) in message  # and the command
    assert _wait_gone(server.pid) and _wait_gone(_child_pid(log))  # the whole group


def test_a_server_that_exits_at_once_is_reported_with_its_log(model_dir, tmp_path):
    server = ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-mode", "exit"))
    began = time.monotonic()
    with pytest.raises(ServerError, match=r"exited with code 3(.|\n)*fake failure at startup"), server:
        pytest.fail("must not get here")
    assert time.monotonic() - began < 15
    assert _gone(server.pid)


def test_a_server_whose_model_does_not_load_is_reported(model_dir, tmp_path):
    server = ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-mode", "unhealthy"))
    with pytest.raises(ServerError, match="/health 503"):
        server.start()
    assert _wait_gone(server.pid)


def test_readiness_waits_for_the_model_not_only_for_the_port(model_dir, tmp_path):
    with ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-load-s", "2")) as server:
        assert server.startup_s >= 2
        record = server.record()
    assert record.command[-6:] == ("--host", "127.0.0.1", "--port", str(server.port), "--log-level", "INFO")
    assert server.record().stop_s is not None
    assert set(record.versions) >= {"mlx", "mlx-lm", "transformers", "mistral-common"}


def test_a_server_that_dies_mid_run_gives_error_answers_and_a_clean_exit(model_dir, tmp_path):
    conversations = [(f"q{i}", USER) for i in range(5)]
    with ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-die-after", "3")) as server:
        answers = ask(server.base_url, conversations, tools=None, max_tokens=16, concurrency=1, stream=False)
    assert [a.id for a in answers] == ["q0", "q1", "q2", "q3", "q4"]
    assert [bool(a.error) for a in answers] == [False, False, True, True, True]
    assert answers[0].content == "fake answer" and answers[0].finish_reason == "stop"
    assert "Connection" in answers[3].error
    assert _gone(server.pid)


def test_stop_kills_a_server_that_ignores_sigterm(model_dir, tmp_path):
    with ModelServer(
        model_dir, tmp_path / "server.log", launcher=_fake("--fake-mode", "ignore-term"), stop_timeout_s=1
    ) as server:
        pass
    assert server.stop_s >= 1
    assert _gone(server.pid)


def test_an_exception_in_the_block_stops_the_server(model_dir, tmp_path):
    with (
        pytest.raises(ZeroDivisionError),
        ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-child")) as server,
    ):
        raise ZeroDivisionError("raised inside the block")
    assert _gone(server.pid) and _wait_gone(_child_pid(tmp_path / "server.log"))


DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from punie_gates.answering.server import ModelServer
    with ModelServer(sys.argv[1], sys.argv[2], launcher=json.loads(sys.argv[3])) as server:
        print(json.dumps({"server": server.pid}), flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_our_process_stops_the_server(model_dir, tmp_path, sig):
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(model_dir), str(log), json.dumps(_fake("--fake-child"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # SIGINT as a terminal delivers it, even where this test runs with SIGINT ignored (`cmd &`).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        line = driver.stdout.readline()
        assert line, driver.stderr.read()
        server_pid, child_pid = json.loads(line)["server"], _child_pid(log)
        assert not _gone(server_pid) and not _gone(child_pid)
        driver.send_signal(sig)
        driver.wait(timeout=30)
    finally:
        driver.kill()
        driver.wait()
    if sig == signal.SIGTERM:
        assert driver.returncode == -signal.SIGTERM  # it still dies of SIGTERM, after stopping the server
    else:
        assert "KeyboardInterrupt" in driver.stderr.read()
    assert _wait_gone(server_pid, 5) and _wait_gone(child_pid, 5)


def test_the_folder_is_checked_before_anything_starts(tmp_path):
    with pytest.raises(ServerError, match="no config.json"):
        ModelServer(tmp_path / "missing", tmp_path / "server.log").start()
    assert not (tmp_path / "server.log").exists()


def test_remote_code_is_never_trusted(model_dir, tmp_path):
    with pytest.raises(ValueError, match="trust-remote-code"):
        ModelServer(model_dir, tmp_path / "server.log", extra_args=["--trust-remote-code"])


# --- answers -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_calls_come_back_as_the_server_sends_them(model_dir, tmp_path, stream):
    reply = json.dumps(TOOL_REPLY)
    with ModelServer(model_dir, tmp_path / "server.log", launcher=_fake("--fake-reply", reply)) as server:
        full, cut = (ask(server.base_url, [("q", USER)], tools=None, max_tokens=n, stream=stream)[0] for n in (64, 3))
    assert full.error == "" and full.content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in full.tool_calls] == [("read_file", {"path": "src/a.py"})]
    assert full.tool_calls[0].id and full.finish_reason == "tool_calls"
    assert (full.prompt_tokens, full.completion_tokens) == (7, 5)
    assert (full.ttft_s is not None) == stream
    # mlx-lm drops a call cut off by max_tokens (it logs a warning): nothing of it is returned.
    assert cut.finish_reason == "length" and cut.tool_calls == () and cut.content == "Let me check."


@pytest.mark.parametrize("keep_tekken", [True, False], ids=["tekken.json", "tokenizer.json only"])
def test_what_the_server_makes_of_a_mistral_tool_call_on_the_demo(demo_model, tmp_path, keep_tekken):
    """Forced `[TOOL_CALLS]name[ARGS]{...}` tokens through the demo's tokenizer and mlx-lm's HTTP handler."""
    folder = demo_model
    if not keep_tekken:
        folder = tmp_path / "no-tekken"
        folder.mkdir()
        for item in demo_model.iterdir():
            if item.name != "tekken.json":
                (folder / item.name).symlink_to(item)
    reply = ["Let me check ✓.", {"control": "[TOOL_CALLS]"}, "read_file", {"control": "[ARGS]"}, '{"path": "ä.py"}']
    launcher = _fake("--fake-tokenizer", str(folder), "--fake-reply", json.dumps(reply))
    with ModelServer(folder, tmp_path / "server.log", launcher=launcher) as server:
        whole, streamed = (
            ask(server.base_url, [("q", USER)], tools=None, max_tokens=64, stream=s)[0] for s in (False, True)
        )
    parsing = server_tool_parsing(folder)

    def seen(answer: Answer):  # ids are fresh uuids on every request
        return answer.content, [(c.name, c.arguments) for c in answer.tool_calls], answer.finish_reason

    assert seen(whole) == seen(streamed)
    if keep_tekken:
        # MistralCommonBackend: no tool parser, the call arrives as text, and characters
        # spanning two tokens are lost by the streaming detokenizer.
        assert parsing.tokenizer_class == "MistralCommonBackend" and not parsing.returns_tool_calls
        assert whole.tool_calls == () and whole.finish_reason == "stop"
        assert whole.content == 'Let me check \ufffd\ufffd.[TOOL_CALLS]read_file[ARGS]{"path": "\ufffd.py"}'
    else:
        assert parsing.tool_parser == "mlx_lm.tool_parsers.mistral" and parsing.tool_call_start == "[TOOL_CALLS]"
        assert whole.content == "Let me check ✓." and whole.finish_reason == "tool_calls"
        for answer in (whole, streamed):
            assert [(c.name, c.arguments) for c in answer.tool_calls] == [("read_file", '{"path": "ä.py"}')]


def test_streamed_tool_call_pieces_are_joined_by_index():
    partial = _Partial()
    partial.add_call(0, "call_1", "read_file", '{"pa')
    partial.add_call(1, "call_2", "run_command", "{}")
    partial.add_call(0, None, None, 'th": "a"}')
    partial.finish_reason = "tool_calls"
    answer = partial.answer("q", 1.0)
    assert answer.tool_calls == (
        ToolCall("call_1", "read_file", '{"path": "a"}'),
        ToolCall("call_2", "run_command", "{}"),
    )
    assert answer.to_dict()["tool_calls"][0] == {"id": "call_1", "name": "read_file", "arguments": '{"path": "a"}'}
    json.dumps(answer.to_dict())


def test_ask_rejects_bad_input():
    with pytest.raises(ValueError, match="unique"):
        ask("http://127.0.0.1:9/v1", [("q", USER), ("q", USER)], tools=None, max_tokens=8)
    with pytest.raises(ValueError, match="max_tokens"):
        ask("http://127.0.0.1:9/v1", [("q", USER)], tools=None, max_tokens=0)
    assert ask("http://127.0.0.1:9/v1", [], tools=None, max_tokens=8) == []


def test_a_request_to_no_server_is_an_error_answer():
    (answer,) = ask(f"http://127.0.0.1:{_closed_port()}/v1", [("q", USER)], tools=None, max_tokens=8)
    assert isinstance(answer, Answer) and answer.error.startswith("APIConnectionError") and answer.content == ""


def _closed_port() -> int:
    from punie_gates.answering.local_http import free_port

    return free_port()


def test_versions_name_the_libraries_that_shape_answers():
    versions = server_versions()
    assert versions["mlx-lm"] and versions["openai"] and versions["python"]


# --- the real mlx_lm.server -------------------------------------------------------------


def test_real_server_on_the_demo_candidate(demo_model, tmp_path):
    from punie_gates.answering.concurrency import answer_via_server
    from punie_gates.inputs.catalog import load_catalog

    tools = load_catalog().native_schemas()
    system = {"role": "system", "content": "You are Punie, a Python coding assistant."}
    call = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
    conversations = [
        ("single", [system, {"role": "user", "content": "Check types in src/"}]),
        ("multi", [
            system,
            {"role": "user", "content": "Show a.py"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
        ]),
    ]  # fmt: skip
    log = tmp_path / "report" / "mlx_lm_server.log"
    run = answer_via_server(demo_model, conversations, tools=tools, max_tokens=8, log_path=log, concurrency=2)
    (bare,) = answer_via_server(
        demo_model, conversations[:1], tools=None, max_tokens=8, log_path=log, stream=False
    ).answers

    single, multi = run.answers
    for answer in (single, multi, bare):
        assert answer.error == "", answer.error
        assert answer.completion_tokens == 8 and answer.finish_reason == "length" and answer.content
    assert single.ttft_s is not None and single.ttft_s <= single.latency_s
    # The server renders the tools into the prompt (3 catalog tools: ~700 tokens).
    assert single.prompt_tokens > bare.prompt_tokens + 500
    assert multi.prompt_tokens > single.prompt_tokens
    assert run.server.command[1:4] == ("-m", "mlx_lm", "server") and "--trust-remote-code" not in run.server.command
    assert run.server.startup_s > 0 and run.server.stop_s is not None
    # The demo ships tekken.json: mlx-lm finds no tool parser for it.
    assert "Received tools but model does not support tool calling" in log.read_text()
    assert len([line for line in log.read_text().splitlines() if "starting:" in line]) == 2  # one log, appended
    assert _gone(run.server.pid)


def test_real_server_with_a_model_that_cannot_load(tmp_path):
    folder = tmp_path / "bad-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    server = ModelServer(folder, tmp_path / "server.log", startup_timeout_s=60)
    with pytest.raises(ServerError) as info:
        server.start()
    assert "/health 503" in str(info.value) and "No safetensors found" in str(info.value)  # mlx-lm's reason
    assert _wait_gone(server.pid)
