"""`punie-gates convert` never destroys its input and never leaves half an output."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from punie_gates.commands.convert import main
from punie_gates.inputs import paths

REPO = Path(__file__).resolve().parents[2]
SOURCE = paths.fixtures_dir() / "demo-training"


def convert(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "punie_gates", "convert", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture
def data(tmp_path) -> Path:
    (tmp_path / "t.jsonl").write_bytes((SOURCE / "train.jsonl").read_bytes())
    return tmp_path


def test_converting_a_file_onto_itself_is_refused_before_reading(data):
    before = (data / "t.jsonl").read_bytes()
    done = convert("t.jsonl", "-o", "t.jsonl", cwd=data)
    assert done.returncode == 2 and (data / "t.jsonl").read_bytes() == before
    assert "is the input file" in done.stderr and "would destroy the input" in done.stderr
    (data / "link.jsonl").symlink_to("t.jsonl")
    assert convert("t.jsonl", "-o", "link.jsonl", cwd=data).returncode == 2
    assert convert("t.jsonl", "-o", "out.jsonl", "--rejects", "t.jsonl", cwd=data).returncode == 2
    assert (data / "t.jsonl").read_bytes() == before and not (data / "out.jsonl").exists()


def test_a_folder_converted_onto_itself_is_refused(data):
    folder = data / "d"
    folder.mkdir()
    for name in ("train.jsonl", "valid.jsonl"):
        (folder / name).write_bytes((SOURCE / name).read_bytes())
    assert main([str(folder), "-o", str(folder)]) == 2
    assert (folder / "train.jsonl").read_bytes() == (SOURCE / "train.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("setup", "argv", "says"),
    [
        ("empty", ["e.jsonl", "-o", "o.jsonl"], "e.jsonl: the file is empty (no records); nothing to convert"),
        (
            "no-valid",
            ["d", "-o", "out"],
            "the folder d has no valid.jsonl: a folder INPUT needs train.jsonl and valid.jsonl",
        ),
        (
            "",
            ["t.jsonl", "-o", "o.jsonl", "--limit", "5000"],
            "--limit 5000 is more than the 40 records converted from t.jsonl",
        ),
    ],
)
def test_what_cannot_be_converted_is_said_with_exit_2(data, monkeypatch, capsys, setup, argv, says):
    monkeypatch.chdir(data)
    if setup == "empty":
        (data / "e.jsonl").write_text("")
    if setup == "no-valid":
        (data / "d").mkdir()
        (data / "d" / "train.jsonl").write_bytes((data / "t.jsonl").read_bytes())
    assert main(argv) == 2
    assert says in capsys.readouterr().err
    assert not (data / "o.jsonl").exists() and not (data / "out").exists()


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_write_keeps_the_old_output(data, monkeypatch, failure):
    out = data / "out.jsonl"
    out.write_text("the previous output\n")

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    if isinstance(failure, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            main([str(data / "t.jsonl"), "-o", str(out)])
    else:
        assert main([str(data / "t.jsonl"), "-o", str(out)]) == 2
    assert out.read_text() == "the previous output\n"
    assert sorted(p.name for p in data.iterdir()) == ["out.jsonl", "t.jsonl"]  # no temporary file left
