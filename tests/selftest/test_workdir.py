"""The work folder: listing, pruning the stale, build locks (never prune or double-build a live build)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from punie_gates.commands import work as work_command
from punie_gates.model import artifacts, workdir

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _parts(**extra) -> dict:
    return {"versions": artifacts.library_versions(), **extra}


def _artifact(work: Path, kind: str, parts: dict, sources: dict | None = None, size: int = 1000) -> Path:
    final = artifacts.artifact_dir(work, kind, parts)
    with artifacts.building(final, parts, sources=sources) as partial:
        (partial / "model.safetensors").write_bytes(b"x" * size)
    return final


def _dead_pid() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )


@pytest.fixture
def source(tmp_path) -> Path:
    """A candidate folder outside the work folder (not an artifact)."""
    folder = tmp_path / "candidate"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def work(tmp_path, source) -> Path:
    """A work folder with one entry of every kind; names in the returned folder's `names.json`."""
    work = tmp_path / "work"
    fp = artifacts.tree_fingerprint(source)
    names = {}
    names["current"] = _artifact(work, "quantized", _parts(source=fp, bits=5), {"source": source})
    names["old_versions"] = _artifact(work, "quantized", {"versions": {"mlx-lm": "0.0.1"}, "source": fp, "bits": 4})
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "a.bin").write_text("a")
    names["source_gone"] = _artifact(work, "q5", _parts(source=artifacts.tree_fingerprint(gone)), {"source": gone})
    (gone / "a.bin").unlink()
    gone.rmdir()
    names["incomplete"] = work / "fused" / "0123456789abcdef"
    names["incomplete"].mkdir(parents=True)
    (names["incomplete"] / "model.safetensors").write_bytes(b"half")
    names["dead_partial"] = work / "fused" / f"fedcba9876543210.partial-{_dead_pid()}"
    names["dead_partial"].mkdir()
    names["live_partial"] = work / "fused" / f"aaaaaaaaaaaaaaaa.partial-{os.getppid()}"
    names["live_partial"].mkdir()
    lora = _artifact(work, "lora", _parts(model=fp), {"model": source})
    names["lora"] = lora
    names["finished_resume"] = lora.with_name(f"{lora.name}.resume")
    names["finished_resume"].mkdir()
    names["other"] = work / "reports" / "gate4"
    names["other"].mkdir(parents=True)
    return work, names


def test_scan_lists_every_entry_with_its_state_and_why_it_is_stale(work):
    work, names = work
    entries = {e.path: e for e in workdir.scan(work)}
    assert set(entries) == set(names.values())
    current = entries[names["current"]]
    assert current.state == "complete" and current.stale is None and current.bytes > 1000
    assert current.kind == "quantized" and current.name == f"quantized/{names['current'].name}"
    assert current.sources["source"]["artifact"] is False and current.built_at and current.last_used
    assert "other library versions" in entries[names["old_versions"]].stale
    assert "mlx-lm 0.0.1 ->" in entries[names["old_versions"]].stale
    assert "is gone" in entries[names["source_gone"]].stale
    assert entries[names["incomplete"]].state == "incomplete" and "incomplete" in entries[names["incomplete"]].stale
    assert entries[names["dead_partial"]].state == "partial" and "gone" in entries[names["dead_partial"]].stale
    live = entries[names["live_partial"]]
    assert live.stale is None and live.building == {"pid": os.getppid()}
    assert entries[names["lora"]].stale is None
    assert "training finished" in entries[names["finished_resume"]].stale
    assert entries[names["other"]].state == "other" and entries[names["other"]].stale is None
    json.dumps([e.to_json() for e in entries.values()])


def test_reuse_records_last_used_without_changing_fingerprints(work):
    work, names = work
    folder = names["current"]
    before = artifacts.tree_fingerprint(folder)
    built = artifacts.last_used(folder)
    time.sleep(0.02)
    assert artifacts.cached(folder) == folder
    assert artifacts.last_used(folder) > built
    assert artifacts.tree_fingerprint(folder) == before, "LAST_USED must not change keys built on this folder"


def test_a_changed_source_file_makes_its_artifacts_stale(work, source):
    work, names = work
    (source / "model.safetensors").write_bytes(b"v" * 100)  # same size, other content
    entries = {e.path: e for e in workdir.scan(work)}
    assert "changed since it was built" in entries[names["current"]].stale
    assert "changed since it was built" in entries[names["lora"]].stale


def test_a_gone_source_that_was_an_artifact_is_not_stale(tmp_path):
    work = tmp_path / "work"
    base = _artifact(work, "quantized", _parts(x=1))
    derived = _artifact(work, "lora", _parts(model=artifacts.tree_fingerprint(base)), {"model": base})
    artifacts.discard(base)  # rebuilding it would recreate the same folder
    assert [e.stale for e in workdir.scan(work) if e.path == derived] == [None]


def test_prune_stale_removes_exactly_the_stale(work):
    work, names = work
    dry = workdir.prune_stale(work, dry_run=True)
    doomed = {"old_versions", "source_gone", "incomplete", "dead_partial", "finished_resume"}
    assert {r.entry.path for r in dry} == {names[n] for n in doomed}
    assert all(p.exists() for p in names.values()), "a dry run removed something"
    done = workdir.prune_stale(work)
    assert all(r.removed for r in done)
    for key, path in names.items():
        assert path.exists() == (key not in doomed), key
    assert workdir.prune_stale(work) == []


