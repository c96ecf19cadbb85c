"""measure(): seconds, MLX peak, peak resident set and bytes written, per step."""

from __future__ import annotations

import json
import time

import pytest

from punie_gates.resources import StepCost, folder_bytes, measure


def test_a_step_reports_its_time_memory_and_bytes(tmp_path):
    import mlx.core as mx

    (tmp_path / "old.bin").write_bytes(b"o" * 1000)
    with measure("write", folders=[tmp_path, tmp_path / "not-yet"]) as step:
        assert step.cost is None
        big = mx.zeros((25_000_000,), dtype=mx.float32)  # 100 MB
        mx.eval(big)
        (tmp_path / "not-yet").mkdir()
        (tmp_path / "not-yet" / "new.bin").write_bytes(b"n" * 123_456)
        time.sleep(0.05)
    cost = step.cost
    assert isinstance(cost, StepCost) and cost.step == "write" and cost.ok
    assert cost.seconds >= 0.05
    assert cost.peak_memory_gb >= 0.1
    assert cost.bytes_written == 123_456
    assert json.loads(json.dumps(cost.to_json()))["step"] == "write"
    del big


def test_peaks_are_per_step(tmp_path):
    import mlx.core as mx

    with measure("big") as first:
        held = bytearray(200_000_000)
        held[::4096] = b"x" * len(held[::4096])  # touch every page: resident
        mx.eval(mx.ones((10_000_000,)))
        del held
    with measure("small") as second:
        mx.eval(mx.ones((10,)))
    assert first.cost.peak_rss_gb >= 0.2
    assert second.cost.bytes_written is None
    assert second.cost.peak_memory_gb < 0.01 < first.cost.peak_memory_gb
    if second.cost.rss_scope == "step":
        assert second.cost.peak_rss_gb < first.cost.peak_rss_gb - 0.15
    else:
        pytest.skip("this kernel cannot reset the resident-set high-water mark")


def test_an_outer_step_keeps_what_an_inner_one_reset():
    import mlx.core as mx

    with measure("outer") as outer:
        mx.eval(mx.ones((20_000_000,)))  # 80 MB, freed before the inner step resets the counter
        mx.clear_cache()
        with measure("inner") as inner:
            mx.eval(mx.ones((10,)))
    assert inner.cost.peak_memory_gb < 0.01
    assert outer.cost.peak_memory_gb >= 0.08


def test_a_failed_step_is_recorded_and_the_error_passes(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), measure("fails", folders=[tmp_path]) as step:
        raise RuntimeError("boom")
    assert step.cost is not None and step.cost.ok is False and step.cost.bytes_written == 0


def test_folder_bytes_counts_files_not_links(tmp_path):
    (tmp_path / "a").write_bytes(b"a" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"b" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert folder_bytes(tmp_path) == 15
    assert folder_bytes(tmp_path / "missing") == 0
