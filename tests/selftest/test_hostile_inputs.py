"""Hostile and broken input files, driven as a user would: a clear error naming the file (and
line), exit 2 for a command and ERROR (exit 6) for a run; never a traceback, a hang, a
NO_GO or a report that claims to be complete. The files are real (random bytes, UTF-16,
deep nesting, a FIFO, a folder), made here; the runs use fake gate modules (no model built).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_run_safety import run, write_gates  # the fake gate modules

from punie_gates.decision.verdict import EXIT_NOT_JUDGED
from punie_gates.errors import DataFileError
from punie_gates.inputs import readers
from punie_gates.inputs.paths import data_dir

REPO = Path(__file__).resolve().parents[2]
DEEP = 100_000


# -- the files -----------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path) -> dict[str, Path]:
    """One file (or non-file) per way an input can be hostile."""
    files = {
        "random": tmp_path / "garbage.bin",
        "utf16_toml": tmp_path / "queries-utf16.toml",
        "utf16_gates": tmp_path / "gates-utf16.toml",
        "deep_json": tmp_path / "deep.jsonl",
        "deep_toml": tmp_path / "deep.toml",
        "dotted_toml": tmp_path / "dotted.toml",
        "fifo": tmp_path / "pipe.jsonl",
        "folder": tmp_path / "a-folder",
    }
    files["random"].write_bytes(bytes([0xF9, 0x80]) + os.urandom(4000))
    files["utf16_toml"].write_bytes((data_dir() / "queries.toml").read_text(encoding="utf-8").encode("utf-16"))
    files["utf16_gates"].write_bytes((data_dir() / "gates.toml").read_text(encoding="utf-8").encode("utf-16"))
    files["deep_json"].write_text("[" * DEEP + "]" * DEEP + "\n")
    files["deep_toml"].write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    files["dotted_toml"].write_text("a" + ".a" * 5000 + " = 1\n")
    os.mkfifo(files["fifo"])
    files["folder"].mkdir()
    return files


def within(seconds: float, function, *args):
    """Call `function` in a thread; fail (instead of hanging the self-tests) if it blocks."""
    out: dict = {}

    def call():
        try:
            out["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            out["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} blocked for {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- the readers ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, says", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("folder", "is a folder, not a regular file"),
])  # fmt: skip
def test_only_a_regular_file_is_read(hostile, kind, says):
    for reader in (readers.read_jsonl, readers.read_toml, readers.read_json, readers.read_text):
        with pytest.raises(DataFileError, match=re.escape(says)) as caught:
            within(5, reader, hostile[kind], "input file")
        assert str(hostile[kind]) in str(caught.value)


def test_a_device_is_refused():
    with pytest.raises(DataFileError, match="/dev/zero: input file is a device"):
        within(5, readers.read_text, Path("/dev/zero"), "input file")


def test_bytes_that_are_not_utf8_name_file_line_and_column(hostile, tmp_path):
    with pytest.raises(DataFileError, match=r"queries-utf16.toml:1: query file is not UTF-8 text .*UTF-16"):
        readers.read_toml(hostile["utf16_toml"], "query file")
    late = tmp_path / "late.toml"
    late.write_bytes(b'a = 1\nb = "caf\xe9"\n')
    with pytest.raises(DataFileError, match=r"late.toml:2: .*not UTF-8 text \(byte b'\\xe9' at column 9\)"):
        readers.read_toml(late, "query file")


def test_a_bom_is_accepted(tmp_path):
    toml, jsonl = tmp_path / "bom.toml", tmp_path / "bom.jsonl"
    toml.write_bytes(readers.BOM + b"a = 1\n")
    jsonl.write_bytes(readers.BOM + b'{"id": "x"}\r\n{"id": "y"}\n')
    assert readers.read_toml(toml, "file") == {"a": 1}
    assert [line.value for line in readers.read_jsonl(jsonl, "file")] == [{"id": "x"}, {"id": "y"}]


def test_nesting_beyond_the_limit_is_an_error_not_a_recursion(hostile):
    for kind in ("deep_toml", "dotted_toml"):
        with pytest.raises(DataFileError, match=f"nested more than {readers.MAX_DEPTH} levels"):
            readers.read_toml(hostile[kind], "query file")
    [line] = readers.read_jsonl(hostile["deep_json"], "responses")
    assert line.number == 1 and line.problem.startswith("nested more than")
    fine = "[" * readers.MAX_DEPTH + "]" * readers.MAX_DEPTH
    assert readers.parse_json(fine) is not None
    with pytest.raises(readers.NestingError):
        readers.parse_json("[" + fine + "]")


def test_a_line_beyond_the_limit_is_an_error_and_the_next_line_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    path.write_text('{"id": "a"}\n' + '"' + "x" * 5000 + '"\n{"id": "c"}\n')
    lines = readers.read_jsonl(path, "responses")
    assert [(line.number, line.value) for line in lines] == [(1, {"id": "a"}), (2, None), (3, {"id": "c"})]
    assert "the line holds 5,002 bytes, more than the 1,000" in lines[1].problem


def test_what_the_suite_writes_it_reads_back_with_the_right_line_numbers(tmp_path, queries):
    """A saved answer may hold U+2028, U+0085 or a form feed (JSON written with
    ensure_ascii=False keeps them raw): str.splitlines took each for a line end."""
    from punie_gates.answering.answers import QueryAnswer, save_answers
    from punie_gates.checks.scoring import read_answers

    texts = ["one\u2028two", "three\x85four", "five\x0csix\x1dseven", "plain"]
    ids = [q.id for q in queries.queries[: len(texts)]]
    answers = [QueryAnswer(i, t, None, "inprocess", "stop", 0.1, None, None, None, None) for i, t in zip(ids, texts)]
    path = save_answers(tmp_path / "gate3-responses.jsonl", answers)
    saved, errors = read_answers(path, queries)
    assert errors == [] and [(a.id, a.response) for a in saved] == list(zip(ids, texts))
    with path.open("a", encoding="utf-8") as f:
        f.write("not json\n")
    _, errors = read_answers(path, queries)
    assert errors == [f"{path}:5: not valid JSON (Expecting value at column 1)"]


# -- the commands --------------------------------------------------------------------


def command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "punie_gates", *args], capture_output=True, text=True, check=False,
                          timeout=60, env=env, cwd=cwd)  # fmt: skip


def assert_refused(done: subprocess.CompletedProcess, *says: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for text in says:
        assert text in done.stderr, done.stderr


def test_score_refuses_each_hostile_file(hostile):
    f = hostile
    assert_refused(command("score", "--responses", str(f["deep_json"])), f"{f['deep_json']}:1: nested more than")
    assert_refused(command("score", "--conversations", str(f["deep_json"])), f"{f['deep_json']}:1: nested more than")
    assert_refused(command("score", "--responses", str(f["fifo"])), "is a FIFO (named pipe)")
    assert_refused(command("score", "--responses", str(f["folder"])), "is a folder")
    assert_refused(command("score", "--responses", str(f["random"])), f"{f['random']}:1: not UTF-8 text")
    assert_refused(command("score", "--responses", "x", "--queries", str(f["utf16_toml"])),
                   f"{f['utf16_toml']}:1: query file is not UTF-8 text")  # fmt: skip
    assert_refused(command("score", "--responses", "x", "--queries", str(f["deep_toml"])), "nested more than")
    assert_refused(command("score", "--responses", "x", "--tools", str(f["fifo"])), "tool catalog is a FIFO")


def test_convert_refuses_a_fifo_and_rejects_deep_lines(hostile, tmp_path):
    out = tmp_path / "out.jsonl"
    assert_refused(command("convert", str(hostile["fifo"]), "-o", str(out)), "is a FIFO (named pipe)")
    assert_refused(command("convert", str(hostile["folder"] / "x.jsonl"), "--tools", str(hostile["deep_json"]),
                           "-o", str(out)), "tool list is nested more than")  # fmt: skip
    done = command("convert", str(hostile["deep_json"]), "-o", str(out))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "deep.jsonl:1: nested more than" in done.stderr


def test_compare_out_folder_same_folder_and_a_deep_report(tmp_path, queries):
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"id": q.id, "response": "no\u2028call"}, ensure_ascii=False) for q in queries.queries[:3]]
    (run / "gate4-responses.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (run / "gate-report.json").write_text("[" * DEEP + "]" * DEEP)
    folder = tmp_path / "pages"
    folder.mkdir()
    assert_refused(command("compare", str(run), str(run), "--out", str(folder)), f"--out {folder} is a folder")
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))
    done = command("compare", str(run), str(run), "--out", str(tmp_path / "cmp.html"))
    assert done.returncode == 0, done.stderr
    assert "is given twice" in done.stderr and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["a"]["answered"] == 3


# -- the runs ------------------------------------------------------------------------


def run_json(pytester) -> dict:
    return json.loads((pytester.path / "reports" / "run.json").read_text())


@pytest.mark.parametrize("option, kind, says", [
    ("--tools", "random", "tool catalog is not UTF-8 text"),
    ("--queries", "utf16_toml", "query file is not UTF-8 text"),
    ("--gates", "utf16_gates", "gate thresholds file (--gates) is not UTF-8 text"),
    ("--queries", "fifo", "query file is a FIFO"),
    ("--gates", "deep_toml", "nested more than"),
])  # fmt: skip
def test_a_bad_input_file_ends_the_run_error_not_no_go(pytester, hostile, option, kind, says):
    write_gates(pytester, bodies={"gate0": "raise AssertionError('GATE-RAN')"}, fixtures={"gate3": "query_set"})
    result, doc = run(pytester, option, str(hostile[kind]))
    out = result.stdout.str()
    assert result.ret == EXIT_NOT_JUDGED, out
    assert "INTERNALERROR" not in out and "Traceback" not in out and "GATE-RAN" not in out
    assert doc["verdict"] == "ERROR" and doc["complete"] is False
    assert len(doc["reasons"]) == 1 and says in doc["reasons"][0] and str(hostile[kind]) in doc["reasons"][0]
    assert run_json(pytester)["state"] == "not judged"


BUG_AT_COLLECTION = """
def pytest_collection_finish(session):
    raise RuntimeError("a bug after the report folder was taken")