_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from punie_gates.model import artifacts
    final = Path(sys.argv[1])
    with artifacts.building(final, {"x": 1}) as partial:
        (partial / "model.safetensors").write_bytes(b"x" * 10)
        print("building", flush=True)
        time.sleep(60)
""")


def _holder(final: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(final)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "building"
    return proc


def test_a_folder_being_built_is_never_pruned_or_removed(tmp_path):
    work = tmp_path / "work"
    final = work / "fused-q5" / "0123456789abcdef"
    final.mkdir(parents=True)  # an incomplete folder a running session is rebuilding: stale but for the lock
    proc = _holder(final)
    try:
        entries = {e.path.name: e for e in workdir.scan(work)}
        assert entries[final.name].building["pid"] == proc.pid and entries[final.name].stale is None
        assert entries[f"{final.name}.partial-{proc.pid}"].building["pid"] == proc.pid
        assert workdir.prune_stale(work) == []
        removal = workdir.remove(entries[final.name])
        assert not removal.removed and f"pid {proc.pid}" in removal.reason
        assert final.exists() and (work / "fused-q5" / f"{final.name}.partial-{proc.pid}").exists()
        assert work_command.main(["--work-dir", str(work), "rm", final.name]) == 1
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # Its process is gone: the lock went with it, and both folders are stale now.
    assert {r.entry.path.name for r in workdir.prune_stale(work)} == {final.name, f"{final.name}.partial-{proc.pid}"}


def test_two_threads_building_one_key_build_once(tmp_path, capsys):
    final = tmp_path / "work" / "kind" / "0123456789abcdef"
    builds, results = [], []
    start = threading.Barrier(2)

    def get():
        start.wait()
        if (done := artifacts.cached(final)) is not None:
            results.append(done)
            return
        with artifacts.building(final, {"x": 1}) as partial:
            builds.append(threading.get_ident())
            time.sleep(0.5)
            (partial / "model.safetensors").write_text("built once")
        results.append(final)

    threads = [threading.Thread(target=get) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(builds) == 1 and results == [final, final]
    assert (final / "model.safetensors").read_text() == "built once"
    assert "waiting for" in capsys.readouterr().err
    assert artifacts.building_now(final) is None, "a lock outlived its build"


_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from punie_gates.model import artifacts
    final = Path(sys.argv[1])
    if (done := artifacts.cached(final)) is not None:
        print("reused", flush=True)
    else:
        with artifacts.building(final, {"x": 1}) as partial:
            time.sleep(1.0)
            (partial / "model.safetensors").write_text(str(__import__("os").getpid()))
        print("built", flush=True)
""")


def test_two_processes_building_one_key_build_once(tmp_path):
    final = tmp_path / "work" / "kind" / "0123456789abcdef"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILDER, str(final)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )  # fmt: skip
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert sorted(out.strip() for out, _ in outs) == ["built", "reused"], outs
    assert any("waiting for" in err for _, err in outs)
    assert artifacts.is_complete(final)


def test_waiting_is_bounded(tmp_path):
    final = tmp_path / "work" / "kind" / "0123456789abcdef"
    proc = _holder(final)
    try:
        started = time.monotonic()
        with pytest.raises(artifacts.ArtifactBusyError, match=f"pid {proc.pid}"):
            artifacts.cached(final, wait_s=0.5)
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert artifacts.cached(final, wait_s=0.5) is None  # the holder died: its lock is free
    artifacts.release(final)


def test_work_command_lists_removes_and_prunes(work, capsys):
    work, names = work
    assert work_command.main(["--work-dir", str(work)]) == 0
    table = capsys.readouterr().out
    assert names["current"].name in table and "stale: built with other library versions" in table
    assert work_command.main(["--work-dir", str(work), "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"] for r in rows} >= {f"quantized/{names['current'].name}"}
    assert work_command.main(["--work-dir", str(work), "rm", names["current"].name[:8], "--dry-run"]) == 0
    assert "would remove" in capsys.readouterr().out and names["current"].exists()
    assert work_command.main(["--work-dir", str(work), "rm", f"quantized/{names['current'].name}"]) == 0
    assert not names["current"].exists()
    assert work_command.main(["--work-dir", str(work), "rm", "nosuchthing"]) == 2
    assert work_command.main(["--work-dir", str(work), "prune", "--stale"]) == 0
    assert "freed" in capsys.readouterr().out
    assert not names["old_versions"].exists() and names["lora"].exists()
    with pytest.raises(SystemExit):
        work_command.main(["--work-dir", str(work), "prune"])  # --stale is the only rule: say it


def test_an_interrupted_training_is_kept_until_its_inputs_go_stale(tmp_path, source):
    work = tmp_path / "work"
    key = _parts(model=artifacts.tree_fingerprint(source))
    resume = artifacts.artifact_dir(work, "lora", key).with_name(f"{artifacts.key_of(key)[:16]}.resume")
    resume.mkdir(parents=True)
    (resume / artifacts.INPUTS).write_text(json.dumps(key))
    (resume / workdir.RESUME_SOURCES).write_text(json.dumps({"model": str(source)}))
    assert "no complete checkpoint" in workdir.scan(work)[0].stale
    with artifacts.building(resume / "ckpt-0000010") as ckpt:
        (ckpt / "adapters.safetensors").write_bytes(b"a" * 10)
    (entry,) = workdir.scan(work)
    assert entry.state == "resume" and entry.stale is None, "days of training are not stale"
    (resume / artifacts.INPUTS).write_text(json.dumps({**key, "versions": {"mlx": "0.1"}}))
    assert "other library versions" in workdir.scan(work)[0].stale
