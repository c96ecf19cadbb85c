"""Gates 4 and 5 fuse through the streamed path by default and fall back to the recipe,
saying so, for a model the streamed path cannot promise identity on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from punie_gates.checks.steps import fuse_for_gate
from punie_gates.inputs import paths
from punie_gates.inputs.options import resolve_options
from punie_gates.model import artifacts
from punie_gates.model.random_adapter import write_random_adapter


@pytest.fixture(scope="module")
def demo_base() -> Path:
    """The demo at 5 bits, as Gate 1 makes it."""
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.quantize import ensure_bits

    return ensure_bits(ensure_demo_model(), paths.cache_dir() / "work", 5).path


@pytest.fixture
def fp8_leftover_base(demo_base, tmp_path) -> Path:
    """The wrong candidate: the demo whose text_config still carries the original checkpoint's
    FP8 `quantization_config` (as Devstral's published config does). mlx-lm's convert would
    read it back from the float fuse, which the streamed path does not mirror."""
    base = tmp_path / "fp8-leftover"
    shutil.copytree(demo_base, base, ignore=shutil.ignore_patterns(*artifacts.BOOKKEEPING))
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    config["text_config"]["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    (base / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return base


def _options(tmp_path: Path, **given):
    return resolve_options({"work_dir": str(tmp_path / "work"), **given}, root=tmp_path)


def test_the_default_is_streamed_and_a_rerun_reuses_it(demo_base, tmp_path):
    adapter = write_random_adapter(demo_base, tmp_path / "adapter", seed=4)
    first = fuse_for_gate(demo_base, adapter, _options(tmp_path), gate="gate4", progress=None)
    assert (first.method, first.requested, first.cached, first.fallback) == ("streamed", "streamed", False, None)
    assert artifacts.is_complete(first.path)
    assert not (tmp_path / "work" / "fused").exists(), "no float16 fuse was written"
    again = fuse_for_gate(demo_base, adapter, _options(tmp_path, fusion="recipe"), gate="gate5", progress=None)
    assert again.path == first.path and again.cached and again.requested == "recipe"
    assert json.loads(json.dumps(again.to_json()))["cached"] is True


def test_the_streamed_path_hands_over_to_the_recipe_and_says_why(fp8_leftover_base, tmp_path):
    adapter = write_random_adapter(fp8_leftover_base, tmp_path / "adapter", seed=5)
    fused = fuse_for_gate(fp8_leftover_base, adapter, _options(tmp_path), gate="gate4", progress=None)
    assert (fused.method, fused.requested, fused.cached) == ("recipe", "streamed", False)
    assert "still names a quantization" in fused.fallback and "fp8" in fused.fallback
    assert artifacts.is_complete(fused.path)
    assert json.loads((fused.path / "config.json").read_text())["quantization"]["bits"] == 5


def test_bench_fusion_on_the_demo_candidate_prints_one_json_line(capsys, demo_base):
    """`punie-gates bench --candidate demo --fusion`, as the issue's Done-when types it."""
    from punie_gates.commands.bench import main

    assert main(["--candidate", "demo", "--fusion"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    result = json.loads(lines[0])
    assert result["identical"] is True and result["differences"] == []
    assert result["base"] == str(demo_base), "the demo at 5 bits, as Gate 1 makes it"
    assert result["streamed_bytes_written"] < result["recipe_bytes_written"] / 2
    assert result["recipe_s"] > 0 and result["streamed_s"] > 0