"""


def test_an_internal_error_is_error_incomplete_and_ends_run_json(pytester):
    write_gates(pytester, conftest=BUG_AT_COLLECTION)
    result, doc = run(pytester)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert doc["verdict"] == "ERROR" and doc["complete"] is False
    assert doc["reasons"][0].startswith("internal error: RuntimeError: a bug after the report folder was taken")
    assert run_json(pytester)["state"] == "internal error"
    result.stdout.fnmatch_lines(["VERDICT: ERROR*", "  - internal error: RuntimeError: a bug after*"])


def test_a_bug_while_deciding_still_ends_run_json(pytester, monkeypatch):
    from punie_gates.plugin import session

    def broken(*args, **kwargs):
        raise KeyError("a bug in the decision")

    monkeypatch.setattr(session, "gate_results", broken)
    write_gates(pytester)
    result, doc = run(pytester)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert doc["verdict"] == "ERROR" and doc["complete"] is False and "KeyError" in doc["reasons"][0]
    assert run_json(pytester)["state"] == "internal error"
    result.stdout.fnmatch_lines(["INTERNALERROR> *KeyError: 'a bug in the decision'"])


def test_an_interrupt_after_a_hard_failure_tells_one_story(pytester):
    write_gates(pytester, bodies={"gate1": "assert False, 'does not load'", "gate3": "raise KeyboardInterrupt"})
    result, doc = run(pytester, "--run-all-gates")
    out = result.stdout.str()
    assert doc["verdict"] == "NO_GO" and doc["stopped_at"] == "gate1" and doc["complete"] is False
    result.stdout.fnmatch_lines(["VERDICT: NO_GO at gate1; then interrupted during gate3"])
    assert "no go/no-go was reached" not in out and "no go/no-go was reached" not in json.dumps(doc)
    assert any(r.startswith("then interrupted (KeyboardInterrupt) while gate3") for r in doc["reasons"])


SAVE_ANSWERS = """
from punie_gates.answering.answers import QueryAnswer, save_answers
{break_it}
answers = [QueryAnswer(f"direct_answers-0{{n}}", "kept answer", None, "inprocess", "stop", 0.1, None, None, None, None)
           for n in range(1, 4)]
