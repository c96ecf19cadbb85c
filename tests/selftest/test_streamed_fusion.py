"""The streamed fuse + quantize writes exactly what the recipe writes, without the float copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from punie_gates.inputs import paths
from punie_gates.model import artifacts
from punie_gates.model.candidate import CARRIED_FILES
from punie_gates.model.disk import DiskSpaceError, free_space_override
from punie_gates.model.fusion import fuse_and_quantize
from punie_gates.model.random_adapter import write_random_adapter
from punie_gates.model.streamed_fusion import (
    StreamedFusionError,
    _check_reload_is_identity,
    fuse_and_quantize_streamed,
)


@pytest.fixture(scope="module")
def demo_base() -> Path:
    """The demo at 5 bits, as Gate 1 makes it (float32 scales: the demo's dtype)."""
    from punie_gates.model.demo import ensure_demo_model
    from punie_gates.model.quantize import ensure_bits

    return ensure_bits(ensure_demo_model(), paths.cache_dir() / "work", 5).path


@pytest.fixture(scope="module")
def bf16_base(tmp_path_factory) -> Path:
    """The demo as mlx-community ships Devstral: bfloat16 floats and scales, torch_dtype bfloat16, 5 bits."""
    import mlx.core as mx
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    from punie_gates.model.demo import ensure_demo_model

    demo = ensure_demo_model()
    dest = tmp_path_factory.mktemp("bf16-base")
    model, config = load_model(demo, lazy=True)
    model.set_dtype(mx.bfloat16)
    config["torch_dtype"] = "bfloat16"
    model, config = quantize_model(model, config, 64, 5)
    save_model(dest, model)
    save_config(config, config_path=dest / "config.json")
    for name in CARRIED_FILES:
        if (demo / name).is_file():
            shutil.copyfile(demo / name, dest / name)
    return dest


def _both(base: Path, root: Path) -> tuple[Path, Path, Path]:
    # A delta large enough to survive 5 bits, so the fused model differs from the base.
    adapter = write_random_adapter(base, root / "adapter", magnitude=2e-2, seed=7)
    recipe = fuse_and_quantize(base, adapter, root / "recipe", bits=5)
    streamed = fuse_and_quantize_streamed(base, adapter, root / "streamed", bits=5)
    return adapter, recipe, streamed


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()} - set(artifacts.BOOKKEEPING)


@pytest.mark.parametrize("which", ["demo_base", "bf16_base"])
def test_streamed_output_is_the_recipes_tensor_for_tensor(which, request, tmp_path):
    import mlx.core as mx

    base = request.getfixturevalue(which)
    adapter, recipe, streamed = _both(base, tmp_path)
    assert recipe != streamed and artifacts.is_complete(streamed)
    assert _files(recipe) == _files(streamed)
    shards = sorted(n for n in _files(recipe) if n.endswith(".safetensors"))
    assert shards == ["model.safetensors"]
    for shard in shards:
        a, b = mx.load(str(recipe / shard)), mx.load(str(streamed / shard))
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert mx.array_equal(a[key], b[key]).item(), key
    config_r = json.loads((recipe / "config.json").read_text())
    config_s = json.loads((streamed / "config.json").read_text())
    assert config_r["quantization"] == config_s["quantization"] == {"group_size": 64, "bits": 5, "mode": "affine"}
    assert config_r == config_s
    for name in _files(recipe) - set(shards):  # tokenizer files, index, model card: byte for byte
        assert (recipe / name).read_bytes() == (streamed / name).read_bytes(), name

    # The adapter really was merged: an adapted layer differs from the base's.
    fused = mx.load(str(streamed / "model.safetensors"))
    original = mx.load(str(base / "model.safetensors"))
    adapted = sorted(
        k[: -len(".lora_a")] for k in mx.load(str(adapter / "adapters.safetensors")) if k.endswith(".lora_a")
    )
    assert adapted and not mx.array_equal(fused[f"{adapted[-1]}.weight"], original[f"{adapted[-1]}.weight"]).item()
    expected_float = mx.bfloat16 if which == "bf16_base" else mx.float32
    assert fused[f"{adapted[-1]}.scales"].dtype == expected_float


def test_streamed_and_recipe_share_one_cached_artifact(demo_base, tmp_path):
    adapter = write_random_adapter(demo_base, tmp_path / "adapter", seed=1)
    recipe = fuse_and_quantize(demo_base, adapter, tmp_path / "work", bits=5)
    marker = (recipe / artifacts.MARKER).stat().st_mtime_ns
    assert fuse_and_quantize_streamed(demo_base, adapter, tmp_path / "work", bits=5) == recipe
    assert (recipe / artifacts.MARKER).stat().st_mtime_ns == marker, "the streamed path rebuilt a cached fuse"
    assert (recipe / artifacts.LAST_USED).is_file()


def test_streamed_fusion_refuses_a_full_disk_before_writing(demo_base, tmp_path):
    adapter = write_random_adapter(demo_base, tmp_path / "adapter", seed=2)
    work = tmp_path / "work"
    with free_space_override(lambda folder: 10_000_000), pytest.raises(DiskSpaceError, match="fused model at 5 bits"):
        fuse_and_quantize_streamed(demo_base, adapter, work, bits=5)
    assert not work.exists()


def test_a_sanitize_that_changes_weights_is_refused():
    import mlx.nn as nn

    class Renaming(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def sanitize(self, weights):
            return {k.replace("proj", "projection"): v for k, v in weights.items()}

    class Scaling(Renaming):
        def sanitize(self, weights):
            return {k: v * 2 for k, v in weights.items()}

    for model in (Renaming(), Scaling()):
        with pytest.raises(StreamedFusionError, match="sanitize"):
            _check_reload_is_identity(model, {"model_type": "llama"})


def test_fusion_bench_reports_both_paths(demo_base, tmp_path):
    from punie_gates.checks.bench_fusion import run_fusion_bench

    adapter = write_random_adapter(demo_base, tmp_path / "adapter", seed=3)
    bench = run_fusion_bench(demo_base, adapter, tmp_path / "bench", bits=5)
    figures = bench.to_json()
    print(json.dumps(figures))
    for key in ("recipe_s", "streamed_s", "recipe_bytes_written", "streamed_bytes_written",
                "recipe_peak_memory_gb", "streamed_peak_memory_gb", "identical"):  # fmt: skip
        assert key in figures
    assert bench.identical and not bench.differences and bench.tensors > 100
    # The recipe also wrote the float fuse: a float32 copy of the whole model.
    assert bench.recipe_bytes_written > bench.streamed_bytes_written + 50_000_000
    assert bench.recipe_s > 0 and bench.streamed_s > 0
    assert not list((tmp_path / "bench" / "recipe" / "fused").iterdir()), "the float fuse was left behind"
    with pytest.raises(ValueError, match="fresh folders"):
        run_fusion_bench(demo_base, adapter, tmp_path / "bench", bits=5)
