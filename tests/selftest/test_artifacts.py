"""Keyed, atomic work folders: a killed or partial build is never trusted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from punie_gates.model import artifact_keys, artifacts


def _build(final: Path, text: str = "weights", parts: dict | None = None) -> Path:
    with artifacts.building(final, parts or {"x": 1}) as partial:
        (partial / "model.bin").write_text(text)
        (partial / "sub").mkdir()
        (partial / "sub" / "config.json").write_text("{}")
    return final


def test_key_depends_on_every_input_but_not_on_order(tmp_path):
    parts = {"model": {"a.safetensors": {"size": 3}}, "settings": {"iters": 50, "lr": 1e-4}}
    same = {"settings": {"lr": 1e-4, "iters": 50}, "model": {"a.safetensors": {"size": 3}}}
    other = {"model": {"a.safetensors": {"size": 3}}, "settings": {"iters": 51, "lr": 1e-4}}
    first = artifacts.artifact_dir(tmp_path, "lora", parts)
    assert first == artifacts.artifact_dir(tmp_path, "lora", same)
    assert first != artifacts.artifact_dir(tmp_path, "lora", other)
    assert first.parent == tmp_path / "lora" and len(first.name) == 16
    with pytest.raises(ValueError, match="plain folder name"):
        artifacts.artifact_dir(tmp_path, "../escape", parts)


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_key_ignores_insertion_order(parts):
    reordered = dict(reversed(list(parts.items())))
    assert artifacts.key_of(parts) == artifacts.key_of(reordered)


def test_finished_build_is_complete_and_records_its_inputs(tmp_path):
    final = _build(tmp_path / "kind" / "key", parts={"iters": 50})
    assert artifacts.is_complete(final)
    assert artifacts.cached(final) == final
    manifest = artifacts.read_manifest(final)
    assert manifest["files"]["model.bin"] == len("weights")
    assert manifest["files"][str(Path("sub") / "config.json")] == 2
    assert json.loads((final / artifacts.INPUTS).read_text()) == {"iters": 50}
    assert not list(final.parent.glob("key.partial-*"))


def test_failed_build_leaves_nothing(tmp_path):
    final = tmp_path / "key"
    with pytest.raises(OSError, match="disk full"), artifacts.building(final) as partial:
        (partial / "half.bin").write_text("half")
        raise OSError("disk full")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_old_complete_artifact(tmp_path):
    final = _build(tmp_path / "key", "old")
    with pytest.raises(RuntimeError), artifacts.building(final) as partial:
        (partial / "model.bin").write_text("new, unfinished")
        raise RuntimeError("killed")
    assert artifacts.is_complete(final) and (final / "model.bin").read_text() == "old"


def test_truncated_or_unmarked_folder_is_not_trusted(tmp_path):
    final = _build(tmp_path / "key")
    (final / "model.bin").write_text("trunc")  # same name, different size: a torn copy
    assert not artifacts.is_complete(final)
    assert artifacts.cached(final) is None

    unmarked = tmp_path / "unmarked"
    unmarked.mkdir()
    (unmarked / "model.bin").write_text("weights")
    assert artifacts.cached(unmarked) is None

    broken = _build(tmp_path / "broken")
    (broken / artifacts.MARKER).write_text("{not json")
    assert artifacts.cached(broken) is None


def test_fresh_ignores_and_replaces_a_complete_artifact(tmp_path):
    final = _build(tmp_path / "key", "old")
    assert artifacts.cached(final, fresh=True) is None
    _build(final, "new")
    assert (final / "model.bin").read_text() == "new"
    assert artifacts.is_complete(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no stale or partial folders left


def test_partial_of_a_dead_process_is_swept(tmp_path):
    final = tmp_path / "key"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"key.partial-{int(dead.stdout)}"
    orphan.mkdir()
    (orphan / "model.bin").write_text("half")
    alive = tmp_path / f"key.partial-{os.getppid()}"  # a live process's build is left alone
    alive.mkdir()
    assert artifacts.sweep_partials(final) == [orphan]
    assert alive.exists() and not orphan.exists()


_KILLED_BUILD = """
import sys, time
from pathlib import Path
from punie_gates.model import artifacts
with artifacts.building(Path(sys.argv[1]), {"x": 1}) as partial:
    (partial / "model.bin").write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)
"""


def test_killed_build_is_not_trusted_and_a_later_build_succeeds(tmp_path):
    final = tmp_path / "key"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert artifacts.cached(final) is None
    assert [p.name for p in tmp_path.iterdir()] == [f"key.partial-{proc.pid}"]
    _build(final)
    assert artifacts.cached(final) == final
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_fingerprint_samples_large_files(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact_keys, "FULL_HASH_LIMIT", 4 * 1024 * 1024)
    monkeypatch.setattr(artifact_keys, "_SAMPLE", 1024)
    small, big = tmp_path / "small.json", tmp_path / "big.safetensors"
    small.write_text("{}")
    big.write_bytes(bytes(8 * 1024 * 1024))
    assert set(artifacts.file_fingerprint(small)) == {"size", "sha256"}
    before = artifacts.file_fingerprint(big)
    assert set(before) == {"size", "sha256-sampled"}
    with big.open("r+b") as fh:  # a changed header (first sample) changes the key
        fh.write(b"\x01")
    assert artifacts.file_fingerprint(big) != before
    tree = artifacts.tree_fingerprint(tmp_path, ("*.json",))
    assert list(tree) == ["small.json"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        artifacts.tree_fingerprint(tmp_path / "missing")


def test_records_fingerprint_sees_content_and_count():
    a = [{"messages": [{"role": "user", "content": "hi"}]}]
    b = [{"messages": [{"role": "user", "content": "hi!"}]}]
    assert artifacts.records_fingerprint(a) != artifacts.records_fingerprint(b)
    assert artifacts.records_fingerprint(a)["count"] == 1
    assert artifacts.records_fingerprint(iter(a)) == artifacts.records_fingerprint(a)


def test_library_versions_name_mlx_lm():
    assert artifacts.library_versions()["mlx-lm"]


def test_next_build_sweeps_a_dead_partial(tmp_path):
    final = tmp_path / "key"
    (tmp_path / "key.partial-999999999").mkdir()  # no such process
    _build(final)
    assert artifacts.is_complete(final)
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