save_answers(gate_config.report_dir / "gate3-responses.jsonl", answers)
"""


def test_answers_that_cannot_be_saved_are_kept_and_the_run_ends_error(pytester, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the answers are kept: cleaned up by pytest
    # The report folder stops taking writes mid-run (here: the answers' file is taken by a folder,
    # which fails the same way for root, who ignores file modes).
    body = SAVE_ANSWERS.format(break_it="(gate_config.report_dir / 'gate3-responses.jsonl').mkdir()")
    write_gates(pytester, bodies={"gate3": body}, fixtures={"gate3": "gate_config"})
    result, doc = run(pytester)
    out = result.stdout.str()
    assert result.ret == EXIT_NOT_JUDGED, out
    assert "Traceback" not in out and "IsADirectoryError" not in out
    [reason] = doc["reasons"]
    assert "gate3-responses.jsonl (Is a directory)" in reason and "the 3 answers were kept in " in reason
    kept = Path(reason.rsplit(" were kept in ", 1)[1])
    assert kept.parent.parent == tmp_path
    result.stdout.fnmatch_lines([f"  - cannot write *gate3-responses.jsonl (Is a directory): *kept in {kept}"])
    assert [json.loads(line)["response"] for line in kept.read_text().splitlines()] == ["kept answer"] * 3
    assert doc["gates"]["gate3"]["status"] == "error" and doc["gates"]["gate4"]["status"] == "not_run"


def test_answers_kept_nowhere_follow_the_verdict(pytester, monkeypatch):
    import tempfile

    def no_temp(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(tempfile, "mkdtemp", no_temp)
    body = SAVE_ANSWERS.format(break_it="(gate_config.report_dir / 'gate3-responses.jsonl').mkdir()")
    write_gates(pytester, bodies={"gate3": body}, fixtures={"gate3": "gate_config"})
    result, doc = run(pytester)
    assert result.ret == EXIT_NOT_JUDGED
    assert "could not be kept elsewhere either (Permission denied): they follow the verdict" in doc["reasons"][0]
    result.stdout.fnmatch_lines(
        [
            "VERDICT: ERROR*",
            "results that could not be saved (3 JSONL lines*",
            '{"id": "direct_answers-01", "response": "kept answer"*',
        ]
    )


def test_a_fifo_in_the_training_folder_is_refused_not_waited_on(pytester):
    folder = pytester.mkdir("data")
    os.mkfifo(folder / "train.jsonl")
    (folder / "valid.jsonl").write_text('{"messages": []}\n')
    write_gates(pytester, fixtures={"gate4": "training_data"})
    result, doc = run(pytester, f"--training-data={folder}")
    assert result.ret == EXIT_NOT_JUDGED
    fifo = f"not judged: training data: {folder / 'train.jsonl'}: training data file is a FIFO (named pipe)"
    assert doc["reasons"] == [fifo + ", not a regular file; give a file"]


def test_a_permission_error_is_a_cause_not_a_traceback():
    from punie_gates.errors import user_error_message

    said = user_error_message(PermissionError(13, "Permission denied", "/r/gate3-server.log"))
    assert said.startswith("permission denied on /r/gate3-server.log (Permission denied): make it writable")
    assert user_error_message(PermissionError(13, "Permission denied")) is None  # no path: nothing to act on


def test_a_saved_answer_with_a_call_nested_past_any_parser_is_scored_failed(tmp_path, queries):
    deep = "[" * DEEP + "]" * DEEP
    qid = next(q.id for q in queries.queries if q.category != "direct_answers")
    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps({"id": qid, "response": f'[TOOL_CALLS]run_command[ARGS]{{"a": {deep}}}'}) + "\n"
                    + json.dumps({"id": qid, "response": "", "tool_calls": [{"name": "run_command",
                                  "arguments": f'{{"a": {deep}}}'}]}) + "\n")  # fmt: skip
    done = command("score", "--responses", str(path))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    scores = [json.loads(line) for line in done.stdout.splitlines()]
    assert [s["passed"] for s in scores] == [False, False]
    assert all("nested more than" in s["reason"] for s in scores), scores


def test_a_call_may_nest_its_arguments_less_deep_than_a_saved_line_may_nest():
    """A call's arguments are refused past ARGUMENTS_DEPTH, well under MAX_DEPTH, so that the
    saved answer or conversation holding them is never refused when read back."""
    from punie_gates.answering.conversation import reply_from_message

    def nested(depth: int) -> dict:
        value: object = 1
        for _ in range(depth):
            value = {"a": value}
        return value

    def call(arguments: dict):
        message = {"content": "", "tool_calls": [{"function": {"name": "run", "arguments": json.dumps(arguments)}}]}
        return reply_from_message(message).calls[0]

    assert call(nested(readers.ARGUMENTS_DEPTH)).error is None
    assert "nested more than" in call(nested(readers.ARGUMENTS_DEPTH + 1)).error
    saved = {"id": "q", "turns": [{"calls": [{"arguments": nested(readers.ARGUMENTS_DEPTH)}]}]}
    assert readers.parse_json(json.dumps(saved)) == saved
    assert readers.MAX_DEPTH - readers.ARGUMENTS_DEPTH >= 10  # room for the record's own levels
