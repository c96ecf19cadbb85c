"""The disk guard: sizes from headers, refusal before the first byte is written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import mlx.core  # noqa: F401  (before pytester runs: an in-process run drops what it imported, and mlx cannot be imported twice)
import pytest

from punie_gates.inputs import paths
from punie_gates.model import artifacts, disk, sizes
from punie_gates.model.disk import DiskSpaceError, free_space_override

NEARLY_FULL = 5_000_000  # bytes a fake disk reports free: less than any model folder needs


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name not in artifacts.BOOKKEEPING)


@pytest.fixture(scope="module")
def demo() -> Path:
    from punie_gates.model.demo import ensure_demo_model

    return ensure_demo_model()


@pytest.fixture(scope="module")
def demo5(demo) -> Path:
    from punie_gates.model.quantize import ensure_bits

    return ensure_bits(demo, paths.cache_dir() / "work", 5).path


def test_estimates_match_what_mlx_lm_writes(demo, demo5, tmp_path):
    from punie_gates.model.fusion import fuse_dequantized
    from punie_gates.model.random_adapter import write_random_adapter

    # float32 demo -> 5 bits, and 5 bits -> 5 bits (counted at the unpacked width)
    assert sizes.estimate_quantized_bytes(demo, 5) == pytest.approx(_size(demo5), rel=0.01)
    assert sizes.estimate_quantized_bytes(demo5, 5) == pytest.approx(_size(demo5), rel=0.01)
    assert sizes.estimate_quantized_bytes(demo5, 4) < sizes.estimate_quantized_bytes(demo5, 8)
    adapter = write_random_adapter(demo5, tmp_path / "adapter")
    fused = fuse_dequantized(demo5, adapter, tmp_path / "work")
    assert sizes.estimate_fused_bytes(demo5) == pytest.approx(_size(fused), rel=0.01)
    assert sizes.estimate_checkpoint_bytes(10_000_000) > 3 * 10_000_000


def test_check_names_the_figures_and_the_work_folder(tmp_path):
    dest = tmp_path / "work" / "quantized" / "0123456789abcdef"  # nothing of it exists yet
    assert disk.nearest_existing(dest) == tmp_path
    with free_space_override(lambda folder: 2_000_000_000):
        passed = disk.check_free_space(dest, 1_000_000_000, what="the model at 5 bits", work_dir=tmp_path / "work")
    assert passed.checked == tmp_path and passed.free_bytes == 2_000_000_000
    assert passed.required_bytes > passed.needed_bytes
    with free_space_override(lambda folder: NEARLY_FULL), pytest.raises(DiskSpaceError) as caught:
        disk.check_free_space(dest, 1_000_000_000, what="the model at 5 bits", work_dir=tmp_path / "work")
    message = str(caught.value)
    for expected in ("the model at 5 bits", "1.00 GB", "5.0 MB", str(tmp_path / "work"), "--work-dir", "prune --stale"):
        assert expected in message
    assert not (tmp_path / "work").exists()


def test_quantizing_refuses_a_nearly_full_disk_before_writing(demo, tmp_path):
    from punie_gates.model.quantize import ensure_bits

    work = tmp_path / "work"
    with free_space_override(lambda folder: NEARLY_FULL), pytest.raises(DiskSpaceError, match="quantized to 5 bits"):
        ensure_bits(demo, work, 5, fresh=True)
    assert not work.exists()
    final = artifacts.artifact_dir(work, "quantized", {})  # any key of that kind: none is locked now
    assert artifacts.building_now(final) is None


def test_fusing_refuses_before_the_float_fuse_and_gives_its_claim_back(demo5, tmp_path):
    import threading

    from punie_gates.model.fusion import fuse_and_quantize
    from punie_gates.model.random_adapter import write_random_adapter

    adapter = write_random_adapter(demo5, tmp_path / "adapter")
    work = tmp_path / "work"
    with free_space_override(lambda folder: NEARLY_FULL), pytest.raises(DiskSpaceError, match="float fuse"):
        fuse_and_quantize(demo5, adapter, work, bits=5)
    assert not work.exists()
    # Another thread can build it now: the refused call holds no lock.
    result = []
    thread = threading.Thread(target=lambda: result.append(fuse_and_quantize(demo5, adapter, work, bits=5)))
    thread.start()
    thread.join(timeout=120)
    assert result and artifacts.is_complete(result[0])


def test_training_refuses_before_the_first_iteration(demo5, tmp_path):
    from test_training import TRAIN, VALID

    from punie_gates.model.training import TrainSettings, train_lora

    work = tmp_path / "work"
    with free_space_override(lambda folder: 1_000_000), pytest.raises(DiskSpaceError, match="training checkpoints"):
        train_lora(demo5, TRAIN, VALID, TrainSettings(iters=2, max_seq_length=64), work)
    assert not work.exists()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 20 MB disk (tmpfs), when this process may mount one."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); the fake disk tests cover it"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_real_small_disk_is_refused_before_any_file_is_written(demo, tiny_tmpfs):
    from punie_gates.model.quantize import ensure_bits

    work = tiny_tmpfs / "work"
    with pytest.raises(DiskSpaceError) as caught:
        ensure_bits(demo, work, 5, fresh=True)
    assert str(work) in str(caught.value)
    assert list(tiny_tmpfs.iterdir()) == [], "something was written before the refusal"


def test_a_new_user_on_a_nearly_full_disk_is_refused_at_once_in_one_line(
    pytester, repo_root, demo, tiny_tmpfs, monkeypatch
):
    """`pytest --candidate demo --work-dir=<a 20 MB disk>` as a user types it (Gate 1 alone)."""
    pytester.makeconftest('pytest_plugins = ["punie_gates.plugin"]')
    gates = pytester.mkdir("gates")
    shutil.copy(repo_root / "tests" / "gates" / "test_gate1_load.py", gates)
    monkeypatch.setenv("PUNIE_GATES_CACHE", str(paths.cache_dir()))  # the demo built above: a warm lookup
    work = tiny_tmpfs / "work"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "gates",
        "--candidate",
        "demo",
        "--run-all-gates",
        f"--work-dir={work}",
        "--report-dir",
        "reports",
    )
    assert result.ret == 6  # ERROR: a user's problem stops the run before it judges anything (README: exit status)
    out = result.stdout.str()
    assert "VERDICT: ERROR: not judged" in out and "NO_GO" not in out
    refusal = [line for line in out.splitlines() if line.startswith("  - not enough disk space")]
    assert refusal, out[-3000:]
    for figure in (
        "quantized to 5 bits",
        f"the work folder {work}",
        "MB is free on the disk of",
        "Nothing was written",
    ):
        assert figure in refusal[0]
    assert "raise DiskSpaceError" not in out, "a traceback instead of the one-line message"
    assert list(tiny_tmpfs.iterdir()) == [], "something was written before the refusal"
    report = json.loads((pytester.path / "reports" / "gate-report.json").read_text())
    assert report["verdict"] == "ERROR" and report["gates"]["gate1"]["status"] == "error"
    assert [(s["step"], s["ok"]) for s in report["gates"]["gate1"]["figures"]["steps"]] == [("quantize", False)]
    assert report["work_folder"] == {"path": str(work), "bytes": 0}
